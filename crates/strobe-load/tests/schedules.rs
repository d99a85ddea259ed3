//! The schedule core against the built-in target: each schedule's arrivals and stops, several
//! classes at once, warm-up, the abort rule, and requests that were due but never sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use strobe_client::{build_headers, BaseUrl, Target};
use strobe_core::{Api, ClassId, Prompt, RequestRecord, RequestSpec, RunClock};
use strobe_load::{
    records_channel, Arrival, ClassPlan, Limits, Progress, RunPlan, RunResult, Schedule,
    StopReason, Stopper, Warmup,
};
use strobe_server::{Fault, ServerConfig, ServerHandle};
use strobe_workload::Workload;

/// Four-word prompts asking for `tokens` tokens; optionally "costly", noting where it ran.
struct Words {
    tokens: u32,
    costly: bool,
    threads: Mutex<Vec<std::thread::ThreadId>>,
}

impl Workload for Words {
    fn vary(&self, _: strobe_workload::Variation) -> Arc<dyn Workload> {
        Arc::new(Words {
            tokens: self.tokens,
            costly: self.costly,
            threads: Mutex::new(vec![]),
        })
    }
    fn spec(&self, index: u64) -> RequestSpec {
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        RequestSpec {
            index,
            class: ClassId(0),
            prompt: Prompt::Text("one two three four".into()),
            input_tokens: Some(4),
            max_tokens: self.tokens,
            warmup: false,
        }
    }
    fn describe(&self) -> String {
        "words".into()
    }
    fn costly(&self) -> bool {
        self.costly
    }
}

fn words(tokens: u32) -> Arc<Words> {
    Arc::new(Words {
        tokens,
        costly: false,
        threads: Mutex::new(vec![]),
    })
}

async fn server(ttft_ms: u64, itl_ms: u64, faults: Vec<(Fault, f64)>) -> ServerHandle {
    let listener = strobe_server::bind(([127, 0, 0, 1], 0).into()).unwrap();
    let config = ServerConfig {
        ttft: Duration::from_millis(ttft_ms),
        itl: Duration::from_millis(itl_ms),
        faults,
        ..ServerConfig::default()
    };
    strobe_server::serve(listener, config).unwrap()
}

fn target(s: &ServerHandle) -> Arc<Target> {
    let base = BaseUrl::parse(&format!("http://{}", s.addr)).unwrap();
    Arc::new(Target {
        headers: build_headers(&base, None, &[]).unwrap(),
        base,
        addr: s.addr,
        api: Api::Completions,
        model: "strobe-sim".into(),
        stream: true,
        extra_body: Default::default(),
        request_timeout: Duration::from_secs(30),
        first_byte_timeout: None,
        idle_timeout: None,
        kernel_timestamps: true,
        sockets: Default::default(),
    })
}

fn class(
    id: u16,
    name: &str,
    s: &ServerHandle,
    w: Arc<dyn Workload>,
    schedule: Schedule,
    limits: Limits,
) -> ClassPlan {
    ClassPlan {
        id: ClassId(id),
        name: name.into(),
        target: target(s),
        workload: w,
        schedule,
        limits,
        warmup: Warmup::default(),
        start_after: Duration::ZERO,
        seed: 7,
        progress: Arc::new(Progress::default()),
        retry: Default::default(),
        abort: Default::default(),
        steer: None,
    }
}

fn count(n: u64) -> Limits {
    Limits {
        requests: Some(n),
        ..Limits::default()
    }
}

/// Runs the classes, returns the result and every record (in completion order).
async fn run(classes: Vec<ClassPlan>) -> (RunResult, Vec<RequestRecord>) {
    run_with(classes, |_| {}).await
}

async fn run_with(
    classes: Vec<ClassPlan>,
    during: impl FnOnce(Stopper),
) -> (RunResult, Vec<RequestRecord>) {
    let plan = RunPlan {
        classes,
        drain_timeout: Duration::from_secs(10),
        abort_after_failures: 5,
        progress: Arc::new(Progress::default()),
    };
    let (tx, mut rx) = records_channel();
    let (stopper, signal) = Stopper::new();
    during(stopper);
    let collect = tokio::spawn(async move {
        let mut all = vec![];
        while let Some(r) = rx.recv().await {
            all.push(r);
        }
        all
    });
    let result = strobe_load::run(plan, RunClock::starting_now(), tx, signal)
        .await
        .unwrap();
    (result, collect.await.unwrap())
}

const MS: u64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_keeps_n_in_flight_and_stops_at_the_count() {
    let s = server(20, 2, vec![]).await;
    let c = class(
        3,
        "c",
        &s,
        words(4),
        Schedule::Closed { concurrency: 4 },
        count(20),
    );
    let progress = Arc::clone(&c.progress);
    let (r, records) = run(vec![c]).await;
    assert_eq!(records.len(), 20);
    assert!(records
        .iter()
        .all(|r| r.class == ClassId(3) && r.outcome.is_success()));
    assert_eq!(r.classes[0].stop_reason, StopReason::RequestCount);
    assert_eq!(r.classes[0].connections, 4);
    assert_eq!(
        progress
            .peak_in_flight
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    // Each slot sends its next request when the previous one ends: 5 rounds of ≥ 26 ms.
    let end = records.iter().map(|r| r.end_ns).max().unwrap();
    assert!(end >= 5 * 26 * MS, "{end}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_at_the_intended_instants() {
    let s = server(5, 1, vec![]).await;
    let schedule = Schedule::Open {
        rate: 20.0,
        arrival: Arrival::Constant,
        max_concurrency: None,
    };
    let (r, mut records) = run(vec![class(0, "o", &s, words(3), schedule, count(10))]).await;
    records.sort_by_key(|r| r.index);
    assert_eq!(records.len(), 10);
    for (k, rec) in records.iter().enumerate() {
        let want = k as u64 * 50 * MS;
        // Intended exactly on the constant grid (the first at the class start).
        assert!(
            rec.intended_ns.abs_diff(want + records[0].intended_ns) < MS,
            "{k}: {}",
            rec.intended_ns
        );
        assert!(
            rec.queue_delay_ns() < 50 * MS,
            "{k}: late by {}",
            rec.queue_delay_ns()
        );
    }
    assert_eq!(
        (r.classes[0].stop_reason.clone(), r.classes[0].unsent),
        (StopReason::RequestCount, 0)
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_open_loop_counts_what_was_due_but_never_sent() {
    // 100 req/s for 0.5 s is 50 due requests; one connection and 200 ms responses send ~3.
    let s = server(200, 1, vec![]).await;
    let schedule = Schedule::Open {
        rate: 100.0,
        arrival: Arrival::Constant,
        max_concurrency: Some(1),
    };
    let limits = Limits {
        duration: Some(Duration::from_millis(500)),
        ..Limits::default()
    };
    let (r, records) = run(vec![class(0, "o", &s, words(2), schedule, limits)]).await;
    let c = &r.classes[0];
    assert_eq!(c.stop_reason, StopReason::Duration);
    let sent = records.len() as u64;
    assert!((2..=4).contains(&sent), "{sent} sent");
    assert!(
        c.unsent + sent >= 49 && c.unsent + sent <= 51,
        "sent {sent} + unsent {}",
        c.unsent
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_offers_every_request_at_the_start_within_the_cap() {
    let s = server(30, 1, vec![]).await;
    let c = class(
        0,
        "batch",
        &s,
        words(2),
        Schedule::Offline {
            max_concurrency: Some(5),
        },
        count(20),
    );
    let progress = Arc::clone(&c.progress);
    let (r, records) = run(vec![c]).await;
    assert_eq!(records.len(), 20);
    let first = records.iter().map(|r| r.intended_ns).min().unwrap();
    assert!(
        records.iter().all(|r| r.intended_ns == first),
        "all due at once"
    );
    assert!(
        progress
            .peak_in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
            <= 5
    );
    // The cap holds 15 of them back: four waves of ~31 ms, so the last waited ≥ 90 ms.
    let max_wait = records.iter().map(|r| r.queue_delay_ns()).max().unwrap();
    assert!(max_wait >= 90 * MS, "{max_wait}");
    assert_eq!(r.classes[0].connections, 5);
    s.shutdown().await;
}

/// A steered cap moves while the class runs: at most 2 in flight, then 6, then none (paused),
/// then the schedule's own 8; each change takes effect at the next dispatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steered_cap_is_followed_as_it_moves() {
    let s = server(30, 1, vec![]).await;
    let mut c = class(
        0,
        "batch",
        &s,
        words(2),
        Schedule::Offline {
            max_concurrency: Some(8),
        },
        count(120),
    );
    let (tx, steer) = strobe_load::Steer::new(2);
    c.steer = Some(steer);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = tx.send(6);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = tx.send(0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = tx.send(100);
    });
    let (_, records) = run(vec![c]).await;
    assert_eq!(records.len(), 120);
    // In flight when each request was sent, from the records themselves.
    let in_flight = |at: u64| {
        records
            .iter()
            .filter(|r| r.sent_ns <= at && at < r.end_ns)
            .count()
    };
    let phase = |from: u64, to: u64| {
        records
            .iter()
            .filter(|r| r.sent_ns >= from * MS && r.sent_ns < to * MS)
            .map(|r| in_flight(r.sent_ns))
            .max()
            .unwrap_or(0)
    };
    assert!(phase(0, 280) <= 2, "{}", phase(0, 280));
    let middle = phase(340, 580);
    assert!((3..=6).contains(&middle), "{middle}");
    let paused = records
        .iter()
        .filter(|r| r.sent_ns >= 640 * MS && r.sent_ns < 880 * MS)
        .count();
    assert_eq!(paused, 0, "nothing is sent while the cap is 0");
    // Then the schedule's own cap (8) bounds it, not the steered 100.
    let last = phase(920, 100_000);
    assert!((7..=8).contains(&last), "{last}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockstep_releases_each_batch_after_the_previous_one_ended() {
    let s = server(10, 2, vec![]).await;
    let mut c = class(
        0,
        "b",
        &s,
        words(5),
        Schedule::Lockstep {
            batch_size: 4,
            batches: 3,
        },
        Limits::default(),
    );
    c.warmup = Warmup {
        requests: 1,
        duration: Duration::ZERO,
    };
    let (r, records) = run(vec![c]).await;
    assert_eq!(r.classes[0].stop_reason, StopReason::BatchesDone);
    // One warm-up batch, then three measured ones.
    assert_eq!(records.len(), 16);
    for b in 0..4u64 {
        let members: Vec<_> = records.iter().filter(|r| r.batch == Some(b)).collect();
        assert_eq!(members.len(), 4, "batch {b}");
        assert!(members.iter().all(|m| m.warmup == (b == 0)));
        assert!(members
            .iter()
            .all(|m| m.intended_ns == members[0].intended_ns));
        if b > 0 {
            let prev_end = records
                .iter()
                .filter(|r| r.batch == Some(b - 1))
                .map(|r| r.end_ns)
                .max()
                .unwrap();
            assert!(
                members[0].intended_ns >= prev_end,
                "batch {b} left before batch {} ended",
                b - 1
            );
        }
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classes_run_side_by_side_and_one_can_stop_with_another() {
    let s = server(20, 2, vec![]).await;
    let batch = class(
        0,
        "batch",
        &s,
        words(10),
        Schedule::Offline {
            max_concurrency: Some(4),
        },
        count(12),
    );
    let users = class(
        1,
        "interactive",
        &s,
        words(3),
        Schedule::Closed { concurrency: 2 },
        Limits {
            until_class: Some(ClassId(0)),
            ..Limits::default()
        },
    );
    let mut late = class(
        2,
        "late",
        &s,
        words(3),
        Schedule::Closed { concurrency: 1 },
        count(2),
    );
    late.start_after = Duration::from_millis(100);
    let (r, records) = run(vec![batch, users, late]).await;
    let of = |c: u16| {
        records
            .iter()
            .filter(|r| r.class == ClassId(c))
            .collect::<Vec<_>>()
    };
    let (b, u, l) = (of(0), of(1), of(2));
    assert_eq!(b.len(), 12);
    assert!(u.len() >= 4, "users ran beside the batch: {}", u.len());
    assert_eq!(l.len(), 2);
    assert!(
        l.iter().all(|r| r.sent_ns >= 100 * MS),
        "the late class waited its start delay"
    );
    assert_eq!(
        r.classes[1].stop_reason,
        StopReason::WithClass {
            class: "batch".into()
        }
    );
    // The users' last request was sent before the batch's last one ended.
    let batch_end = b.iter().map(|r| r.end_ns).max().unwrap();
    assert!(u.iter().all(|r| r.sent_ns <= batch_end));
    // Their requests overlapped in time.
    assert!(u.iter().any(|x| b
        .iter()
        .any(|y| x.sent_ns < y.end_ns && y.sent_ns < x.end_ns)));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_stops_sending_and_warm_up_is_flagged() {
    let s = server(5, 1, vec![]).await;
    let mut c = class(
        0,
        "c",
        &s,
        words(2),
        Schedule::Closed { concurrency: 2 },
        Limits {
            duration: Some(Duration::from_millis(300)),
            ..Limits::default()
        },
    );
    c.warmup = Warmup {
        requests: 3,
        duration: Duration::ZERO,
    };
    let (r, records) = run(vec![c]).await;
    assert_eq!(r.classes[0].stop_reason, StopReason::Duration);
    assert_eq!(records.iter().filter(|r| r.warmup).count(), 3);
    let measured: Vec<_> = records.iter().filter(|r| !r.warmup).collect();
    let first = measured.iter().map(|r| r.sent_ns).min().unwrap();
    let last = measured.iter().map(|r| r.sent_ns).max().unwrap();
    assert!(
        last - first < 310 * MS,
        "sent for {} ms",
        (last - first) / MS
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_class_aborts_the_run_and_says_which() {
    let s = server(1, 1, vec![(Fault::Http(500), 1.0)]).await;
    let ok = server(50, 5, vec![]).await;
    let bad = class(
        0,
        "bad",
        &s,
        words(2),
        Schedule::Closed { concurrency: 1 },
        count(100),
    );
    let good = class(
        1,
        "good",
        &ok,
        words(20),
        Schedule::Closed { concurrency: 1 },
        count(100),
    );
    let (r, records) = run(vec![bad, good]).await;
    assert!(r.aborted);
    assert_eq!(r.classes[0].stop_reason, StopReason::Aborted { failed: 5 });
    assert_eq!(
        r.classes[1].stop_reason,
        StopReason::RunAborted { by: "bad".into() }
    );
    assert!(records.iter().filter(|r| r.class == ClassId(1)).count() < 100);
    assert!(r
        .stop_reason()
        .contains("all of the first 5 requests failed"));
    s.shutdown().await;
    ok.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_drains_in_flight_requests_and_counts_due_arrivals() {
    let s = server(300, 1, vec![]).await;
    let schedule = Schedule::Open {
        rate: 50.0,
        arrival: Arrival::Constant,
        max_concurrency: Some(2),
    };
    let c = class(0, "o", &s, words(2), schedule, count(1000));
    let (r, records) = run_with(vec![c], |stopper| {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            stopper.request_stop();
        });
    })
    .await;
    assert!(r.interrupted);
    assert_eq!(r.classes[0].stop_reason, StopReason::Interrupted);
    // Drained, not cancelled.
    assert!(records.iter().all(|r| r.outcome.is_success()));
    // ~25 arrivals were due by the stop; two connections sent ~4 of them.
    assert!(r.classes[0].unsent >= 15, "{}", r.classes[0].unsent);
    s.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn costly_requests_are_built_off_the_runtime_thread() {
    let runtime_thread = std::thread::current().id();
    let s = server(2, 1, vec![]).await;
    let cheap = words(2);
    let costly = Arc::new(Words {
        tokens: 2,
        costly: true,
        threads: Mutex::new(vec![]),
    });
    let classes = vec![
        class(
            0,
            "cheap",
            &s,
            cheap.clone(),
            Schedule::Closed { concurrency: 2 },
            count(6),
        ),
        class(
            1,
            "costly",
            &s,
            costly.clone(),
            Schedule::Closed { concurrency: 2 },
            count(6),
        ),
        class(
            2,
            "costly-open",
            &s,
            costly.clone(),
            Schedule::Open {
                rate: 100.0,
                arrival: Arrival::Poisson,
                max_concurrency: None,
            },
            count(6),
        ),
        class(
            3,
            "costly-lockstep",
            &s,
            costly.clone(),
            Schedule::Lockstep {
                batch_size: 2,
                batches: 2,
            },
            Limits::default(),
        ),
    ];
    let (_, records) = run(classes).await;
    assert_eq!(records.len(), 22);
    assert!(cheap
        .threads
        .lock()
        .unwrap()
        .iter()
        .all(|t| *t == runtime_thread));
    let t = costly.threads.lock().unwrap().clone();
    assert!(!t.is_empty() && t.iter().all(|t| *t != runtime_thread));
    s.shutdown().await;
}

#[test]
fn plans_that_cannot_run_are_refused_with_the_class_named() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(server(1, 1, vec![]));
    let _g = rt.enter();
    let bad = [
        (
            Schedule::Offline {
                max_concurrency: None,
            },
            Limits::default(),
            "request count",
        ),
        (Schedule::Closed { concurrency: 0 }, count(1), "concurrency"),
        (
            Schedule::Open {
                rate: -1.0,
                arrival: Arrival::Poisson,
                max_concurrency: None,
            },
            count(1),
            "rate",
        ),
        (
            Schedule::Closed { concurrency: 1 },
            Limits::default(),
            "request count, a duration",
        ),
        (
            Schedule::Closed { concurrency: 1 },
            Limits {
                until_class: Some(ClassId(9)),
                ..Limits::default()
            },
            "another class",
        ),
    ];
    for (schedule, limits, needle) in bad {
        let plan = RunPlan {
            classes: vec![class(0, "x", &s, words(1), schedule, limits)],
            drain_timeout: Duration::ZERO,
            abort_after_failures: 0,
            progress: Arc::new(Progress::default()),
        };
        let e = plan.validate().unwrap_err().to_string();
        assert!(e.contains("class `x`") && e.contains(needle), "{e}");
    }
}
