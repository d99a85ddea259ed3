#!/usr/bin/env python3
"""Crash and resume `strobe batch` against a real server; check exactly-once results.

usage: batch_resume.py STROBE URL OUTDIR [--lines N] [--kills K] [--seed S]

Writes an OpenAI batch file of N lines (chat and completions, a few asking for a model the server
does not serve, which must fail once and not be retried), starts `strobe batch` and kills it with
SIGKILL at a random moment, K times, each kill while it is still running; then runs it to the end.
Checks that no byte written before a kill changed, that every custom_id has exactly one result
over the output and error files, that successes carry the server's own response (status 200,
usage within max_tokens) and that the bad-model lines are 404s tried once.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("strobe")
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("--lines", type=int, default=60)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    inp = os.path.join(a.out, "batch-in.jsonl")
    out = os.path.join(a.out, "batch-out.jsonl")
    err = out[: -len(".jsonl")] + ".errors.jsonl"
    for f in (out, err):
        if os.path.exists(f):
            os.remove(f)

    bad, max_tokens = set(), {}
    with open(inp, "w") as f:
        for i in range(a.lines):
            cid = f"line-{i}"
            n = 8 + (i % 5) * 4
            max_tokens[cid] = n
            model = "smollm2"
            if i % 20 == 13:
                model = "no-such-model"
                bad.add(cid)
            if i % 2:
                url = "/v1/chat/completions"
                body = {"model": model, "max_tokens": n,
                        "messages": [{"role": "user", "content": f"Count to {i % 9 + 3}, line {i}."}]}
            else:
                url = "/v1/completions"
                body = {"model": model, "max_tokens": n, "prompt": f"Line {i}: once upon a time"}
            f.write(json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": body}) + "\n")

    cmd = [a.strobe, "batch", inp, "-o", out, "--url", a.url, "-c", "4", "-q"]

    def snapshot():
        return tuple(open(p, "rb").read() if os.path.exists(p) else b"" for p in (out, err))

    kills = 0
    attempts = 0
    while kills < a.kills:
        attempts += 1
        if attempts > a.kills * 4:
            sys.exit(f"FAIL: only {kills} of {a.kills} kills landed mid-run")
        before = snapshot()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 6.0))
        if p.poll() is not None:
            # It finished first: start over with fresh files so every kill lands mid-run.
            for f in (out, err):
                os.remove(f) if os.path.exists(f) else None
            continue
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
        after = snapshot()
        for name, b, c in zip(("output", "errors"), before, after):
            # Whole lines written before this run stay byte for byte; a half line left by the
            # previous kill is the one thing the store may repair.
            whole = b[: b.rfind(b"\n") + 1]
            if not c.startswith(whole):
                sys.exit(f"FAIL: kill {kills}: bytes of the {name} file written before were changed")
        nl = b"\n"
        print(f"  kill {kills}: {after[0].count(nl)} results, {after[1].count(nl)} errors on disk")

    kept = sum(b.count(b"\n") for b in snapshot())
    if kept == 0:
        sys.exit("FAIL: no kill came after a result was written; nothing was resumed (the server is slower than assumed)")
    final = subprocess.run(cmd[:-1], capture_output=True, text=True)
    print("  " + final.stderr.strip().replace("\n", "\n  "))
    if final.returncode != 0:
        sys.exit(f"FAIL: the resuming run exited {final.returncode}")

    seen = {}
    for path, ok in ((out, True), (err, False)):
        for n, line in enumerate(open(path), 1):
            r = json.loads(line)
            cid = r["custom_id"]
            if cid in seen:
                sys.exit(f"FAIL: {cid} has two results ({seen[cid]} and {path}:{n})")
            seen[cid] = f"{path}:{n}"
            resp = r["response"]
            if ok:
                assert r["error"] is None and resp["status_code"] == 200, r
                assert cid not in bad, f"{cid} asked for a missing model but succeeded"
                usage = resp["body"]["usage"]
                assert usage["prompt_tokens"] > 0, r
                assert 0 < usage["completion_tokens"] <= max_tokens[cid], (usage, max_tokens[cid])
                assert resp["body"]["choices"], r
            else:
                assert cid in bad, f"{cid} failed: {r['error']}"
                assert resp["status_code"] == 404, r
                assert r["error"].get("attempts", 1) == 1, f"a 404 was retried: {r}"
    missing = [f"line-{i}" for i in range(a.lines) if f"line-{i}" not in seen]
    if missing:
        sys.exit(f"FAIL: no result for {missing[:5]} ({len(missing)} in all)")
    done = snapshot()
    again = subprocess.run(cmd, capture_output=True, text=True)
    if again.returncode != 0:
        sys.exit(f"FAIL: re-running a finished batch exited {again.returncode}")
    if snapshot() != done:
        sys.exit("FAIL: re-running a finished batch changed its files")
    print(f"ok: {a.kills} SIGKILLs ({kept} results on disk before the last run), then {len(seen)} custom_ids with exactly one result each "
          f"({len(seen) - len(bad)} from the server, {len(bad)} 404s tried once)")


if __name__ == "__main__":
    main()
