#!/usr/bin/env bash
# From a fresh Debian 12: install what is missing, build, and run the gateway.
# With no arguments it serves the embedded default config (models mock-gpt and
# mock-embed from the built-in mock provider) on port 4000; any arguments are passed
# to llm-gateway (e.g. --config configs/model-config-openai.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --run
scripts/build.sh release llm-gateway mock-provider
exec build/release/apps/gateway/llm-gateway "$@"
