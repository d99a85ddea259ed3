#!/usr/bin/env bash
# Seed 000's conditions through `strobe gateway` in front of a real GPU engine on the lent H200
# (`transformers serve` with continuous batching and CUDA graphs; ../shared/recipes/gpu-engine.md),
# measured by strobe (scripts/gateway_seed000.py). On a GPU, decode is bound by memory bandwidth,
# so batch sequences beside the users cost them little up to a point: the room the adaptive
# policy needs, which two CPU cores do not have.
#
# Run through the device tool with carry [".devbin", ".whl"]: .devbin/strobe (a stripped release
# build), .devbin/tok (SmolLM2's tokenizer files), .whl (the recipe's wheels). Extra arguments go
# to gateway_seed000.py. Results go to $OUT.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
. scripts/gpu_setup.sh
chmod +x .devbin/strobe
start_engine "$OUT/engine.log"
python3 - <<'PY'
import urllib.request
try:
    urllib.request.urlopen("http://127.0.0.1:8000/metrics", timeout=5)
    print("engine /metrics: answers")
except Exception as e:
    print("engine /metrics:", e)
PY
PYTHONUNBUFFERED=1 python3 scripts/gateway_seed000.py http://127.0.0.1:8000 local/rand-llama --chat \
  --no-ignore-eos --strobe .devbin/strobe --out "$OUT/seed000" "$@" 2>&1 | tee "$OUT/seed000.txt"
rc=${PIPESTATUS[0]}
kill $engine; wait $engine 2>/dev/null
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
exit $rc
