# Sourced by the GPU scripts (see ../shared/recipes/gpu-engine.md): installs the carried wheels
# and builds a randomly initialised ~1.07B Llama in Hugging Face cache layout, served offline as
# `local/rand-llama` (no weights can be fetched there; timing is real, text is noise).
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

# start_engine LOG: `transformers serve` of that model on 127.0.0.1:8000 with continuous batching and
# CUDA graphs, in the background (its pid in $engine), once it answers /v1/models.
start_engine() {
  python3 -m transformers.cli.transformers serve local/rand-llama --continuous-batching --cb-use-cuda-graph \
    --host 127.0.0.1 --port 8000 > "$1" 2>&1 &
  engine=$!
  python3 - <<'PY'
import time, urllib.request
for _ in range(180):
    try:
        print(urllib.request.urlopen("http://127.0.0.1:8000/v1/models", timeout=5).read().decode()[:300])
        break
    except Exception:
        time.sleep(1)
else:
    print("the engine did not answer in 180 s")
PY
}
