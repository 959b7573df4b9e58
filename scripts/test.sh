#!/usr/bin/env bash
# Lookout's whole test suite, as CI runs it. On a fresh Debian machine it
# first installs what the tests use (Prometheus's promtool and server, Alertmanager, node_exporter, VictoriaMetrics,
# busybox-static for the test image, systemd-analyze, openssl and curl for
# the TLS test) and cargo-nextest.
# The Docker Engine must be installed; it is started if it is not running.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(prometheus prometheus-alertmanager prometheus-node-exporter victoria-metrics zabbix-agent busybox-static systemd openssl curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! docker info >/dev/null 2>&1; then
  if command -v dockerd >/dev/null 2>&1; then
    say "starting dockerd"
    as_root sh -c 'nohup dockerd >/tmp/lookout-dockerd.log 2>&1 &'
    for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
  fi
  docker info >/dev/null 2>&1 || echo "warning: the Docker Engine is not reachable; Docker tests fail under CI=true and skip otherwise" >&2
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

say "format"
cargo fmt --all -- --check
say "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "build"
cargo build --workspace --all-targets --locked
say "doc tests"
cargo test --workspace --doc --locked
# Last, so that its summary is the run's closing line.
say "tests"
profile=default
[ "${CI:-}" = "true" ] && profile=ci
cargo nextest run --workspace --locked --profile "$profile"
