#!/usr/bin/env bash
# Start the local test infrastructure (PostgreSQL 15, Redis, Kafka 4 in KRaft mode,
# moto S3, stripe-mock, etcd) on loopback, non-default ports, and write .env.test for the tests.
#
#   bash infra/up.sh [postgres|redis|kafka|s3|stripe|etcd ...]   (default: all)
#
# Idempotent: servers already running are left alone. Downloads (Kafka jars, the
# moto virtualenv, the stripe-mock binary) are cached under $INFRA_DIR (default .infra/). Missing system
# packages (and, bringing everything up, Chromium for the console's browser tests) are installed with apt-get
# when running as root.
set -euo pipefail

# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T0="$EPOCHREALTIME"

# elapsed [START]: seconds since START (default: script start), one decimal.
elapsed() {
  local s="${1:-$T0}" now="$EPOCHREALTIME"
  awk -v a="$s" -v b="$now" 'BEGIN { printf "%.1fs", b - a }'
}

# ready NAME MESSAGE: the one line each service prints when it is usable.
ready() { printf '%-9s %s\n' "$1" "$2"; }

fail() { # fail NAME MESSAGE [LOG]
  printf '%-9s FAILED: %s\n' "$1" "$2" >&2
  [ -z "${3:-}" ] || log_tail "$3"
  exit 1
}

# wait_for NAME TIMEOUT LOG PID CMD...: poll CMD until it succeeds; fail early if
# PID (when given) dies, fail with the log tail on timeout.
wait_for() {
  local name="$1" timeout="$2" log="$3" pid="$4" deadline
  shift 4
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      fail "$name" "the server process exited during startup" "$log"
    fi
    if ((SECONDS >= deadline)); then
      fail "$name" "not ready after ${timeout}s" "$log"
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------- system packages

ensure_system_packages() {
  local need=()
  if wants postgres && ! [ -x "$PG_BIN/initdb" ]; then need+=(postgresql-15); fi
  if wants redis && ! { command -v redis-server && command -v redis-cli; } >/dev/null; then
    need+=(redis-server)
  fi
  if wants kafka; then
    command -v java >/dev/null || need+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || need+=(maven)
  fi
  if wants etcd && ! [ -x "$ETCD_BIN" ]; then need+=(etcd-server); fi
  if wants s3 && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need+=(python3 python3-venv)
  fi
  # The web console's browser tests drive Debian's Chromium (browser downloads do not work on these machines).
  if ((${#SERVICES[@]} == ${#ALL_SERVICES[@]})) && ! [ -x "${CHROMIUM:-/usr/bin/chromium}" ]; then need+=(chromium); fi
  ((${#need[@]})) || return 0

  is_root || die "missing system packages: ${need[*]} (install them: sudo apt-get install ${need[*]})"
  local log="$INFRA_DIR/run/apt.log" t="$EPOCHREALTIME" policy_added=""
  # Keep Debian's packages from starting their own default instances (5432/6379).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
  } >"$log" 2>&1 || rc=$?
  [ -z "$policy_added" ] || rm -f /usr/sbin/policy-rc.d
  if ((rc != 0)); then
    log_tail "$log"
    die "apt-get install ${need[*]} failed"
  fi
  ready apt "installed ${need[*]} in $(elapsed "$t")"
}

# ---------------------------------------------------------------- postgres

pg_prepare_dir() {
  if [ -L "$PG_DIR" ] && [ ! -e "$PG_DIR" ]; then mkdir -p "$(readlink "$PG_DIR")"; fi
  mkdir -p "$PG_DIR"
  is_root || return 0
  if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$PG_OS_USER"
  fi
  chown "$PG_OS_USER:" "$PG_DIR/"
  chmod 700 "$PG_DIR/"
  if ! runuser -u "$PG_OS_USER" -- test -w "$PG_DIR/"; then
    # A parent of $INFRA_DIR is not traversable by the postgres user (e.g. the repo
    # lives under /root): keep the cluster in /var/tmp and link it from .infra/pg.
    local alt
    alt="/var/tmp/platform-infra-pg-$(printf '%s' "$INFRA_DIR" | cksum | cut -d' ' -f1)"
    mkdir -p "$alt"
    chown "$PG_OS_USER:" "$alt"
    chmod 700 "$alt"
    rm -rf "$PG_DIR"
    ln -s "$alt" "$PG_DIR"
  fi
}

pg_psql() {
  PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

pg_ensure_db() {
  if [ "$(pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
    pg_psql -d postgres -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
  fi
}

up_postgres() {
  local t="$EPOCHREALTIME" pid
  [ -x "$PG_BIN/postgres" ] || fail postgres "no PostgreSQL binaries in $PG_BIN (set PG_BIN)"
  if pid="$(pg_pid)"; then
    pg_ensure_db || fail postgres "running (pid $pid) but not answering on 127.0.0.1:$PG_PORT" "$PG_LOG"
    ready postgres "already running on 127.0.0.1:$PG_PORT (pid $pid)"
    return
  fi
  stop_orphans postgres
  port_open "$PG_PORT" && fail postgres "port $PG_PORT is already used by another program"
  pg_prepare_dir

  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    as_pg rm -rf "$PGDATA" # leftovers of an interrupted initdb
    as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C \
      --no-sync --no-instructions >"$PG_DIR/initdb.log" 2>&1 ||
      fail postgres "initdb failed" "$PG_DIR/initdb.log"
    echo "include_if_exists = 'infra.conf'" | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
  fi
  # Regenerated on each start so PG_PORT overrides apply. Durability is traded for speed:
  # this is a disposable test database.
  as_pg tee "$PGDATA/infra.conf" >/dev/null <<EOF
# written by infra/up.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  as_pg rm -f "$PGDATA/postmaster.pid" # stale: no live postmaster owns it (checked above)
  as_pg bash -c "$CLOSE_FDS"'exec "$@"' _ "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PG_LOG" -w -t 60 -s start \
    </dev/null >/dev/null 2>&1 9>&- ||
    fail postgres "pg_ctl start failed" "$PG_LOG"
  wait_for postgres 30 "$PG_LOG" "" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres
  pg_ensure_db || fail postgres "could not create database $PG_DB" "$PG_LOG"
  ready postgres "ready on 127.0.0.1:$PG_PORT, database $PG_DB ($(elapsed "$t"))"
}

# ---------------------------------------------------------------- redis

up_redis() {
  local t="$EPOCHREALTIME"
  if redis_ping; then
    ready redis "already running on 127.0.0.1:$REDIS_PORT"
    return
  fi
  port_open "$REDIS_PORT" && fail redis "port $REDIS_PORT is already used by another program"
  mkdir -p "$REDIS_DIR"
  rm -f "$REDIS_PID"
  # shellcheck disable=SC2094  # startup errors (before redis opens its logfile) go to the same log
  bash -c "$CLOSE_FDS"'exec "$@"' _ redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
    --daemonize yes --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" --dir "$REDIS_DIR" \
    --save '' --appendonly no </dev/null >>"$REDIS_LOG" 2>&1 9>&- ||
    fail redis "redis-server failed to start" "$REDIS_LOG"
  wait_for redis 20 "$REDIS_LOG" "" redis_ping
  ready redis "ready on 127.0.0.1:$REDIS_PORT ($(elapsed "$t"))"
}

# ---------------------------------------------------------------- kafka

kafka_java() { "${JAVA_HOME:+$JAVA_HOME/bin/}java" "$@"; }

# Download the broker's runtime classpath once, with Maven, into $KAFKA_LIBS.
kafka_prepare() {
  [ -f "$KAFKA_LIBS/.complete" ] && return 0
  local t="$EPOCHREALTIME" tmp="$KAFKA_LIBS.tmp" log="$KAFKA_DIR/mvn.log"
  mkdir -p "$KAFKA_DIR"
  cat >"$KAFKA_DIR/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by infra/up.sh: runtime classpath of a Kafka $KAFKA_VERSION broker -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.infra</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- logging backend (the kafka poms leave it to the distribution) -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  rm -rf "$tmp"
  # Short-lived JVM: C1 + serial GC cut Maven's CPU time by about a third.
  MAVEN_OPTS="${MAVEN_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}" mvn -B -q -f "$KAFKA_DIR/pom.xml" -Dmaven.repo.local="$M2_REPO" \
    "org.apache.maven.plugins:maven-dependency-plugin:$DEPENDENCY_PLUGIN_VERSION:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$tmp" </dev/null >"$log" 2>&1 ||
    fail kafka "downloading Kafka $KAFKA_VERSION jars with Maven failed" "$log"
  [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || fail kafka "kafka_2.13-$KAFKA_VERSION.jar missing after download" "$log"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  touch "$KAFKA_LIBS/.complete"
  printf '%-9s downloaded Kafka %s jars (%s files) in %s\n' kafka "$KAFKA_VERSION" \
    "$(find "$KAFKA_LIBS" -name '*.jar' | wc -l)" "$(elapsed "$t")"
}

kafka_write_config() {
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  cat >"$KAFKA_CONF" <<EOF
# written by infra/up.sh: single node, combined broker + controller (KRaft)
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=3
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
num.network.threads=2
num.io.threads=4
EOF
}

kafka_format() {
  [ -f "$KAFKA_DATA/meta.properties" ] && return 0
  local cluster_id
  # A Kafka cluster id is 16 random bytes, base64url without padding. One starting with "-" would be read as an
  # option by the tool's argument parser (it failed 1 start in 64): draw again.
  cluster_id="-"
  while [ "${cluster_id#-}" != "$cluster_id" ]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  # shellcheck disable=SC2086
  kafka_java -Xmx256m $KAFKA_JVM_OPTS -Dkafka.logs.dir="$KAFKA_LOGS" -Dlog4j2.configurationFile="$INFRA_SRC/kafka/log4j2.xml" \
    -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format --ignore-formatted \
    -t "$cluster_id" -c "$KAFKA_CONF" </dev/null >"$KAFKA_LOGS/format.log" 2>&1 ||
    fail kafka "formatting the KRaft storage failed" "$KAFKA_LOGS/format.log"
}

kafka_probe() {
  local rc=0 out
  command -v node >/dev/null || { echo "(node not found: skipped metadata probe)"; return 0; }
  out="$(node "$INFRA_SRC/kafka/ready.cjs" "127.0.0.1:$KAFKA_PORT" "$((1000 * $1))" 2>&1)" || rc=$?
  case "$rc" in
    0) return 0 ;;
    3) echo "(kafkajs not installed: skipped metadata probe)" ;;
    *) echo "$out" >&2; return 1 ;;
  esac
}

up_kafka() {
  local t="$EPOCHREALTIME" pid
  kafka_prepare
  stop_orphans kafka "$KAFKA_PID" "$KAFKA_PORT"
  if pid="$(kafka_pid)" && [ ! -f "$KAFKA_DATA/meta.properties" ]; then
    printf '%-9s stopping the running broker (pid %s): its data dir was removed\n' kafka "$pid"
    stop_pid "$pid" 30
    rm -f "$KAFKA_PID"
  fi
  if pid="$(kafka_pid)"; then
    wait_for kafka 60 "$KAFKA_LOGS/server.log" "$pid" port_open "$KAFKA_PORT"
    kafka_probe 30 >/dev/null || fail kafka "running (pid $pid) but metadata requests fail" "$KAFKA_LOGS/server.log"
    ready kafka "already running on 127.0.0.1:$KAFKA_PORT (pid $pid)"
    return
  fi
  local p
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    port_open "$p" && fail kafka "port $p is already used by another program"
  done
  kafka_write_config
  kafka_format
  : >"$KAFKA_LOGS/kafka.out"
  # setsid: own session, so the broker outlives this shell; it writes its own pid file.
  # shellcheck disable=SC2086,SC2016
  setsid bash -c "$CLOSE_FDS"'echo $$ >"$0"; exec "$@"' "$KAFKA_PID" \
    "${JAVA_HOME:+$JAVA_HOME/bin/}java" $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dkafka.logs.dir="$KAFKA_LOGS" -Dlog4j2.configurationFile="$INFRA_SRC/kafka/log4j2.xml" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF" </dev/null >>"$KAFKA_LOGS/kafka.out" 2>&1 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do pid="$(kafka_pid)" && break; sleep 0.1; done
  [ -n "$pid" ] || fail kafka "the broker did not start" "$KAFKA_LOGS/kafka.out"
  wait_for kafka 90 "$KAFKA_LOGS/server.log" "$pid" port_open "$KAFKA_PORT"
  local note
  note="$(kafka_probe 60)" || fail kafka "broker port is open but metadata requests fail" "$KAFKA_LOGS/server.log"
  ready kafka "ready on 127.0.0.1:$KAFKA_PORT, Kafka $KAFKA_VERSION KRaft, pid $pid ($(elapsed "$t"))${note:+ $note}"
}

# ---------------------------------------------------------------- s3 (moto)

# http METHOD URL: succeed on a 2xx answer (uses the venv's python, no curl needed).
http() {
  "$VENV/bin/python" -S -c '
import sys, urllib.request
req = urllib.request.Request(sys.argv[2], method=sys.argv[1], data=b"" if sys.argv[1] == "PUT" else None)
try:
    with urllib.request.urlopen(req, timeout=3) as r:
        sys.exit(0 if r.status < 300 else 1)
except Exception as e:
    print(e, file=sys.stderr)
    sys.exit(1)
' "$1" "$2"
}

# uv_bin: print the path of a uv binary, pip-installing it into .infra/tools once.
uv_bin() {
  [ -z "$INFRA_NO_UV" ] || return 1
  if command -v uv >/dev/null; then command -v uv; return 0; fi
  if [ ! -x "$TOOLS_DIR/bin/uv" ]; then
    rm -rf "$TOOLS_DIR"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
      --target "$TOOLS_DIR" uv </dev/null >&2 || return 1
  fi
  [ -x "$TOOLS_DIR/bin/uv" ] && echo "$TOOLS_DIR/bin/uv"
}

s3_prepare() {
  if [ -x "$VENV/bin/moto_server" ] && [ "$(cat "$VENV/.spec" 2>/dev/null)" = "$MOTO_PIP_SPEC" ]; then
    return 0
  fi
  local t="$EPOCHREALTIME" log="$MOTO_DIR/pip.log" python uv how
  mkdir -p "$MOTO_DIR"
  : >"$log"
  rm -rf "$VENV"
  # The real interpreter, not a pyenv shim.
  python="$(python3 -c 'import sys; print(sys.executable)')" || fail s3 "python3 not found"
  # uv: use the system CA store (like pip's cert setting) and pip's index if one is set.
  export UV_NATIVE_TLS="${UV_NATIVE_TLS:-1}"
  if [ -n "${PIP_INDEX_URL:-}" ] && [ -z "${UV_INDEX_URL:-}" ]; then export UV_INDEX_URL="$PIP_INDEX_URL"; fi
  # shellcheck disable=SC2086
  if uv="$(uv_bin 2>>"$log")" &&
    UV_PYTHON_DOWNLOADS=never "$uv" venv -q --python "$python" "$VENV" </dev/null >>"$log" 2>&1 &&
    UV_CACHE_DIR="$INFRA_DIR/cache/uv" "$uv" pip install -q --python "$VENV/bin/python" \
      $MOTO_PIP_SPEC </dev/null >>"$log" 2>&1; then
    how=uv
  else
    echo "--- uv unavailable or failed: falling back to python3 -m venv + pip" >>"$log"
    rm -rf "$VENV"
    "$python" -m venv "$VENV" </dev/null >>"$log" 2>&1 || fail s3 "python3 -m venv failed" "$log"
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-compile --prefer-binary \
      $MOTO_PIP_SPEC </dev/null >>"$log" 2>&1 || fail s3 "pip install $MOTO_PIP_SPEC failed" "$log"
    how=pip
  fi
  [ -x "$VENV/bin/moto_server" ] || fail s3 "moto_server missing after install" "$log"
  printf '%s' "$MOTO_PIP_SPEC" >"$VENV/.spec"
  printf '%-9s installed %s into %s with %s in %s\n' s3 "$MOTO_PIP_SPEC" "${VENV#"$REPO_ROOT"/}" "$how" "$(elapsed "$t")"
}

s3_ensure_bucket() {
  # moto keeps state in memory: (re)create the bucket on every run; PUT is idempotent.
  http PUT "http://127.0.0.1:$S3_PORT/$S3_BUCKET" || fail s3 "could not create bucket $S3_BUCKET" "$MOTO_LOG"
}

up_s3() {
  local t="$EPOCHREALTIME" pid
  s3_prepare
  mkdir -p "$MOTO_DIR"
  stop_orphans s3 "$MOTO_PID" "$S3_PORT"
  if pid="$(moto_pid)"; then
    wait_for s3 30 "$MOTO_LOG" "$pid" http GET "http://127.0.0.1:$S3_PORT/"
    s3_ensure_bucket
    ready s3 "already running on 127.0.0.1:$S3_PORT (moto, pid $pid)"
    return
  fi
  port_open "$S3_PORT" && fail s3 "port $S3_PORT is already used by another program"
  mkdir -p "$MOTO_DIR"
  : >"$MOTO_LOG"
  # shellcheck disable=SC2016
  setsid bash -c "$CLOSE_FDS"'echo $$ >"$0"; exec "$@"' "$MOTO_PID" \
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" </dev/null >>"$MOTO_LOG" 2>&1 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do pid="$(moto_pid)" && break; sleep 0.1; done
  [ -n "$pid" ] || fail s3 "moto_server did not start" "$MOTO_LOG"
  wait_for s3 30 "$MOTO_LOG" "$pid" http GET "http://127.0.0.1:$S3_PORT/"
  s3_ensure_bucket
  ready s3 "ready on 127.0.0.1:$S3_PORT (moto), bucket $S3_BUCKET ($(elapsed "$t"))"
}

# ---------------------------------------------------------------- stripe (stripe-mock)

# Build the pinned stripe-mock once with Go (from the module proxy) into $STRIPE_MOCK_BIN.
stripe_prepare() {
  [ -x "$STRIPE_MOCK_BIN" ] && return 0
  local t="$EPOCHREALTIME" log="$STRIPE_DIR/go-install.log" tmp="$STRIPE_DIR/bin.tmp"
  mkdir -p "$STRIPE_DIR"
  [ -x "$GO" ] || command -v "$GO" >/dev/null ||
    fail stripe "Go not found (looked for '$GO'): it builds stripe-mock $STRIPE_MOCK_VERSION once; install Go or set GO=/path/to/go"
  rm -rf "$tmp"
  # CGO off: a static binary, no C compiler needed.
  CGO_ENABLED=0 GOBIN="$tmp" "$GO" install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION" </dev/null >"$log" 2>&1 ||
    fail stripe "go install github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION failed" "$log"
  [ -x "$tmp/stripe-mock" ] || fail stripe "stripe-mock missing after go install" "$log"
  mkdir -p "$(dirname "$STRIPE_MOCK_BIN")"
  mv -f "$tmp/stripe-mock" "$STRIPE_MOCK_BIN"
  rm -rf "$tmp"
  printf '%-9s built stripe-mock %s with %s in %s\n' stripe "$STRIPE_MOCK_VERSION" "$("$GO" version | cut -d' ' -f3)" "$(elapsed "$t")"
}

up_stripe() {
  local t="$EPOCHREALTIME" pid
  stripe_prepare
  mkdir -p "$STRIPE_DIR"
  stop_orphans stripe "$STRIPE_MOCK_PID" "$STRIPE_MOCK_PORT"
  if pid="$(stripe_mock_pid)"; then
    wait_for stripe 30 "$STRIPE_MOCK_LOG" "$pid" stripe_mock_ready
    ready stripe "already running on 127.0.0.1:$STRIPE_MOCK_PORT (stripe-mock, pid $pid)"
    return
  fi
  port_open "$STRIPE_MOCK_PORT" && fail stripe "port $STRIPE_MOCK_PORT is already used by another program"
  : >"$STRIPE_MOCK_LOG"
  # The tests use HTTP. stripe-mock always opens an HTTPS listener too (on :12112, every interface, unless told
  # otherwise): it gets a free loopback port, so it never clashes with another instance or leaves the machine.
  # shellcheck disable=SC2016
  setsid bash -c "$CLOSE_FDS"'echo $$ >"$0"; exec "$@"' "$STRIPE_MOCK_PID" \
    "$STRIPE_MOCK_BIN" -http-addr "127.0.0.1:$STRIPE_MOCK_PORT" -https-addr 127.0.0.1: </dev/null >>"$STRIPE_MOCK_LOG" 2>&1 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do pid="$(stripe_mock_pid)" && break; sleep 0.1; done
  [ -n "$pid" ] || fail stripe "stripe-mock did not start" "$STRIPE_MOCK_LOG"
  wait_for stripe 30 "$STRIPE_MOCK_LOG" "$pid" stripe_mock_ready
  ready stripe "ready on 127.0.0.1:$STRIPE_MOCK_PORT (stripe-mock $STRIPE_MOCK_VERSION, pid $pid) ($(elapsed "$t"))"
}

# ---------------------------------------------------------------- etcd (the service registry's tests)

up_etcd() {
  local t="$EPOCHREALTIME" pid
  mkdir -p "$ETCD_DIR"
  stop_orphans etcd "$ETCD_PID" "$ETCD_PORT"
  if pid="$(etcd_pid)"; then
    wait_for etcd 30 "$ETCD_LOG" "$pid" etcd_ready
    ready etcd "already running on 127.0.0.1:$ETCD_PORT (pid $pid)"
    return
  fi
  port_open "$ETCD_PORT" && fail etcd "port $ETCD_PORT is already used by another program"
  port_open "$ETCD_PEER_PORT" && fail etcd "peer port $ETCD_PEER_PORT is already used by another program"
  : >"$ETCD_LOG"
  # One member on loopback; its data under $INFRA_DIR (kept across restarts, like the other servers').
  # shellcheck disable=SC2016
  setsid bash -c "$CLOSE_FDS"'echo $$ >"$0"; exec "$@"' "$ETCD_PID" \
    "$ETCD_BIN" --name infra --data-dir="$ETCD_DATA" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "infra=http://127.0.0.1:$ETCD_PEER_PORT" \
    </dev/null >>"$ETCD_LOG" 2>&1 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do pid="$(etcd_pid)" && break; sleep 0.1; done
  [ -n "$pid" ] || fail etcd "etcd did not start" "$ETCD_LOG"
  wait_for etcd 30 "$ETCD_LOG" "$pid" etcd_ready
  ready etcd "ready on 127.0.0.1:$ETCD_PORT ($("$ETCD_BIN" --version | head -n1), pid $pid) ($(elapsed "$t"))"
}

# ---------------------------------------------------------------- env file

write_env() {
  local tmp
  tmp="$(mktemp "$ENV_FILE.XXXXXX")"
  cat >"$tmp" <<EOF
# Written by infra/up.sh: connection settings of the local test infrastructure.
DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
S3_ENDPOINT=http://127.0.0.1:$S3_PORT
S3_REGION=$S3_REGION
S3_BUCKET=$S3_BUCKET
AWS_REGION=$S3_REGION
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
STRIPE_API_BASE=http://127.0.0.1:$STRIPE_MOCK_PORT
ETCD_ENDPOINTS=http://127.0.0.1:$ETCD_PORT
EOF
  chmod 644 "$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- main

main() {
  select_services "$@"
  mkdir -p "$INFRA_DIR/run"
  exec 9>"$INFRA_DIR/.lock"
  flock -w 600 9 || die "timed out waiting for another infra/up.sh or infra/down.sh"

  ensure_system_packages

  # Bring every service up in parallel (downloads overlap); print results in order.
  local svc rc failed=() pids=()
  for svc in "${SERVICES[@]}"; do
    ("up_$svc") >"$INFRA_DIR/run/$svc.out" 2>&1 &
    pids+=("$!")
  done
  local i
  for i in "${!SERVICES[@]}"; do
    svc="${SERVICES[$i]}"
    rc=0
    wait "${pids[$i]}" || rc=$?
    if ((rc == 0)); then cat "$INFRA_DIR/run/$svc.out"; else cat "$INFRA_DIR/run/$svc.out" >&2; failed+=("$svc"); fi
  done
  ((${#failed[@]} == 0)) || die "failed to start: ${failed[*]} (logs under ${INFRA_DIR})"

  write_env
  printf 'infra     up in %s; env in %s\n' "$(elapsed)" "${ENV_FILE#"$REPO_ROOT"/}"
}

main "$@"
