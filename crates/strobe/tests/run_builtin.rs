//! Whole runs against the built-in target: counts, timing floors, APIs, load modes, outputs.

mod common;

use common::*;
use std::time::Duration;
use strobe_core::RequestRecord;
use strobe_metrics::MetricSet;
use strobe_server::ServerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_completions_are_counted_and_timed() {
    let server = start(timed(30, 2)).await;
    let url = url_of(&server);
    let out = run(
        &url,
        &[
            "-c",
            "4",
            "-n",
            "20",
            "--output-len",
            "16",
            "--input-len",
            "10",
        ],
    )
    .await
    .unwrap();
    let r = &out.report.results;
    assert_eq!(out.exit_code, 0);
    assert_eq!((r.requests.successful, r.requests.failed), (20, 0));
    assert_eq!(r.tokens.output, 20 * 16, "usage counts from the server");
    assert_eq!(
        r.tokens.input,
        20 * 10,
        "the target counts prompt words as tokens"
    );
    assert_eq!(r.tokens.output_count_sources.get("usage"), Some(&20));
    // The target never answers before its TTFT. Its token deadlines follow the previous
    // deadline, so a late first token shortens that request's TPOT: compare with what it did.
    assert!(r.latency.ttft_ms.min >= 30.0, "{:?}", r.latency.ttft_ms);
    assert_eq!(
        r.latency.itl_ms.count,
        20 * 15,
        "ITL is over gaps between chunks"
    );
    assert_eq!(r.tokens_per_chunk.mean, 1.0);
    assert_eq!(r.concurrency.requested, Some(4));
    assert!(r.concurrency.peak_in_flight <= 4);
    assert!(
        r.concurrency.achieved_mean > 2.0 && r.concurrency.achieved_mean <= 4.0,
        "{}",
        r.concurrency.achieved_mean
    );
    assert_eq!(
        out.report.client.receive_timestamps,
        if cfg!(target_os = "linux") {
            "kernel"
        } else {
            "user"
        }
    );
    let truth = server.truth.summary();
    assert_eq!(truth.completed_streams, 20);
    assert!(
        (r.latency.tpot_ms.mean - truth.tpot.mean_ms).abs() < 0.1 && r.latency.tpot_ms.mean >= 1.9,
        "client TPOT {:?}, server {:?}",
        r.latency.tpot_ms,
        truth.tpot
    );
    // The client can only see the first token after the server sent it.
    assert!(r.latency.ttft_ms.mean >= truth.ttft.mean_ms);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_space_timestamps_can_be_chosen() {
    let server = start(fast_config()).await;
    let url = url_of(&server);
    let out = run(
        &url,
        &[
            "-c",
            "2",
            "-n",
            "6",
            "--output-len",
            "4",
            "--timestamps",
            "user",
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.report.client.receive_timestamps, "user");
    assert_eq!(out.report.results.requests.successful, 6);
    assert!(out.report.results.latency.ttft_ms.min >= 5.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_role_only_first_chunk_does_not_count_as_first_token() {
    // The target sends the role-only chunk at once and the first content after 40 ms.
    let server = start(timed(40, 1)).await;
    let url = url_of(&server);
    let out = run(
        &url,
        &["--api", "chat", "-c", "2", "-n", "6", "--output-len", "8"],
    )
    .await
    .unwrap();
    let r = &out.report.results;
    assert_eq!(r.requests.successful, 6);
    assert!(
        r.latency.ttft_ms.min >= 40.0,
        "role chunk counted as a token: {:?}",
        r.latency.ttft_ms
    );
    assert_eq!(r.tokens.output, 48);
    assert_eq!(out.report.classes[0].request.api, "chat");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_requests_have_latency_but_no_ttft() {
    let server = start(timed(10, 1)).await;
    let url = url_of(&server);
    for api in ["completions", "chat"] {
        let out = run(
            &url,
            &[
                "--no-stream",
                "--api",
                api,
                "-c",
                "2",
                "-n",
                "4",
                "--output-len",
                "11",
            ],
        )
        .await
        .unwrap();
        let r = &out.report.results;
        assert_eq!(r.requests.successful, 4, "{api}");
        assert_eq!(r.latency.ttft_ms.count, 0);
        assert_eq!(r.tokens.output, 44);
        assert!(
            r.latency.e2e_ms.min >= 20.0,
            "{api}: 10 ms + 10 × 1 ms at least: {:?}",
            r.latency.e2e_ms
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_is_recorded_but_excluded_and_records_reanalyse_to_the_report() {
    let server = start(fast_config()).await;
    let url = url_of(&server);
    let records = temp_path("warm.jsonl");
    let out = run(
        &url,
        &[
            "-c",
            "3",
            "-n",
            "12",
            "--warmup-requests",
            "5",
            "--output-len",
            "4",
            "--records",
            records.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    let r = &out.report.results;
    assert_eq!((r.requests.successful, r.requests.warmup), (12, 5));
    let lines: Vec<RequestRecord> = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 17);
    assert_eq!(lines.iter().filter(|l| l.warmup).count(), 5);
    assert!(
        lines.iter().filter(|l| l.warmup).all(|l| l.index < 5),
        "warm-up is the first requests"
    );
    // Re-analysing the saved records gives exactly the report's statistics.
    let mut again = MetricSet::default();
    for l in &lines {
        again.add(l);
    }
    assert_eq!(again, out.report.classes[0].state);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_constant_rate_sends_on_schedule() {
    let server = start(ServerConfig {
        ttft: Duration::ZERO,
        itl: Duration::ZERO,
        ..ServerConfig::default()
    })
    .await;
    let url = url_of(&server);
    let records = temp_path("rate.jsonl");
    let out = run(
        &url,
        &[
            "-r",
            "100",
            "--arrival",
            "constant",
            "-n",
            "30",
            "--output-len",
            "4",
            "--records",
            records.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.report.results.requests.successful, 30);
    assert_eq!(out.report.classes[0].load.schedule, "open");
    let mut intended: Vec<u64> = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<RequestRecord>(l)
                .unwrap()
                .intended_ns
        })
        .collect();
    intended.sort_unstable();
    for w in intended.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            (9_999_000..=10_001_000).contains(&gap),
            "intended gaps are exactly 10 ms, got {gap}"
        );
    }
    // 29 gaps of 10 ms: from the first intended send to the last completion is at least 290 ms
    // whatever the server does (the window starts at the first actual send, which a loaded
    // machine may delay).
    let first_sent = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<RequestRecord>(l).unwrap().sent_ns)
        .min()
        .unwrap();
    let lag_s = first_sent.saturating_sub(intended[0]) as f64 / 1e9;
    assert!(
        out.report.results.duration_s + lag_s >= 0.29,
        "window {} s, first send {lag_s} s late",
        out.report.results.duration_s
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_cap_queues_and_the_queueing_is_reported() {
    // 200 req/s offered, 2 in flight at most, each takes ≥ 50 ms: at most 40 req/s get through, so
    // requests wait; that wait must show as queue delay, not vanish.
    let server = start(timed(50, 1)).await;
    let url = url_of(&server);
    let out = run(
        &url,
        &[
            "-r",
            "200",
            "--arrival",
            "constant",
            "--max-concurrency",
            "2",
            "-n",
            "20",
            "--output-len",
            "2",
        ],
    )
    .await
    .unwrap();
    let r = &out.report.results;
    assert_eq!(r.requests.successful, 20);
    assert!(r.concurrency.peak_in_flight <= 2);
    assert_eq!(out.report.client.connections, 2);
    assert!(
        r.latency.queue_delay_ms.max > 200.0,
        "the 20th request waits ~ 9 × 51 ms - 95 ms: {:?}",
        r.latency.queue_delay_ms
    );
    assert!(r.concurrency.queued_mean > 1.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_stops_sending() {
    let server = start(fast_config()).await;
    let url = url_of(&server);
    let out = run(&url, &["-c", "2", "-d", "400ms", "--output-len", "4"])
        .await
        .unwrap();
    assert_eq!(out.report.run.stop_reason, "duration reached");
    let r = &out.report.results;
    assert!(r.requests.successful > 10);
    // The last request was sent before the deadline and may finish a little after it.
    assert!(r.duration_s < 0.6, "{}", r.duration_s);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_headers_and_body_fields_reach_the_server() {
    // The target honours `x-strobe-fault` and `max_tokens`: if the header and the body override
    // arrive, every request fails with 418 and asks for 3 tokens.
    let server = start(fast_config()).await;
    let url = url_of(&server);
    // The pre-run request carries the header too, and the server's 418 stops the run at once.
    let e = run(
        &url,
        &["-n", "3", "-c", "1", "-H", "x-strobe-fault: http-418"],
    )
    .await
    .err()
    .expect("a 418 to every request is refused before the run")
    .to_string();
    assert!(
        e.contains("HTTP 418") && e.contains("injected fault"),
        "{e}"
    );
    let out = run(
        &url,
        &[
            "-n",
            "3",
            "-c",
            "1",
            "--output-len",
            "50",
            "--body",
            r#"{"max_tokens":3}"#,
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.report.results.tokens.output, 9);
    assert_eq!(out.report.classes[0].request.extra_body["max_tokens"], 3);
    server.shutdown().await;
}
