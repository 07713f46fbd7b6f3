#!/usr/bin/env bash
# Installs schemathesis (PyPI, pinned) into .infra/schemathesis-venv once and prints the path of its CLI.
# Idempotent: a venv holding the pinned version is reused; the download cache stays under .infra/cache.
# The fuzz gate (e2e/Fuzz.test.ts) runs this before it fuzzes, so `npm test` installs it on a fresh
# machine. Like infra/up.sh it uses uv (pip-installed into .infra/tools) and falls back to python3 -m venv + pip.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCHEMATHESIS_PIP_SPEC="${SCHEMATHESIS_PIP_SPEC:-schemathesis==4.32.5}"
ST_VENV="$INFRA_DIR/schemathesis-venv"
ST_LOG="$INFRA_DIR/schemathesis-install.log"

if [ -x "$ST_VENV/bin/schemathesis" ] && [ "$(cat "$ST_VENV/.spec" 2>/dev/null)" = "$SCHEMATHESIS_PIP_SPEC" ]; then
  echo "$ST_VENV/bin/schemathesis"
  exit 0
fi

mkdir -p "$INFRA_DIR"
# One installer at a time (two test runs on a fresh machine would otherwise build the same venv together).
exec 9>"$INFRA_DIR/schemathesis-install.lock"
flock 9
if [ -x "$ST_VENV/bin/schemathesis" ] && [ "$(cat "$ST_VENV/.spec" 2>/dev/null)" = "$SCHEMATHESIS_PIP_SPEC" ]; then
  echo "$ST_VENV/bin/schemathesis"
  exit 0
fi

: >"$ST_LOG"
rm -rf "$ST_VENV"
# The real interpreter, not a pyenv shim.
python="$(python3 -c 'import sys; print(sys.executable)')" || die "python3 not found"
export UV_NATIVE_TLS="${UV_NATIVE_TLS:-1}"
if [ -n "${PIP_INDEX_URL:-}" ] && [ -z "${UV_INDEX_URL:-}" ]; then export UV_INDEX_URL="$PIP_INDEX_URL"; fi

uv=""
if [ -z "$INFRA_NO_UV" ]; then
  if command -v uv >/dev/null; then
    uv="$(command -v uv)"
  elif [ -x "$TOOLS_DIR/bin/uv" ]; then
    uv="$TOOLS_DIR/bin/uv"
  elif python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    --target "$TOOLS_DIR" uv </dev/null >>"$ST_LOG" 2>&1 && [ -x "$TOOLS_DIR/bin/uv" ]; then
    uv="$TOOLS_DIR/bin/uv"
  fi
fi

# shellcheck disable=SC2086
if [ -n "$uv" ] &&
  UV_PYTHON_DOWNLOADS=never "$uv" venv -q --python "$python" "$ST_VENV" </dev/null >>"$ST_LOG" 2>&1 &&
  UV_CACHE_DIR="$INFRA_DIR/cache/uv" "$uv" pip install -q --python "$ST_VENV/bin/python" \
    $SCHEMATHESIS_PIP_SPEC </dev/null >>"$ST_LOG" 2>&1; then
  :
else
  echo "--- uv unavailable or failed: falling back to python3 -m venv + pip" >>"$ST_LOG"
  rm -rf "$ST_VENV"
  "$python" -m venv "$ST_VENV" </dev/null >>"$ST_LOG" 2>&1 || { log_tail "$ST_LOG"; die "python3 -m venv failed"; }
  # shellcheck disable=SC2086
  "$ST_VENV/bin/pip" install -q --disable-pip-version-check --prefer-binary --cache-dir "$INFRA_DIR/cache/pip" \
    $SCHEMATHESIS_PIP_SPEC </dev/null >>"$ST_LOG" 2>&1 || { log_tail "$ST_LOG"; die "pip install $SCHEMATHESIS_PIP_SPEC failed"; }
fi
[ -x "$ST_VENV/bin/schemathesis" ] || { log_tail "$ST_LOG"; die "schemathesis missing after install"; }
printf '%s' "$SCHEMATHESIS_PIP_SPEC" >"$ST_VENV/.spec"
echo "$ST_VENV/bin/schemathesis"
