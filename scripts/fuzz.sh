#!/usr/bin/env bash
# Fuzzes every parser for a while each (default 60 s): exposition text,
# agent.yaml, kernel files, daemon answers. Needs the nightly toolchain;
# installs cargo-fuzz if missing. Crashes land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in exposition_text agent_config kernel_files daemon_answers remote_write storage_files read_params promql_query; do
  echo "== $target (${seconds}s)"
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=1024 2>&1 | tail -n 3
done
