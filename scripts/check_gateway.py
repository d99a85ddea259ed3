"""The official `openai` Python client against `strobe gateway`: the batch workflow (upload,
create, poll, download), paging, cancel, the interactive proxy (streaming), and the errors a
user meets (a bad line named, another key's file hidden, a wrong key refused).

usage: check_gateway.py URL KEY OTHER_KEY MODEL LINES [SCREENSHOT.png]

With SCREENSHOT, the gateway's page is opened in headless Chromium (Debian's, driven by
playwright) while a batch runs: no console errors, no request but the page's own, the batch on
it; a full-page screenshot is saved.
"""

import json
import os
import sys
import tempfile
import time

import openai
from openai import OpenAI


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def write_batch(path, n, prefix, max_tokens=8, bad_line=None):
    with open(path, "w") as f:
        for i in range(n):
            if bad_line is not None and i + 1 == bad_line:
                f.write('{"custom_id": "broken", "method": "POST", "url": "/v1/chat/completions", "body": \n')
                continue
            f.write(json.dumps({
                "custom_id": f"{prefix}-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": f"Say something about the number {i}."}],
                    "max_tokens": max_tokens,
                },
            }) + "\n")


def wait(client, batch_id, timeout):
    t0 = time.time()
    seen = []
    while time.time() - t0 < timeout:
        b = client.batches.retrieve(batch_id)
        if not seen or seen[-1] != b.status:
            seen.append(b.status)
        if b.status in ("completed", "failed", "cancelled", "expired"):
            return b, seen
        time.sleep(0.5)
    fail(f"{batch_id} not finished in {timeout} s (statuses {seen})")


def screenshot(url, path, running_id):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        errors, requests = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url + "/")
        page.wait_for_load_state("networkidle")
        text = page.inner_text("body")
        page.screenshot(path=path, full_page=True)
        browser.close()
    if errors:
        fail(f"the gateway page logged errors: {errors}")
    others = [r for r in requests if r.rstrip("/") != url.rstrip("/") and not r.startswith("data:")]
    if others:
        fail(f"the gateway page fetched {others}")
    for want in ("Live batches", running_id, "batch concurrency", "TTFT p95"):
        if want not in text:
            fail(f"the gateway page does not show {want!r}")
    print(f"  page: opened in Chromium, no console errors, no other requests, the running batch listed; {path}")


def main():
    global MODEL
    url, key, other, MODEL, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
    tmp = tempfile.mkdtemp()

    # The workflow.
    path = os.path.join(tmp, "batch.jsonl")
    write_batch(path, n, "job")
    f = client.files.create(file=open(path, "rb"), purpose="batch")
    if f.purpose != "batch" or f.bytes != os.path.getsize(path):
        fail(f"file object {f}")
    got = client.files.retrieve(f.id)
    if got.id != f.id or got.filename != "batch.jsonl":
        fail(f"retrieve gave {got}")
    if client.files.content(f.id).read() != open(path, "rb").read():
        fail("the input file's content came back changed")
    t0 = time.time()
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                              completion_window="24h", metadata={"job": "check"})
    if b.status != "validating" or b.request_counts.total != n or b.metadata != {"job": "check"}:
        fail(f"new batch {b}")
    b, statuses = wait(client, b.id, 600)
    took = time.time() - t0
    print(f"  batch {b.id}: statuses {' -> '.join(statuses)}, {b.request_counts.completed} completed, "
          f"{b.request_counts.failed} failed of {b.request_counts.total} in {took:.1f} s")
    if b.status != "completed" or b.request_counts.completed != n or b.request_counts.failed != 0:
        fail(f"batch ended {b.status} with {b.request_counts}")
    for field in ("in_progress_at", "finalizing_at", "completed_at"):
        if getattr(b, field) is None:
            fail(f"{field} is not set")
    out = client.files.content(b.output_file_id).text
    lines = [json.loads(line) for line in out.splitlines()]
    ids = [r["custom_id"] for r in lines]
    if sorted(ids) != sorted(f"job-{i}" for i in range(n)):
        fail(f"output custom_ids: {len(ids)} lines, {len(set(ids))} distinct, expected {n}")
    tokens = 0
    for r in lines:
        resp = r["response"]
        if r["error"] is not None or resp["status_code"] != 200 or not resp["body"]["choices"]:
            fail(f"output line {r}")
        if not r["id"].startswith("batch_req_") or not resp["request_id"]:
            fail(f"output line ids {r['id']} {resp['request_id']}")
        tokens += resp["body"]["usage"]["completion_tokens"]
    print(f"  output file: {len(lines)} lines, each custom_id once, {tokens} completion tokens")

    # Paging: a second batch, then pages of one.
    small = os.path.join(tmp, "small.jsonl")
    write_batch(small, 2, "small")
    f2 = client.files.create(file=open(small, "rb"), purpose="batch")
    b2 = client.batches.create(input_file_id=f2.id, endpoint="/v1/chat/completions", completion_window="24h")
    page = client.batches.list(limit=1)
    if len(page.data) != 1 or page.data[0].id != b2.id or not page.has_more:
        fail(f"first page {[x.id for x in page.data]} has_more {page.has_more}")
    page2 = client.batches.list(limit=1, after=page.data[0].id)
    if len(page2.data) != 1 or page2.data[0].id != b.id:
        fail(f"second page {[x.id for x in page2.data]}")
    everything = [x.id for x in client.batches.list(limit=1)]  # auto-paging
    if everything[:2] != [b2.id, b.id]:
        fail(f"auto-paging gave {everything}")
    wait(client, b2.id, 300)
    print("  paging: newest first, limit/after and the client's auto-paging agree")

    # Cancel a batch that is running.
    big = os.path.join(tmp, "big.jsonl")
    write_batch(big, max(40, n), "cancel", max_tokens=32)
    f3 = client.files.create(file=open(big, "rb"), purpose="batch")
    b3 = client.batches.create(input_file_id=f3.id, endpoint="/v1/chat/completions", completion_window="24h")
    time.sleep(1.0)
    if len(sys.argv) > 6:
        screenshot(url, sys.argv[6], b3.id)
    c = client.batches.cancel(b3.id)
    if c.status not in ("cancelling", "cancelled", "completed"):
        fail(f"cancel gave {c.status}")
    b3, statuses = wait(client, b3.id, 300)
    done = b3.request_counts.completed + b3.request_counts.failed
    print(f"  cancel: statuses {' -> '.join(statuses)}, {done} of {b3.request_counts.total} lines done")
    if b3.status == "cancelled" and b3.cancelled_at is None:
        fail("cancelled_at is not set")
    if b3.status == "cancelled" and b3.output_file_id:
        partial = client.files.content(b3.output_file_id).text.splitlines()
        if len(partial) != b3.request_counts.completed:
            fail(f"a cancelled batch's output has {len(partial)} lines, counts say {b3.request_counts.completed}")

    # The interactive proxy, streaming.
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello"}],
                                            max_tokens=8, stream=True)
    chunks = [ch for ch in stream]
    if not chunks or not any(ch.choices and ch.choices[0].delta.content for ch in chunks):
        fail("the proxied stream held no text")
    models = client.models.list()
    if not any(m.id == MODEL for m in models.data):
        fail(f"/v1/models through the gateway: {[m.id for m in models.data]}")
    print(f"  proxy: a streamed chat completion in {len(chunks)} chunks, /v1/models lists {MODEL}")

    # Errors a user meets.
    bad = os.path.join(tmp, "bad.jsonl")
    write_batch(bad, 5, "bad", bad_line=3)
    try:
        client.files.create(file=open(bad, "rb"), purpose="batch")
        fail("a file with a broken line 3 was accepted")
    except openai.BadRequestError as e:
        if "bad.jsonl:3:" not in str(e):
            fail(f"the error does not name line 3: {e}")
        print(f"  bad line: {e.body['message'][:110]}")
    someone_else = OpenAI(base_url=url + "/v1", api_key=other, max_retries=0)
    try:
        someone_else.files.retrieve(f.id)
        fail("another key saw this key's file")
    except openai.NotFoundError:
        pass
    try:
        someone_else.batches.retrieve(b.id)
        fail("another key saw this key's batch")
    except openai.NotFoundError:
        pass
    if someone_else.batches.list().data:
        fail("another key lists this key's batches")
    try:
        OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).batches.list()
        fail("a wrong key was let in")
    except openai.AuthenticationError:
        pass
    print("  keys: another key sees none of these files or batches; a wrong key gets 401")
    print("ok: the openai client's batch workflow against strobe gateway")


if __name__ == "__main__":
    main()
