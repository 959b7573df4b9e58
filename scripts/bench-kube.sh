#!/usr/bin/env bash
# The collector following a simulated cluster of LOOKOUT_BENCH_NODES (1000)
# nodes with LOOKOUT_BENCH_PODS (30) pods each, about one change per node
# per second, for LOOKOUT_BENCH_SECONDS (120): time to the first complete
# write, peak RSS and CPU. The simulator runs inside the bench process.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p lookout --bin lookout
target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}"
LOOKOUT_BIN_DIR="$target_dir/release" cargo bench -p lookout-tests --bench kube_follow
