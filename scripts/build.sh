#!/usr/bin/env bash
# Configures and builds one flavour into build/<flavour>:
#   release  optimised (-O2), what runs in production and in benchmarks
#   dev      optimised with debug info and assertions, what the tests run first
#   asan     address + undefined-behaviour sanitizers
# Further arguments name targets to build (default: all). GW_CMAKE_ARGS (space-separated)
# adds cmake options, e.g. GW_CMAKE_ARGS="-DGW_MARCH=" for a baseline-CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
case "$flavour" in
  release) args=(-DCMAKE_BUILD_TYPE=Release) ;;
  dev) args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) args=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g -O1" -DGW_SANITIZE=address,undefined -DGW_BUILD_BENCHMARKS=OFF) ;;
  *) echo "usage: $0 [release|dev|asan]" >&2; exit 2 ;;
esac
jobs=${GW_BUILD_JOBS:-$(nproc)}
read -r -a extra <<<"${GW_CMAKE_ARGS:-}"
args+=("${extra[@]}")
cmake -S . -B "build/$flavour" -G Ninja "${args[@]}" >/dev/null
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "build/$flavour" -j "$jobs" "${targets[@]}"
