//! The simulated engine served over HTTP in real time (`strobe serve --sim`, issue 13): what
//! strobe measures against it is what the engine model predicts on its virtual clock, latency
//! grows with load the way a batching engine's does, `/metrics` carries vLLM's names, and the
//! step clock keeps time with thousands of streams.

mod common;

use common::*;
use std::process::Command;
use strobe_server::{ServerConfig, TruthSummary};
use strobe_sim::{simulate, Arrival, EngineConfig, Load};

fn sim(spec: &str) -> (ServerConfig, EngineConfig) {
    let engine = EngineConfig::from_spec(spec).unwrap();
    (
        ServerConfig {
            model: engine.model.name.to_owned(),
            sim: Some(engine.clone()),
            ..ServerConfig::default()
        },
        engine,
    )
}

async fn truth(url: &str) -> TruthSummary {
    let body = http_get(&format!("{url}/strobe/truth")).await;
    serde_json::from_str(&body).unwrap()
}

/// A plain GET over one TCP connection (the tests need no HTTP client crate of their own).
async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // De-chunk.
        let mut plain = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            plain.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        return plain;
    }
    body.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_strobe_measures_is_what_the_engine_model_predicts() {
    let (config, engine) = sim("llama-3-8b@h100");
    let server = start(config).await;
    let url = url_of(&server);
    for users in [1u32, 16] {
        let requests = users * 4;
        let out = run(
            &url,
            &[
                "-c",
                &users.to_string(),
                "-n",
                &requests.to_string(),
                "--input-len",
                "512",
                "--output-len",
                "64",
            ],
        )
        .await
        .unwrap();
        let r = &out.report.results;
        assert_eq!(
            (r.requests.successful, r.requests.failed),
            (requests as u64, 0)
        );
        let predict = |stagger: f64| {
            simulate(
                &engine,
                &Load {
                    arrival: Arrival::Closed { users, stagger },
                    ..Load::closed(users, requests, 512, 64)
                },
            )
            .unwrap()
        };
        // Users who start in one instant with identical requests stay in lockstep on the
        // virtual clock (every wave's prefills in one step); users spread over one request's
        // time stay spread (prefill chunks ride along other users' decode steps). Over HTTP
        // they start a little apart and drift: between the two.
        let lockstep = predict(0.0);
        let spread = predict(lockstep.e2e_mean);
        let (ttft, tpot) = (r.latency.ttft_ms.mean, r.latency.tpot_ms.mean);
        eprintln!(
            "{users} users: TTFT {ttft:.2} ms (lockstep {:.2}, spread {:.2}), TPOT {tpot:.3} ms (lockstep {:.3}, spread {:.3})",
            lockstep.ttft_mean * 1e3,
            spread.ttft_mean * 1e3,
            lockstep.tpot_mean * 1e3,
            spread.tpot_mean * 1e3
        );
        let between = |got: f64, a: f64, b: f64| {
            let (lo, hi) = (a.min(b) * 1e3, a.max(b) * 1e3);
            got >= 0.9 * lo - 1.0 && got <= 1.1 * hi + 1.0
        };
        assert!(
            between(ttft, lockstep.ttft_mean, spread.ttft_mean),
            "TTFT {ttft} outside {} .. {}",
            lockstep.ttft_mean * 1e3,
            spread.ttft_mean * 1e3
        );
        assert!(
            between(tpot, lockstep.tpot_mean, spread.tpot_mean),
            "TPOT {tpot} outside {} .. {}",
            lockstep.tpot_mean * 1e3,
            spread.tpot_mean * 1e3
        );
        if users == 1 {
            // One user has no phase: the figures are the model's, to scheduling noise.
            let want = lockstep.tpot_mean * 1e3;
            assert!((tpot - want).abs() < 0.03 * want, "TPOT {tpot} vs {want}");
        }
    }
    let t = truth(&url).await;
    let e = t.engine.expect("a simulated engine reports itself");
    assert_eq!(e.simulates, "llama-3-8b on 1 × h100");
    assert!(e.steps > 64, "{e:?}");
    assert!(e.lag_p99_ms < 20.0, "the step clock kept time: {e:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_grows_with_load_and_a_small_cache_preempts_as_metrics_show() {
    // Llama-3-8B on a T4 (16 GB) does not fit; on an A10 (24 GB) at 80% the KV cache is small:
    // 19.2 − 16.06 − 1 GB ≈ 2.1 GB, 16,000 tokens. 48 users × (1,000 + 64) tokens need 51,000.
    let (mut config, mut engine) = sim("llama-3-8b@a10");
    engine.gpu_memory_utilization = 0.8;
    config.sim = Some(engine.clone());
    let server = start(config).await;
    let url = url_of(&server);
    let args = |c: &str, n: &str| {
        vec![
            "-c".to_owned(),
            c.to_owned(),
            "-n".to_owned(),
            n.to_owned(),
            "--input-len".to_owned(),
            "1000".to_owned(),
            "--output-len".to_owned(),
            "64".to_owned(),
        ]
    };
    let go = |a: Vec<String>| {
        let url = url.clone();
        async move {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            run(&url, &a).await.unwrap()
        }
    };
    let one = go(args("1", "1")).await;
    let before = truth(&url).await.engine.unwrap();
    assert_eq!(before.preemptions, 0, "one user fits: {before:?}");
    let many = go(args("48", "48")).await;
    let after = truth(&url).await.engine.unwrap();
    let (r1, rn) = (&one.report.results, &many.report.results);
    assert_eq!(
        rn.requests.successful, 48,
        "every preempted request still ends"
    );
    assert!(
        after.preemptions > 0,
        "a cache too small for the batch preempts: {after:?}"
    );
    assert!(
        rn.latency.ttft_ms.mean > 3.0 * r1.latency.ttft_ms.mean,
        "TTFT rises with load: {} vs {}",
        rn.latency.ttft_ms.mean,
        r1.latency.ttft_ms.mean
    );
    assert!(
        rn.throughput.output_tokens_per_s > 4.0 * r1.throughput.output_tokens_per_s,
        "batching raises throughput: {} vs {}",
        rn.throughput.output_tokens_per_s,
        r1.throughput.output_tokens_per_s
    );
    let metrics = http_get(&format!("{url}/metrics")).await;
    for name in [
        "vllm:num_requests_running{",
        "vllm:num_requests_waiting{",
        "vllm:kv_cache_usage_perc{",
        "vllm:num_preemptions_total{",
        "vllm:time_to_first_token_seconds_bucket{",
        "vllm:time_per_output_token_seconds_bucket{",
        "vllm:e2e_request_latency_seconds_bucket{",
        "strobe:sim_step_lag_seconds_count{",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    let preempted = metrics
        .lines()
        .find(|l| l.starts_with("vllm:num_preemptions_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert_eq!(preempted as u64, after.preemptions);
    // strobe's own scrape read the engine's preemptions and KV-cache use while the 48 users ran.
    let m = many.report.server_metrics.as_ref().expect("scraped");
    assert_eq!(m.engine, "vllm");
    assert!(
        m.counters.get("preemptions").copied().unwrap_or(0.0) > 0.0,
        "{m:?}"
    );
    assert!(m.gauges.contains_key("kv_cache_usage"), "{m:?}");
    server.shutdown().await;
}

#[test]
fn strobe_run_without_a_url_benchmarks_the_simulated_engine_and_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args([
            "run",
            "--sim",
            "qwen2.5-0.5b@l40s",
            "-c",
            "2",
            "-n",
            "6",
            "--output-len",
            "16",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("simulated engine") && stderr.contains("qwen2.5-0.5b on 1 × l40s"),
        "{stderr}"
    );
    // The summary is printed with no output file asked for.
    assert!(
        stdout.contains("Successful requests:                     6"),
        "{stdout}"
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args(["run", "--sim", "llama-3-8b@t4", "-n", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(
        err.contains("does not fit on 1 × t4") && err.contains("raise tp"),
        "{err}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args(["run", "--sim", "llama-3-8b@b200", "-n", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("no GPU preset `b200`") && err.contains("h100"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_streams_share_one_step_clock_that_keeps_time() {
    // Every user in one batch: 5,000 sequences per decode step (≈ 140 ms of simulated H100 time
    // each), with strobe's client and the server on this machine's two cores.
    let (mut config, mut engine) = sim("llama-3-8b@h100");
    engine.max_num_seqs = 5_000;
    config.sim = Some(engine);
    let server = start(config).await;
    let url = url_of(&server);
    let out = run(
        &url,
        &[
            "-c",
            "5000",
            "-n",
            "5000",
            "--input-len",
            "16",
            "--output-len",
            "24",
            "--idle-timeout",
            "60s",
        ],
    )
    .await
    .unwrap();
    let r = &out.report.results;
    assert_eq!((r.requests.successful, r.requests.failed), (5_000, 0));
    assert_eq!(r.concurrency.peak_in_flight, 5_000);
    let e = truth(&url).await.engine.unwrap();
    eprintln!(
        "5,000 streams: {} steps, step-clock lag mean {:.3} ms, p50 ≤ {:.3} ms, p99 ≤ {:.3} ms, max {:.3} ms; client TPOT mean {:.1} ms",
        e.steps, e.lag_mean_ms, e.lag_p50_ms, e.lag_p99_ms, e.lag_max_ms, r.latency.tpot_ms.mean
    );
    // Every token of every stream, and strobe's one-token pre-run probe (which the engine serves
    // like any request; the truth leaves it out).
    assert!(
        (5_000 * 24..=5_000 * 24 + 16).contains(&e.generation_tokens),
        "{e:?}"
    );
    // Handing 5,000 tokens over takes the clock thread a few milliseconds per step; a clock that
    // fell behind would show lag growing towards whole steps (≈ 140 ms).
    assert!(e.lag_p99_ms < 50.0, "{e:?}");
    server.shutdown().await;
}

#[test]
fn sim_plan_answers_a_grid_and_refuses_what_it_cannot_simulate() {
    let json = temp_path("plan.json");
    let out = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args([
            "sim",
            "plan",
            "--model",
            "llama-3-8b,llama-3.1-70b",
            "--gpu",
            "a10,h100x4",
        ])
        .args(["--slo", "ttft_p99=200ms,tpot_p99=50ms", "-o"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("llama-3.1-70b  1 × a10") && stdout.contains("raise tp"),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    let users = |m: &str, g: &str| {
        cells
            .iter()
            .find(|c| c["model"] == m && c["gpu"] == g)
            .and_then(|c| c["users"].as_u64())
    };
    let (small, big) = (
        users("llama-3-8b", "a10").unwrap(),
        users("llama-3-8b", "h100").unwrap(),
    );
    assert!(big > 2 * small && small >= 1, "{small} vs {big}");
    assert_eq!(users("llama-3.1-70b", "a10"), None, "does not fit");
    let bad = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args([
            "sim",
            "plan",
            "--model",
            "llama-3-8b",
            "--gpu",
            "h100",
            "--slo",
            "itl_p99=50ms",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("simulates ttft, tpot and e2e"), "{err}");
}

/// `strobe sim plan` on a data set's requests: lengths come from its records (mean prompt
/// tokens exact under the word rule), and longer prompts lower the users a TTFT target admits.
#[test]
fn sim_plan_takes_the_requests_of_a_data_set_or_a_distribution() {
    let plan = |extra: &[&str], name: &str| {
        let json = temp_path(name);
        let out = Command::new(env!("CARGO_BIN_EXE_strobe"))
            .args(["sim", "plan", "--model", "llama-3-8b", "--gpu", "a10"])
            .args(["--slo", "ttft_p99=400ms", "--samples", "200", "-o"])
            .arg(&json)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(v["schema"], "strobe.sim_plan.v2");
        (v, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // Records of 100 and 300 words (mean 200), and of 1,000 and 3,000 (mean 2,000); 64 output
    // tokens each.
    let write = |name: &str, words: [usize; 2]| {
        let path = temp_path(name);
        let mut text = String::new();
        for i in 0..20 {
            let n = words[i % 2];
            let prompt = vec!["word"; n].join(" ");
            text.push_str(&format!(
                "{{\"prompt\": \"{prompt}\", \"output_tokens\": 64}}\n"
            ));
        }
        std::fs::write(&path, text).unwrap();
        path
    };
    let short = write("short.jsonl", [100, 300]);
    let long = write("long.jsonl", [1000, 3000]);
    let (s, text) = plan(&["--dataset", short.to_str().unwrap()], "plan-short.json");
    assert_eq!(s["prompt_tokens_mean"], 200.0, "{}", s["workload"]);
    assert_eq!(s["output_tokens_mean"], 64.0);
    assert!(text.contains("200 requests of"), "{text}");
    let (l, _) = plan(&["--dataset", long.to_str().unwrap()], "plan-long.json");
    assert_eq!(l["prompt_tokens_mean"], 2000.0);
    let users = |v: &serde_json::Value| v["cells"][0]["users"].as_u64().unwrap();
    assert!(
        users(&l) < users(&s),
        "2,000-token prompts admit {} users, 200-token ones {}",
        users(&l),
        users(&s)
    );
    // A distribution: its draw's means, and the spec echoed.
    let (d, _) = plan(
        &["--input-len", "512", "--output-len", "uniform:64:192"],
        "plan-dist.json",
    );
    assert_eq!(d["prompt_tokens_mean"], 512.0);
    let out = d["output_tokens_mean"].as_f64().unwrap();
    assert!((118.0..=138.0).contains(&out), "{out}");
    assert_eq!(d["workload"]["output_len"], "uniform:64:192");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_fit_recovers_an_engine_from_strobe_reports_of_it() {
    // The engine to recover: an H100 whose overheads are not the defaults, measured by strobe
    // over HTTP in real time like any server.
    let (mut config, mut truth) = sim("llama-3-8b@h100");
    truth.overheads.per_step = 3e-3;
    truth.overheads.per_seq = 0.4e-3;
    truth.overheads.per_request_api = 8e-3;
    truth.bw_efficiency = 0.6;
    config.sim = Some(truth);
    let server = start(config).await;
    let url = url_of(&server);
    let mut reports = Vec::new();
    for users in [1u32, 2, 6] {
        let path = temp_path(&format!("fit-c{users}.json"));
        let (c, n, w) = (
            users.to_string(),
            (users * 4).to_string(),
            users.to_string(),
        );
        let out = run(
            &url,
            &[
                "-c",
                &c,
                "-n",
                &n,
                "--warmup-requests",
                &w,
                "--input-len",
                "512",
                "--output-len",
                "48",
            ]
            .iter()
            .copied()
            .chain(["-o", path.to_str().unwrap()])
            .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
        assert_eq!(out.exit_code, 0);
        reports.push(path);
    }
    server.shutdown().await;
    let model = temp_path("fitted.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args(["sim", "fit"])
        .args(&reports[..2])
        .args(["--sim", "llama-3-8b@h100", "--predict"])
        .arg(&reports[2])
        .args(["--fail-above", "35", "-o"])
        .arg(&model)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("predicted runs, not fitted"), "{stdout}");
    // The model file loads as a --sim engine.
    let loaded = EngineConfig::load(&model).unwrap();
    assert_eq!(loaded.model.name, "llama-3-8b");
    let text = std::fs::read_to_string(&model).unwrap();
    assert!(
        text.starts_with("# strobe sim fit: llama-3-8b on 1 × h100"),
        "{text}"
    );
    // The same fit, held to a bound no fit meets, fails with exit 1 and says so.
    let strict = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args(["sim", "fit"])
        .args(&reports[..2])
        .args(["--sim", "llama-3-8b@h100", "--predict"])
        .arg(&reports[2])
        .args(["--fail-above", "0.001"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&strict.stderr);
    assert_eq!(strict.status.code(), Some(1), "{err}");
    assert!(err.contains("above --fail-above 0.001%"), "{err}");
    // Held terms stay at the base's values and say so; a term that is not one is named.
    let held = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args(["sim", "fit"])
        .args(&reports[..2])
        .args(["--sim", "llama-3-8b@h100", "--hold", "flops_efficiency"])
        .output()
        .unwrap();
    let held_out = String::from_utf8_lossy(&held.stdout);
    assert!(held.status.success(), "{held_out}");
    assert!(
        held_out.contains("FLOP efficiency 0.650 (held)"),
        "{held_out}"
    );
    let typo = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args(["sim", "fit"])
        .args(&reports[..2])
        .args(["--sim", "llama-3-8b@h100", "--hold", "per_token"])
        .output()
        .unwrap();
    let typo_err = String::from_utf8_lossy(&typo.stderr);
    assert_eq!(typo.status.code(), Some(2), "{typo_err}");
    assert!(
        typo_err.contains("--hold") && typo_err.contains("\"per_token\""),
        "{typo_err}"
    );
    // A report that is not there is named.
    let bad = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args([
            "sim",
            "fit",
            "/nonexistent/report.json",
            "--sim",
            "llama-3-8b@h100",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/report.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_break_the_simulated_engines_answers_as_the_built_in_targets() {
    for stream in [true, false] {
        let (mut config, _) = sim("qwen2.5-0.5b@h100");
        config.faults = vec![(strobe_server::Fault::Truncate, 1.0)];
        let server = start(config).await;
        let url = url_of(&server);
        let mut args = vec![
            "-c",
            "2",
            "-n",
            "4",
            "--output-len",
            "16",
            "--max-error-rate",
            "1",
        ];
        if !stream {
            args.push("--no-stream");
        }
        let out = run(&url, &args).await.unwrap();
        let r = &out.report.results;
        assert_eq!(
            (r.requests.successful, r.requests.failed),
            (0, 4),
            "stream {stream}"
        );
        let t = truth(&url).await;
        assert_eq!(t.faults.get("truncate"), Some(&4), "stream {stream}: {t:?}");
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_engine_caches_shared_prefixes_and_says_so_in_vllms_names() {
    let (config, _) = sim("llama-3-8b@h100");
    let server = start(config).await;
    let url = url_of(&server);
    let go = |shared: &'static str| {
        let url = url.clone();
        async move {
            run(
                &url,
                &[
                    "-c",
                    "1",
                    "-n",
                    "6",
                    "--input-len",
                    "2048",
                    "--output-len",
                    "4",
                    "--shared-prefix",
                    shared,
                ],
            )
            .await
            .unwrap()
        }
    };
    let cold = go("0").await;
    let warm = go("1536").await;
    let m = warm.report.server_metrics.as_ref().expect("scraped");
    let (hits, queries) = (
        m.counters.get("prefix_cache_hits").copied().unwrap_or(0.0),
        m.counters
            .get("prefix_cache_queries")
            .copied()
            .unwrap_or(0.0),
    );
    // Five of the six requests find the shared 1,536 tokens (96 blocks) cached.
    assert_eq!(queries, 6.0 * 2048.0, "{m:?}");
    assert_eq!(hits, 5.0 * 1536.0, "{m:?}");
    let (c, w) = (
        cold.report.results.latency.ttft_ms.p50,
        warm.report.results.latency.ttft_ms.p50,
    );
    assert!(w < 0.6 * c, "a cached prefix cuts TTFT: {w} ms vs {c} ms");
    server.shutdown().await;
}

#[test]
fn sim_run_replays_strobe_runs_schedules_on_the_virtual_clock() {
    // A closed loop of one shape is exactly the engine model's own closed loop.
    let (code, err, v) = sim_run(&[
        "--sim",
        "llama-3-8b@h100",
        "-c",
        "8",
        "-n",
        "40",
        "--input-len",
        "300",
        "--output-len",
        "50",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let engine = EngineConfig::from_spec("llama-3-8b@h100").unwrap();
    let direct = simulate(&engine, &Load::closed(8, 40, 300, 50)).unwrap();
    let r = &v["results"];
    assert_eq!(r["requests"], 40);
    assert!((r["ttft_ms"]["mean"].as_f64().unwrap() - direct.ttft_mean * 1e3).abs() < 1e-6);
    assert!((r["tpot_ms"]["mean"].as_f64().unwrap() - direct.tpot_mean * 1e3).abs() < 1e-6);
    assert_eq!(r["largest_batch"], 8);

    // Offline: everything at once, up to max_num_seqs running; lockstep: never more than a
    // batch, and slower than offline for the same requests.
    let common = [
        "--sim",
        "qwen2.5-0.5b@a10",
        "--input-len",
        "200",
        "--output-len",
        "uniform:10:200",
    ];
    let with = |extra: &[&'static str]| {
        let mut a = common.to_vec();
        a.extend_from_slice(extra);
        sim_run(&a)
    };
    let (code, err, off) = with(&["--offline", "-n", "300", "--sim-max-num-seqs", "64"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(off["results"]["largest_batch"], 64);
    let (code, err, lock) = with(&["--batch-size", "30", "--num-batches", "10"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lock["results"]["requests"], 300);
    assert!(lock["results"]["largest_batch"].as_u64().unwrap() <= 30);
    assert!(
        lock["results"]["duration_s"].as_f64() > off["results"]["duration_s"].as_f64(),
        "waiting for each batch's slowest member costs time"
    );
    // Eight copies take eight times the rate at the same latency.
    let (_, _, one) = with(&["-r", "5", "-n", "400", "--seed", "3"]);
    let (_, _, eight) = with(&["-r", "40", "-n", "3200", "--seed", "3", "--replicas", "8"]);
    let ratio = eight["results"]["requests_per_s"].as_f64().unwrap()
        / one["results"]["requests_per_s"].as_f64().unwrap();
    assert!((7.0..9.0).contains(&ratio), "{ratio}");
    let (a, b) = (
        one["results"]["tpot_ms"]["mean"].as_f64().unwrap(),
        eight["results"]["tpot_ms"]["mean"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 0.1 * a, "{a} vs {b}");

    // FP8 halves the weights a decode step reads.
    let tpot = |spec: &str| {
        let (code, err, v) = sim_run(&[
            "--sim",
            spec,
            "-c",
            "1",
            "-n",
            "3",
            "--input-len",
            "100",
            "--output-len",
            "64",
            "--sim-overheads",
            "none",
        ]);
        assert_eq!(code, Some(0), "{err}");
        v["results"]["tpot_ms"]["mean"].as_f64().unwrap()
    };
    let ratio = tpot("llama-3-8b:fp8@h100") / tpot("llama-3-8b@h100");
    assert!((0.45..0.55).contains(&ratio), "{ratio}");
    // vllm-2024's step gap is 4 ms on every token.
    let (_, _, old) = with(&["-c", "1", "-n", "3", "--sim-overheads", "vllm-2024"]);
    let (_, _, new) = with(&["-c", "1", "-n", "3"]);
    let gap = old["results"]["tpot_ms"]["mean"].as_f64().unwrap()
        - new["results"]["tpot_ms"]["mean"].as_f64().unwrap();
    assert!((gap - 4.0).abs() < 1e-6, "{gap}");

    // SLOs: checked, and --fail-on-slo exits 1 on a miss.
    let (code, _, v) = with(&[
        "-c",
        "4",
        "-n",
        "20",
        "--slo",
        "ttft_p99=1ms",
        "--fail-on-slo",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(v["slo"][0]["met"], false);

    // What the virtual clock cannot replay is refused, naming the flag.
    for (args, says) in [
        (vec!["-d", "10s"], "--duration"),
        (
            vec!["-r", "5", "--burstiness", "0.5", "-n", "10"],
            "--burstiness",
        ),
        (
            vec!["-r", "5", "--max-concurrency", "4", "-n", "10"],
            "--max-concurrency",
        ),
    ] {
        let (code, err, _) = with(&args);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(says), "{err}");
    }
    let (code, err, _) = sim_run(&["--sim", "llama-3-8b:fp8@a10", "-n", "1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no FP8 tensor cores"), "{err}");
    let (code, err, _) = sim_run(&[
        "--sim",
        "llama-3-8b@h100",
        "--sim-overheads",
        "tgi",
        "-n",
        "1",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("vllm, vllm-2024, none"), "{err}");
}

#[test]
fn sim_run_caches_prefixes_in_blocks_of_the_tokenizers_tokens() {
    // Prompts of a data set that share a long prefix of words the tokenizer splits into several
    // tokens each: the prefix cache's blocks are blocks of tokens, as the prompts' lengths are.
    let Some(tok) = llama3_tokenizer() else {
        return;
    };
    let data = shared_prefix_data("shared-prefix.jsonl");
    let (code, err, v) = sim_run(&[
        "--sim",
        "llama-3-8b@h100",
        "-c",
        "1",
        "-n",
        "20",
        "--dataset",
        data.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let r = &v["results"];
    let (prompt, hits) = (
        r["prompt_tokens"].as_f64().unwrap(),
        r["prefix_cache_hits"].as_f64().unwrap(),
    );
    // 100 words of the prefix are several hundred tokens; counted in words, the cache would
    // find 96 "tokens" (six blocks of 16 words) a request.
    let per_prompt = prompt / 20.0;
    let per_hit = hits / 19.0;
    assert!(per_prompt > 300.0, "{per_prompt} tokens a prompt");
    assert!(
        per_hit > per_prompt - 32.0 && per_hit < per_prompt,
        "{per_hit} tokens hit of {per_prompt} a prompt"
    );
}

/// Llama 3's tokenizer, where scripts/setup-tokenizers.sh put it (required where
/// STROBE_REQUIRE_REAL_TOKENIZERS=1).
fn llama3_tokenizer() -> Option<std::path::PathBuf> {
    let tok =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.models/llama3-tokenizer");
    if tok.join("tokenizer.json").exists() {
        return Some(tok);
    }
    let required = std::env::var("STROBE_REQUIRE_REAL_TOKENIZERS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{} is missing (scripts/setup-tokenizers.sh)",
        tok.display()
    );
    eprintln!("SKIPPED: no Llama 3 tokenizer (scripts/setup-tokenizers.sh)");
    None
}

/// A data set of 20 prompts sharing a prefix of 100 words that Llama 3's tokenizer splits into
/// several tokens each, written to a temporary file `name`.
fn shared_prefix_data(name: &str) -> std::path::PathBuf {
    let prefix = "antidisestablishmentarianism incomprehensibilities ".repeat(50);
    let data = temp_path(name);
    let lines: Vec<String> = (0..20)
        .map(|i| {
            serde_json::json!({"prompt": format!("{prefix}question number {i} about otters"), "max_tokens": 4})
                .to_string()
        })
        .collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    data
}

/// A JSON POST over one TCP connection: the status code and the body.
async fn http_post(url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let body = body.to_string();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(
        format!(
            "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_engine_counts_prompts_with_the_models_tokenizer_when_given_one() {
    // `strobe serve --sim … --tokenizer FILE`: usage, /tokenize and the context check count the
    // model's tokens (chat through its template), not words.
    let Some(tok) = llama3_tokenizer() else {
        return;
    };
    let (mut config, _) = sim("llama-3-8b@h100");
    config.tokenizer =
        Some(strobe::settings::model_tokenizer(tok.to_str().unwrap(), "--tokenizer").unwrap());
    config.max_model_len = 40;
    let server = start(config).await;
    let url = url_of(&server);
    let reference = strobe_workload::HfTokenizer::load(&tok).unwrap();
    use strobe_workload::TokenCounter;
    let text = "antidisestablishmentarianism incomprehensibilities among the otters";
    let ids = reference.token_ids(text).unwrap().unwrap();
    assert!(ids.len() > 2 * text.split_whitespace().count(), "{ids:?}");

    let (status, v) = http_post(
        &format!("{url}/tokenize"),
        &serde_json::json!({"prompt": text}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["count"], ids.len(), "{v}");
    assert_eq!(v["tokens"], serde_json::json!(ids), "{v}");

    let (status, v) = http_post(
        &format!("{url}/v1/completions"),
        &serde_json::json!({"model": "llama-3-8b", "prompt": text, "max_tokens": 2}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], ids.len(), "{v}");

    let messages = [strobe_core::ChatMessage::text("user", text)];
    let chat = reference.count_chat(&messages).unwrap().unwrap();
    assert!(chat as usize > ids.len(), "the template adds tokens");
    let (status, v) = http_post(
        &format!("{url}/v1/chat/completions"),
        &serde_json::json!({"model": "llama-3-8b", "messages": messages, "max_tokens": 2}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], chat, "{v}");

    // The context check counts tokens: 8 words and 30 more tokens fit 40 by words, not by
    // tokens.
    let (status, v) = http_post(
        &format!("{url}/v1/completions"),
        &serde_json::json!({"model": "llama-3-8b", "prompt": text, "max_tokens": 30}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("maximum context length"), "{v}");

    // What a tokenizer cannot read is refused, saying why.
    let (status, v) = http_post(
        &format!("{url}/v1/completions"),
        &serde_json::json!({"model": "llama-3-8b", "prompt": [1, 2, 3], "max_tokens": 2}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("must be a string"), "{v}");
    server.shutdown().await;
}

#[test]
fn strobe_run_on_the_simulated_engine_counts_and_caches_by_the_runs_tokenizer() {
    // `strobe run --sim … --tokenizer FILE`: the simulated server counts what the workload
    // counted, and its prefix cache finds a shared prefix in blocks of those tokens (counted in
    // words, the server saw 105 tokens a prompt and the cache 96 of them).
    let Some(tok) = llama3_tokenizer() else {
        return;
    };
    let data = shared_prefix_data("served-shared-prefix.jsonl");
    let report = temp_path("served-shared-prefix.json");
    let out = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args([
            "run",
            "--sim",
            "llama-3-8b@h100",
            "-c",
            "1",
            "-n",
            "20",
            "--dataset",
        ])
        .arg(&data)
        .arg("--tokenizer")
        .arg(&tok)
        .arg("-o")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let check = &v["results"]["input_length_check"];
    assert_eq!(check["exact"], 20, "{check}");
    let counters = &v["server_metrics"]["counters"];
    let prompt = counters["prompt_tokens"].as_f64().unwrap();
    let hits = counters["prefix_cache_hits"].as_f64().unwrap();
    let (per_prompt, per_hit) = (prompt / 20.0, hits / 19.0);
    assert!(per_prompt > 300.0, "{per_prompt} tokens a prompt");
    assert!(
        per_hit > per_prompt - 32.0 && per_hit < per_prompt,
        "{per_hit} tokens hit of {per_prompt} a prompt"
    );
}
