#!/usr/bin/env bash
# Print which local test servers (started by infra/up.sh) are up.
# Exit status 0 when all requested services are up, 1 otherwise.
#
#   bash infra/status.sh [postgres|redis|kafka|s3|stripe|etcd ...]   (default: all)
set -euo pipefail

# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
select_services "$@"

down=0
show() { # show NAME OK DETAIL
  if [ "$2" = 1 ]; then printf '%-9s up    %s\n' "$1" "$3"; else printf '%-9s down  %s\n' "$1" "$3"; down=1; fi
}

if wants postgres; then
  if pid="$(pg_pid)" && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; then
    show postgres 1 "127.0.0.1:$PG_PORT pid $pid"
  else show postgres 0 "127.0.0.1:$PG_PORT"; fi
fi
if wants redis; then
  if redis_ping; then show redis 1 "127.0.0.1:$REDIS_PORT"; else show redis 0 "127.0.0.1:$REDIS_PORT"; fi
fi
if wants kafka; then
  if pid="$(kafka_pid)" && port_open "$KAFKA_PORT"; then
    show kafka 1 "127.0.0.1:$KAFKA_PORT pid $pid"
  else show kafka 0 "127.0.0.1:$KAFKA_PORT"; fi
fi
if wants s3; then
  if pid="$(moto_pid)" && port_open "$S3_PORT"; then
    show s3 1 "127.0.0.1:$S3_PORT pid $pid"
  else show s3 0 "127.0.0.1:$S3_PORT"; fi
fi
if wants stripe; then
  if pid="$(stripe_mock_pid)" && port_open "$STRIPE_MOCK_PORT"; then
    show stripe 1 "127.0.0.1:$STRIPE_MOCK_PORT pid $pid"
  else show stripe 0 "127.0.0.1:$STRIPE_MOCK_PORT"; fi
fi
if wants etcd; then
  if pid="$(etcd_pid)" && etcd_ready; then
    show etcd 1 "127.0.0.1:$ETCD_PORT pid $pid"
  else show etcd 0 "127.0.0.1:$ETCD_PORT"; fi
fi
exit "$down"
