//! The dispatcher and its workers.
//!
//! One dispatcher task decides, for each request in turn, its intended send time and hands it to an
//! idle worker. Each worker owns one connection and runs one request at a time, so there is no
//! connection pool and no lock shared by all workers; the only shared state is a few atomic
//! progress counters updated once per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use strobe_client::{Connection, Target};
use strobe_core::{ChunkArrivals, Outcome, RequestRecord, RequestSpec, RunClock};
use strobe_workload::Workload;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::arrival::{Arrival, ArrivalError, ArrivalProcess};

/// Connections a closed loop opens at once before it starts.
const WARM_CONNECTS: usize = 32;

/// How load is offered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LoadMode {
    /// Closed loop: this many requests in flight; each completion sends the next one at once.
    Concurrency(u32),
    /// Open loop: requests at `rate` per second whatever the server does, at most
    /// `max_concurrency` in flight (excess requests wait, and the wait is their queue delay).
    Rate {
        rate: f64,
        arrival: Arrival,
        max_concurrency: Option<u32>,
    },
}

/// Everything about when requests are sent.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    pub mode: LoadMode,
    /// Stop after this many measured (non-warm-up) requests.
    pub requests: Option<u64>,
    /// Stop sending this long after the first measured request.
    pub duration: Option<Duration>,
    /// The first this-many requests are warm-up.
    pub warmup_requests: u64,
    /// Requests intended within this time from the start are warm-up.
    pub warmup_duration: Duration,
    pub seed: u64,
    /// After a stop request, how long in-flight requests may finish before they are cancelled.
    pub drain_timeout: Duration,
    /// Stop when every one of the first this-many completed requests failed (0 disables).
    pub abort_after_failures: u64,
}

/// Live counters for a progress display (read-only for it).
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub in_flight: AtomicU64,
    pub peak_in_flight: AtomicU64,
    pub output_tokens: AtomicU64,
}

/// What the user (or a signal handler) asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopState {
    Running,
    /// Send nothing more; let in-flight requests finish within the drain bound.
    Drain,
    /// Cancel in-flight requests now.
    Cancel,
}

/// The sending side of a stop request.
#[derive(Clone)]
pub struct Stopper(Arc<watch::Sender<StopState>>);

/// The receiving side, given to [`run`]. It keeps the channel open itself, so a dropped
/// [`Stopper`] can never make waiting on it spin.
pub struct StopSignal(
    watch::Receiver<StopState>,
    #[allow(dead_code)] Arc<watch::Sender<StopState>>,
);

impl Stopper {
    pub fn new() -> (Stopper, StopSignal) {
        let (tx, rx) = watch::channel(StopState::Running);
        let tx = Arc::new(tx);
        (Stopper(Arc::clone(&tx)), StopSignal(rx, tx))
    }

    /// First Ctrl-C: stop sending, drain. A second call cancels in-flight requests.
    pub fn request_stop(&self) {
        self.0.send_modify(|s| {
            *s = match *s {
                StopState::Running => StopState::Drain,
                _ => StopState::Cancel,
            }
        });
    }
}

/// How the load ended.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadResult {
    /// Why dispatching stopped, in words.
    pub stop_reason: String,
    /// Stopped by the user.
    pub interrupted: bool,
    /// Stopped by the abort rule (every early request failed).
    pub aborted: bool,
    /// Requests handed to workers (warm-up included).
    pub dispatched: u64,
    /// Workers (= connections) the run used.
    pub workers: usize,
}

struct Job {
    spec: RequestSpec,
    intended_ns: u64,
}

struct Shared {
    clock: RunClock,
    records: mpsc::UnboundedSender<RequestRecord>,
    progress: Arc<Progress>,
    idle: mpsc::UnboundedSender<usize>,
    hard_cancel: watch::Receiver<bool>,
    /// Bounds simultaneous connects when a closed loop opens its connections: a burst of
    /// thousands of SYNs overflows many servers' accept queues.
    connecting: tokio::sync::Semaphore,
}

struct Pool {
    target: Arc<Target>,
    shared: Arc<Shared>,
    senders: Vec<mpsc::Sender<Job>>,
    tasks: JoinSet<()>,
}

impl Pool {
    fn spawn(&mut self, warm: bool) -> usize {
        let id = self.senders.len();
        let (tx, rx) = mpsc::channel(1);
        self.senders.push(tx);
        let conn = Connection::new(Arc::clone(&self.target));
        self.tasks
            .spawn(worker(id, conn, rx, Arc::clone(&self.shared), warm));
        id
    }
}

async fn worker(
    id: usize,
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    warm: bool,
) {
    if warm {
        // A failure here shows up as a connect error on the first request.
        let permit = shared.connecting.acquire().await;
        let _ = conn.warm().await;
        drop(permit);
        if shared.idle.send(id).is_err() {
            return;
        }
    }
    let mut hard = shared.hard_cancel.clone();
    while let Some(job) = jobs.recv().await {
        let p = &shared.progress;
        let now_in_flight = p.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        p.peak_in_flight.fetch_max(now_in_flight, Ordering::Relaxed);
        p.sent.fetch_add(1, Ordering::Relaxed);
        let mut record = RequestRecord {
            index: job.spec.index,
            class: job.spec.class,
            warmup: job.spec.warmup,
            intended_ns: job.intended_ns,
            sent_ns: 0,
            first_token_ns: None,
            end_ns: 0,
            chunk_arrivals_ns: ChunkArrivals::default(),
            input_tokens: None,
            input_tokens_source: None,
            output_tokens: None,
            output_tokens_source: None,
            outcome: Outcome::Cancelled,
        };
        let cancelled = *hard.borrow() || {
            tokio::select! {
                biased;
                _ = hard.wait_for(|c| *c) => true,
                _ = conn.execute(&job.spec, &shared.clock, &mut record) => false,
            }
        };
        if cancelled {
            let now = shared.clock.now_ns();
            if record.sent_ns == 0 {
                record.sent_ns = now;
            }
            record.end_ns = now;
            record.outcome = Outcome::Cancelled;
            conn.reset();
        }
        p.in_flight.fetch_sub(1, Ordering::Relaxed);
        p.completed.fetch_add(1, Ordering::Relaxed);
        if !record.outcome.is_success() {
            p.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(n) = record.output_tokens {
            p.output_tokens.fetch_add(n as u64, Ordering::Relaxed);
        }
        let _ = shared.records.send(record);
        if shared.idle.send(id).is_err() {
            break;
        }
    }
}

/// Why the dispatcher stopped waiting.
enum Wake {
    Ready,
    Stop,
    Deadline,
}

/// Runs the load to its end and returns how it ended. Records go to `records` as requests finish;
/// the channel closes when the last worker is done.
pub async fn run(
    plan: LoadPlan,
    target: Arc<Target>,
    workload: Arc<dyn Workload>,
    clock: RunClock,
    records: mpsc::UnboundedSender<RequestRecord>,
    progress: Arc<Progress>,
    mut stop: StopSignal,
) -> Result<LoadResult, ArrivalError> {
    let (idle_tx, mut idle_rx) = mpsc::unbounded_channel();
    let (hard_tx, hard_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        clock,
        records,
        progress: Arc::clone(&progress),
        idle: idle_tx,
        hard_cancel: hard_rx,
        connecting: tokio::sync::Semaphore::new(WARM_CONNECTS),
    });
    let mut pool = Pool {
        target,
        shared,
        senders: Vec::new(),
        tasks: JoinSet::new(),
    };

    // Workers known to be idle before the idle channel is consulted (the closed loop's start).
    let mut ready: Vec<usize> = Vec::new();
    let (mut arrivals, cap) = match plan.mode {
        LoadMode::Concurrency(n) => {
            let n = n.max(1) as usize;
            for _ in 0..n {
                pool.spawn(true);
            }
            // Start only once every connection is open, so that a connection storm does not
            // overlap the first measured requests.
            while ready.len() < n {
                tokio::select! {
                    biased;
                    _ = stop.0.changed() => break,
                    id = idle_rx.recv() => match id {
                        Some(id) => ready.push(id),
                        None => break,
                    },
                }
            }
            ready.reverse();
            (None, n)
        }
        LoadMode::Rate {
            rate,
            arrival,
            max_concurrency,
        } => (
            Some(ArrivalProcess::new(arrival, rate, plan.seed)?),
            max_concurrency.map_or(usize::MAX, |m| m.max(1) as usize),
        ),
    };

    let load_start = Instant::now();
    let warmup_end = load_start + plan.warmup_duration;
    let mut measured_deadline: Option<Instant> = None;
    let mut index = 0u64;
    let mut measured = 0u64;
    let mut result = LoadResult {
        stop_reason: String::new(),
        interrupted: false,
        aborted: false,
        dispatched: 0,
        workers: 0,
    };

    'dispatch: loop {
        if *stop.0.borrow() != StopState::Running {
            result.interrupted = true;
            result.stop_reason = "interrupted".into();
            break;
        }
        if plan.abort_after_failures > 0 {
            let done = progress.completed.load(Ordering::Relaxed);
            if done >= plan.abort_after_failures && progress.failed.load(Ordering::Relaxed) == done
            {
                result.aborted = true;
                result.stop_reason = format!("aborted: all of the first {done} requests failed");
                break;
            }
        }

        // When should this request go?
        let intended = match arrivals.as_mut() {
            None => None,
            Some(a) => {
                let at = load_start + a.next_offset();
                match wait_until(at, measured_deadline, &mut stop).await {
                    Wake::Ready => {}
                    Wake::Stop => continue 'dispatch,
                    Wake::Deadline => {
                        result.stop_reason = "duration reached".into();
                        break;
                    }
                }
                Some(at)
            }
        };

        // Who sends it?
        let worker = if let Some(id) = ready.pop() {
            id
        } else if let Ok(id) = idle_rx.try_recv() {
            id
        } else if pool.senders.len() < cap && arrivals.is_some() {
            pool.spawn(false)
        } else {
            tokio::select! {
                biased;
                _ = stop.0.changed() => continue 'dispatch,
                _ = sleep_until_opt(measured_deadline) => {
                    result.stop_reason = "duration reached".into();
                    break 'dispatch;
                }
                id = idle_rx.recv() => match id {
                    Some(id) => id,
                    None => break 'dispatch,
                },
            }
        };

        let intended = intended.unwrap_or_else(Instant::now);
        let warmup = index < plan.warmup_requests || intended < warmup_end;
        if !warmup {
            if plan.requests.is_some_and(|n| measured >= n) {
                // Hand the worker back: it has nothing to do.
                result.stop_reason = "request count reached".into();
                break;
            }
            if measured_deadline.is_none() {
                measured_deadline = plan.duration.map(|d| intended + d);
            }
            if measured_deadline.is_some_and(|d| intended >= d) {
                result.stop_reason = "duration reached".into();
                break;
            }
            measured += 1;
        }
        let mut spec = workload.spec(index);
        spec.warmup = warmup;
        let intended_ns = clock.offset_of(intended.into_std());
        if pool.senders[worker]
            .try_send(Job { spec, intended_ns })
            .is_err()
        {
            // Unreachable by construction (only idle workers get jobs); never lose a request silently.
            result.stop_reason = "internal error: a worker was not idle".into();
            break;
        }
        index += 1;
        result.dispatched += 1;
    }

    result.workers = pool.senders.len();
    // Workers finish their current request and exit once their job channel closes.
    pool.senders.clear();
    drop(idle_rx);
    let mut drain_deadline = if result.interrupted {
        Some(Instant::now() + plan.drain_timeout)
    } else {
        None
    };
    if *stop.0.borrow() == StopState::Cancel {
        let _ = hard_tx.send(true);
    }
    loop {
        tokio::select! {
            joined = pool.tasks.join_next() => if joined.is_none() { break },
            _ = sleep_until_opt(drain_deadline) => {
                let _ = hard_tx.send(true);
                drain_deadline = None;
            }
            changed = stop.0.changed() => {
                if changed.is_err() { continue; }
                result.interrupted = true;
                if result.stop_reason.is_empty() || !result.stop_reason.starts_with("interrupted") {
                    result.stop_reason = format!("interrupted while draining ({})", result.stop_reason);
                }
                match *stop.0.borrow() {
                    StopState::Cancel => { let _ = hard_tx.send(true); }
                    _ => if drain_deadline.is_none() && !*hard_tx.borrow() {
                        drain_deadline = Some(Instant::now() + plan.drain_timeout);
                    },
                }
            }
        }
    }
    if result.stop_reason.is_empty() {
        result.stop_reason = "request count reached".into();
    }
    Ok(result)
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn wait_until(at: Instant, deadline: Option<Instant>, stop: &mut StopSignal) -> Wake {
    if deadline.is_some_and(|d| at >= d) {
        return Wake::Deadline;
    }
    if at <= Instant::now() {
        return Wake::Ready;
    }
    tokio::select! {
        biased;
        _ = stop.0.changed() => Wake::Stop,
        _ = tokio::time::sleep_until(at) => Wake::Ready,
    }
}
