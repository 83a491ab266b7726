#!/usr/bin/env bash
# Installs the Debian 12 packages the gateway needs to build, run and be tested.
# Idempotent: installs only what is missing. Run as root, or as a user with sudo.
#   scripts/install-deps.sh          build + run + test dependencies
#   scripts/install-deps.sh --run    only what building and running needs
set -euo pipefail

build_pkgs=(g++ cmake ninja-build pkg-config make
  libcaf-dev libboost-dev libsimdjson-dev libyaml-cpp-dev libpqxx-dev libhiredis-dev
  prometheus-cpp-dev libssl-dev zlib1g-dev libjemalloc-dev libgtest-dev libgmock-dev libbenchmark-dev)
test_pkgs=(python3 python3-yaml openssl curl prometheus wrk nghttp2-client nginx-light valgrind
  postgresql redis-server nodejs npm
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev)  # Go + Sprig: the Helm chart test

want=("${build_pkgs[@]}")
if [[ "${1:-}" != "--run" ]]; then want+=("${test_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
  # A node/npm already on PATH (not from Debian) is good enough for the SDK test.
  if [[ "$p" == nodejs || "$p" == npm ]] && command -v "${p/nodejs/node}" >/dev/null 2>&1; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# Services are started by the tests themselves on ephemeral ports, never as daemons.
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
