#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer, AddressSanitizer) of every reader of untrusted
# input: the SSE decoder, the HTTP/1 response reader, the records reader, the data-set readers,
# the scenario parser and the batch input reader.
#
#   scripts/fuzz.sh            1,000,000 inputs per target (the long run; minutes per target)
#   scripts/fuzz.sh 20000      a short run (CI)
#   scripts/fuzz.sh N sse      one target
#
# Needs the nightly toolchain; installs cargo-fuzz from crates.io when it is missing. A crash stops the run
# with the input saved under fuzz/artifacts/TARGET/; replay it with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
runs="${1:-1000000}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(sse http1 records dataset scenario batch_input)
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install -q --locked cargo-fuzz
fi
cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    start=$(date +%s)
    # -max_len: large enough for whole SSE streams and multi-line files.
    cargo +nightly fuzz run -O "$t" "corpus/$t" -- -runs="$runs" -max_len=8192 -print_final_stats=1 2>"/tmp/strobe-fuzz-$t.log" || {
        tail -40 "/tmp/strobe-fuzz-$t.log" >&2
        echo "fuzz.sh: target $t FAILED (input saved under fuzz/artifacts/$t/)" >&2
        exit 1
    }
    execs=$(grep -m1 "stat::number_of_executed_units" "/tmp/strobe-fuzz-$t.log" | awk '{print $2}')
    cov=$(grep -E "^#[0-9]+.*DONE" "/tmp/strobe-fuzz-$t.log" | grep -oE "cov: [0-9]+" | head -1)
    echo "fuzz: $t: ${execs:-?} inputs in $(( $(date +%s) - start )) s, ${cov:-cov: ?}, no crash"
done
