//! Experiments from one command against the built-in target: offline throughput (seed 003),
//! lockstep batches with cost (seed 001), scenario files, requests that were due but never sent,
//! and seed 000's three conditions — whose interference shows on a loaded target and not on an
//! unloaded one.

mod common;

use common::*;
use std::time::Duration;
use strobe_server::{LoadModel, ServerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_offers_everything_at_once_and_prints_seed_003s_block() {
    let server = start(timed(20, 2)).await;
    let out = run(
        &url_of(&server),
        &[
            "--offline",
            "-n",
            "24",
            "--max-concurrency",
            "6",
            "--output-len",
            "8",
        ],
    )
    .await
    .unwrap();
    let c = &out.report.classes[0];
    assert_eq!(c.load.schedule, "offline");
    assert_eq!(c.results.requests.successful, 24);
    assert_eq!(c.results.concurrency.peak_in_flight, 6);
    // 18 of them waited for one of the 6 connections.
    assert!(
        c.results.latency.queue_delay_ms.max >= 3.0 * 34.0,
        "{:?}",
        c.results.latency.queue_delay_ms
    );
    let text = strobe_report::console::render(&out.report);
    for line in [
        "* Total Generations:            24",
        "* Generations / Sec:",
        "* Avg Prompt Tokens:            128.00",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockstep_batches_report_batch_latency_and_cost() {
    let server = start(timed(10, 2)).await;
    let out = run(
        &url_of(&server),
        &[
            "--batch-size",
            "4",
            "--num-batches",
            "3",
            "--warmup-requests",
            "4",
            "--output-len",
            "uniform:5:20",
            "--gpu-price",
            "3.6",
            "--gpus",
            "2",
        ],
    )
    .await
    .unwrap();
    let r = &out.report;
    let c = &r.classes[0];
    assert_eq!((c.load.batch_size, c.load.num_batches), (Some(4), Some(3)));
    assert_eq!(
        (c.results.requests.successful, c.results.requests.warmup),
        (12, 4)
    );
    let b = c.results.batches.as_ref().unwrap();
    assert_eq!(b.count, 3);
    // The slowest member of a batch of at most 20 tokens: TTFT 10 ms + up to 19 gaps of 2 ms.
    assert!(
        b.latency_ms.max >= 10.0 && b.latency_ms.max < 200.0,
        "{:?}",
        b.latency_ms
    );
    assert!(b.latency_ms.p50 >= c.results.latency.e2e_ms.p50);
    let cost = r.cost.as_ref().unwrap();
    // $3.60 per GPU-hour × 2 GPUs over the measured window.
    assert!((cost.total_usd - 7.2 * r.results.duration_s / 3600.0).abs() < 1e-9);
    assert!(cost.usd_per_million_input_tokens.unwrap() > 0.0);
    assert!(cost.usd_per_million_output_tokens.unwrap() > 0.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_open_loop_reports_the_requests_it_never_sent() {
    let server = start(timed(150, 1)).await;
    let out = run(
        &url_of(&server),
        &[
            "-r",
            "100",
            "--arrival",
            "constant",
            "--max-concurrency",
            "1",
            "-d",
            "1s",
            "--output-len",
            "2",
        ],
    )
    .await
    .unwrap();
    let r = &out.report.results;
    assert!(r.requests.unsent >= 80, "{:?}", r.requests);
    assert!(
        out.report
            .client
            .warnings
            .iter()
            .any(|w| w.contains("were due but never sent")),
        "{:?}",
        out.report.client.warnings
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_scenario_resolves_and_the_demo_runs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = strobe_experiment::scenario::Scenario::load(&path).unwrap();
            s.resolve().unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 4);
    let server = start(timed(10, 2)).await;
    let records = temp_path("demo.jsonl");
    let demo = dir.join("demo.toml");
    let out = run(
        &url_of(&server),
        &[
            "--scenario",
            demo.to_str().unwrap(),
            "--records",
            records.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    let r = &out.report;
    assert_eq!(r.classes.len(), 2);
    let (batch, users) = (r.class("batch").unwrap(), r.class("interactive").unwrap());
    assert_eq!(batch.results.requests.successful, 40);
    assert!(users.results.requests.successful >= 2);
    assert_eq!(users.stop_reason, "class `batch` finished");
    assert!(users.slo.is_some());
    // The run's totals are the classes' together, and each record names its class.
    assert_eq!(
        r.results.requests.successful,
        batch.results.requests.successful + users.results.requests.successful
    );
    let lines = std::fs::read_to_string(&records).unwrap();
    let by_class = |c: u64| {
        lines
            .lines()
            .filter(|l| l.contains(&format!("\"class\":{c},")))
            .count() as u64
    };
    assert_eq!(by_class(0), 40);
    assert_eq!(by_class(1), users.results.requests.successful);
    // A bad scenario names its line and key; class flags beside a scenario are refused.
    let bad = temp_path("bad.toml");
    std::fs::write(&bad, "[[class]]\nname = \"x\"\nrate = 5\nconcurrency = 2\n").unwrap();
    let e = plan(&url_of(&server), &["--scenario", bad.to_str().unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.toml:4:1: class[0].concurrency"), "{e}");
    let e = plan(
        &url_of(&server),
        &["--scenario", demo.to_str().unwrap(), "-c", "3"],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("--concurrency does not go with --scenario"),
        "{e}"
    );
    server.shutdown().await;
}

/// Seed 000's conditions, small: a 40-request batch, users at 1 and 3 for 1 s.
async fn seed000(server: &strobe_server::ServerHandle) -> common::Out {
    let out_file = temp_path(&format!("seed000-{}.json", server.addr.port()));
    let out = interference(
        &url_of(server),
        &[
            "--batch-requests",
            "40",
            "--batch-input-len",
            "256",
            "--batch-output-len",
            "48",
            "--users",
            "1,3",
            "--user-duration",
            "1s",
            "--input-len",
            "32",
            "--output-len",
            "16",
            "--api",
            "completions",
            "-o",
            out_file.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.reports.len(), 5);
    let labels: Vec<_> = out
        .reports
        .iter()
        .map(|r| r.run.label.clone().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "batch-only",
            "isolated-c1",
            "isolated-c3",
            "mixed-c1",
            "mixed-c3"
        ]
    );
    // The summary on disk is the one returned, and each run's report sits beside it.
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(s["kind"], "interference");
    assert_eq!(s["comparisons"].as_array().unwrap().len(), 4);
    assert!(out_file
        .with_file_name(format!("seed000-{}.mixed-c3.json", server.addr.port()))
        .exists());
    // Beside the batch the users ran for exactly as long as it did, not for the isolated runs'
    // duration; alone they ran for their duration.
    for r in &out.reports {
        let label = r.run.label.clone().unwrap();
        if let Some(users) = r.class("interactive") {
            let mixed = label.starts_with("mixed");
            let want = if mixed {
                "class `batch` finished"
            } else {
                "duration reached"
            };
            assert_eq!(users.stop_reason, want, "{label}");
            assert_eq!(users.load.duration_s.is_some(), !mixed, "{label}");
        }
    }
    out
}

fn ratio(out: &common::Out, label: &str, class: &str, metric: &str) -> f64 {
    let s = out.summary.as_ref().unwrap();
    s.comparisons
        .iter()
        .find(|c| c.label == label && c.class == class)
        .and_then(|c| c.row(metric))
        .and_then(|r| r.ratio)
        .unwrap_or_else(|| panic!("{label} {class} {metric}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_slows_interactive_users_on_a_loaded_target_and_the_report_says_by_how_much() {
    // An engine model: 8 running at once, the rest queued; each token gap +1 ms per other stream.
    let server = start(ServerConfig {
        load: LoadModel {
            max_running: Some(8),
            itl_per_stream: Duration::from_millis(1),
            prefill_per_token: Duration::from_micros(20),
        },
        ..timed(10, 4)
    })
    .await;
    let out = seed000(&server).await;
    for users in [1, 3] {
        let label = format!("mixed-c{users}");
        let e2e = ratio(&out, &label, "interactive", "e2e_ms.p95");
        let ttft = ratio(&out, &label, "interactive", "ttft_ms.p95");
        eprintln!("{label}: interactive E2E p95 ×{e2e:.2}, TTFT p95 ×{ttft:.2}");
        assert!(
            e2e > 2.0 && ttft > 2.0,
            "{label}: E2E p95 ×{e2e:.2}, TTFT p95 ×{ttft:.2}"
        );
    }
    let text = strobe_report::console::render_experiment(out.summary.as_ref().unwrap());
    assert!(
        text.contains("Test Condition 3: Mixed-Workload Performance"),
        "{text}"
    );
    assert!(
        text.contains("| Average |") && text.contains("x |"),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_unloaded_target_the_batch_leaves_interactive_latency_alone() {
    // Fixed timing, no matter how many streams: nothing to interfere with. The first token is
    // 40 ms away so that a few ms of scheduling jitter on a busy CI machine (4.7 ms once, on a
    // 10 ms TTFT) stays well inside the tolerance.
    let server = start(timed(40, 4)).await;
    let out = seed000(&server).await;
    for users in [1, 3] {
        let label = format!("mixed-c{users}");
        for metric in ["e2e_ms.mean", "e2e_ms.p95", "ttft_ms.mean"] {
            let r = ratio(&out, &label, "interactive", metric);
            assert!((0.8..1.25).contains(&r), "{label} {metric}: ×{r:.3}");
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_sends_fresh_prompts_per_point_and_can_empty_the_prefix_cache_before_each() {
    let server = start(timed(5, 2)).await;
    let out = sweep(
        &url_of(&server),
        &[
            "--sweep",
            "concurrency=1,2,4",
            "-n",
            "4",
            "--output-len",
            "4",
            "--reset-prefix-cache",
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.exit_code, 0);
    // One reset before each of the three points.
    assert_eq!(server.truth.summary().prefix_cache_resets, 3);
    let seeds: std::collections::HashSet<u64> = out
        .reports
        .iter()
        .map(|r| r.classes[0].workload.content_seed)
        .collect();
    assert_eq!(seeds.len(), 3, "each point sends new text");
    let s = out.summary.unwrap();
    assert_eq!(s.kind, "sweep");
    assert_eq!(
        s.points
            .iter()
            .map(|p| p.parameters["concurrency"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 4]
    );
    // --same-prompts keeps one text for every point.
    let same = sweep(
        &url_of(&server),
        &[
            "--sweep",
            "concurrency=1,2",
            "-n",
            "2",
            "--output-len",
            "4",
            "--same-prompts",
        ],
    )
    .await
    .unwrap();
    let seeds: std::collections::HashSet<u64> = same
        .reports
        .iter()
        .map(|r| r.classes[0].workload.content_seed)
        .collect();
    assert_eq!(seeds.len(), 1);
    server.shutdown().await;
}
