#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test.
# Usage: scripts/test.sh            (as root, or with sudo available for apt-get)
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

cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
cargo test -p platform-telemetry --all-features --locked
# HTTP-only build: the library must build and work without tonic.
cargo test -p platform-telemetry --no-default-features --lib --locked
if cargo tree -p platform-telemetry --no-default-features -e normal --locked | grep -q ' tonic '; then
  echo "platform-telemetry without the grpc feature still depends on tonic" >&2
  exit 1
fi
