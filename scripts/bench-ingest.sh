#!/usr/bin/env bash
# The ingest benchmark: agent-shaped remote-write payloads into the Lookout
# collector, victoria-metrics and prometheus; throughput, RSS per series and
# bytes per sample on disk, with ratios. Installs the peers if missing.
# Sizes: LOOKOUT_BENCH_AGENTS (300), LOOKOUT_BENCH_CONTAINERS (100),
# LOOKOUT_BENCH_ROUNDS (6), LOOKOUT_BENCH_CLIENTS (4),
# LOOKOUT_BENCH_STORE_AGENTS (10); LOOKOUT_BENCH_ONLY=lookout,prometheus
# runs a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for p in prometheus victoria-metrics; do
  command -v "$p" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
cargo build --release --workspace
target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}"
LOOKOUT_BIN_DIR="$target_dir/release" cargo bench -p lookout-tests --bench ingest
