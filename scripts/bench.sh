#!/usr/bin/env bash
# strobe's own benchmark: accuracy against the built-in target's recorded truth at 1, 100 and
# 1,000 streams, and capacity against vLLM's own client on a zero-delay target. Builds the release
# binary first; needs vLLM's client (scripts/setup-vllm.sh) unless --no-vllm.
#   scripts/bench.sh [--quick] [--no-vllm] [--baseline OLD_STROBE_BINARY] [--out DIR]
# Run nothing else on the machine meanwhile: the client, the target and vLLM's client share its
# cores. Results: docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/bench.py "$@"
