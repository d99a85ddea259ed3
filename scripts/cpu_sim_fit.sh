#!/usr/bin/env bash
# The simulated engine's fit against real vLLM on this machine's CPU (docs/sim.md, "Fitting on
# this machine"): SETS separate sets, each ROUNDS rounds of closed loops at 1, 2, 4 and 8 users
# taken in turn (so slow drift of the shared machine touches every load alike), fitted on 1 and
# 2 users (their repeats pooled into medians) and predicting 4 and 8. Prints each set's fit.
# Usage: scripts/cpu_sim_fit.sh [ROUNDS=3] [SETS=3] [OUT_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${1:-3}
sets=${2:-3}
out=${3:-$(mktemp -d)}
mkdir -p "$out"
port=${STROBE_VLLM_PORT:-18124}
url="http://127.0.0.1:$port"
strobe="$root/target/release/strobe"
scripts/setup-vllm.sh
cargo build --release -q -p strobe
setsid env VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=2 "$root/.venv-vllm/bin/python" \
  -m vllm.entrypoints.openai.api_server --model "$root/.models/smollm2" --served-model-name smollm2 \
  --host 127.0.0.1 --port "$port" --max-model-len 4096 --dtype bfloat16 > "$out/vllm.log" 2>&1 &
pid=$!
trap 'kill -TERM -- "-$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 900); do
  curl -sf "$url/v1/models" > /dev/null && break
  kill -0 "$pid" 2>/dev/null || { tail -30 "$out/vllm.log"; exit 1; }
  sleep 1
done
echo "vLLM up on $url; reports in $out"
for s in $(seq 1 "$sets"); do
  for r in $(seq 1 "$rounds"); do
    for c in 1 2 4 8; do
      "$strobe" run --url "$url" -q -c "$c" -n $((c * 3 + 6)) --warmup-requests "$c" \
        --input-len 256 --output-len 64 -o "$out/s$s-r$r-c$c.json"
    done
  done
  echo "=== set $s: $rounds round(s)"
  "$strobe" sim fit "$out"/s$s-r*-c1.json "$out"/s$s-r*-c2.json --sim smollm2-135m@cpu \
    --predict "$out"/s$s-r*-c4.json "$out"/s$s-r*-c8.json -o "$out/s$s-model.toml" || true
done
