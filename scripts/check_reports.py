#!/usr/bin/env python3
"""Assertions of the real-vLLM tier on strobe's JSON reports (stdlib only).

usage: check_reports.py single REPORT --requests N --output-len L
       check_reports.py sweep REPORT...      (throughput must grow from the first to the last)
       check_reports.py launch REPORT --requests N
       check_reports.py exact REPORT --requests N   (every server input count equals strobe's intent)
       check_reports.py offline REPORT --requests N --output-len L
       check_reports.py lockstep REPORT --batch-size B --batches K
       check_reports.py scenario REPORT --classes N
       check_reports.py interference SUMMARY --users U1,U2

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
    c0 = r["classes"][0]
    name = f"{path} ({c0['request']['api']}, c={c0['load']['concurrency']})"
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
    w = r["classes"][0]["workload"]
    name = f"{path} ({r['classes'][0]['request']['api']}, {w['description']})"
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
        c = r["classes"][0]["load"]["concurrency"]
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


def check_offline(path, requests, output_len):
    r = load(path)
    c = r["classes"][0]
    res = c["results"]
    if c["load"]["schedule"] != "offline" or res["requests"]["successful"] != requests or res["requests"]["failed"]:
        fail(f"{path}: {c['load']['schedule']} {res['requests']}")
    if res["tokens"]["output"] != requests * output_len:
        fail(f"{path}: {res['tokens']['output']} output tokens, expected {requests} x {output_len}")
    t = res["throughput"]
    print(f"ok: offline: {requests} generations in {res['duration_s']:.2f} s, {t['requests_per_s']:.2f} generations/s, "
          f"{t['output_tokens_per_s']:.1f} generation tok/s, {t['input_tokens_per_s']:.1f} prompt tok/s")


def check_lockstep(path, batch_size, batches):
    r = load(path)
    c = r["classes"][0]
    b = c["results"]["batches"]
    if c["load"]["batch_size"] != batch_size or not b or b["count"] != batches:
        fail(f"{path}: expected {batches} batches of {batch_size}: {b}")
    if c["results"]["requests"]["successful"] != batch_size * batches:
        fail(f"{path}: {c['results']['requests']}")
    if b["latency_ms"]["p50"] < c["results"]["latency"]["e2e_ms"]["p50"]:
        fail(f"{path}: a batch cannot be faster than its median member")
    cost = r.get("cost")
    if not cost or not cost["usd_per_million_input_tokens"] or not cost["usd_per_million_output_tokens"]:
        fail(f"{path}: no cost split: {cost}")
    print(f"ok: lockstep: {batches} batches of {batch_size}, batch latency p50 {b['latency_ms']['p50']:.0f} ms "
          f"p95 {b['latency_ms']['p95']:.0f} ms; ${cost['usd_per_million_input_tokens']:.2f}/1M input, "
          f"${cost['usd_per_million_output_tokens']:.2f}/1M output tokens")


def check_scenario(path, classes):
    r = load(path)
    if len(r["classes"]) != classes:
        fail(f"{path}: {len(r['classes'])} classes, expected {classes}")
    total = 0
    for c in r["classes"]:
        q = c["results"]["requests"]
        if q["successful"] == 0 or q["failed"]:
            fail(f"{path}: class {c['name']}: {q}")
        total += q["successful"]
        print(f"  class {c['name']} ({c['load']['schedule']}): {q['successful']} ok, TTFT p95 "
              f"{c['results']['latency']['ttft_ms']['p95']:.1f} ms, stop: {c['stop_reason']}")
    if r["results"]["requests"]["successful"] != total:
        fail(f"{path}: the run's total is not its classes' sum")
    print(f"ok: scenario with {classes} classes")


def check_interference(path, users):
    s = load(path)
    labels = [p["label"] for p in s["points"]]
    want = ["batch-only"] + [f"isolated-c{u}" for u in users] + [f"mixed-c{u}" for u in users]
    if labels != want or s["interrupted"]:
        fail(f"{path}: runs {labels}, expected {want}")
    for p in s["points"]:
        for c in p["classes"]:
            if c["failed"] or c["successful"] == 0:
                fail(f"{path}: {p['label']} {c['name']}: {c['successful']} ok, {c['failed']} failed")
    batch = s["points"][0]["classes"][0]
    for u in users:
        mixed = next(p for p in s["points"] if p["label"] == f"mixed-c{u}")
        mb = next(c for c in mixed["classes"] if c["name"] == "batch")
        if (mb["input_tokens"], mb["output_tokens"]) != (batch["input_tokens"], batch["output_tokens"]):
            fail(f"{path}: the batch beside {u} users is not the batch-only batch's size")
    if len(s["comparisons"]) != 2 * len(users):
        fail(f"{path}: {len(s['comparisons'])} comparisons")
    for c in s["comparisons"]:
        rows = {r["metric"]: r for r in c["rows"]}
        keys = ["e2e_ms.mean", "e2e_ms.p95", "ttft_ms.p95"] if c["class"] == "interactive" else ["total_tokens_per_s"]
        shown = ", ".join(f"{k} {rows[k]['baseline']:.1f} -> {rows[k]['value']:.1f} (x{rows[k]['ratio']:.2f})" for k in keys)
        print(f"  {c['label']} {c['class']}: {shown}")
    print("ok: interference")


def check_presets(out):
    """Seed 004's and seed 001's preset sweeps: every point ran, lengths as asked, a table."""
    expect = {
        "seed004-batch": (["batch_size-1", "batch_size-2", "batch_size-4"], "lockstep"),
        "seed004-seqlen": (["input_len+output_len-16", "input_len+output_len-32", "input_len+output_len-64"], "offline"),
        "seed004-requests": (["requests-4", "requests-8", "requests-16"], "offline"),
        "seed001-cost": (["batch_size-2", "batch_size-4"], "lockstep"),
    }
    for name, (labels, schedule) in expect.items():
        s = load(f"{out}/{name}.json")
        if s["schema"] != "strobe.experiment.v2" or s["kind"] != "sweep":
            fail(f"{name}: {s['schema']} {s['kind']}")
        got = [p["label"] for p in s["points"]]
        if got != labels:
            fail(f"{name}: points {got}, expected {labels}")
        print(f"  {s['title']}")
        print(f"  | point | requests | in tok | out tok | out tok/s | total tok/s | E2E p50 ms | batch p50 ms | $/M out |")
        for p in s["points"]:
            c = p["classes"][0]
            if c["schedule"] != schedule or c["failed"] != 0 or c["successful"] == 0:
                fail(f"{name} {p['label']}: {c['schedule']} failed {c['failed']} ok {c['successful']}")
            r = load(p["report_file"])
            res = r["results"]
            n = res["requests"]["successful"]
            if name == "seed004-seqlen":
                L = p["parameters"]["input_len"]
                if res["tokens"]["output"] != n * L or res["input_length_check"]["exact"] != n:
                    fail(f"{name} {p['label']}: output {res['tokens']['output']} for {n} x {L}, input check {res['input_length_check']}")
            if name == "seed004-requests" and n != p["parameters"]["requests"]:
                fail(f"{name} {p['label']}: {n} requests")
            if name == "seed001-cost" and not (c.get("cost") or {}).get("usd_per_million_output_tokens"):
                fail(f"{name} {p['label']}: no cost")
            b = c.get("batch_latency_ms")
            cost = (c.get("cost") or {}).get("usd_per_million_output_tokens")
            print(f"  | {p['label']} | {n} | {c['input_tokens']} | {c['output_tokens']} | {c['throughput']['output_tokens_per_s']:.1f} "
                  f"| {c['throughput']['total_tokens_per_s']:.1f} | {c['e2e_ms']['p50']:.0f} | {b['p50'] if b else '-'} | {cost if cost else '-'} |")
    print("ok: seed 004 and seed 001 presets")


def check_grid(path, engines, points):
    s = load(path)
    g = s["grid"]
    if s["kind"] != "grid" or len(g["engines"]) != engines or g["failed"]:
        fail(f"{path}: {s['kind']} engines {g['engines']} failed {g['failed']}")
    if len(s["points"]) != engines * points:
        fail(f"{path}: {len(s['points'])} points, expected {engines * points}")
    for p in s["points"]:
        c = p["classes"][0]
        if c["failed"] or not c["successful"] or "engine--max-num-seqs" not in p["parameters"]:
            fail(f"{path} {p['label']}: {c['failed']} failed, parameters {p['parameters']}")
        print(f"  {p['label']}: {c['throughput']['output_tokens_per_s']:.1f} out tok/s, TPOT mean {c['tpot_ms']['mean']:.1f} ms")
    if not g["pareto"]:
        fail(f"{path}: no Pareto front")
    for p in g["pareto"]:
        print(f"  pareto: {p['label']}: {p['output_tokens_per_s_per_gpu']:.1f} tok/s/GPU, {p['output_tokens_per_s_per_user']:.1f} tok/s/user")
    print(f"ok: engine grid, {engines} engines x {points} points")


def check_search(path):
    s = load(path)
    q = s["search"]
    for p in q["probes"]:
        checks = ", ".join(f"{c['name']} {c['actual_ms']:.1f} ms ({c['verdict']})" for c in p["checks"] if c["actual_ms"] is not None)
        print(f"  {p['label']}: {p['successful']} ok, {'pass' if p['pass'] else 'fail'} by {p['decided_by']}: {checks}")
    print(f"  outcome {q['outcome']}, answer {q['answer']}, bracket [{q['lo']}, {q['hi']}); notes {q['notes']}")
    if q["outcome"] not in ("found", "at_least_max"):
        fail(f"{path}: search outcome {q['outcome']}")
    if q["outcome"] == "found" and not (q["hi"] - q["lo"] <= 1 and q["answer"] == q["lo"]):
        fail(f"{path}: bracket [{q['lo']}, {q['hi']}) wider than the precision")
    # The decider chooses the values; how often the noise near the limit sends it back to one
    # is the engine's doing (each re-probe is reported, and max_probes bounds them all).
    values = len({p["value"] for p in q["probes"]})
    if values > 12 or any(p["failed"] for p in q["probes"]):
        fail(f"{path}: {values} values probed, failures {[p['failed'] for p in q['probes']]}")
    print(f"ok: capacity search over {values} values in {len(q['probes'])} probes")


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
    elif mode == "offline":
        check_offline(args[0], opt("--requests"), opt("--output-len"))
    elif mode == "lockstep":
        check_lockstep(args[0], opt("--batch-size"), opt("--batches"))
    elif mode == "scenario":
        check_scenario(args[0], opt("--classes"))
    elif mode == "interference":
        check_interference(args[0], [int(u) for u in args[args.index("--users") + 1].split(",")])
    elif mode == "presets":
        check_presets(args[0])
    elif mode == "search":
        check_search(args[0])
    elif mode == "grid":
        check_grid(args[0], opt("--engines"), opt("--points"))
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
