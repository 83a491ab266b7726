#!/usr/bin/env bash
# Builds the release binaries and runs the benchmark (see benchmarks/run.py --help).
#   benchmarks/run.sh            full run: prints the table, writes benchmarks/results/latest.json
#   benchmarks/run.sh --quick    a few seconds (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/release
for a in "$@"; do case "$a" in --build-dir=*) build=${a#--build-dir=} ;; esac; done
if [[ "$build" == build/release ]]; then
  scripts/build.sh release llm-gateway mock-provider gw-loadgen
fi
exec python3 benchmarks/run.py "$@"
