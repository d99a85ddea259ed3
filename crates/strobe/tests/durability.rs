//! Nothing lost: `strobe batch` killed with SIGKILL at random moments resumes to exactly one
//! result per `custom_id`, never rewriting a line it wrote; records and experiment summaries
//! already written survive a SIGKILL and read back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn strobe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strobe"))
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strobe-durable-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `strobe serve` on a free port, with these extra flags; its URL.
fn serve(extra: &[&str]) -> (Child, String) {
    let mut child = strobe()
        .args(["serve", "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line).unwrap();
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .to_owned();
    (child, addr)
}

fn input(path: &Path, n: usize) {
    let mut s = String::new();
    for i in 0..n {
        // Every 25th line asks for a model the server does not have: a 404, written as an error.
        let model = if i % 25 == 7 {
            ",\"model\":\"nope\""
        } else {
            ""
        };
        s.push_str(&format!(
            "{{\"custom_id\":\"req-{i}\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{{\"messages\":[{{\"role\":\"user\",\"content\":\"line {i}\"}}],\"max_tokens\":6{model}}}}}\n"
        ));
    }
    std::fs::write(path, s).unwrap();
}

/// custom_id → count over both result files, every line parsed.
fn results(out: &Path, errors: &Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for f in [out, errors] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        // A last line without its newline is half-written (a kill mid-write, or the one this
        // test plants); the next run cuts it. A run killed before it opened the file leaves it.
        let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
        for line in complete.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: bad line {line:?}: {e}", f.display()));
            *seen
                .entry(v["custom_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    seen
}

/// A cheap deterministic generator (no test dependency for randomness).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn batch_killed_at_random_moments_resumes_to_exactly_one_result_per_line() {
    let kills: usize = std::env::var("STROBE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let d = dir("kill");
    let (inp, out, errors) = (
        d.join("in.jsonl"),
        d.join("out.jsonl"),
        d.join("out.errors.jsonl"),
    );
    // Enough lines that 50 short runs (~70 lines each here) rarely finish the batch; when a
    // faster machine does, the run that finishes must be the only one not killed.
    let n = 6000;
    input(&inp, n);
    // 5% of requests get a 503 (retried), 3% are reset (retried).
    let (mut server, url) = serve(&[
        "--ttft",
        "10ms",
        "--itl",
        "2ms",
        "--fault",
        "http-503:0.05",
        "--fault",
        "reset:0.03",
    ]);
    let args = |cmd: &mut Command| {
        cmd.args(["batch"])
            .arg(&inp)
            .arg("-o")
            .arg(&out)
            .args(["--url", &url, "-c", "8", "-q", "--retry-backoff", "10ms"])
            // 8% of attempts fail on purpose: with the default 5 attempts, one of 6000 lines
            // runs out of them in about one run in fifty; ten make that a non-event.
            .args(["--max-attempts", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
    };
    let mut rng = Lcg(42);
    let mut killed_mid_run = 0;
    let mut planted = false;
    for k in 0..kills {
        let before_out = std::fs::read(&out).unwrap_or_default();
        let before_err = std::fs::read(&errors).unwrap_or_default();
        let mut cmd = strobe();
        args(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let wait = Duration::from_millis(30 + rng.next(400));
        let t = Instant::now();
        let mut finished = false;
        while t.elapsed() < wait {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if finished {
            // A run ends by itself only by finishing the batch.
            assert_eq!(
                results(&out, &errors).len(),
                n,
                "kill {k}: a run exited early"
            );
        } else {
            // SIGKILL: no handler runs, nothing is flushed on the way out.
            child.kill().unwrap();
            killed_mid_run += 1;
        }
        let _ = child.wait();
        // What was written before is still there, byte for byte (a half-written last line is
        // the one thing a resume may cut).
        for (before, f) in [(&before_out, &out), (&before_err, &errors)] {
            let now = std::fs::read(f).unwrap_or_default();
            let complete = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            assert!(
                now.len() >= complete && now[..complete] == before[..complete],
                "kill {k}: {} lost or rewrote lines",
                f.display()
            );
        }
        let seen = results(&out, &errors);
        assert!(seen.values().all(|&c| c == 1), "kill {k}: a result twice");
        if seen.len() == n {
            break;
        }
        if !planted && k == 3 {
            // A crash in the middle of a write leaves half a line: the next run must cut it.
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
            f.write_all(b"{\"id\":\"batch_req_x\",\"custom_id\":\"req-")
                .unwrap();
            planted = true;
        }
    }
    // The last run goes to the end.
    let mut cmd = strobe();
    args(&mut cmd);
    let o = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "final run: {stderr}");
    let seen = results(&out, &errors);
    assert_eq!(seen.len(), n, "every line has its result");
    for f in [&out, &errors] {
        let bytes = std::fs::read(f).unwrap();
        assert_eq!(
            bytes.last(),
            Some(&b'\n'),
            "{}: a half line left",
            f.display()
        );
    }
    assert!(seen.values().all(|&c| c == 1));
    for i in 0..n {
        assert!(seen.contains_key(&format!("req-{i}")), "req-{i}");
    }
    // The 404 lines are the errors, and only they (503s and resets were retried).
    let errors_text = std::fs::read_to_string(&errors).unwrap();
    let odd: Vec<&str> = errors_text
        .lines()
        .filter(|l| !l.contains("\"http_404\""))
        .collect();
    assert!(
        odd.is_empty(),
        "errors other than the planted 404s: {odd:#?}"
    );
    assert_eq!(errors_text.lines().count(), n / 25);
    assert!(planted, "the half-written line was planted and repaired");
    // Successes carry the server's body in OpenAI's output format.
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["response"]["status_code"], 200);
    assert!(first["response"]["body"]["choices"].is_array());
    assert!(
        killed_mid_run >= kills.min(20),
        "only {killed_mid_run} of {kills} kills hit a running batch"
    );
    // Nothing left: a re-run says so and sends nothing.
    let mut cmd = strobe();
    args(&mut cmd);
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already has a result"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{killed_mid_run} SIGKILLs mid-run, then a clean finish");
    let _ = server.kill();
}

#[test]
fn batch_input_problems_name_the_line() {
    let d = dir("bad");
    let inp = d.join("in.jsonl");
    std::fs::write(
        &inp,
        "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/completions\",\"body\":{\"prompt\":\"x\"}}\n{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/completions\",\"body\":{}}\n",
    )
    .unwrap();
    let o = strobe()
        .arg("batch")
        .arg(&inp)
        .arg("-o")
        .arg(d.join("out.jsonl"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("lines 1 and 2") && e.contains("in.jsonl"), "{e}");
}

#[test]
fn an_unreachable_server_aborts_the_batch_by_its_rule_and_leaves_lines_pending() {
    let d = dir("unreachable");
    let (inp, out) = (d.join("in.jsonl"), d.join("out.jsonl"));
    input(&inp, 50);
    // Every request is reset: the server is there (the pre-run check passes) but never answers.
    let (mut server, url) = serve(&["--fault", "reset:1"]);
    let o = strobe()
        .arg("batch")
        .arg(&inp)
        .arg("-o")
        .arg(&out)
        .args([
            "--url",
            &url,
            "-c",
            "4",
            "--retry-backoff",
            "20ms",
            "--max-backoff",
            "100ms",
            "--max-attempts",
            "1000",
            "--abort-unreachable",
            "2s",
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("rule `unreachable`"), "{e}");
    assert!(e.contains("50 lines have no result yet"), "{e}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    let _ = server.kill();
}

#[test]
fn records_and_summaries_survive_a_sigkill() {
    let d = dir("records");
    let (summary, records) = (d.join("s.json"), d.join("s.jsonl"));
    let (mut server, url) = serve(&["--ttft", "20ms", "--itl", "5ms"]);
    let mut child = strobe()
        .args([
            "sweep",
            "--url",
            &url,
            "-q",
            "--sweep",
            "concurrency=2,4,8",
            "-n",
            "60",
        ])
        .args(["--output-len", "8"])
        .arg("-o")
        .arg(&summary)
        .arg("--records")
        .arg(&records)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first point in the summary, then kill in the middle of the second.
    let t = Instant::now();
    let points = || -> usize {
        std::fs::read(&summary)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["points"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    while points() == 0 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    let _ = child.wait();
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap())
        .expect("the summary on disk is whole JSON");
    assert!(!s["points"].as_array().unwrap().is_empty());
    // Each point's records read back (a half-written last line is skipped, said so).
    let mut total = 0;
    for entry in std::fs::read_dir(&d).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "jsonl") {
            let o = strobe()
                .args(["report", "--records"])
                .arg(&p)
                .args(["--format", "json"])
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{}: {}",
                p.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            let text = std::fs::read_to_string(&p).unwrap();
            total += text.lines().filter(|l| l.ends_with('}')).count();
        }
    }
    assert!(
        total >= 60,
        "the first point's 60 records at least: {total}"
    );
    let _ = server.kill();
}

#[test]
fn a_batch_file_is_the_batch_class_of_a_mixed_scenario() {
    let d = dir("mixed");
    let (inp, out, report) = (d.join("in.jsonl"), d.join("out.jsonl"), d.join("r.json"));
    input(&inp, 120);
    let scenario = d.join("s.toml");
    std::fs::write(
        &scenario,
        r#"
[[class]]
name = "batch"
batch_file = "in.jsonl"
batch_output = "out.jsonl"
max_concurrency = 16

[[class]]
name = "interactive"
concurrency = 2
until = "batch"
output_len = 8
slo = "ttft_p95=500ms"
"#,
    )
    .unwrap();
    let (mut server, url) = serve(&["--ttft", "5ms", "--itl", "2ms"]);
    let o = strobe()
        .args(["run", "--url", &url, "-q", "--scenario"])
        .arg(&scenario)
        .arg("-o")
        .arg(&report)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen = results(&out, &d.join("out.errors.jsonl"));
    assert_eq!(seen.len(), 120);
    assert!(seen.values().all(|&c| c == 1));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let classes: Vec<&str> = r["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["batch", "interactive"]);
    assert_eq!(r["classes"][0]["results"]["requests"]["measured"], 120);
    assert!(
        r["classes"][1]["results"]["requests"]["successful"]
            .as_u64()
            .unwrap()
            > 0
    );
    let _ = server.kill();
}
