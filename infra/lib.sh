# shellcheck shell=bash
# shellcheck disable=SC2034  # settings used by the scripts that source this file
# Shared settings and helpers for infra/up.sh, infra/down.sh and infra/status.sh.
# Sourced, never executed. Every setting can be overridden from the environment.

INFRA_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INFRA_SRC/.." && pwd)"
INFRA_DIR="${INFRA_DIR:-$REPO_ROOT/.infra}"
case "$INFRA_DIR" in /*) ;; *) INFRA_DIR="$PWD/$INFRA_DIR" ;; esac
ENV_FILE="${ENV_FILE:-$REPO_ROOT/.env.test}"

ALL_SERVICES=(postgres redis kafka s3 stripe etcd)

# Ports: loopback only, deliberately not the defaults (5432, 6379, 9092, 5000).
PG_PORT="${PG_PORT:-55432}"
REDIS_PORT="${REDIS_PORT:-56379}"
KAFKA_PORT="${KAFKA_PORT:-59092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-59093}"
S3_PORT="${S3_PORT:-59000}"
# stripe-mock serves plain HTTP only here (its default is 12111 HTTP + 12112 HTTPS).
STRIPE_MOCK_PORT="${STRIPE_MOCK_PORT:-52111}"
# etcd (the service registry's tests): client and peer ports (its defaults are 2379 and 2380).
ETCD_PORT="${ETCD_PORT:-52379}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-52380}"

PG_DB="${PG_DB:-platform}"
S3_BUCKET="${S3_BUCKET:-platform-test}"
S3_REGION="${S3_REGION:-us-east-1}"

# Pinned versions (KAFKA_VERSION=4.4.0 was the newest 4.x on Maven Central when written).
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
LOG4J_VERSION="${LOG4J_VERSION:-2.25.3}"
SLF4J_VERSION="${SLF4J_VERSION:-2.0.17}"
DEPENDENCY_PLUGIN_VERSION="${DEPENDENCY_PLUGIN_VERSION:-3.8.1}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
# C1-only JIT and the serial GC: faster startup and less CPU on a 2-core box; plenty for tests.
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
# S3 only: moto[s3] + flask + flask-cors is what `moto_server` needs for S3; it is
# ~40 s faster to install than moto[server] (which pulls every service's deps).
# Set MOTO_PIP_SPEC="moto[server]==5.2.5" if other AWS services are ever needed.
MOTO_PIP_SPEC="${MOTO_PIP_SPEC:-moto[s3]==5.2.5 flask flask-cors}"
# The venv is built with uv (pip-installed from PyPI into .infra/tools, ~3x faster and
# far less CPU than venv+pip); INFRA_NO_UV=1 or a failed uv bootstrap falls back to pip.
INFRA_NO_UV="${INFRA_NO_UV:-}"
# stripe-mock (Stripe's official mock of its API) is built once with Go from the module proxy at this
# version (v0.203.0 builds in ~90 s on the 2-core CI machine) and the binary cached under $INFRA_DIR.
# Go is needed only for that first build: GO names the toolchain when it is not on PATH.
STRIPE_MOCK_VERSION="${STRIPE_MOCK_VERSION:-v0.203.0}"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_OS_USER="${PG_OS_USER:-postgres}"

PG_DIR="$INFRA_DIR/pg"
PGDATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
REDIS_DIR="$INFRA_DIR/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"
KAFKA_DIR="$INFRA_DIR/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs-$KAFKA_VERSION"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_CONF="$KAFKA_DIR/server.properties"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
M2_REPO="${MAVEN_REPO_LOCAL:-$INFRA_DIR/m2}"
VENV="$INFRA_DIR/venv"
TOOLS_DIR="$INFRA_DIR/tools"
MOTO_DIR="$INFRA_DIR/moto"
MOTO_PID="$MOTO_DIR/moto.pid"
MOTO_LOG="$MOTO_DIR/moto.log"
STRIPE_DIR="$INFRA_DIR/stripe-mock"
STRIPE_MOCK_BIN="$STRIPE_DIR/bin-$STRIPE_MOCK_VERSION/stripe-mock"
STRIPE_MOCK_PID="$STRIPE_DIR/stripe-mock.pid"
STRIPE_MOCK_LOG="$STRIPE_DIR/stripe-mock.log"
# Debian's etcd-server package (3.4) installs the binary here.
ETCD_BIN="${ETCD_BIN:-/usr/bin/etcd}"
ETCD_DIR="$INFRA_DIR/etcd"
ETCD_DATA="$ETCD_DIR/data"
ETCD_PID="$ETCD_DIR/etcd.pid"
ETCD_LOG="$ETCD_DIR/etcd.log"

# ---------------------------------------------------------------- helpers

is_root() { [ "$(id -u)" = 0 ]; }

die() { printf 'infra: ERROR: %s\n' "$*" >&2; exit 1; }

# Print a log's tail to stderr, indented, for error reports.
log_tail() {
  local file="$1" n="${2:-40}"
  if [ -s "$file" ]; then
    printf '  --- last %s lines of %s ---\n' "$n" "$file" >&2
    tail -n "$n" "$file" | sed 's/^/  | /' >&2
  else
    printf '  (log %s is empty or missing)\n' "$file" >&2
  fi
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# managed_pid PIDFILE PATTERN: print the pid and succeed when the pid file names a
# live process whose command line contains PATTERN. A stale pid file (e.g. after a
# reboot, or a pid reused by another program) is deleted.
managed_pid() {
  local file="$1" pattern="$2" pid
  [ -f "$file" ] || return 1
  pid="$(head -n1 "$file" 2>/dev/null | tr -dc 0-9)"
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
     tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"; then
    printf '%s\n' "$pid"
    return 0
  fi
  rm -f "$file" 2>/dev/null || true
  return 1
}

# stop_pid PID TIMEOUT_SECONDS: SIGTERM, wait, then SIGKILL.
stop_pid() {
  local pid="$1" t="${2:-30}" i
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < t * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -9 "$pid" 2>/dev/null || true
  sleep 0.2
}

# Shell snippet for `bash -c`: close every inherited fd above 2 (callers such as test
# runners or CI harnesses may pass pipes down; a server holding one would keep the
# caller waiting for EOF, or keep a lock held, for as long as it runs).
# shellcheck disable=SC2016
CLOSE_FDS='for fd in /proc/$$/fd/*; do fd=${fd##*/}; if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done; '

# as_pg CMD...: run as the PostgreSQL OS user when we are root (initdb/postgres refuse root).
as_pg() {
  if is_root; then
    runuser -u "$PG_OS_USER" -- "$@"
  else
    "$@"
  fi
}

# our_procs ARGV0_REGEX ARG: pids of processes whose argv[0] matches ARGV0_REGEX and
# that have ARG as one whole argument (our unique paths). Finds servers whose pid file
# is gone, e.g. after `rm -rf .infra` while they were running.
our_procs() {
  local f argv0
  # shellcheck disable=SC2013  # /proc/N/cmdline paths have no spaces
  for f in $(grep -lsFxz -- "$2" /proc/[0-9]*/cmdline 2>/dev/null); do
    argv0="$(head -z -n1 "$f" 2>/dev/null | tr -d '\0')" || continue
    [[ "$argv0" =~ $1 ]] && { f="${f#/proc/}"; echo "${f%/cmdline}"; }
  done
  return 0
}

# orphans NAME: our server processes of NAME that are not the managed (pid-file) one.
orphans() {
  local managed="" regex arg p
  case "$1" in
    postgres) managed="$(pg_pid || true)" regex='(^|/)postgres$' arg="$PGDATA" ;;
    kafka) managed="$(kafka_pid || true)" regex='(^|/)java$' arg="$KAFKA_CONF" ;;
    s3) managed="$(moto_pid || true)" regex='(^|/)python[0-9.]*$' arg="$VENV/bin/moto_server" ;;
    stripe) managed="$(stripe_mock_pid || true)" regex='(^|/)stripe-mock$' arg="$STRIPE_MOCK_BIN" ;;
    etcd) managed="$(etcd_pid || true)" regex='(^|/)etcd$' arg="--data-dir=$ETCD_DATA" ;;
    *) return 0 ;;
  esac
  for p in $(our_procs "$regex" "$arg"); do [ "$p" = "$managed" ] || echo "$p"; done
}

# listens_on PID PORT: PID has a listening TCP socket on 127.0.0.1:PORT.
listens_on() {
  if command -v ss >/dev/null; then
    ss -Hltnp "sport = :$2" 2>/dev/null | grep -q "pid=$1,"
  else
    port_open "$2"
  fi
}

# uses_deleted_files PID: PID holds open files under $INFRA_DIR that were deleted.
uses_deleted_files() {
  find "/proc/$1/fd" -mindepth 1 -printf '%l\n' 2>/dev/null | grep -F -- "$INFRA_DIR" | grep -q ' (deleted)$'
}

# stop_orphans NAME [PIDFILE PORT]: deal with our server processes that lost their pid
# file. With PIDFILE and PORT, one that still serves PORT and uses no deleted files is
# adopted (its pid written to PIDFILE); all others are stopped.
stop_orphans() {
  local p pidfile="${2:-}" port="${3:-}" adopted=""
  for p in $(orphans "$1"); do
    if [ -z "$adopted" ] && [ -n "$pidfile" ] && listens_on "$p" "$port" && ! uses_deleted_files "$p"; then
      echo "$p" >"$pidfile"
      adopted="$p"
      printf '%-9s adopted a running server that had lost its pid file (pid %s)\n' "$1" "$p"
      continue
    fi
    printf '%-9s stopping orphaned server (pid %s, its pid file or data dir was removed)\n' "$1" "$p"
    # SIGINT is PostgreSQL's fast shutdown; the others treat it like SIGTERM.
    kill -INT "$p" 2>/dev/null || true
    stop_pid "$p" 30
  done
}

pg_pid() {
  [ -f "$PGDATA/postmaster.pid" ] || return 1
  local pid
  pid="$(head -n1 "$PGDATA/postmaster.pid" | tr -dc 0-9)"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$PGDATA" && printf '%s\n' "$pid"
}

redis_ping() {
  [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

kafka_pid() { managed_pid "$KAFKA_PID" "$KAFKA_CONF"; }
moto_pid() { managed_pid "$MOTO_PID" "moto_server -H 127.0.0.1 -p $S3_PORT"; }
stripe_mock_pid() { managed_pid "$STRIPE_MOCK_PID" "$STRIPE_MOCK_BIN -http-addr 127.0.0.1:$STRIPE_MOCK_PORT"; }
etcd_pid() { managed_pid "$ETCD_PID" "--data-dir=$ETCD_DATA"; }

# etcd_ready: etcd answers its health endpoint with a healthy cluster.
etcd_ready() {
  curl -fsS --max-time 3 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'
}

# stripe_mock_ready: stripe-mock answers an authenticated API call (its fixtures are loaded).
stripe_mock_ready() {
  curl -fsS -o /dev/null --max-time 3 -H 'Authorization: Bearer sk_test_infra' \
    "http://127.0.0.1:$STRIPE_MOCK_PORT/v1/customers"
}

# select_services ARGS...: validate service names (default: all) into SERVICES.
select_services() {
  SERVICES=()
  local s a
  if [ "$#" -eq 0 ]; then SERVICES=("${ALL_SERVICES[@]}"); return; fi
  for a in "$@"; do
    case "$a" in
      pg | postgresql) a=postgres ;;
      moto) a=s3 ;;
      stripe-mock) a=stripe ;;
    esac
    for s in "${ALL_SERVICES[@]}"; do [ "$s" = "$a" ] && SERVICES+=("$a") && continue 2; done
    die "unknown service '$a' (known: ${ALL_SERVICES[*]})"
  done
}

wants() {
  local s
  for s in "${SERVICES[@]}"; do [ "$s" = "$1" ] && return 0; done
  return 1
}
