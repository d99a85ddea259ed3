#!/usr/bin/env python3
"""Assertions of the real-vLLM tier on strobe's JSON reports (stdlib only).

usage: check_reports.py single REPORT --requests N --output-len L
       check_reports.py sweep REPORT...      (throughput must grow from the first to the last)
       check_reports.py launch REPORT --requests N
       check_reports.py exact REPORT --requests N   (every server input count equals strobe's intent)

Tolerance for strobe vs vLLM's own server-side histograms (TTFT and E2E means): the client figure
must be no lower than the server's (minus 1 ms for rounding) and at most 15 ms + 2% higher. vLLM's
histograms start when a request reaches its engine core (after the API server has parsed,
validated and tokenised it) and stop at the engine's output (before detokenising, SSE encoding and
the loopback hop back); on a 2-core machine that front-end path measured 2-6 ms at 1-8 streams,
growing with load because one Python event loop serves every request.
"""
import json
import sys


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def load(path):
    with open(path) as f:
        return json.load(f)


def check_single(path, requests, output_len):
    r = load(path)
    res = r["results"]
    name = f"{path} ({r['run']['target']['api']}, c={r['run']['load']['concurrency']})"
    if res["requests"]["successful"] != requests or res["requests"]["failed"] != 0:
        fail(f"{name}: {res['requests']}")
    if res["tokens"]["output"] != requests * output_len:
        fail(f"{name}: output tokens {res['tokens']['output']} != {requests} x {output_len}")
    if res["tokens"]["output_count_sources"] != {"usage": requests}:
        fail(f"{name}: output counts not all from the server's usage: {res['tokens']['output_count_sources']}")
    m = r["server_metrics"]
    if not m or m["engine"] != "vllm":
        fail(f"{name}: vLLM metrics not recognised: {m and m.get('note')}")
    for key, client in [("ttft", res["latency"]["ttft_ms"]), ("e2e", res["latency"]["e2e_ms"])]:
        h = m["histograms"].get(key)
        if not h or round(h["count"]) != requests:
            fail(f"{name}: server {key} histogram counted {h and h['count']} requests, expected {requests}")
        diff = client["mean"] - h["mean_ms"]
        allowed = 15.0 + 0.02 * h["mean_ms"]
        print(f"  {name}: {key} client {client['mean']:.2f} ms, vLLM {h['mean_ms']:.2f} ms, diff {diff:+.2f} ms (allowed -1..+{allowed:.1f})")
        if not (-1.0 <= diff <= allowed):
            fail(f"{name}: {key} differs from vLLM's own figure by {diff:+.2f} ms")
    print(f"ok: {name}")


def check_exact(path, requests):
    r = load(path)
    res = r["results"]
    w = r["run"]["workload"]
    name = f"{path} ({r['run']['target']['api']}, {w['description']})"
    if res["requests"]["successful"] != requests or res["requests"]["failed"] != 0:
        fail(f"{name}: {res['requests']} {res['requests'].get('errors')}")
    if not w["exact_input_lengths"]:
        fail(f"{name}: input lengths not exact under {w['tokenizer']}")
    c = res["input_length_check"]
    if not c or c["compared"] != requests or c["exact"] != requests:
        fail(f"{name}: server-counted input lengths differ from strobe's: {c}")
    print(f"ok: {name}: {c['exact']}/{c['compared']} server input counts exact under {w['tokenizer']}, "
          f"{res['tokens']['input']} input tokens")


def check_sweep(paths):
    tps = []
    for p in paths:
        r = load(p)
        c = r["run"]["load"]["concurrency"]
        t = r["results"]["throughput"]["output_tokens_per_s"]
        if r["results"]["requests"]["failed"]:
            fail(f"{p}: failures in the sweep")
        tps.append((c, t))
        print(f"  sweep c={c}: {t:.1f} output tokens/s, achieved concurrency {r['results']['concurrency']['achieved_mean']:.2f}")
    if not tps[-1][1] > tps[0][1] * 1.5:
        fail(f"batching should raise throughput from c={tps[0][0]} to c={tps[-1][0]}: {tps}")
    print("ok: sweep")


def check_launch(path, requests):
    r = load(path)
    e = r.get("engine")
    if not e or not e["version"]:
        fail(f"{path}: no engine version recorded: {e}")
    if e["params"].get("served-model-name") != "smollm2" or "max-model-len" not in e["params"]:
        fail(f"{path}: engine params not recorded: {e['params']}")
    if r["results"]["requests"]["successful"] != requests:
        fail(f"{path}: {r['results']['requests']}")
    print(f"ok: launch (vLLM {e['version']}, ready after {e['ready_after_s']:.0f} s)")


def main():
    args = sys.argv[1:]
    mode = args.pop(0)
    opt = lambda k: int(args[args.index(k) + 1])
    if mode == "single":
        check_single(args[0], opt("--requests"), opt("--output-len"))
    elif mode == "sweep":
        check_sweep(args)
    elif mode == "exact":
        check_exact(args[0], opt("--requests"))
    elif mode == "launch":
        check_launch(args[0], opt("--requests"))
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
