#!/usr/bin/env bash
# The agent benchmark: host and container sampling cost and RSS at 0, 20 and
# 100 containers, beside prometheus-node-exporter and Docker's stats API.
# Needs the Docker Engine; installs prometheus-node-exporter if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v prometheus-node-exporter >/dev/null; then
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus-node-exporter
fi
cargo build --release --workspace
target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}"
LOOKOUT_BIN_DIR="$target_dir/release" cargo bench -p lookout-tests --bench agent
