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
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site HF_HOME=/tmp/hf HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python3 - <<'PY'
import os, torch
from transformers import LlamaConfig, LlamaForCausalLM
cfg = LlamaConfig(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                  intermediate_size=8192, vocab_size=49152, max_position_embeddings=8192,
                  bos_token_id=1, eos_token_id=2)
torch.manual_seed(0)
with torch.device("cuda"):
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
commit = "0" * 40
snap = f"/tmp/hf/hub/models--local--rand-llama/snapshots/{commit}"
os.makedirs(snap, exist_ok=True)
model.save_pretrained(snap)
os.makedirs("/tmp/hf/hub/models--local--rand-llama/refs", exist_ok=True)
open("/tmp/hf/hub/models--local--rand-llama/refs/main", "w").write(commit)
for f in os.listdir(".devbin/tok"):
    open(os.path.join(snap, f), "wb").write(open(os.path.join(".devbin/tok", f), "rb").read())
print("model saved,", sum(p.numel() for p in model.parameters()) / 1e9, "B parameters")
PY
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
