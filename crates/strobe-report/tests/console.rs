//! The human-facing summary, snapshot-tested on a report built from hand-made records (so every
//! number is exact and stable).

use std::collections::BTreeMap;
use strobe_core::{ChunkArrivals, ClassId, ErrorKind, Outcome, RequestRecord, TokenSource};
use strobe_metrics::MetricSet;
use strobe_report::{LoadInfo, Report, ReportInputs, TargetInfo};

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
        outcome,
    }
}

fn report() -> Report {
    let mut m = MetricSet::default();
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
    let mut examples = BTreeMap::new();
    examples.insert(
        "stream_cut".to_owned(),
        "stream ended without [DONE] after 1 content chunks".to_owned(),
    );
    Report::build(
        &m,
        ReportInputs {
            started_at: "2026-11-28T12:00:00Z".into(),
            target: TargetInfo {
                base_url: "http://127.0.0.1:8000".into(),
                api: "completions".into(),
                endpoint: "http://127.0.0.1:8000/v1/completions".into(),
                model: "m".into(),
                streaming: true,
                built_in: false,
                extra_header_names: vec![],
                extra_body: Default::default(),
            },
            workload: strobe_report::WorkloadInfo {
                description: "synthetic: input 128 tokens, output 64 tokens".into(),
                kind: "synthetic".into(),
                tokenizer: "words".into(),
                exact_input_lengths: true,
                input_len: "128".into(),
                output_len: "64".into(),
                prefix_groups: 1,
                turns: 1,
                ..Default::default()
            },
            load: LoadInfo {
                mode: "concurrency".into(),
                concurrency: Some(2),
                rate_per_s: None,
                arrival: None,
                burstiness: None,
                max_concurrency: None,
                requests: Some(11),
                duration_s: None,
                warmup_requests: 0,
                warmup_duration_s: 0.0,
                seed: 0,
                request_timeout_s: 600.0,
            },
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
        },
    )
}

#[test]
fn summary_looks_like_vllm_and_adds_the_latency_table() {
    insta::assert_snapshot!(strobe_report::console::render(&report()));
}

#[test]
fn json_round_trips() {
    let r = report();
    let back: Report = serde_json::from_slice(&strobe_report::json::render(&r)).unwrap();
    assert_eq!(back, r);
}
