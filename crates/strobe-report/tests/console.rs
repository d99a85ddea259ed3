//! The human-facing summaries, snapshot-tested on reports built from hand-made records (so every
//! number is exact and stable): one class, several classes with lockstep batches, SLOs and cost,
//! and seed 000's interference summary.

use std::collections::BTreeMap;
use strobe_core::{ChunkArrivals, ClassId, ErrorKind, Outcome, RequestRecord, TokenSource};
use strobe_metrics::{slo, ClassSets, GpuPrice, RequestSlo};
use strobe_report::export::Exporter;
use strobe_report::{
    ClassInput, Comparison, ExperimentSummary, LoadInfo, PointSummary, Report, ReportInputs,
    RequestInfo, TargetInfo, WorkloadInfo,
};

const MS: u64 = 1_000_000;

fn record(
    index: u64,
    sent_ms: u64,
    ttft_ms: u64,
    gap_ms: u64,
    tokens: u32,
    outcome: Outcome,
) -> RequestRecord {
    let arrivals = (0..tokens as u64)
        .map(|k| (ttft_ms + k * gap_ms) * MS)
        .collect();
    RequestRecord {
        index,
        class: ClassId(0),
        warmup: false,
        intended_ns: sent_ms * MS,
        sent_ns: sent_ms * MS,
        first_token_ns: Some((sent_ms + ttft_ms) * MS),
        end_ns: (sent_ms + ttft_ms + (tokens as u64 - 1) * gap_ms) * MS,
        chunk_arrivals_ns: ChunkArrivals {
            since_sent_ns: arrivals,
        },
        input_tokens: Some(32),
        input_tokens_source: Some(TokenSource::Usage),
        output_tokens: Some(tokens),
        output_tokens_source: Some(TokenSource::Usage),
        expected_input_tokens: None,
        batch: None,
        attempts: 1,
        outcome,
        capture: None,
    }
}

fn workload() -> WorkloadInfo {
    WorkloadInfo {
        description: "synthetic: input 128 tokens, output 64 tokens".into(),
        kind: "synthetic".into(),
        tokenizer: "words".into(),
        exact_input_lengths: true,
        input_len: "128".into(),
        output_len: "64".into(),
        prefix_groups: 1,
        turns: 1,
        ..Default::default()
    }
}

fn request() -> RequestInfo {
    RequestInfo {
        api: "completions".into(),
        endpoint: "http://127.0.0.1:8000/v1/completions".into(),
        streaming: true,
        extra_body: Default::default(),
    }
}

fn class(name: &str, id: u16, load: LoadInfo, slo: Vec<strobe_metrics::SloTarget>) -> ClassInput {
    ClassInput {
        name: name.into(),
        id,
        request: request(),
        workload: workload(),
        load,
        stop_reason: "request count reached".into(),
        unsent: 0,
        peak_in_flight: 2,
        slo,
    }
}

fn inputs(classes: Vec<ClassInput>, price: Option<GpuPrice>) -> ReportInputs {
    let mut examples = BTreeMap::new();
    examples.insert(
        "stream_cut".to_owned(),
        "stream ended without [DONE] after 1 content chunks".to_owned(),
    );
    ReportInputs {
        started_at: "2026-11-28T12:00:00Z".into(),
        experiment: None,
        label: None,
        target: TargetInfo {
            base_url: "http://127.0.0.1:8000".into(),
            model: "m".into(),
            built_in: false,
            extra_header_names: vec![],
            tls: None,
        },
        classes,
        stop_reason: "request count reached".into(),
        interrupted: false,
        aborted: false,
        peak_in_flight: 2,
        error_examples: examples,
        cpu_seconds: 0.5,
        wall_seconds: 2.0,
        cpu_cores_available: 2,
        connections: 2,
        includes_built_in_target: false,
        receive_timestamps: "kernel".into(),
        sockets_kernel_timestamps: 2,
        sockets_user_timestamps: 0,
        backpressure_waits: 0,
        backpressure_s: 0.0,
        price,
    }
}

fn closed(c: u32, n: u64) -> LoadInfo {
    LoadInfo {
        schedule: "closed".into(),
        concurrency: Some(c),
        requests: Some(n),
        request_timeout_s: 600.0,
        ..LoadInfo::default()
    }
}

fn report() -> Report {
    let mut m = ClassSets::new([(ClassId(0), None)]);
    for i in 0..10 {
        m.add(&record(i, i * 100, 50 + i, 10, 64, Outcome::Success));
    }
    m.add(&record(
        10,
        1000,
        5,
        1,
        2,
        Outcome::Failed {
            kind: ErrorKind::StreamCut,
            message: "stream ended without [DONE]".into(),
        },
    ));
    Report::build(
        &m,
        inputs(vec![class("default", 0, closed(2, 11), vec![])], None),
    )
}

/// A lockstep batch class with a cost, beside an interactive class with SLOs.
fn mixed() -> Report {
    let targets = slo::parse("ttft_p95=60ms,e2e=700ms").unwrap();
    let mut m = ClassSets::new([
        (ClassId(0), None),
        (ClassId(1), RequestSlo::from_targets(&targets)),
    ]);
    for b in 0..3u64 {
        for j in 0..4u64 {
            let mut r = record(
                b * 4 + j,
                b * 1000,
                100 + 10 * j,
                20,
                32 + 8 * j as u32,
                Outcome::Success,
            );
            r.batch = Some(b);
            m.add(&r);
        }
    }
    for i in 0..6 {
        let mut r = record(i, 50 + i * 450, 40 + 8 * i, 12, 48, Outcome::Success);
        r.class = ClassId(1);
        m.add(&r);
    }
    let lockstep = LoadInfo {
        schedule: "lockstep".into(),
        batch_size: Some(4),
        num_batches: Some(3),
        request_timeout_s: 600.0,
        ..LoadInfo::default()
    };
    let mut users = closed(1, 6);
    users.until_class = Some("batch".into());
    Report::build(
        &m,
        inputs(
            vec![
                class("batch", 0, lockstep, vec![]),
                class("interactive", 1, users, targets),
            ],
            Some(GpuPrice {
                usd_per_gpu_hour: 2.5,
                gpus: 2,
            }),
        ),
    )
}

#[test]
fn summary_looks_like_vllm_and_adds_the_latency_table() {
    insta::assert_snapshot!(strobe_report::console::render(&report()));
}

#[test]
fn several_classes_each_get_their_block_with_batches_slos_and_cost() {
    let r = mixed();
    let b = r.class("batch").unwrap().results.batches.as_ref().unwrap();
    // Slowest member of each batch: TTFT 130 ms + 55 gaps of 20 ms.
    assert_eq!((b.count, b.latency_ms.max), (3, 1230.0));
    insta::assert_snapshot!(strobe_report::console::render(&r));
}

fn interference() -> ExperimentSummary {
    let alone = report();
    let both = mixed();
    let mut s = ExperimentSummary::new(
        "interference",
        "batch and interactive users",
        "2026-11-28T12:00:00Z",
        3,
    );
    let mut only_batch = alone.clone();
    only_batch.classes[0].name = "batch".into();
    let mut users = alone;
    users.classes[0].name = "interactive".into();
    let users_param = BTreeMap::from([("users".to_owned(), serde_json::json!(1))]);
    s.points.push(PointSummary::of(
        "batch-only",
        BTreeMap::new(),
        &only_batch,
        None,
    ));
    s.points.push(PointSummary::of(
        "isolated-c1",
        users_param.clone(),
        &users,
        Some("r.isolated-c1.json".into()),
    ));
    s.points
        .push(PointSummary::of("mixed-c1", users_param, &both, None));
    let cur = s.points[2].class("interactive").unwrap();
    let base = s.points[1].class("interactive").unwrap();
    s.comparisons
        .push(Comparison::latency("mixed-c1", cur, "isolated-c1", base));
    let cur = s.points[2].class("batch").unwrap();
    let base = s.points[0].class("batch").unwrap();
    s.comparisons
        .push(Comparison::throughput("mixed-c1", cur, "batch-only", base));
    s
}

#[test]
fn the_interference_summary_sets_each_figure_beside_its_baseline() {
    let s = interference();
    let r = s.comparisons[0].row("e2e_ms.mean").unwrap();
    assert_eq!(r.ratio, Some(r.value / r.baseline));
    insta::assert_snapshot!(strobe_report::console::render_experiment(&s));
}

fn export(format: &str, r: &Report) -> String {
    String::from_utf8(strobe_report::export::exporter(format).unwrap().run(r)).unwrap()
}

#[test]
fn markdown_and_csv_of_a_run() {
    insta::assert_snapshot!("markdown_run", export("md", &mixed()));
    let csv = export("csv", &mixed());
    // One row per class, every figure in its own column.
    assert_eq!(csv.lines().count(), 3);
    insta::assert_snapshot!("csv_run", csv);
}

#[test]
fn markdown_and_csv_of_an_experiment() {
    let s = interference();
    let x = |f: &str| {
        String::from_utf8(
            strobe_report::export::exporter(f)
                .unwrap()
                .experiment(&s, &[]),
        )
        .unwrap()
    };
    let csv = x("csv");
    // One row per class per point: batch-only (1), isolated (1), mixed (2).
    assert_eq!(csv.lines().count(), 1 + 4);
    assert!(csv.starts_with("point,users,class,"), "{csv}");
    insta::assert_snapshot!("csv_experiment", csv);
    insta::assert_snapshot!("markdown_experiment", x("md"));
}

/// The keys `vllm bench serve --save-result` writes (vLLM 0.11–0.13 `benchmarks/serve.py`), with
/// the percentiles of `--metric-percentiles 50,90,95,99,99.9`.
const VLLM_KEYS: [&str; 20] = [
    "date",
    "backend",
    "endpoint_type",
    "label",
    "model_id",
    "tokenizer_id",
    "num_prompts",
    "request_rate",
    "burstiness",
    "max_concurrency",
    "duration",
    "completed",
    "failed",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "request_goodput",
    "output_throughput",
    "total_token_throughput",
    "max_concurrent_requests",
];

#[test]
fn vllm_json_has_vllms_keys_and_units() {
    let r = report();
    let v: serde_json::Value = serde_json::from_str(&export("vllm-json", &r)).unwrap();
    for k in VLLM_KEYS {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    for m in ["ttft", "tpot", "itl", "e2el"] {
        for s in ["mean", "median", "std", "p50", "p90", "p95", "p99", "p99.9"] {
            let key = format!("{s}_{m}_ms");
            assert!(v[&key].is_number(), "{key} missing");
        }
    }
    // Units: seconds for duration, milliseconds for latencies, like vLLM.
    assert_eq!(v["duration"], r.results.duration_s);
    assert_eq!(v["mean_ttft_ms"], r.results.latency.ttft_ms.mean);
    assert_eq!(v["median_ttft_ms"], r.results.latency.ttft_ms.p50);
    assert_eq!(v["completed"], 10);
    assert_eq!(v["failed"], 1);
    assert_eq!(v["request_rate"], "inf");
    assert_eq!(v["max_concurrency"], 2);
    assert_eq!(v["date"], "20261128-120000");
    assert_eq!(v["date"].as_str().unwrap().len(), "YYYYMMDD-HHMMSS".len());
}

#[test]
fn the_html_report_is_self_contained_and_has_its_charts() {
    for html in [
        export("html", &report()),
        export("html", &mixed()),
        String::from_utf8(
            strobe_report::export::Html.experiment(&interference(), &[report(), mixed()]),
        )
        .unwrap(),
    ] {
        assert!(html.starts_with("<!DOCTYPE html>"));
        for fetch in ["src=", "href=", "url(", "@import", "<script", "<link"] {
            assert!(
                !html.contains(fetch),
                "{fetch} would fetch or run something"
            );
        }
        assert!(!html.contains("cannot draw"), "a chart failed");
    }
    let run = export("html", &mixed());
    let charts = run.matches("<figure class=\"chart\"").count();
    // TTFT, TPOT, ITL and E2E each a CDF and a histogram, and five over time.
    assert_eq!(charts, 8 + 5, "{charts}");
    for needle in [
        "SLO ttft_p95",
        "USD per million output tokens",
        "interactive",
        "batch",
    ] {
        assert!(run.contains(needle), "{needle} missing");
    }
    let exp = String::from_utf8(
        strobe_report::export::Html.experiment(&interference(), &[report(), mixed()]),
    )
    .unwrap();
    assert!(
        exp.contains("data-chart=\"interference-1\""),
        "no interference chart"
    );
}

#[test]
fn json_round_trips() {
    for r in [report(), mixed()] {
        let back: Report = serde_json::from_slice(&strobe_report::json::render(&r)).unwrap();
        assert_eq!(back, r);
    }
}
