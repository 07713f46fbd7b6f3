#!/usr/bin/env bash
# Stop the local test infrastructure started by infra/up.sh. Idempotent.
#
#   bash infra/down.sh [--purge] [postgres|redis|kafka|s3|stripe|etcd ...]   (default: all)
#
# Cached downloads (Kafka jars, Maven repo, moto virtualenv, stripe-mock binary) are kept. --purge also
# deletes the servers' data (PostgreSQL cluster, Kafka log dirs, Redis dir, etcd data) so the
# next infra/up.sh starts from empty stores.
set -euo pipefail

# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

purge=""
args=()
for a in "$@"; do
  case "$a" in
    --purge) purge=1 ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) args+=("$a") ;;
  esac
done
select_services ${args[@]+"${args[@]}"}

line() { printf '%-9s %s\n' "$1" "$2"; }

# stop_service NAME PID PIDFILE GRACE: stop a process started by up.sh (and any orphan of it), report it.
stop_service() {
  if [ -n "$2" ]; then
    stop_pid "$2" "$4"
    rm -f "$3"
    line "$1" "stopped (pid $2)"
  else
    line "$1" "not running"
  fi
  stop_orphans "$1"
}

[ -d "$INFRA_DIR" ] || { line infra "nothing to stop ($INFRA_DIR does not exist)"; exit 0; }
exec 9>"$INFRA_DIR/.lock"
flock -w 600 9 || die "timed out waiting for another infra/up.sh or infra/down.sh"

# Signal the JVM and moto first so their shutdowns overlap with the others.
kpid="" mpid="" spid=""
if wants kafka && kpid="$(kafka_pid)"; then kill "$kpid" 2>/dev/null || true; fi
if wants s3 && mpid="$(moto_pid)"; then kill "$mpid" 2>/dev/null || true; fi
if wants stripe && spid="$(stripe_mock_pid)"; then kill "$spid" 2>/dev/null || true; fi

if wants postgres; then
  if pid="$(pg_pid)"; then
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 -s stop >/dev/null 2>&1 9>&- || stop_pid "$pid" 30
    line postgres "stopped (pid $pid)"
  else
    line postgres "not running"
  fi
  stop_orphans postgres
  [ -z "$purge" ] || { rm -rf "$PGDATA"; line postgres "data purged"; }
fi

if wants redis; then
  pid="$(managed_pid "$REDIS_PID" "redis-server 127.0.0.1:$REDIS_PORT" || true)"
  was_up=""
  if redis_ping; then
    was_up=1
    timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  fi
  if [ -n "$pid" ]; then stop_pid "$pid" 10; fi
  rm -f "$REDIS_PID"
  if redis_ping; then
    line redis "still answering on 127.0.0.1:$REDIS_PORT (not started by infra/up.sh?)"
  elif [ -n "$pid$was_up" ]; then
    line redis "stopped${pid:+ (pid $pid)}"
  else
    line redis "not running"
  fi
  [ -z "$purge" ] || { rm -rf "$REDIS_DIR"; line redis "data purged"; }
fi

if wants kafka; then
  stop_service kafka "$kpid" "$KAFKA_PID" 60
  [ -z "$purge" ] || { rm -rf "$KAFKA_DATA" "$KAFKA_LOGS"; line kafka "data purged"; }
fi

if wants s3; then
  stop_service s3 "$mpid" "$MOTO_PID" 20
fi

if wants stripe; then
  stop_service stripe "$spid" "$STRIPE_MOCK_PID" 10
fi

if wants etcd; then
  epid="$(etcd_pid || true)"
  stop_service etcd "$epid" "$ETCD_PID" 10
  [ -z "$purge" ] || { rm -rf "$ETCD_DATA"; line etcd "data purged"; }
fi
