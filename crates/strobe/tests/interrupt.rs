//! Ctrl-C stops sending, drains, writes the partial report and records, and exits 130.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigint_writes_a_partial_report_and_exits_130() {
    let dir = std::env::temp_dir().join(format!("strobe-int-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("partial.json");
    let records = dir.join("partial.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args([
            "run",
            "-c",
            "8",
            "-d",
            "60s",
            "--output-len",
            "20",
            "--drain-timeout",
            "2s",
        ])
        .arg("-o")
        .arg(&report)
        .arg("--records")
        .arg(&records)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let sent = Instant::now();
    let status = child.wait().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "drained within its bound"
    );
    assert_eq!(status.code(), Some(130));
    let out: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(out["run"]["interrupted"], true);
    let done = out["results"]["requests"]["successful"].as_u64().unwrap();
    assert!(done > 0);
    // Requests in flight at Ctrl-C drained (20 tokens at 10 ms < 2 s), so nothing was cancelled.
    assert_eq!(out["results"]["requests"]["cancelled"], 0);
    let lines = std::fs::read_to_string(&records).unwrap().lines().count() as u64;
    assert_eq!(lines, done);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_second_sigint_cancels_in_flight_requests_and_keeps_them_as_records() {
    let dir = std::env::temp_dir().join(format!("strobe-int2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("partial.json");
    // 500 tokens at 10 ms: each request takes 5.05 s, so at 1 s everything is in flight.
    let mut child = Command::new(env!("CARGO_BIN_EXE_strobe"))
        .args([
            "run",
            "-c",
            "4",
            "-n",
            "100",
            "--output-len",
            "500",
            "--drain-timeout",
            "60s",
        ])
        .arg("-o")
        .arg(&report)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    for _ in 0..2 {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let out: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(out["results"]["requests"]["cancelled"], 4);
    assert_eq!(out["results"]["requests"]["successful"], 0);
    let _ = std::fs::remove_dir_all(dir);
}
