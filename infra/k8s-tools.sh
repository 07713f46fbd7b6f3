#!/usr/bin/env bash
# Installs the Kubernetes manifest validators infra/k8s.test.ts runs over the render of scripts/k8s.ts, once, under
# .infra (git-ignored): kubernetes-validate (PyPI) in the venv .infra/k8s-venv, kube-score and kustomize (Go,
# built from the Go module proxy) in .infra/bin, the Go caches in .infra/go. Idempotent: a second run only checks
# versions (~0.1 s). Needs python3 (with venv, or uv) and Go >= 1.24 (`go` on PATH or /usr/local/go/bin/go).
#   bash infra/k8s-tools.sh        prints nothing but what it installs; exit 1 with the log tail on failure
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA_DIR="${INFRA_DIR:-$REPO_ROOT/.infra}"
case "$INFRA_DIR" in /*) ;; *) INFRA_DIR="$PWD/$INFRA_DIR" ;; esac

# Pinned versions: the newest releases when written (kube-score v1.20.0 is its newest v1 tag).
KUBERNETES_VALIDATE_SPEC="${KUBERNETES_VALIDATE_SPEC:-kubernetes-validate==1.37.0}"
KUBE_SCORE_VERSION="${KUBE_SCORE_VERSION:-v1.20.0}"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.1}"

K8S_VENV="$INFRA_DIR/k8s-venv"
BIN_DIR="$INFRA_DIR/bin"
LOG_DIR="$INFRA_DIR/k8s-tools"
mkdir -p "$BIN_DIR" "$LOG_DIR"

die() {
  printf 'k8s-tools: ERROR: %s\n' "$1" >&2
  if [ -n "${2:-}" ] && [ -s "$2" ]; then tail -n 30 "$2" | sed 's/^/  | /' >&2; fi
  exit 1
}

# One installer at a time (parallel test workers, two terminals).
if command -v flock >/dev/null; then
  exec 9>"$LOG_DIR/lock"
  flock 9
fi

# ---------------------------------------------------------------- kubernetes-validate (PyPI)
if [ ! -x "$K8S_VENV/bin/kubernetes-validate" ] || [ "$(cat "$K8S_VENV/.spec" 2>/dev/null)" != "$KUBERNETES_VALIDATE_SPEC" ]; then
  t=$SECONDS log="$LOG_DIR/pip.log"
  : >"$log"
  rm -rf "$K8S_VENV"
  python="$(python3 -c 'import sys; print(sys.executable)')" || die "python3 not found"
  # uv when available (on PATH, or the one infra/up.sh installs into .infra/tools), else python3 -m venv + pip.
  uv="$(command -v uv || true)"
  if [ -z "$uv" ] && [ -x "$INFRA_DIR/tools/bin/uv" ]; then uv="$INFRA_DIR/tools/bin/uv"; fi
  if [ -n "${PIP_INDEX_URL:-}" ] && [ -z "${UV_INDEX_URL:-}" ]; then export UV_INDEX_URL="$PIP_INDEX_URL"; fi
  if [ -n "$uv" ] &&
    UV_NATIVE_TLS="${UV_NATIVE_TLS:-1}" UV_PYTHON_DOWNLOADS=never "$uv" venv -q --python "$python" "$K8S_VENV" \
      </dev/null >>"$log" 2>&1 &&
    UV_NATIVE_TLS="${UV_NATIVE_TLS:-1}" UV_CACHE_DIR="$INFRA_DIR/cache/uv" "$uv" pip install -q \
      --python "$K8S_VENV/bin/python" "$KUBERNETES_VALIDATE_SPEC" </dev/null >>"$log" 2>&1; then
    how=uv
  else
    echo "--- uv unavailable or failed: python3 -m venv + pip" >>"$log"
    rm -rf "$K8S_VENV"
    "$python" -m venv "$K8S_VENV" </dev/null >>"$log" 2>&1 || die "python3 -m venv failed" "$log"
    "$K8S_VENV/bin/pip" install -q --disable-pip-version-check --no-compile --prefer-binary \
      "$KUBERNETES_VALIDATE_SPEC" </dev/null >>"$log" 2>&1 || die "pip install $KUBERNETES_VALIDATE_SPEC failed" "$log"
    how=pip
  fi
  [ -x "$K8S_VENV/bin/kubernetes-validate" ] || die "kubernetes-validate missing after install" "$log"
  printf '%s' "$KUBERNETES_VALIDATE_SPEC" >"$K8S_VENV/.spec"
  printf 'k8s-tools: installed %s into %s with %s in %ss\n' "$KUBERNETES_VALIDATE_SPEC" "${K8S_VENV#"$REPO_ROOT"/}" \
    "$how" "$((SECONDS - t))" >&2
fi

# ---------------------------------------------------------------- kube-score, kustomize (Go module proxy)
go="$(command -v go || true)"
if [ -z "$go" ] && [ -x /usr/local/go/bin/go ]; then go=/usr/local/go/bin/go; fi

# go_tool NAME MODULE_PATH PACKAGE VERSION: `go install PACKAGE@VERSION` into .infra/bin unless the binary there was
# built from MODULE_PATH at VERSION (read from its build info).
go_tool() {
  local name="$1" module="$2" package="$3" version="$4" t=$SECONDS log="$LOG_DIR/$1.log"
  if [ -x "$BIN_DIR/$name" ] && [ -n "$go" ] &&
    "$go" version -m "$BIN_DIR/$name" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"; then
    return 0
  fi
  [ -n "$go" ] || die "Go not found (need go on PATH or /usr/local/go/bin/go) to build $name"
  # -modcacherw: the module cache stays deletable (`rm -rf .infra`).
  GOBIN="$BIN_DIR" GOMODCACHE="$INFRA_DIR/go/mod" GOCACHE="$INFRA_DIR/go/cache" GOFLAGS="-modcacherw" \
    "$go" install "$package@$version" </dev/null >"$log" 2>&1 || die "go install $package@$version failed" "$log"
  printf 'k8s-tools: built %s %s into %s in %ss\n' "$name" "$version" "${BIN_DIR#"$REPO_ROOT"/}" "$((SECONDS - t))" >&2
}

go_tool kube-score github.com/zegl/kube-score github.com/zegl/kube-score/cmd/kube-score "$KUBE_SCORE_VERSION"
go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
