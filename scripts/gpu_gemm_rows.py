"""How a GPU's matrix products behave as the rows (the tokens of one engine step) shrink toward
a serving batch, against the simulated engine's roofline (issue 13, docs/sim.md).

The simulated engine times a step's linear layers as the larger of FLOPs / (peak x 0.65) and
bytes / (bandwidth x 0.89). Between a decode batch (memory-bound) and a prefill (compute-bound)
lies the range a busy server runs in (a few hundred tokens per step); the 512-8,192-row GEMMs of
gpu_microbench.py did not look there. This times one transformer layer's four projections
(QKV, output, gate+up, down) of Llama-2-70B in FP8 and Llama-3-8B in BF16 at 16-4,096 rows and
prints measured / modelled time per row count.

Run on the lent GPU machine: python3 scripts/gpu_gemm_rows.py
"""
import torch

from gpu_timing import peaks, timed

name, bf16, fp8, bw = peaks()
FLOP_EFF, BW_EFF = 0.65, 0.89
print(f"model: max(FLOPs / (peak x {FLOP_EFF}), bytes / (bandwidth x {BW_EFF}))")


one = torch.tensor(1.0, device="cuda")
SHAPES = {
    # hidden 8192, 64 heads, 8 KV heads of 128, MLP 28672 (gate and up fused).
    "llama-2-70b fp8": (torch.float8_e4m3fn, 1, fp8, [(8192, 10240), (8192, 8192), (8192, 57344), (28672, 8192)]),
    # hidden 4096, 32 heads, 8 KV heads of 128, MLP 14336.
    "llama-3-8b bf16": (torch.bfloat16, 2, bf16, [(4096, 6144), (4096, 4096), (4096, 28672), (14336, 4096)]),
}
ROWS = (16, 32, 64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 4096)

for label, (dtype, size, peak, shapes) in SHAPES.items():
    # Several copies of each weight, cycled, so no product finds its weight in L2 (50 MiB).
    copies = 4 if size == 1 else 2
    weights = []
    for k, n in shapes:
        ws = []
        for _ in range(copies):
            w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
            ws.append(w.to(dtype).t() if dtype != torch.bfloat16 else w.t().contiguous())
        weights.append(ws)
    print(f"\n{label}: one layer's four projections")
    print("rows  measured_us  model_us  measured/model  TFLOP/s  of_peak  bound")
    for m in ROWS:
        xs = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16).to(dtype) for k, _ in shapes]

        def layer():
            for c in range(copies):
                for x, ws in zip(xs, weights):
                    if dtype == torch.bfloat16:
                        x @ ws[c]
                    else:
                        torch._scaled_mm(x, ws[c], scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

        t = timed(layer, 10, repeats=7) / copies
        flops = sum(2 * m * k * n for k, n in shapes)
        byts = sum(k * n * size + m * k * size + m * n * 2 for k, n in shapes)
        compute = flops / (peak * FLOP_EFF)
        memory = byts / (bw * BW_EFF)
        model = max(compute, memory)
        bound = "compute" if compute > memory else "memory"
        print(f"{m:5d}  {t*1e6:11.1f}  {model*1e6:8.1f}  {t/model:14.2f}  {flops/t/1e12:7.0f}  {flops/t/peak:7.3f}  {bound}", flush=True)
        del xs
    del weights
    torch.cuda.empty_cache()
