//! A stop request (what Ctrl-C, SIGTERM and SIGHUP send) at each stage of an experiment: while an
//! engine starts, while the server is checked, while workloads are built, between runs and during
//! a run. Each stops promptly, leaves nothing running, and keeps every finished run on disk.

use std::path::PathBuf;
use std::time::Duration;
use strobe_experiment::draft::ClassDraft;
use strobe_experiment::levels::{self, LevelRequests};
use strobe_experiment::{
    Experiment, ExperimentError, ExperimentOptions, Export, LaunchSpec, LiveRun, Observer, Outputs,
    Session, Shutdown, Stage, TargetSpec,
};
use strobe_server::ServerConfig;

/// Requests a stop when `when` says so, and remembers every stage.
struct StopAt<F: FnMut(&Stage) -> bool + Send> {
    when: F,
    during_run: Option<Duration>,
    shutdown: Shutdown,
    stages: Vec<Stage>,
}

impl<F: FnMut(&Stage) -> bool + Send> Observer for StopAt<F> {
    fn stage(&mut self, stage: &Stage) {
        self.stages.push(stage.clone());
        if (self.when)(stage) {
            self.shutdown.request();
        }
    }
    fn run_started(&mut self, _: &LiveRun) {
        if let Some(after) = self.during_run {
            let s = self.shutdown.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                s.request();
            });
        }
    }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strobe-stages-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn target() -> TargetSpec {
    TargetSpec {
        built_in: ServerConfig {
            ttft: Duration::from_millis(5),
            itl: Duration::from_millis(5),
            ..ServerConfig::default()
        },
        ..TargetSpec::built_in()
    }
}

/// Three levels of a closed loop, 20-token answers.
fn levels_experiment(out: &std::path::Path) -> Experiment {
    let mut d = ClassDraft::new("default");
    d.requests = Some(8);
    d.workload.output_len = strobe_workload::LengthSpec::parse("20").ok();
    let (class, workload) = d.resolve(0).unwrap();
    levels::experiment(
        "test",
        class,
        workload,
        &[1, 2, 4],
        LevelRequests::AsGiven,
        ExperimentOptions {
            drain_timeout: Duration::from_secs(5),
            abort_after_failures: 20,
            price: None,
            outputs: Outputs {
                report: Some(out.join("levels.json")),
                records: Some(out.join("levels.jsonl")),
                exports: vec![Export {
                    format: "csv".into(),
                    path: out.join("levels.csv"),
                }],
            },
            reset_prefix_cache: false,
            restart: false,
        },
    )
}

fn json(p: PathBuf) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

async fn run_until(
    when: impl FnMut(&Stage) -> bool + Send,
    during_run: Option<Duration>,
    spec: TargetSpec,
    exp: &Experiment,
) -> (
    Result<strobe_experiment::Outcome, ExperimentError>,
    Vec<Stage>,
) {
    let shutdown = Shutdown::new();
    let mut obs = StopAt {
        when,
        during_run,
        shutdown: shutdown.clone(),
        stages: vec![],
    };
    let session = match Session::open(spec, &shutdown, &mut obs).await {
        Ok(s) => s,
        Err(e) => return (Err(e), obs.stages),
    };
    let r = strobe_experiment::run(&session, exp, &shutdown, &mut obs).await;
    session.close().await;
    (r, obs.stages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_preflight_and_one_workload_build_serve_every_level() {
    let d = dir("all");
    let exp = levels_experiment(&d);
    let (r, stages) = run_until(|_| false, None, target(), &exp).await;
    let o = r.unwrap();
    assert!(!o.interrupted && o.reports.len() == 3);
    let count = |f: fn(&Stage) -> bool| stages.iter().filter(|s| f(s)).count();
    assert_eq!(count(|s| matches!(s, Stage::Preflight { .. })), 1);
    assert_eq!(count(|s| matches!(s, Stage::BuildingWorkloads)), 1);
    assert_eq!(count(|s| matches!(s, Stage::Run { .. })), 3);
    // Each level's report and records beside the summary; the summary lists all three.
    let s = json(d.join("levels.json"));
    assert_eq!(s["schema"], "strobe.experiment.v2");
    assert_eq!(s["points"].as_array().unwrap().len(), 3);
    for c in [1, 2, 4] {
        let r = json(d.join(format!("levels.c{c}.json")));
        assert_eq!(r["classes"][0]["load"]["concurrency"], c);
        assert_eq!(r["run"]["label"], format!("c{c}"));
        let lines = std::fs::read_to_string(d.join(format!("levels.c{c}.jsonl"))).unwrap();
        assert_eq!(lines.lines().count(), 8);
    }
    // The CSV export holds the whole experiment: one row per level, concurrency as a column.
    let csv = std::fs::read_to_string(d.join("levels.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(
        rows[0].starts_with("point,concurrency,class,"),
        "{}",
        rows[0]
    );
    for (row, c) in rows[1..].iter().zip([1, 2, 4]) {
        assert!(row.starts_with(&format!("c{c},{c},default,")), "{row}");
    }
    // Fresh text per level, same lengths.
    let seeds: Vec<_> = o
        .reports
        .iter()
        .map(|r| r.classes[0].workload.content_seed)
        .collect();
    assert_eq!(seeds, vec![0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_the_server_is_checked_ends_before_any_run() {
    let d = dir("preflight");
    let exp = levels_experiment(&d);
    let (r, stages) = run_until(
        |s| matches!(s, Stage::Preflight { .. }),
        None,
        target(),
        &exp,
    )
    .await;
    assert!(
        matches!(r, Err(ExperimentError::Interrupted { .. })),
        "{:?}",
        r.err()
    );
    assert!(!stages.iter().any(|s| matches!(s, Stage::Run { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_workloads_are_built_ends_before_any_run() {
    let d = dir("build");
    let exp = levels_experiment(&d);
    let (r, stages) = run_until(
        |s| matches!(s, Stage::BuildingWorkloads),
        None,
        target(),
        &exp,
    )
    .await;
    assert!(
        matches!(
            r,
            Err(ExperimentError::Interrupted {
                stage: "building workloads"
            })
        ),
        "{:?}",
        r.err()
    );
    assert!(!stages.iter().any(|s| matches!(s, Stage::Run { .. })));
    // The summary was created before anything ran, and is valid and empty.
    assert_eq!(json(d.join("levels.json"))["points"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_between_runs_keeps_the_finished_runs_and_skips_the_rest() {
    let d = dir("between");
    let exp = levels_experiment(&d);
    let (r, _) = run_until(
        |s| matches!(s, Stage::Run { index: 1, .. }),
        None,
        target(),
        &exp,
    )
    .await;
    let o = r.unwrap();
    assert!(o.interrupted);
    assert_eq!(o.reports.len(), 1);
    let s = json(d.join("levels.json"));
    assert_eq!(
        (
            s["interrupted"].as_bool(),
            s["points"].as_array().unwrap().len()
        ),
        (Some(true), 1)
    );
    assert_eq!(
        json(d.join("levels.c1.json"))["results"]["requests"]["successful"],
        8
    );
    assert!(!d.join("levels.c2.json").exists() && !d.join("levels.c4.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_run_drains_it_writes_it_and_skips_the_rest() {
    let d = dir("during");
    let mut exp = levels_experiment(&d);
    for r in &mut exp.runs {
        r.classes[0].requests = None;
        r.classes[0].duration = Some(Duration::from_secs(30));
    }
    let t = std::time::Instant::now();
    let (r, _) = run_until(|_| false, Some(Duration::from_millis(400)), target(), &exp).await;
    let o = r.unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "stopped promptly");
    assert!(o.interrupted && o.reports.len() == 1);
    let rep = json(d.join("levels.c1.json"));
    assert_eq!(rep["run"]["interrupted"], true);
    let ok = rep["results"]["requests"]["successful"].as_u64().unwrap();
    assert!(ok > 0);
    // Drained: in-flight requests finished, so every record is a success.
    assert_eq!(rep["results"]["requests"]["cancelled"], 0);
    let lines = std::fs::read_to_string(d.join("levels.c1.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64, ok);
    assert_eq!(json(d.join("levels.json"))["interrupted"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_an_engine_starts_stops_the_engine() {
    let d = dir("launch");
    let marker = format!("sleep 30.{}", std::process::id());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = TargetSpec {
        url: Some(format!("http://127.0.0.1:{port}")),
        launch: Some(LaunchSpec {
            command: marker.clone(),
            timeout: Duration::from_secs(60),
            log: d.join("engine.log"),
        }),
        ..target()
    };
    let exp = levels_experiment(&d);
    let t = std::time::Instant::now();
    let (r, _) = run_until(
        |s| matches!(s, Stage::LaunchingEngine { .. }),
        None,
        spec,
        &exp,
    )
    .await;
    assert!(
        matches!(
            r,
            Err(ExperimentError::Interrupted {
                stage: "the engine started"
            })
        ),
        "{:?}",
        r.err()
    );
    assert!(t.elapsed() < Duration::from_secs(20));
    let left = std::process::Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
