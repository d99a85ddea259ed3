//! The fault matrix: every fault the built-in target can inject, in every schedule and in
//! `strobe batch`, each classified as its own outcome with counts that match what the server says
//! it injected (`/strobe/truth`), the run going on around it.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use strobe_server::{Fault, ServerConfig};

/// Timeouts short enough for stalls to end quickly.
const TIMEOUTS: &[&str] = &["--first-byte-timeout", "400ms", "--idle-timeout", "400ms"];

fn kinds(report: &strobe_report::Report) -> BTreeMap<String, u64> {
    report
        .results
        .requests
        .errors
        .iter()
        .map(|e| (e.kind.clone(), e.count))
        .collect()
}

/// The outcome each fault must give, streamed and whole (`None`: the fault cannot show there).
fn expected(fault: &str, stream: bool) -> Option<&'static str> {
    Some(match (fault, stream) {
        ("http-503", _) => "http_503",
        ("http-429-empty", _) => "http_429",
        ("reset", _) => "reset",
        ("stall-head", _) => "first_byte_timeout",
        ("cut", _) => "stream_cut",
        ("truncate", true) => "stream_cut",
        ("truncate", false) => "malformed",
        ("malformed", _) => "malformed",
        ("oversized", true) => "oversized",
        ("oversized", false) => return None,
        ("error-event", _) => "server_error",
        ("stall", _) => "idle_timeout",
        _ => unreachable!("{fault}"),
    })
}

const FAULTS: &[&str] = &[
    "http-503",
    "http-429-empty",
    "reset",
    "stall-head",
    "cut",
    "truncate",
    "malformed",
    "oversized",
    "error-event",
    "stall",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_forced_on_every_request_is_its_own_outcome() {
    for stream in [true, false] {
        for &fault in FAULTS {
            let Some(kind) = expected(fault, stream) else {
                continue;
            };
            let t = std::time::Instant::now();
            let server = start(fast_config()).await;
            let url = url_of(&server);
            let header = format!("x-strobe-fault: {fault}");
            let mut args = vec!["-c", "2", "-n", "6", "--output-len", "8", "-H", &header];
            args.extend_from_slice(TIMEOUTS);
            if !stream {
                args.push("--no-stream");
            }
            let out = run(&url, &args).await.unwrap();
            let truth = server.truth.summary();
            server.shutdown().await;
            eprintln!("{fault} stream {stream}: {:?}", t.elapsed());
            let k = kinds(&out.report);
            assert_eq!(
                k.get(kind).copied(),
                Some(6),
                "{fault} (stream {stream}): {k:?}"
            );
            assert_eq!(k.len(), 1, "{fault} (stream {stream}): {k:?}");
            // Every request was sent and classified, none left hanging.
            assert_eq!(out.report.results.requests.measured, 6);
            assert!(truth.faults[fault] >= 6, "{fault}: {:?}", truth.faults);
            if fault == "http-429-empty" {
                let e = &out.report.results.requests.errors[0];
                assert!(e.example.contains("no body"), "{}", e.example);
            }
        }
    }
}

/// A server that reads requests at 20 KB/s: a 400 KB prompt cannot be written in time, and the
/// first-byte timeout says so; small requests still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reading_server_is_a_first_byte_timeout_not_a_hang() {
    let server = start(ServerConfig {
        read_rate: Some(20_000),
        max_model_len: 1_000_000,
        ..fast_config()
    })
    .await;
    let url = url_of(&server);
    let t = std::time::Instant::now();
    let out = run(
        &url,
        &[
            "-c",
            "2",
            "-n",
            "4",
            "--input-len",
            "100000",
            "--output-len",
            "4",
            "--first-byte-timeout",
            "1s",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        kinds(&out.report).get("first_byte_timeout").copied(),
        Some(4),
        "{:?}",
        kinds(&out.report)
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let out = run(&url, &["-c", "2", "-n", "4", "--input-len", "20"])
        .await
        .unwrap();
    assert_eq!(out.report.results.requests.successful, 4);
    server.shutdown().await;
}

/// Faults at random in each schedule: the count of each outcome equals what the server injected
/// (a reset on a reused connection is retried once on a fresh one, as an idle-closed keep-alive
/// connection is, so resets may be fewer, each extra request they caused accounted for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_in_every_schedule_are_counted_exactly() {
    let p = 0.03;
    let faults: Vec<(Fault, f64)> = FAULTS.iter().map(|f| (f.parse().unwrap(), p)).collect();
    let schedules: &[(&str, &[&str])] = &[
        ("closed", &["-c", "8", "-n", "300"]),
        (
            "open",
            &["--rate", "400", "--max-concurrency", "32", "-n", "300"],
        ),
        (
            "offline",
            &["--offline", "--max-concurrency", "16", "-n", "300"],
        ),
        ("lockstep", &["--batch-size", "10", "--num-batches", "30"]),
    ];
    for (name, load) in schedules {
        for stream in [true, false] {
            let server = start(ServerConfig {
                faults: faults.clone(),
                seed: 11,
                ..fast_config()
            })
            .await;
            let url = url_of(&server);
            // (The pre-run body probe is left out of the truth, its fault too.)
            let mut args = vec!["--output-len", "8"];
            args.extend_from_slice(load);
            args.extend_from_slice(TIMEOUTS);
            if !stream {
                args.push("--no-stream");
            }
            let out = run(&url, &args).await.unwrap();
            let truth = server.truth.summary();
            server.shutdown().await;
            let got = kinds(&out.report);
            let mut want: BTreeMap<String, u64> = BTreeMap::new();
            for (f, n) in &truth.faults {
                if let Some(k) = expected(f, stream) {
                    *want.entry(k.to_owned()).or_default() += n;
                }
            }
            let resets_hidden =
                want.get("reset").copied().unwrap_or(0) - got.get("reset").copied().unwrap_or(0);
            let mut got_no_reset = got.clone();
            let mut want_no_reset = want.clone();
            got_no_reset.remove("reset");
            want_no_reset.remove("reset");
            assert_eq!(got_no_reset, want_no_reset, "{name} stream {stream}");
            let r = &out.report.results.requests;
            assert_eq!(
                truth.accepted_requests,
                r.measured + resets_hidden,
                "{name} stream {stream}: every request the server saw is accounted for"
            );
            assert_eq!(r.measured, 300, "{name} stream {stream}");
            assert!(r.successful > 150, "{name}: the run went on ({r:?})");
        }
    }
}
