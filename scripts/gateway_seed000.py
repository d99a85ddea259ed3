"""Seed 000's conditions through `strobe gateway` in front of a running engine, measured by
strobe: interactive users alone (isolated), the batch alone (its throughput), and the batch
with the users beside it, with the adaptive policy off (a naive batch at full concurrency) and
on. Prints a Markdown table (docs/gateway.md holds one run's).

usage: gateway_seed000.py ENGINE_URL MODEL [--users 2] [--window 60] [--batch-max 32] [--slo-factor 1.4]
                          [--chat] [--no-ignore-eos] [--strobe PATH] [--out DIR]

--chat sends the batch and the users to /v1/chat/completions (for engines without
/v1/completions, such as `transformers serve`); --no-ignore-eos leaves vLLM's `ignore_eos` out of
every request (engines that refuse unknown fields).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STROBE = os.path.join(ROOT, "target", "release", "strobe")
KEY = "seed000-key"


def req(url, method="GET", body=None, ctype="application/json"):
    r = urllib.request.Request(url, data=body, method=method,
                               headers={"Authorization": f"Bearer {KEY}", "Content-Type": ctype})
    with urllib.request.urlopen(r, timeout=60) as resp:
        return json.loads(resp.read())


def start_gateway(engine, store, flags):
    env = dict(os.environ, SEED000_KEY=KEY)
    p = subprocess.Popen([STROBE, "gateway", "-q", "--upstream", engine, "--listen", "127.0.0.1:0",
                          "--store", store, "--api-key-env", "SEED000_KEY", *flags],
                         stdout=subprocess.PIPE, env=env, text=True)
    line = p.stdout.readline()
    url = next(w for w in line.split() if w.startswith("http://"))
    return p, url


def submit(gw, model, n, max_tokens, chat, ignore_eos):
    lines = []
    for i in range(n):
        words = " ".join(f"w{(i * 7 + k) % 97}" for k in range(48))
        body = {"model": model, "max_tokens": max_tokens}
        if chat:
            body["messages"] = [{"role": "user", "content": f"Summarise: {words}"}]
        else:
            body["prompt"] = f"Summarise: {words}"
        if ignore_eos:
            body["ignore_eos"] = True
        url = "/v1/chat/completions" if chat else "/v1/completions"
        lines.append(json.dumps({"custom_id": f"b{i}", "method": "POST", "url": url, "body": body}))
    data = ("\n".join(lines) + "\n").encode()
    boundary = "seed000"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"batch.jsonl\"\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    f = req(gw + "/v1/files", "POST", body, f"multipart/form-data; boundary={boundary}")
    b = req(gw + "/v1/batches", "POST", json.dumps({"input_file_id": f["id"], "endpoint": url,
                                                    "completion_window": "24h"}).encode())
    return b["id"]


def done(gw, bid):
    c = req(f"{gw}/v1/batches/{bid}")["request_counts"]
    return c["completed"] + c["failed"]


def interactive(gw, out, users, window, chat, ignore_eos):
    env = dict(os.environ, SEED000_KEY=KEY)
    extra = (["--api", "chat"] if chat else []) + ([] if ignore_eos else ["--no-ignore-eos"])
    subprocess.run([STROBE, "run", "-q", "--url", gw, "--api-key-env", "SEED000_KEY", "-c", str(users),
                    "-d", f"{window}s", "--input-len", "64", "--output-len", "32", "--no-server-metrics",
                    *extra, "-o", out], check=True, env=env)
    r = json.load(open(out))["results"]
    lat = r["latency"]
    return {"ttft_p95": lat["ttft_ms"]["p95"], "e2e_p95": lat["e2e_ms"]["p95"],
            "tpot_p95": lat["tpot_ms"]["p95"], "requests": r["requests"]["successful"]}


def batch_rate(gw, bid, secs):
    d0, t0 = done(gw, bid), time.time()
    time.sleep(secs)
    return (done(gw, bid) - d0) / (time.time() - t0)


def main():
    global STROBE
    ap = argparse.ArgumentParser()
    ap.add_argument("engine")
    ap.add_argument("model")
    ap.add_argument("--users", type=int, default=2)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--batch-max", type=int, default=32)
    ap.add_argument("--lines", type=int, default=4000)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--slo-factor", type=float, default=1.4,
                    help="the adaptive policy's SLOs: this times the isolated TTFT and TPOT p95")
    ap.add_argument("--chat", action="store_true")
    ap.add_argument("--no-ignore-eos", action="store_true")
    ap.add_argument("--strobe", default=os.path.join(ROOT, "target", "release", "strobe"))
    ap.add_argument("--out", default=tempfile.mkdtemp())
    a = ap.parse_args()
    STROBE = a.strobe
    ie = not a.no_ignore_eos
    os.makedirs(a.out, exist_ok=True)
    res = {}

    def cond(name, flags, with_batch, with_users):
        gwp, gw = start_gateway(a.engine, os.path.join(a.out, f"{name}.db"), flags)
        try:
            bid = submit(gw, a.model, a.lines, a.max_tokens, a.chat, ie) if with_batch else None
            if bid:
                time.sleep(8)  # ramp: the batch reaches its steady state first
            if with_users:
                d0, t0 = (done(gw, bid), time.time()) if bid else (0, 0)
                r = interactive(gw, os.path.join(a.out, f"{name}.json"), a.users, a.window, a.chat, ie)
                if bid:
                    r["batch_lines_per_s"] = (done(gw, bid) - d0) / (time.time() - t0)
                    metrics = urllib.request.urlopen(gw + "/metrics").read().decode()
                    r["cap"] = [l for l in metrics.splitlines() if l.startswith("strobe_gateway_batch_concurrency{")]
            else:
                r = {"batch_lines_per_s": batch_rate(gw, bid, a.window)}
            res[name] = r
            print(f"{name}: {r}", flush=True)
        finally:
            gwp.terminate()
            gwp.wait()
        time.sleep(3)  # the engine drains what the stopped gateway left

    cond("isolated", [], False, True)
    iso = res["isolated"]
    f = a.slo_factor
    slo = ["--interactive-ttft-p95", f"{max(1, round(f * iso['ttft_p95']))}ms",
           "--interactive-tpot-p95", f"{max(1, round(f * iso['tpot_p95']))}ms"]
    cond("naive", ["--no-adaptive", "--batch-max-concurrency", str(a.batch_max)], True, True)
    cond("adaptive", ["--batch-max-concurrency", str(a.batch_max), "--policy-interval", "500ms",
                      "--policy-window", "5s", *slo], True, True)
    # Last: an engine's first minutes under a full batch include one-off costs (on CPU vLLM the
    # first batch-only window ran at less than half the rate of a later one).
    cond("batch_only", ["--no-adaptive", "--batch-max-concurrency", str(a.batch_max)], True, False)
    base = res["batch_only"]["batch_lines_per_s"]
    print()
    print(f"Interactive: {a.users} users, 64-token prompts, 32 output tokens, {a.window} s; batch: "
          f"{a.max_tokens}-token completions, at most {a.batch_max} in flight; adaptive SLOs {' '.join(slo)}.")
    print()
    print("| condition | interactive TTFT p95 | × isolated | latency p95 | × isolated | TPOT p95 | batch lines/s | × batch-only |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("isolated", "batch_only", "naive", "adaptive"):
        r = res[name]
        t = r.get("ttft_p95")
        row = [name.replace("_", " ")]
        if t is not None:
            row += [f"{t:.0f} ms", f"{t / iso['ttft_p95']:.2f}", f"{r['e2e_p95']:.0f} ms",
                    f"{r['e2e_p95'] / iso['e2e_p95']:.2f}", f"{r['tpot_p95']:.1f} ms"]
        else:
            row += ["–"] * 5
        b = r.get("batch_lines_per_s")
        row += [f"{b:.1f}", f"{b / base:.2f}"] if b is not None else ["–", "–"]
        print("| " + " | ".join(row) + " |")
    json.dump(res, open(os.path.join(a.out, "seed000.json"), "w"), indent=1)
    ad = res["adaptive"]
    ok = ad["ttft_p95"] <= 1.5 * iso["ttft_p95"] and ad["e2e_p95"] <= 1.5 * iso["e2e_p95"] \
        and ad["batch_lines_per_s"] >= 0.5 * base
    print(f"\ntarget (adaptive: interactive p95 within 1.5x isolated, batch at least half its batch-only rate): "
          f"{'met' if ok else 'NOT met'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
