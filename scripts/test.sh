#!/usr/bin/env bash
# From a fresh Debian 12: install what is missing, build, and pass every test:
# unit and integration tests (real gateway and mock-provider processes), the
# official OpenAI SDK against the gateway, the benchmark in quick mode, then the
# whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer. Exits
# non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

# The OpenAI Node SDK for the SDK test (from the npm registry, pinned by package-lock.json).
(cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error)
export GW_REQUIRE_SDK_TEST=1

jobs=${GW_TEST_JOBS:-$(nproc)}
start=$(date +%s)

echo "== build (RelWithDebInfo)"
scripts/build.sh dev
echo "== tests"
ctest --test-dir build/dev --output-on-failure -j "$jobs"

echo "== benchmark, quick mode (checks the harness and zero errors, not the figures)"
python3 benchmarks/run.py --quick --build-dir build/dev --out build/dev/benchmark-quick.json

echo "== build (address,undefined sanitizers)"
scripts/build.sh asan
echo "== tests under sanitizers"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build/asan --output-on-failure -j "$jobs"

echo "== all tests passed in $(( $(date +%s) - start )) s"
