"""Shared by the GPU microbenchmarks (gpu_microbench.py, gpu_gemm_rows.py): the card's datasheet
peaks and a CUDA-event timer."""
import torch


def peaks():
    """The card's name and NVIDIA's datasheet peaks, dense, SXM (the same figures as strobe-sim's
    presets): BF16 FLOP/s, FP8 FLOP/s, memory bytes/s. Prints them."""
    name = torch.cuda.get_device_name()
    if "H200" in name:
        bf16, fp8, bw = 989.4e12, 1978.9e12, 4.8e12
    else:
        bf16, fp8, bw = 989.4e12, 1978.9e12, 3.35e12
    print(f"device {name}; peaks: BF16 {bf16/1e12:.1f} TFLOP/s, FP8 {fp8/1e12:.1f} TFLOP/s, {bw/1e12:.2f} TB/s")
    return name, bf16, fp8, bw


def timed(fn, iters, repeats=5):
    """Seconds per call of `fn`: the median of `repeats` timings of `iters` calls, after three
    warm-up calls."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / iters)
    times.sort()
    return times[len(times) // 2]
