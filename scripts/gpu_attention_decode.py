"""A decode step's attention against the simulated engine's roofline, and a layer's linear
layers and attention together against the sum and the larger of the two (issue 13, docs/sim.md).

The simulated engine times a step as two kinds of kernel run one after the other: the linear
layers (their weights read once) and attention (each sequence's keys and values read), each the
larger of FLOPs / (peak x 0.65) and bytes / (bandwidth x 0.89), their times added. This times,
for one layer of Llama-3-8B and of Llama-2-70B in BF16 at 1-256 decoding sequences of 512-4,096
tokens of context:
  - attention alone (PyTorch's scaled_dot_product_attention, one query token a sequence, grouped
    KV heads), measured / modelled;
  - the layer's four projections alone (QKV, output, gate+up, down), measured / modelled;
  - both, one after the other, measured against the modelled sum and the modelled larger.

Run on the lent GPU machine: python3 scripts/gpu_attention_decode.py
"""
import torch
import torch.nn.functional as F

from gpu_timing import peaks, timed

name, bf16, fp8, bw = peaks()
FLOP_EFF, BW_EFF = 0.65, 0.89
print(f"model: each kernel max(FLOPs / (peak x {FLOP_EFF}), bytes / (bandwidth x {BW_EFF})); a layer the sum")
print(f"torch {torch.__version__}")

SHAPES = {
    # heads, KV heads, head dim, hidden, MLP
    "llama-3-8b": (32, 8, 128, 4096, 14336),
    "llama-2-70b": (64, 8, 128, 8192, 28672),
}
BATCHES = (1, 16, 64, 128, 256)
CONTEXTS = (512, 1024, 2048, 4096)
L2 = 50 * 2**20


def roofline(flops, nbytes):
    return max(flops / (bf16 * FLOP_EFF), nbytes / (bw * BW_EFF))


def attention(q, k, v):
    try:
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    except TypeError:
        # Older PyTorch: the KV heads repeated (more bytes than a grouped kernel reads).
        g = q.shape[1] // k.shape[1]
        return F.scaled_dot_product_attention(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1))


for label, (heads, kv_heads, dim, hidden, mlp) in SHAPES.items():
    print(f"\n== {label} (BF16): one layer")
    print(f"{'seqs':>5} {'ctx':>5} | {'attn ms':>8} {'model':>7} {'ratio':>5} | {'linear ms':>9} {'model':>7} {'ratio':>5} | "
          f"{'both ms':>8} {'sum':>7} {'max':>7} {'/sum':>5} {'/max':>5}")
    # The four projections' weights (k x n), copies cycled so none is found in L2.
    proj = [(hidden, (heads + 2 * kv_heads) * dim), (heads * dim, hidden), (hidden, 2 * mlp), (mlp, hidden)]
    wbytes = sum(k * n for k, n in proj) * 2
    wcopies = max(2, -(-2 * L2 // wbytes))
    weights = [[torch.randn(k, n, device="cuda", dtype=torch.bfloat16) for k, n in proj] for _ in range(wcopies)]
    for b in BATCHES:
        x_in = torch.randn(b, hidden, device="cuda", dtype=torch.bfloat16)
        x_mlp = torch.randn(b, mlp, device="cuda", dtype=torch.bfloat16)
        x_att = torch.randn(b, heads * dim, device="cuda", dtype=torch.bfloat16)
        for ctx in CONTEXTS:
            kv_bytes = 2 * b * kv_heads * ctx * dim * 2
            if kv_bytes > 24 * 2**30:
                continue
            copies = max(2, -(-2 * L2 // kv_bytes))
            caches = [
                (torch.randn(b, kv_heads, ctx, dim, device="cuda", dtype=torch.bfloat16),
                 torch.randn(b, kv_heads, ctx, dim, device="cuda", dtype=torch.bfloat16))
                for _ in range(copies)
            ]
            q = torch.randn(b, heads, 1, dim, device="cuda", dtype=torch.bfloat16)
            turn = {"a": 0, "w": 0}

            def attn_only():
                k, v = caches[turn["a"] % copies]
                turn["a"] += 1
                attention(q, k, v)

            def linear_only():
                ws = weights[turn["w"] % wcopies]
                turn["w"] += 1
                x_in @ ws[0]
                x_att @ ws[1]
                x_in @ ws[2]
                x_mlp @ ws[3]

            def both():
                linear_only()
                attn_only()

            iters = 50
            t_attn = timed(attn_only, iters)
            t_lin = timed(linear_only, iters)
            t_both = timed(both, iters)
            m_attn = roofline(4 * heads * dim * ctx * b, kv_bytes)
            m_lin = roofline(2 * b * sum(k * n for k, n in proj), wbytes)
            print(f"{b:>5} {ctx:>5} | {t_attn*1e3:>8.3f} {m_attn*1e3:>7.3f} {t_attn/m_attn:>5.2f} | "
                  f"{t_lin*1e3:>9.3f} {m_lin*1e3:>7.3f} {t_lin/m_lin:>5.2f} | "
                  f"{t_both*1e3:>8.3f} {(m_attn+m_lin)*1e3:>7.3f} {max(m_attn, m_lin)*1e3:>7.3f} "
                  f"{t_both/(m_attn+m_lin):>5.2f} {t_both/max(m_attn, m_lin):>5.2f}", flush=True)
            del caches
        torch.cuda.empty_cache()
