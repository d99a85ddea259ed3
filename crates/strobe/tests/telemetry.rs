//! Server metrics and engine launch, driven through whole runs.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_targets_metrics_are_scraped_and_match_its_truth() {
    let server = start(timed(20, 2)).await;
    let url = url_of(&server);
    let out = run(
        &url,
        &[
            "-c",
            "4",
            "-n",
            "24",
            "--output-len",
            "10",
            "--telemetry-interval",
            "50ms",
        ],
    )
    .await
    .unwrap();
    let m = out.report.server_metrics.expect("scraped by default");
    assert_eq!(m.engine, "vllm", "the target speaks vLLM's metric names");
    assert!(m.scrapes >= 3, "{m:?}");
    assert_eq!(m.failed_scrapes, 0);
    let ttft = &m.histograms["ttft"];
    assert_eq!(ttft.count, 24.0, "exactly the run's requests");
    let truth = server.truth.summary();
    assert!(
        (ttft.mean_ms - truth.ttft.mean_ms).abs() < 1e-6,
        "{} vs {}",
        ttft.mean_ms,
        truth.ttft.mean_ms
    );
    assert!(m.gauges["running_requests"].max <= 4.0);
    assert!(
        m.gauges["running_requests"]
            .samples
            .iter()
            .any(|s| s[1] > 0.0),
        "sampled while busy: {:?}",
        m.gauges
    );
    // No GPU on the test machines: the report says so and the run went on.
    if out.report.gpu.source == "none" {
        assert!(
            out.report
                .gpu
                .note
                .as_deref()
                .unwrap_or("")
                .contains("no GPU seen"),
            "{:?}",
            out.report.gpu
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_metrics_is_a_note_not_an_error() {
    let server = start(fast_config()).await;
    let url = url_of(&server);
    let port = unused_port();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let out = run(
        &url,
        &[
            "-c",
            "1",
            "-n",
            "3",
            "--output-len",
            "2",
            "--metrics-url",
            &metrics,
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.report.results.requests.successful, 3);
    let m = out.report.server_metrics.unwrap();
    assert_eq!(m.scrapes, 0);
    assert!(m.note.unwrap().contains(&port.to_string()));
    let out = run(
        &url,
        &[
            "-c",
            "1",
            "-n",
            "3",
            "--output-len",
            "2",
            "--no-server-metrics",
        ],
    )
    .await
    .unwrap();
    assert!(out.report.server_metrics.is_none());
    server.shutdown().await;
}

#[test]
fn launch_runs_the_engine_and_stops_it_and_a_failing_engine_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("strobe-launch-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = unused_port();
    let url = format!("http://127.0.0.1:{port}");
    let strobe = env!("CARGO_BIN_EXE_strobe");

    // The engine is strobe's own target, launched as any engine command line would be.
    let report = dir.join("launched.json");
    let engine =
        format!("{strobe} serve --port {port} --ttft 5ms --itl 1ms --model launched-model");
    let out = Command::new(strobe)
        .args([
            "run",
            "-q",
            "--url",
            &url,
            "--launch",
            &engine,
            "-c",
            "2",
            "-n",
            "6",
            "--output-len",
            "4",
            "-o",
        ])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["results"]["requests"]["successful"], 6);
    assert_eq!(r["engine"]["params"]["model"], "launched-model");
    assert_eq!(r["run"]["target"]["model"], "launched-model");
    assert!(std::path::Path::new(r["engine"]["log_path"].as_str().unwrap()).exists());
    // Stopped: the port is free again.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the launched engine still listens"
    );

    // An engine that dies on start-up: exit code 2, its log's last lines, nothing left running.
    let started = Instant::now();
    let out = Command::new(strobe)
        .args([
            "run",
            "-q",
            "--url",
            &url,
            "--launch",
            "echo loading weights; echo 'RuntimeError: no GPU' >&2; sleep 0.3; exit 3",
            "-n",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("exited with exit status: 3") && stderr.contains("RuntimeError: no GPU"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // An engine that never serves: bounded by --launch-timeout, then stopped.
    let marker = format!("sleep 60.{}", std::process::id());
    let out = Command::new(strobe)
        .args([
            "run",
            "-q",
            "--url",
            &url,
            "--launch-timeout",
            "1s",
            "--launch",
            &marker,
            "-n",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("did not serve"), "{stderr}");
    let left = Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sigint_sigterm_and_sighup_during_a_launched_run_stop_the_engine_too() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        stop_a_launched_run_with(signal);
    }
}

/// An engine-flag grid (2 × 2) crossed with two load levels, each engine launched by strobe:
/// every combination reaches its engine's command line (the slower ITL shows in TPOT, the lower
/// `--max-running` queues at four users), an engine that cannot start is recorded while the grid
/// goes on, and nothing is left running. The real-vLLM tier runs a smaller grid on vLLM.
#[test]
fn an_engine_grid_launches_every_combination_and_records_one_that_fails() {
    let dir = std::env::temp_dir().join(format!("strobe-grid-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = unused_port();
    let strobe = env!("CARGO_BIN_EXE_strobe");
    let engine = format!("{strobe} serve --port {port} --ttft 5ms");
    let out_path = dir.join("grid.json");
    let out = Command::new(strobe)
        .args(["sweep", "-q", "--url", &format!("http://127.0.0.1:{port}")])
        .args(["--launch", &engine, "--launch-timeout", "20s"])
        .args(["--engine-grid", "itl=2ms,8ms"])
        .args(["--engine-grid", "max-running=1,8,not-a-number"])
        .args(["--sweep", "concurrency=1,4", "-n", "8", "--output-len", "6"])
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A grid with a failed engine still writes every point of the others.
    assert!(out_path.exists(), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("2 engine configuration(s) of the grid did not run"),
        "{stderr}"
    );
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    assert_eq!(s["kind"], "grid");
    let engines = s["grid"]["engines"].as_array().unwrap();
    assert_eq!(engines.len(), 6, "{}", s["grid"]);
    let failed = s["grid"]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{}", s["grid"]["failed"]);
    assert!(
        failed
            .iter()
            .all(|f| f.to_string().contains("not-a-number")),
        "{failed:?}"
    );
    let points = s["points"].as_array().unwrap();
    assert_eq!(points.len(), 4 * 2);
    // Numeric flag values are parameters as numbers, others as strings.
    let is = |q: &serde_json::Value, itl: &str, running: f64, c: u64| {
        q["engine--itl"] == itl
            && q["engine--max-running"].as_f64() == Some(running)
            && q["concurrency"] == c
    };
    let tpot = |itl: &str, running: f64, c: u64| -> f64 {
        let p = points
            .iter()
            .find(|p| is(&p["parameters"], itl, running, c))
            .unwrap_or_else(|| panic!("no point itl {itl} max-running {running} c {c}"));
        let class = &p["classes"][0];
        assert_eq!(class["successful"], 8, "{p}");
        assert_eq!(class["failed"], 0, "{p}");
        class["tpot_ms"]["mean"].as_f64().unwrap()
    };
    let ttft = |itl: &str, running: f64| -> f64 {
        points
            .iter()
            .find(|p| is(&p["parameters"], itl, running, 4))
            .unwrap()["classes"][0]["ttft_ms"]["mean"]
            .as_f64()
            .unwrap()
    };
    for running in [1.0, 8.0] {
        assert!(
            tpot("8ms", running, 1) > 2.5 * tpot("2ms", running, 1),
            "--itl reached the engine: {} vs {}",
            tpot("8ms", running, 1),
            tpot("2ms", running, 1)
        );
    }
    // One running request at a time: three of four users wait a whole stream for their first
    // token.
    assert!(
        ttft("8ms", 1.0) > 3.0 * ttft("8ms", 8.0),
        "--max-running reached the engine: TTFT {} vs {}",
        ttft("8ms", 1.0),
        ttft("8ms", 8.0)
    );
    assert!(!s["grid"]["pareto"].as_array().unwrap().is_empty());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a launched engine still listens"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn stop_a_launched_run_with(signal: i32) {
    let dir =
        std::env::temp_dir().join(format!("strobe-launch-int-{}-{signal}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = unused_port();
    let strobe = env!("CARGO_BIN_EXE_strobe");
    let engine = format!("{strobe} serve --port {port} --ttft 5ms --itl 5ms");
    let report = dir.join("r.json");
    let mut child = Command::new(strobe)
        .args([
            "run",
            "-q",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--launch",
            &engine,
            "-c",
            "2",
            "-d",
            "60s",
            "-o",
        ])
        .arg(&report)
        .spawn()
        .unwrap();
    // Wait until the run is under way: the engine's truth has counted measured requests (the
    // pre-run probe is not counted).
    let t = Instant::now();
    let truth = "GET /strobe/truth HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let accepted = || -> u64 {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return 0;
        };
        let mut body = String::new();
        let _ = s.write_all(truth.as_bytes());
        let _ = s.read_to_string(&mut body);
        body.split("\"accepted_requests\":")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    while accepted() < 4 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "signal {signal}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["run"]["interrupted"], true);
    assert!(r["results"]["requests"]["successful"].as_u64().unwrap() > 0);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the engine outlived signal {signal}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
