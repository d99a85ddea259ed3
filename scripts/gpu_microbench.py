"""What this GPU's kernels reach of its datasheet peaks, for the simulated engine's efficiencies
(issue 13, docs/sim.md): BF16 and FP8 GEMMs of Llama-3-8B's shapes at prefill sizes (compute),
and weight-streaming matrix products at decode sizes and a plain copy (memory bandwidth).

Run on the lent GPU machine (scripts/gpu_sim_fit.sh); prints one line per measurement.
"""
import time

import torch

from gpu_timing import peaks, timed

name, bf16, fp8, bw = peaks()

one = torch.tensor(1.0, device="cuda")
# Llama-3-8B: hidden 4096, QKV 6144, MLP 14336 (gate and up fused: 28672).
for m in (8192, 4096, 2048, 512):
    for k, n in ((4096, 28672), (14336, 4096), (4096, 6144)):
        a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(k, n, device="cuda", dtype=torch.bfloat16)
        t = timed(lambda: a @ b, 20)
        flops = 2 * m * k * n
        line = f"gemm bf16 m={m} k={k} n={n}: {flops / t / 1e12:.0f} TFLOP/s = {flops / t / bf16:.3f} of peak"
        try:
            a8 = a.to(torch.float8_e4m3fn)
            b8 = b.t().contiguous().to(torch.float8_e4m3fn).t()
            t8 = timed(lambda: torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16), 20)
            line += f"; fp8 {flops / t8 / 1e12:.0f} TFLOP/s = {flops / t8 / fp8:.3f} of peak"
        except Exception as e:  # noqa: BLE001 - report and go on
            line += f"; fp8 failed: {e}"
        print(line, flush=True)
        del a, b

# Decode: 32 layers' MLP weights (3.76 GB of BF16) streamed through a small batch.
layers = [torch.randn(4096, 14336, device="cuda", dtype=torch.bfloat16) for _ in range(32)]
weight_bytes = sum(w.numel() * 2 for w in layers)
for m in (1, 8, 64, 256):
    x = torch.randn(m, 4096, device="cuda", dtype=torch.bfloat16)

    def step():
        for w in layers:
            x @ w

    t = timed(step, 5)
    print(f"decode stream m={m}: {weight_bytes / t / 1e12:.2f} TB/s = {weight_bytes / t / bw:.3f} of peak", flush=True)
del layers

x = torch.empty(4 * 1024**3, dtype=torch.uint8, device="cuda")
y = torch.empty_like(x)
t = timed(lambda: y.copy_(x), 10)
print(f"copy 4 GiB: {2 * x.numel() / t / 1e12:.2f} TB/s = {2 * x.numel() / t / bw:.3f} of peak (read + write)")
