"""Reads strobe's vllm-json exports with vLLM's own loading code (the installed vLLM's
`vllm bench sweep plot` and `plot_pareto` helpers) and checks the figures against strobe's reports.

usage: check_vllm_json.py SWEEP_SUMMARY.json STROBE_SUMMARY.json RUN.vllm.json RUN.json
"""
import json
import math
import sys
from pathlib import Path

from vllm.benchmarks.sweep.plot import _convert_inf_nan_strings, _get_group, _get_metric, _json_load_bytes
from vllm.benchmarks.sweep.plot_pareto import _infer_gpu_count, _infer_user_count


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def close(a, b):
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def main():
    sweep_path, summary_path, run_path, report_path = sys.argv[1:5]
    runs = _convert_inf_nan_strings(_json_load_bytes(Path(sweep_path)))
    summary = json.load(open(summary_path))
    if len(runs) != len(summary["points"]):
        fail(f"{len(runs)} runs in the vllm-json, {len(summary['points'])} points in the summary")
    for run, point in zip(runs, summary["points"]):
        c = point["classes"][0]
        # The axes `vllm bench sweep plot` uses by default, and a grouping by concurrency.
        if not close(_get_metric(run, "total_token_throughput"), c["throughput"]["total_tokens_per_s"]):
            fail(f"{point['label']}: total_token_throughput differs")
        if not close(_get_metric(run, "median_ttft_ms"), c["ttft_ms"]["p50"]):
            fail(f"{point['label']}: median_ttft_ms differs")
        group = _get_group(run, ["max_concurrency"])
        if group != (("max_concurrency", str(point["parameters"]["concurrency"])),):
            fail(f"{point['label']}: grouped as {group}")
        users = _infer_user_count(run, "max_concurrency")
        if users != point["parameters"]["concurrency"]:
            fail(f"{point['label']}: plot_pareto sees {users} users")
        if _infer_gpu_count(run, None) != 1:
            fail(f"{point['label']}: plot_pareto sees {_infer_gpu_count(run, None)} GPUs")
        if run["request_rate"] != float("inf"):
            fail(f"{point['label']}: a closed loop's request_rate reads as {run['request_rate']}")
    one = json.load(open(run_path))
    report = json.load(open(report_path))
    res = report["results"]
    for key, want in [
        ("completed", res["requests"]["successful"]),
        ("duration", res["duration_s"]),
        ("output_throughput", res["throughput"]["output_tokens_per_s"]),
        ("mean_tpot_ms", res["latency"]["tpot_ms"]["mean"]),
        ("p99_itl_ms", res["latency"]["itl_ms"]["p99"]),
        ("median_e2el_ms", res["latency"]["e2e_ms"]["p50"]),
    ]:
        if not close(one[key], want):
            fail(f"{run_path}: {key} = {one[key]}, the report says {want}")
    print(f"ok: vLLM's sweep plot and pareto loaders read {len(runs)} runs; the single run matches its report")


if __name__ == "__main__":
    main()
