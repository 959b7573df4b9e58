#!/usr/bin/env bash
# The query benchmark: a simulated Kubernetes cluster's series (node_exporter,
# cAdvisor, kube-state-metrics, control plane) pushed by remote write into the
# Lookout collector and prometheus; the kube-prometheus recording rules
# (instant) and dashboard range queries run on both; time ratios, peak RSS
# and a cross-check of the answers. Installs prometheus if missing.
# Sizes: LOOKOUT_BENCH_NODES (1000), LOOKOUT_BENCH_PODS (30 a node),
# LOOKOUT_BENCH_HISTORY_MIN (30, at most 60), LOOKOUT_BENCH_REPEAT (3),
# LOOKOUT_BENCH_CLIENTS (4), LOOKOUT_BENCH_BATCH (10000 series a push);
# LOOKOUT_BENCH_RULES names the rule directory
# (default ../shared/conformance/kube-prometheus beside the workspace).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v prometheus >/dev/null; then
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus
fi
cargo build --release -p lookout --bin lookout
target_dir="${CARGO_TARGET_DIR:-$(pwd)/target}"
LOOKOUT_BIN_DIR="$target_dir/release" cargo bench -p lookout-tests --bench query
