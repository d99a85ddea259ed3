#!/usr/bin/env python3
"""strobe's own benchmark: accuracy against ground truth, and capacity against vLLM's client.

Prints figures and ratios measured in this one run; nothing is hard-coded.

1. Accuracy. `strobe serve` (TTFT 50 ms, 10 ms between tokens, 64-token streams) records when it
   received each request and when it handed over each first and last token (`/strobe/truth`).
   strobe runs against it at 1, 100 and 1,000 concurrent streams, dating arrivals by kernel
   receive timestamps (the default) and, for comparison, by user-space timestamps; vLLM's
   `vllm bench serve` runs against the same server at the same concurrencies. Each run's TTFT and
   TPOT are compared with the truth of exactly the same requests (the truth is reset before each).
2. TLS. The same target serving HTTPS (strobe serve --tls-cert/--tls-key, a certificate made here
   with openssl): accuracy at 1,000 streams and capacity over HTTPS beside HTTP, in this run.
3. Capacity. Against a zero-delay target (`--ttft 0 --itl 0`, each response one write), 256-token
   streams, 256 concurrent: requests/s, output tokens/s and client CPU-seconds per million streamed
   tokens for strobe and for vLLM's client.

Usage: scripts/bench.py [--quick] [--no-vllm] [--no-tls] [--baseline BIN] [--out DIR]
vLLM's client comes from scripts/setup-vllm.sh (run it first, or pass --no-vllm). --baseline runs
another strobe binary (e.g. one built from an earlier commit) beside this one, in the same run, so a
change's before/after figures come from one sitting of the machine.
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STROBE = os.path.join(ROOT, "target", "release", "strobe")
VLLM = os.path.join(ROOT, ".venv-vllm", "bin", "vllm")
TOKENIZER = os.path.join(ROOT, ".models", "smollm2")


def http(method, url):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def start_serve(port, *args):
    p = subprocess.Popen([STROBE, "serve", "--port", str(port), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    for _ in range(100):
        try:
            if "--tls-cert" in args:
                import socket
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            else:
                http("GET", f"http://127.0.0.1:{port}/health")
            return p
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"strobe serve did not start on port {port}")


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGINT)
        p.wait(timeout=10)
    except Exception:
        os.killpg(p.pid, signal.SIGKILL)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_strobe(port, out, args, binary=None, url=None):
    cpu0 = children_cpu()
    subprocess.run([binary or STROBE, "run", "--url", url or f"http://127.0.0.1:{port}", "-q", "-o", out, *args], check=True)
    cpu = children_cpu() - cpu0
    return json.load(open(out)), cpu


def run_vllm(port, out_dir, name, concurrency, prompts, input_len, output_len):
    env = dict(os.environ, VLLM_TARGET_DEVICE="cpu")
    cmd = [VLLM, "bench", "serve", "--backend", "openai", "--base-url", f"http://127.0.0.1:{port}", "--model", "strobe-sim",
           "--tokenizer", TOKENIZER, "--dataset-name", "random", "--random-input-len", str(input_len),
           "--random-output-len", str(output_len), "--num-prompts", str(prompts), "--max-concurrency", str(concurrency),
           "--ignore-eos", "--disable-tqdm", "--save-result", "--result-dir", out_dir, "--result-filename", name]
    cpu0 = children_cpu()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cpu = children_cpu() - cpu0
    if p.returncode != 0:
        print(p.stdout[-3000:], file=sys.stderr)
        raise SystemExit("vllm bench serve failed")
    return json.load(open(os.path.join(out_dir, name))), cpu


def accuracy(args, out_dir, vllm):
    port = 18431
    server = start_serve(port, "--ttft", "50ms", "--itl", "10ms")
    rows = []
    try:
        for c in ([1, 100, 1000] if not args.quick else [1, 100]):
            n = max(100, 5 * c)
            clients = [("strobe (kernel)", None, "kernel"), ("strobe (user)", None, "user")]
            if args.baseline:
                clients.append(("baseline (kernel)", args.baseline, "kernel"))
            for who, binary, stamps in clients:
                http("DELETE", f"http://127.0.0.1:{port}/strobe/truth")
                rep, _ = run_strobe(port, os.path.join(out_dir, f"acc-{c}-{who.split()[0]}-{stamps}.json"),
                                    ["-c", str(c), "-n", str(n), "--output-len", "64", "--input-len", "32",
                                     "--timestamps", stamps], binary)
                truth = http("GET", f"http://127.0.0.1:{port}/strobe/truth")
                lat = rep["results"]["latency"]
                rows.append((c, who, lat["ttft_ms"]["mean"], lat["ttft_ms"]["p99"], lat["tpot_ms"]["mean"],
                             rep["results"]["concurrency"]["achieved_mean"], truth))
            if vllm and c > 1:
                http("DELETE", f"http://127.0.0.1:{port}/strobe/truth")
                res, _ = run_vllm(port, out_dir, f"vllm-acc-{c}.json", c, n, 32, 64)
                truth = http("GET", f"http://127.0.0.1:{port}/strobe/truth")
                rows.append((c, "vllm bench serve", res["mean_ttft_ms"], res["p99_ttft_ms"], res["mean_tpot_ms"], None, truth))
    finally:
        stop(server)
    print("\n## Accuracy: client figures vs the server's recorded truth (TTFT 50 ms, 10 ms/token, 64 tokens)\n")
    print("| streams | client | TTFT mean | truth | diff | TTFT p99 | truth | diff | TPOT mean | truth | achieved conc. |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, who, mean, p99, tpot, conc, t in rows:
        tm, tp, tt = t["ttft"]["mean_ms"], t["ttft"]["p99_ms"], t["tpot"]["mean_ms"]
        conc_s = f"{conc:.1f}" if conc is not None else "n/a"
        print(f"| {c} | {who} | {mean:.2f} | {tm:.2f} | {mean - tm:+.2f} | {p99:.2f} | {tp:.2f} | {p99 - tp:+.2f} | {tpot:.3f} | {tt:.3f} | {conc_s} |")
    return rows


def make_cert(out_dir):
    """A throw-away CA and a certificate it signs for localhost: (ca.pem, cert.pem, key.pem)."""
    p = lambda name: os.path.join(out_dir, name)
    quiet = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", p("ca-key.pem"), "-out", p("ca.pem"), "-days", "2",
                    "-subj", "/CN=strobe bench CA"], **quiet)
    subprocess.run(["openssl", "req", *ec, "-keyout", p("tls-key.pem"), "-out", p("tls.csr"), "-subj", "/CN=localhost"], **quiet)
    with open(p("tls.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    subprocess.run(["openssl", "x509", "-req", "-in", p("tls.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca-key.pem"),
                    "-CAcreateserial", "-out", p("tls-cert.pem"), "-days", "2", "-extfile", p("tls.ext")], **quiet)
    return p("ca.pem"), p("tls-cert.pem"), p("tls-key.pem")


def tls(args, out_dir):
    ca, cert, key = make_cert(out_dir)
    streams = 100 if args.quick else 1000
    rows, cap = [], []
    for scheme in ["http", "https"]:
        port = 18433 if scheme == "http" else 18434
        extra = ["--tls-cert", cert, "--tls-key", key] if scheme == "https" else []
        url = f"{scheme}://localhost:{port}"
        ca_flag = ["--ca-cert", ca] if scheme == "https" else []
        server = start_serve(port, "--ttft", "50ms", "--itl", "10ms", *extra)
        try:
            http_url = f"http://127.0.0.1:{port}" if scheme == "http" else None
            n = 5 * streams
            rep, _ = run_strobe(port, os.path.join(out_dir, f"tls-acc-{scheme}.json"),
                                ["-c", str(streams), "-n", str(n), "--output-len", "64", "--input-len", "32", *ca_flag],
                                url=url)
            truth = strobe_truth(port, scheme, ca)
            lat = rep["results"]["latency"]
            rows.append((scheme, lat["ttft_ms"]["mean"] - truth["ttft"]["mean_ms"], lat["ttft_ms"]["p99"] - truth["ttft"]["p99_ms"],
                         rep["client"]["receive_timestamps"], rep["client"]["sockets_kernel_timestamps"]))
        finally:
            stop(server)
        server = start_serve(port, "--ttft", "0", "--itl", "0", *extra)
        try:
            duration = "5s" if args.quick else "10s"
            rep, _ = run_strobe(port, os.path.join(out_dir, f"tls-cap-{scheme}.json"),
                                ["-c", "256", "-d", duration, "--output-len", "256", "--input-len", "16", "--warmup", "1s", *ca_flag],
                                url=url)
            r = rep["results"]
            cap.append((scheme, r["throughput"]["requests_per_s"], r["throughput"]["output_tokens_per_s"],
                        rep["client"]["cpu_us_per_output_token"]))
        finally:
            stop(server)
    print(f"\n## TLS: the same target over HTTP and HTTPS (TLS 1.3, strobe serve --tls-cert)\n")
    print(f"| scheme | TTFT mean − truth ({streams} streams) | TTFT p99 − truth | timestamps | kernel-stamped sockets |")
    print("|---|---:|---:|---|---:|")
    for scheme, d_mean, d_p99, stamps, k in rows:
        print(f"| {scheme} | {d_mean:+.2f} ms | {d_p99:+.2f} ms | {stamps} | {k} |")
    print("\n| scheme | requests/s | output tokens/s | CPU-µs per token |")
    print("|---|---:|---:|---:|")
    for scheme, rps, tps, us in cap:
        print(f"| {scheme} | {rps:.0f} | {tps:.0f} | {us:.3f} |")
    print(f"\nHTTPS / HTTP: {cap[1][1] / cap[0][1]:.2f}x requests/s, {cap[1][3] / cap[0][3]:.2f}x CPU per token")


def strobe_truth(port, scheme, cert):
    if scheme == "http":
        return http("GET", f"http://127.0.0.1:{port}/strobe/truth")
    import ssl
    ctx = ssl.create_default_context(cafile=cert)
    with urllib.request.urlopen(f"https://localhost:{port}/strobe/truth", timeout=10, context=ctx) as r:
        return json.loads(r.read())


def capacity(args, out_dir, vllm):
    port = 18432
    server = start_serve(port, "--ttft", "0", "--itl", "0")
    duration = "5s" if args.quick else "15s"
    def strobe_capacity(name, binary):
        rep, _ = run_strobe(port, os.path.join(out_dir, f"cap-{name}.json"),
                            ["-c", "256", "-d", duration, "--output-len", "256", "--input-len", "16", "--warmup", "1s"],
                            binary)
        r = rep["results"]
        return {"rps": r["throughput"]["requests_per_s"], "tps": r["throughput"]["output_tokens_per_s"],
                "cpu_per_m": rep["client"]["cpu_seconds"] / (r["tokens"]["output"] / 1e6),
                "us_per_tok": rep["client"]["cpu_us_per_output_token"], "tokens": r["tokens"]["output"]}
    try:
        s = strobe_capacity("strobe", None)
        base = strobe_capacity("baseline", args.baseline) if args.baseline else None
        v = None
        if vllm:
            prompts = 1000 if args.quick else 3000
            res, cpu = run_vllm(port, out_dir, "vllm-cap.json", 256, prompts, 16, 256)
            toks = res["total_output_tokens"]
            v = {"rps": res["request_throughput"], "tps": res["output_throughput"], "cpu_per_m": cpu / (toks / 1e6),
                 "us_per_tok": cpu * 1e6 / toks, "tokens": toks}
    finally:
        stop(server)
    print("\n## Capacity: zero-delay target, 256-token streams, 256 concurrent\n")
    print("| client | requests/s | output tokens/s | CPU-s per 1M tokens | CPU-µs per token | tokens measured |")
    print("|---|---:|---:|---:|---:|---:|")
    for who, x in [("strobe", s), ("baseline strobe", base), ("vllm bench serve", v)]:
        if x:
            print(f"| {who} | {x['rps']:.0f} | {x['tps']:.0f} | {x['cpu_per_m']:.2f} | {x['us_per_tok']:.3f} | {x['tokens']} |")
    if v:
        print(f"\nstrobe / vLLM: {s['rps'] / v['rps']:.1f}x requests/s, {s['tps'] / v['tps']:.1f}x output tokens/s, "
              f"{v['cpu_per_m'] / s['cpu_per_m']:.1f}x less CPU per token")
    if base:
        print(f"strobe / baseline strobe: {s['rps'] / base['rps']:.2f}x requests/s, "
              f"{base['cpu_per_m'] / s['cpu_per_m']:.2f}x less CPU per token")
    return s, v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller runs (skips 1,000 streams)")
    ap.add_argument("--no-vllm", action="store_true", help="skip vLLM's client")
    ap.add_argument("--no-tls", action="store_true", help="skip the HTTPS-beside-HTTP figures")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-out"), help="folder for raw results")
    ap.add_argument("--baseline", help="another strobe binary to measure beside this one (before/after a change)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "strobe"], cwd=ROOT, check=True)
    vllm = not args.no_vllm
    if vllm and not os.path.exists(VLLM):
        raise SystemExit("vLLM's client is not installed: run scripts/setup-vllm.sh, or pass --no-vllm")
    print(f"# strobe benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores)")
    accuracy(args, args.out, vllm)
    if not args.no_tls:
        tls(args, args.out)
    capacity(args, args.out, vllm)


if __name__ == "__main__":
    main()
