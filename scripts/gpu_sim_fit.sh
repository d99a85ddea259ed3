#!/usr/bin/env bash
# The simulated engine against a real GPU engine on the lent H200 (issue 13; docs/sim.md):
# 1. what this GPU's kernels reach of its datasheet peaks (scripts/gpu_microbench.py);
# 2. strobe's closed loops at 1 to 32 users against `transformers serve` (continuous batching,
#    CUDA graphs) serving a randomly initialised ~1.2B Llama (../shared/recipes/gpu-engine.md),
#    kept as reports for `strobe sim fit` here: fit on 1 and 2 users, predict the rest.
#
# Run through the device tool with carry [".devbin", ".whl"]: .devbin/strobe (a stripped release
# build), .devbin/tok (SmolLM2's tokenizer files), .whl (the recipe's wheels). Results go to $OUT:
# microbench.txt, engine.log, fit.tgz (the reports), fit.txt.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
. scripts/gpu_setup.sh
chmod +x .devbin/strobe
echo "== microbenchmarks"
PYTHONUNBUFFERED=1 python3 scripts/gpu_microbench.py 2>&1 | tee "$OUT/microbench.txt"
echo "== engine"
start_engine "$OUT/engine.log"
mkdir -p /tmp/fit
for c in 1 2 4 8 16 32; do
  n=$((c * 6)); [ $n -lt 16 ] && n=16
  .devbin/strobe run --url http://127.0.0.1:8000 --api chat --tokenizer .devbin/tok --no-ignore-eos \
    -c $c -n $n --warmup-requests $c --input-len 256 --output-len 128 -o /tmp/fit/c$c.json \
    > /tmp/fit/c$c.txt 2>&1
  echo "c=$c: exit $?; $(grep -E 'Mean TTFT|Mean TPOT|Output token throughput' /tmp/fit/c$c.txt | tr -s ' ' | tr '\n' ';')"
done 2>&1 | tee "$OUT/fit.txt"
tar czf "$OUT/fit.tgz" -C /tmp fit
kill $engine; wait $engine 2>/dev/null
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
