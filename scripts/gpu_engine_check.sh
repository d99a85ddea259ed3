#!/usr/bin/env bash
# strobe against a real GPU engine on the lent H200 (see ../shared/recipes/gpu-engine.md):
# `transformers serve` with continuous batching and CUDA graphs, serving a randomly initialised
# ~1.07B Llama (weights cannot be fetched there; timing is real, text is noise), launched and
# stopped by strobe itself (--launch), with NVML GPU telemetry checked against nvidia-smi.
#
# Run through the device tool with carry [".devbin", ".whl"]: .devbin/strobe (a release build),
# .devbin/tok (SmolLM2's tokenizer files), .whl (the recipe's wheels). Results go to $OUT.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
. scripts/gpu_setup.sh
chmod +x .devbin/strobe
(while true; do nvidia-smi --query-gpu=timestamp,memory.used,memory.total,utilization.gpu,power.draw --format=csv,noheader,nounits >> "$OUT/nvidia-smi-engine.csv"; sleep 0.5; done) &
smi=$!
engine="python3 -m transformers.cli.transformers serve local/rand-llama --continuous-batching --cb-use-cuda-graph --host 127.0.0.1 --port 8000"
# This engine refuses vLLM's `ignore_eos` (HTTP 422 "Unexpected fields in the request"), and ends
# its streams without `data: [DONE]` (after a finish_reason): both seen on the first try here.
for c in 1 16; do
  .devbin/strobe run --launch "$engine" --launch-timeout 4m --launch-log "$OUT/engine-c$c.log" --api chat \
    -c "$c" -n $((c * 4)) --input-len 128 --output-len 128 --no-ignore-eos --telemetry-interval 500ms \
    -o "$OUT/gpu-engine-c$c.json" > "$OUT/gpu-engine-c$c.txt" 2>&1
  echo "c=$c: strobe exit $?"
  tail -32 "$OUT/gpu-engine-c$c.txt"
done
kill $smi
pgrep -af "transformers serve" && echo "LEFT RUNNING" || echo "no engine left running"
