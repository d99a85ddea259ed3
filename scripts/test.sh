#!/usr/bin/env bash
# The project's test command: the Rust test suite, then the real-vLLM tier.
# STROBE_SKIP_VLLM=1 skips the real-engine tier (for quick local runs; CI never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
if [ "${STROBE_SKIP_VLLM:-0}" = "1" ]; then
  echo "real-vLLM tier skipped (STROBE_SKIP_VLLM=1)"
else
  scripts/test-vllm.sh
fi
