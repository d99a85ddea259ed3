#!/usr/bin/env bash
# The simulated engine's fit against real vLLM on this machine's CPU (docs/sim.md, "Against the
# tier's vLLM on this machine"): SETS separate sets, each ROUNDS rounds of closed loops at 1, 2,
# 4 and 8 users taken in turn (so slow drift of the shared machine touches every load alike),
# fitted on 1 and 2 users (their repeats pooled into medians) and predicting 4 and 8. Prints
# each set's fit.
#
# By default vLLM runs as the fit needs it (MODE=isolated): its model-runner's threads pinned to
# the second core (VLLM_CPU_OMP_THREADS_BIND=1), its API server, engine core and strobe on the
# first (taskset), and eager (--enforce-eager). Compiled, vLLM gives a batch of one sequence a
# graph of its own (torch.compile specializes sizes of 1), so the step from one user to two is
# the difference between two graphs, not a per-sequence cost; unpinned, strobe and the API
# server take turns with the model on both cores. MODE=tier runs vLLM as the CI tier does.
# Usage: [MODE=isolated|tier] scripts/cpu_sim_fit.sh [ROUNDS=3] [SETS=3] [OUT_DIR]
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
case "${MODE:-isolated}" in
  isolated) pin_engine=(env VLLM_CPU_OMP_THREADS_BIND=1 taskset -c 0); pin_client=(taskset -c 0); extra=(--enforce-eager) ;;
  tier) pin_engine=(); pin_client=(); extra=() ;;
  *) echo "MODE must be isolated or tier, not ${MODE}" >&2; exit 2 ;;
esac
setsid env VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=2 "${pin_engine[@]}" "$root/.venv-vllm/bin/python" \
  -m vllm.entrypoints.openai.api_server --model "$root/.models/smollm2" --served-model-name smollm2 \
  --host 127.0.0.1 --port "$port" --max-model-len 4096 --dtype bfloat16 "${extra[@]}" > "$out/vllm.log" 2>&1 &
pid=$!
trap 'kill -TERM -- "-$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 900); do
  curl -sf "$url/v1/models" > /dev/null && break
  kill -0 "$pid" 2>/dev/null || { tail -30 "$out/vllm.log"; exit 1; }
  sleep 1
done
echo "vLLM up on $url (${MODE:-isolated}); reports in $out"
for s in $(seq 1 "$sets"); do
  for r in $(seq 1 "$rounds"); do
    for c in 1 2 4 8; do
      "${pin_client[@]}" "$strobe" run --url "$url" -q -c "$c" -n $((c * 3 + 6)) --warmup-requests "$c" \
        --input-len 256 --output-len 64 -o "$out/s$s-r$r-c$c.json"
    done
  done
  echo "=== set $s: $rounds round(s)"
  "$strobe" sim fit "$out"/s$s-r*-c1.json "$out"/s$s-r*-c2.json --sim smollm2-135m@cpu \
    --predict "$out"/s$s-r*-c4.json "$out"/s$s-r*-c8.json -o "$out/s$s-model.toml" || true
done
