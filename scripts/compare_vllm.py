#!/usr/bin/env python3
"""strobe and vLLM's own benchmark client, side by side on the same real vLLM server.

For each concurrency, runs `vllm bench serve` and `strobe run` with the same workload shape
(random prompts of ~64 tokens, 32 output tokens with ignore_eos, same request count) one after the
other against one vLLM server, and prints both clients' figures beside the server's own
(histogram deltas of vllm:time_to_first_token_seconds and vllm:e2e_request_latency_seconds over
exactly each client's requests), with the ratios.

usage: scripts/compare_vllm.py [--url http://127.0.0.1:8000] [--concurrency 1,4,8] [--requests-per-stream 4]
Without --url it starts vLLM (scripts/setup-vllm.sh must have run) and stops it at the end.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STROBE = os.path.join(ROOT, "target", "release", "strobe")
VENV = os.path.join(ROOT, ".venv-vllm", "bin")
MODEL = os.path.join(ROOT, ".models", "smollm2")


def scrape(url):
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        for name in ("vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds"):
            for part in ("_sum", "_count"):
                if line.startswith(name + part + "{") or line.startswith(name + part + " "):
                    out[name + part] = out.get(name + part, 0.0) + float(line.split()[-1])
    return out


def server_means(before, after):
    res = {}
    for key, name in (("ttft", "vllm:time_to_first_token_seconds"), ("e2e", "vllm:e2e_request_latency_seconds")):
        n = after[name + "_count"] - before[name + "_count"]
        s = after[name + "_sum"] - before[name + "_sum"]
        res[key] = s / n * 1e3 if n else float("nan")
        res["count"] = n
    return res


def settle(url, before, expected):
    for _ in range(20):
        after = scrape(url)
        if after["vllm:e2e_request_latency_seconds_count"] - before["vllm:e2e_request_latency_seconds_count"] >= expected:
            return after
        time.sleep(0.25)
    return scrape(url)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url")
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--requests-per-stream", type=int, default=4)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "strobe"], cwd=ROOT, check=True)
    server = None
    url = args.url
    if not url:
        port = 18321
        url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_CPU_KVCACHE_SPACE="2")
        log = open(os.path.join(tempfile.gettempdir(), "compare-vllm.log"), "w")
        server = subprocess.Popen([os.path.join(VENV, "python"), "-m", "vllm.entrypoints.openai.api_server", "--model", MODEL,
                                   "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port),
                                   "--max-model-len", "4096", "--dtype", "bfloat16"], env=env, stdout=log, stderr=log,
                                  start_new_session=True)
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=2)
                break
            except Exception:
                time.sleep(1)
    out = tempfile.mkdtemp()
    rows = []
    try:
        for c in [int(x) for x in args.concurrency.split(",")]:
            n = c * args.requests_per_stream
            # vLLM's client
            before = scrape(url)
            env = dict(os.environ, VLLM_TARGET_DEVICE="cpu")
            subprocess.run([os.path.join(VENV, "vllm"), "bench", "serve", "--backend", "openai", "--base-url", url, "--model", "smollm2",
                            "--tokenizer", MODEL, "--dataset-name", "random", "--random-input-len", "64", "--random-output-len", "32",
                            "--num-prompts", str(n), "--max-concurrency", str(c), "--ignore-eos", "--disable-tqdm",
                            "--percentile-metrics", "ttft,tpot,itl,e2el", "--save-result", "--result-dir", out, "--result-filename", f"vllm-{c}.json"],
                           env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            truth_v = server_means(before, settle(url, before, n))
            v = json.load(open(os.path.join(out, f"vllm-{c}.json")))
            # strobe
            before = scrape(url)
            subprocess.run([STROBE, "run", "--url", url, "-q", "-c", str(c), "-n", str(n), "--input-len", "64", "--output-len", "32",
                            "--no-server-metrics", "-o", os.path.join(out, f"strobe-{c}.json")], check=True)
            truth_s = server_means(before, settle(url, before, n))
            s = json.load(open(os.path.join(out, f"strobe-{c}.json")))
            sl = s["results"]["latency"]
            e2e_v = v.get("mean_e2el_ms", float("nan"))
            rows.append((c, n,
                         ("vllm bench serve", v["mean_ttft_ms"], truth_v["ttft"], e2e_v, truth_v["e2e"], v["mean_tpot_ms"], v["output_throughput"], v["total_input_tokens"]),
                         ("strobe", sl["ttft_ms"]["mean"], truth_s["ttft"], sl["e2e_ms"]["mean"], truth_s["e2e"], sl["tpot_ms"]["mean"], s["results"]["throughput"]["output_tokens_per_s"], s["results"]["tokens"]["input"])))
    finally:
        if server:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except Exception:
                os.killpg(server.pid, signal.SIGKILL)
    print("\n| streams | requests | client | TTFT mean (ms) | vLLM's own | client − vLLM | E2E mean (ms) | vLLM's own | client − vLLM | TPOT mean (ms) | output tok/s | input tokens |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, n, *clients in rows:
        for name, ttft, tt, e2e, te, tpot, tps, inp in clients:
            print(f"| {c} | {n} | {name} | {ttft:.2f} | {tt:.2f} | {ttft - tt:+.2f} | {e2e:.2f} | {te:.2f} | {e2e - te:+.2f} | {tpot:.2f} | {tps:.1f} | {inp} |")
    print()
    for c, n, v, s in rows:
        print(f"streams {c}: strobe's TTFT gap to vLLM's own figure is {abs(s[1] - s[2]):.2f} ms, vLLM's client's {abs(v[1] - v[2]):.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
