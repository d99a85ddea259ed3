//! A failing server is data: every injected fault is classified, nothing aborts early, and the
//! pre-run check says clearly what is wrong.

mod common;

use common::*;
use std::time::Duration;
use strobe_server::{Fault, ServerConfig};

async fn errors_for(fault: &str, extra: &[&str]) -> strobe_report::Report {
    let server = start(fast_config()).await;
    let url = url_of(&server);
    let header = format!("x-strobe-fault: {fault}");
    let mut args = vec![
        "-c",
        "2",
        "-n",
        "8",
        "--output-len",
        "8",
        "-H",
        header.as_str(),
    ];
    args.extend_from_slice(extra);
    let out = run(&url, &args).await.unwrap();
    server.shutdown().await;
    // Fewer than the abort rule's 20, but every one failed: the run measured nothing.
    assert_eq!(out.exit_code, 2, "an all-failed run must not exit 0");
    out.report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_is_classified() {
    for (fault, kind, extra) in [
        ("http-503", "http_503", &[][..]),
        ("cut", "stream_cut", &[][..]),
        ("truncate", "stream_cut", &[][..]),
        ("malformed", "malformed", &[][..]),
        ("error-event", "server_error", &[][..]),
        ("stall", "timeout", &["--timeout", "300ms"][..]),
    ] {
        let report = errors_for(fault, extra).await;
        let r = &report.results.requests;
        assert_eq!((r.successful, r.failed), (0, 8), "{fault}");
        assert_eq!(r.errors.len(), 1, "{fault}: {:?}", r.errors);
        assert_eq!(r.errors[0].kind, kind, "{fault}");
        assert_eq!(r.errors[0].count, 8);
        assert!(!r.errors[0].example.is_empty());
        assert!(
            report.client.warnings.iter().any(|w| w.contains("8 of 8")),
            "{:?}",
            report.client.warnings
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_ends_after_its_finish_reason_without_done_is_complete() {
    let server = start(ServerConfig {
        send_done: false,
        ..fast_config()
    })
    .await;
    let url = url_of(&server);
    for api in ["completions", "chat"] {
        let out = run(
            &url,
            &["--api", api, "-c", "2", "-n", "6", "--output-len", "5"],
        )
        .await
        .unwrap();
        let r = &out.report.results;
        assert_eq!(
            (r.requests.successful, r.requests.failed),
            (6, 0),
            "{api}: {:?}",
            r.requests.errors
        );
        assert_eq!(r.tokens.output, 30);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_mix_with_successes_and_connections_recover() {
    let server = start(ServerConfig {
        faults: vec![(Fault::Cut, 0.2), (Fault::Http(500), 0.1)],
        seed: 7,
        ..fast_config()
    })
    .await;
    let url = url_of(&server);
    let out = run(&url, &["-c", "4", "-n", "300", "--output-len", "6"])
        .await
        .unwrap();
    let r = &out.report.results.requests;
    assert_eq!(r.successful + r.failed, 300);
    let kinds: Vec<&str> = r.errors.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["http_500", "stream_cut"]);
    // ~20% cut and ~8% (0.9 × 0.1) HTTP 500; wide bounds, the draw is seeded.
    assert!((30..=100).contains(&r.failed), "{}", r.failed);
    // Successful requests after a cut still have exact counts (no state leaks between requests).
    assert_eq!(out.report.results.tokens.output, r.successful * 6);
    // Over the default --max-error-rate (5%): a check failed, exit 1; a looser one passes.
    assert_eq!(out.exit_code, 1);
    let out = run(
        &url,
        &[
            "-c",
            "4",
            "-n",
            "100",
            "--output-len",
            "6",
            "--max-error-rate",
            "0.6",
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.exit_code, 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_failing_aborts_with_exit_code_two_and_still_reports() {
    let server = start(ServerConfig {
        faults: vec![(Fault::Http(500), 1.0)],
        ..fast_config()
    })
    .await;
    let url = url_of(&server);
    let out = run(&url, &["-c", "2", "-n", "1000", "--output-len", "2"])
        .await
        .unwrap();
    assert_eq!(out.exit_code, 2);
    assert!(out.report.run.aborted);
    assert!(
        out.report.run.stop_reason.contains("all of the first"),
        "{}",
        out.report.run.stop_reason
    );
    assert!(out.report.results.requests.failed >= 20 && out.report.results.requests.failed < 100);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_names_what_is_wrong() {
    // Nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = format!(
        "{:#}",
        run(&format!("http://127.0.0.1:{port}"), &["-n", "1"])
            .await
            .err()
            .unwrap()
    );
    assert!(
        e.contains("cannot reach") && e.contains(&port.to_string()),
        "{e}"
    );

    let server = start(ServerConfig {
        api_key: Some("sk-test-secret".into()),
        ..fast_config()
    })
    .await;
    let url = url_of(&server);
    // No key.
    let e = format!(
        "{:#}",
        run(&url, &["-n", "1", "--api-key-env", "STROBE_TEST_UNSET_KEY"])
            .await
            .err()
            .unwrap()
    );
    assert!(
        e.contains("refused the credentials") && e.contains("--api-key"),
        "{e}"
    );
    // Key from a file; wrong model.
    let key = temp_path("key.txt");
    std::fs::write(&key, "sk-test-secret\n").unwrap();
    let e = format!(
        "{:#}",
        run(
            &url,
            &[
                "-n",
                "1",
                "--api-key-file",
                key.to_str().unwrap(),
                "--model",
                "nope"
            ]
        )
        .await
        .err()
        .unwrap()
    );
    assert!(
        e.contains("`nope` is not served") && e.contains("strobe-sim"),
        "{e}"
    );
    // Right key and default model: runs, and the key is nowhere in the outputs.
    let report_path = temp_path("auth.json");
    let records_path = temp_path("auth.jsonl");
    let out = run(
        &url,
        &[
            "-n",
            "3",
            "-c",
            "1",
            "--output-len",
            "2",
            "--api-key-file",
            key.to_str().unwrap(),
            "-o",
            report_path.to_str().unwrap(),
            "--records",
            records_path.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.report.results.requests.successful, 3);
    assert_eq!(out.report.run.target.model, "strobe-sim");
    for p in [&report_path, &records_path] {
        assert!(
            !std::fs::read_to_string(p)
                .unwrap()
                .contains("sk-test-secret"),
            "{}",
            p.display()
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_times_out_without_holding_the_run() {
    let server = start(timed(1, 1)).await;
    let url = url_of(&server);
    let started = std::time::Instant::now();
    let out = run(
        &url,
        &[
            "-c",
            "3",
            "-n",
            "3",
            "--timeout",
            "200ms",
            "-H",
            "x-strobe-fault: stall",
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.report.results.requests.errors[0].kind, "timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.shutdown().await;
}
