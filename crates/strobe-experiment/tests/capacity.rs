//! Capacity search and over-saturation against the built-in target with load-dependent timing,
//! whose limits are known: each token gap is `itl + itl_per_stream × (running − 1)`, so a TPOT
//! limit sets the highest concurrency exactly; with `max_running` slots of a known service time,
//! the rate it can serve is known too.

use std::time::Duration;
use strobe_experiment::draft::ClassDraft;
use strobe_experiment::search::{self, Precision, Search, SearchSpec, Variable};
use strobe_experiment::{
    ClassSpec, Experiment, ExperimentOptions, Outputs, Session, Shutdown, Silent, TargetSpec,
};
use strobe_server::{LoadModel, ServerConfig};

fn options() -> ExperimentOptions {
    ExperimentOptions {
        drain_timeout: Duration::from_secs(5),
        abort_after_failures: 20,
        price: None,
        outputs: Outputs::default(),
        reset_prefix_cache: false,
        restart: false,
    }
}

fn target(config: ServerConfig) -> TargetSpec {
    TargetSpec {
        built_in: config,
        telemetry: strobe_experiment::TelemetrySpec {
            server_metrics: strobe_experiment::MetricsSource::Off,
            gpu: false,
            interval: Duration::from_secs(1),
        },
        ..TargetSpec::built_in()
    }
}

/// TPOT = 5 ms + 3 ms per other stream; a p50 limit of 21.5 ms admits 6 streams (20 ms), not 7
/// (23 ms).
fn decode_bound(seed: u64, jitter: Duration) -> ServerConfig {
    ServerConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(5),
        jitter,
        seed,
        load: LoadModel {
            max_running: None,
            itl_per_stream: Duration::from_millis(3),
            prefill_per_token: Duration::ZERO,
        },
        ..ServerConfig::default()
    }
}

async fn concurrency_search(config: ServerConfig, seed: u64) -> (Option<f64>, usize, Vec<String>) {
    let shutdown = Shutdown::new();
    let session = Session::open(target(config), &shutdown, &mut Silent)
        .await
        .unwrap();
    let mut base = ClassDraft::new("default");
    base.seed = seed;
    base.workload.output_len = strobe_workload::LengthSpec::parse("12").ok();
    base.slo = strobe_metrics::slo::parse("tpot_p50=21.5ms").unwrap();
    let s = Search {
        spec: SearchSpec {
            variable: Variable::Concurrency,
            start: 1.0,
            min: 1.0,
            max: 256.0,
            precision: Precision::Absolute(1.0),
            max_probes: 15,
            reprobes: 2,
        },
        base,
        probe_duration: Duration::from_millis(1200),
    };
    let out = search::run(&session, &s, options(), &shutdown, &mut Silent)
        .await
        .unwrap();
    session.close().await;
    let sum = out.summary.search.unwrap();
    assert_eq!(sum.outcome, "found", "{sum:?}");
    (sum.answer, sum.probes.len(), sum.notes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_lands_on_the_known_limit_in_fewer_probes_than_a_grid() {
    for seed in [1, 2, 3] {
        let (answer, probes, notes) =
            concurrency_search(decode_bound(seed, Duration::ZERO), seed).await;
        eprintln!("seed {seed}: answer {answer:?} in {probes} probes; {notes:?}");
        let a = answer.unwrap();
        assert!((5.0..=7.0).contains(&a), "seed {seed}: {a} (limit 6)");
        assert!(probes < 10, "seed {seed}: {probes} probes");
    }
    // A noisy target: every delay jittered by ±2 ms (40% of the base gap).
    for seed in [4, 5] {
        let (answer, probes, notes) =
            concurrency_search(decode_bound(seed, Duration::from_millis(2)), seed).await;
        eprintln!("noisy seed {seed}: answer {answer:?} in {probes} probes; {notes:?}");
        let a = answer.unwrap();
        assert!((5.0..=7.0).contains(&a), "noisy seed {seed}: {a} (limit 6)");
        assert!(probes < 12, "noisy seed {seed}: {probes} probes");
    }
}

/// Two slots, each request 10 ms + 9 × 10 ms = 100 ms: 20 requests/s at most.
fn two_slots() -> ServerConfig {
    ServerConfig {
        ttft: Duration::from_millis(10),
        itl: Duration::from_millis(10),
        load: LoadModel {
            max_running: Some(2),
            itl_per_stream: Duration::ZERO,
            prefill_per_token: Duration::ZERO,
        },
        ..ServerConfig::default()
    }
}

async fn open_loop(rate: f64, secs: u64, stop: bool) -> strobe_report::Report {
    let shutdown = Shutdown::new();
    let session = Session::open(target(two_slots()), &shutdown, &mut Silent)
        .await
        .unwrap();
    let mut d = ClassDraft::new("default");
    d.rate = Some(rate);
    d.duration = Some(Duration::from_secs(secs));
    d.workload.output_len = strobe_workload::LengthSpec::parse("10").ok();
    let (class, workload): (ClassSpec, _) = d.resolve(0).unwrap();
    let mut exp = Experiment::single("run", "t", vec![(class, workload)], options());
    exp.stop_when_saturated = stop;
    let out = strobe_experiment::run(&session, &exp, &shutdown, &mut Silent)
        .await
        .unwrap();
    session.close().await;
    out.reports.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_saturation_is_detected_when_overloaded_and_not_when_healthy() {
    // 50 requests/s offered to a 20/s server: outstanding requests grow by ~30/s.
    let over = open_loop(50.0, 6, false).await;
    let s = over.run.saturation.clone().unwrap();
    assert!(s.detected, "{s:?}");
    assert!(!s.stopped_early);
    assert!(s.growth_per_s > 20.0, "{s:?}");
    assert!(
        over.client
            .warnings
            .iter()
            .any(|w| w.contains("over-saturated")),
        "{:?}",
        over.client.warnings
    );
    // The same duration at 10 requests/s: no alarm.
    let healthy = open_loop(10.0, 6, false).await;
    let s = healthy.run.saturation.clone().unwrap();
    assert!(!s.detected, "{s:?}");
    // A probe is stopped at once, and says why; it is not an interruption. Its duration leaves
    // room for a slow machine (the watch decides nothing in its first 3 s); stopped early, it
    // costs only the time to the verdict.
    let probe = open_loop(50.0, 12, true).await;
    let s = probe.run.saturation.clone().unwrap();
    assert!(s.detected && s.stopped_early, "{s:?}");
    assert!(s.at_s.unwrap() < 11.0, "{s:?}");
    assert!(!probe.run.interrupted);
    assert!(
        probe.run.stop_reason.contains("over-saturated"),
        "{}",
        probe.run.stop_reason
    );
}
