//! `strobe sweep` as a user runs it: a sweep killed with `kill -9` keeps every finished point and
//! a re-run does only the missing ones; presets and bad axes say what to do; `--fail-on-slo`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn strobe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strobe"))
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strobe-sweeps-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn points(summary: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(summary) else {
        return vec![];
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return vec![];
    };
    v["points"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["label"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_killed_sweep_keeps_its_finished_points_and_a_rerun_does_only_the_rest() {
    let d = dir("resume");
    let out = d.join("sweep.json");
    let args = [
        "sweep",
        "--sweep",
        "concurrency=1,2,3,4",
        "-d",
        "1s",
        "--output-len",
        "16",
        "-o",
    ];
    let mut child = strobe()
        .args(args)
        .arg(&out)
        .arg("-q")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while points(&out).len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no handler runs.
    child.wait().unwrap();
    let kept = points(&out);
    assert!(kept.len() >= 2 && kept.len() < 4, "{kept:?}");
    let before: Vec<Vec<u8>> = kept
        .iter()
        .map(|l| std::fs::read(d.join(format!("sweep.{l}.json"))).unwrap())
        .collect();

    let again = strobe().args(args).arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{:?} {stderr}", again.status);
    assert!(
        stderr.contains(&format!("resuming: {} of 4 runs", kept.len())),
        "{stderr}"
    );
    assert_eq!(
        points(&out),
        [
            "concurrency-1",
            "concurrency-2",
            "concurrency-3",
            "concurrency-4"
        ]
    );
    // The finished points' reports were not rewritten.
    for (l, b) in kept.iter().zip(&before) {
        assert_eq!(
            &std::fs::read(d.join(format!("sweep.{l}.json"))).unwrap(),
            b,
            "{l}"
        );
    }
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(s["schema"], "strobe.experiment.v2");
    assert_eq!(s["resumed"].as_array().unwrap().len(), kept.len());
    assert_eq!(s["interrupted"], false);

    // A finished sweep runs again in full; --restart forces it for an interrupted one.
    let third = strobe().args(args).arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(stderr.contains("running it again"), "{stderr}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(s["resumed"].as_array().unwrap().len(), 0);
}

#[test]
fn presets_list_run_and_refuse_what_they_need() {
    let list = strobe().args(["sweep", "--list"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    for name in [
        "seed004-batch",
        "seed004-seqlen",
        "seed004-requests",
        "seed001-cost",
        "seed002-low",
    ] {
        assert!(text.contains(name), "{text}");
    }
    let no_price = strobe()
        .args(["sweep", "--preset", "seed001-cost", "-q"])
        .output()
        .unwrap();
    assert_eq!(no_price.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_price.stderr).contains("--gpu-price"));
    let bad = strobe()
        .args(["sweep", "--sweep", "temperature=0,1", "-q"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("sweepable settings"));

    // seed 004's batch sweep, overridden small: lockstep points with a cost column.
    let d = dir("preset");
    let out = d.join("b.json");
    let run = strobe()
        .args([
            "sweep",
            "--preset",
            "seed004-batch",
            "--sweep",
            "batch_size=1,4",
            "--num-batches",
            "2",
            "--output-len",
            "8",
            "--gpu-price",
            "2",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("| batch_size-4 ") && stdout.contains("$/M out"),
        "{stdout}"
    );
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let p = &s["points"][1]["classes"][0];
    assert_eq!(p["schedule"], "lockstep");
    // Two measured batches of four; the warm-up batch is not counted.
    assert_eq!(p["successful"], 8);
    assert!(p["cost"]["usd_per_million_output_tokens"].as_f64().unwrap() > 0.0);
}

#[test]
fn fail_on_slo_makes_a_missed_slo_exit_1() {
    // The built-in target's TTFT is 50 ms: a 10 ms p50 limit is missed, a 1 s one met.
    let missed = strobe()
        .args([
            "run",
            "-n",
            "5",
            "--output-len",
            "4",
            "-q",
            "--slo",
            "ttft_p50=10ms",
            "--fail-on-slo",
        ])
        .output()
        .unwrap();
    assert_eq!(missed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missed.stderr).contains("missed its SLO ttft_p50"));
    let met = strobe()
        .args([
            "run",
            "-n",
            "5",
            "--output-len",
            "4",
            "-q",
            "--slo",
            "ttft_p50=1s",
            "--fail-on-slo",
        ])
        .output()
        .unwrap();
    assert_eq!(
        met.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&met.stderr)
    );
    // Without the flag a miss is reported, not an error.
    let reported = strobe()
        .args([
            "run",
            "-n",
            "5",
            "--output-len",
            "4",
            "-q",
            "--slo",
            "ttft_p50=10ms",
        ])
        .output()
        .unwrap();
    assert_eq!(reported.status.code(), Some(0));
}
