#!/usr/bin/env bash
# Alert latency on the real Docker Engine: containers killed one by one,
# the embedded agent's event push, the shipped rule pack, the example
# config's group_wait, a local webhook; p50/p99 over LOOKOUT_BENCH_KILLS
# (20) kills, and a burst of LOOKOUT_BENCH_BURST (5) kills grouped into one
# notification. Needs the Docker Engine and busybox-static for the image.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p lookout --bin lookout
target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}"
LOOKOUT_BIN_DIR="$target_dir/release" cargo bench -p lookout-tests --bench alert_latency
