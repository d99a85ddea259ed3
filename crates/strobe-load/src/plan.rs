//! What a run is (its classes, each with a schedule, limits and warm-up), how it is steered while
//! it runs, and how it ended.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use strobe_client::Target;
use strobe_core::ClassId;
use strobe_workload::Workload;
use tokio::sync::watch;

use crate::arrival::Arrival;

/// When a class's requests are sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// Closed loop: this many requests in flight; each completion sends the next one at once.
    Closed { concurrency: u32 },
    /// Open loop: requests at `rate` per second whatever the server does, at most
    /// `max_concurrency` in flight (excess requests wait, and the wait is their queue delay).
    Open {
        rate: f64,
        arrival: Arrival,
        max_concurrency: Option<u32>,
    },
    /// Offline (seed 003): every request offered at once at the start, at most `max_concurrency`
    /// in flight; the rest wait in strobe's queue (their wait is queue delay). Needs a request
    /// count.
    Offline { max_concurrency: Option<u32> },
    /// Lockstep batches (seed 001): send `batch_size` requests together, wait for all of them,
    /// repeat `batches` times.
    Lockstep { batch_size: u32, batches: u64 },
}

impl Schedule {
    /// The schedule's name in reports: `closed`, `open`, `offline`, `lockstep`.
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Closed { .. } => "closed",
            Schedule::Open { .. } => "open",
            Schedule::Offline { .. } => "offline",
            Schedule::Lockstep { .. } => "lockstep",
        }
    }
}

/// When a class stops sending. The first limit reached wins.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// Measured (non-warm-up) requests; for lockstep, set by `batches`.
    pub requests: Option<u64>,
    /// Stop sending this long after the class's first measured request.
    pub duration: Option<Duration>,
    /// Stop sending when this other class of the run has finished (seed 000: interactive users
    /// for as long as the batch runs).
    pub until_class: Option<ClassId>,
}

/// Requests sent but excluded from the statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Warmup {
    /// The first this-many requests (lockstep: batches) are warm-up.
    pub requests: u64,
    /// Requests intended within this time from the class's start are warm-up.
    pub duration: Duration,
}

/// How a class retries a failed request: only failures that may go differently next time
/// ([`strobe_core::ErrorKind::retryable`]), after an exponential backoff with jitter, or after
/// the server's `Retry-After` when it sent one. The record keeps the last attempt's timings
/// and the number of attempts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retry {
    /// Attempts per request, the first included (1: no retries).
    pub max_attempts: u32,
    /// The first backoff; each further one doubles, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            max_attempts: 1,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl Retry {
    /// The wait before attempt `attempt + 1` (attempt counts from 1): half the doubled backoff
    /// plus a uniform draw over the other half, or `Retry-After` (capped at `max_backoff`).
    pub fn wait(&self, attempt: u32, retry_after_ms: Option<u64>, jitter: f64) -> Duration {
        if let Some(ms) = retry_after_ms {
            return Duration::from_millis(ms).min(self.max_backoff);
        }
        let doubled = self
            .backoff
            .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20))
            .min(self.max_backoff);
        doubled.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// Rules that stop a class that cannot succeed (beyond the run's "every one of the first N
/// failed"). The report says which rule fired.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AbortRules {
    /// Abort when no response at all (refused, reset, no head in time) has come for this long,
    /// over at least [`UNREACHABLE_ATTEMPTS`] attempts in a row.
    pub unreachable_for: Option<Duration>,
    /// Abort once more than this many requests have failed for good.
    pub max_failures: Option<u64>,
}

/// Attempts in a row without a response before the unreachable rule may fire.
pub const UNREACHABLE_ATTEMPTS: u64 = 10;

/// One class of a run: its own stream of requests.
#[derive(Clone)]
pub struct ClassPlan {
    pub id: ClassId,
    pub name: String,
    pub target: Arc<Target>,
    pub workload: Arc<dyn Workload>,
    pub schedule: Schedule,
    pub limits: Limits,
    pub warmup: Warmup,
    /// The class starts this long after the run.
    pub start_after: Duration,
    /// Seed of the arrival process.
    pub seed: u64,
    /// Live counters of this class (read by progress displays).
    pub progress: Arc<Progress>,
    pub retry: Retry,
    pub abort: AbortRules,
    /// A cap on requests in flight that can change while the class runs (open loop and offline
    /// only), on top of the schedule's own.
    pub steer: Option<Steer>,
}

/// A concurrency cap set from outside while a class runs: the class keeps at most the current
/// value in flight (0 pauses it; requests already sent finish). Equal when it is the same channel.
#[derive(Clone)]
pub struct Steer(pub watch::Receiver<u32>);

impl Steer {
    /// A cap starting at `initial`, and the sender that moves it.
    pub fn new(initial: u32) -> (watch::Sender<u32>, Steer) {
        let (tx, rx) = watch::channel(initial);
        (tx, Steer(rx))
    }
}

impl PartialEq for Steer {
    fn eq(&self, other: &Steer) -> bool {
        self.0.same_channel(&other.0)
    }
}

impl fmt::Debug for Steer {
    // The value is left out: it changes while the class runs, and settings print as their identity.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Steer")
    }
}

impl fmt::Debug for ClassPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassPlan")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("schedule", &self.schedule)
            .field("limits", &self.limits)
            .field("warmup", &self.warmup)
            .field("start_after", &self.start_after)
            .finish()
    }
}

/// Everything about when a run's requests are sent.
#[derive(Clone, Debug)]
pub struct RunPlan {
    pub classes: Vec<ClassPlan>,
    /// After a stop request, how long in-flight requests may finish before they are cancelled.
    pub drain_timeout: Duration,
    /// A class stops (and with it the run) when every one of its first this-many completed
    /// requests failed (0 disables).
    pub abort_after_failures: u64,
    /// Live counters of the whole run.
    pub progress: Arc<Progress>,
}

/// Why a plan cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("class `{class}`: {problem}")]
    Class { class: String, problem: String },
    #[error("a run needs at least one class")]
    Empty,
}

impl RunPlan {
    /// Checks what the types cannot: positive rates and sizes, counts where a schedule needs them,
    /// `until_class` naming another class of the run.
    pub fn validate(&self) -> Result<(), PlanError> {
        if self.classes.is_empty() {
            return Err(PlanError::Empty);
        }
        for c in &self.classes {
            let bad = |problem: &str| {
                Err(PlanError::Class {
                    class: c.name.clone(),
                    problem: problem.to_owned(),
                })
            };
            match c.schedule {
                Schedule::Closed { concurrency: 0 } => {
                    return bad("concurrency must be at least 1")
                }
                Schedule::Open {
                    rate,
                    arrival,
                    max_concurrency,
                } => {
                    if !(rate.is_finite() && rate > 0.0) {
                        return bad("the rate must be a positive number of requests per second");
                    }
                    if let Arrival::Gamma { shape } = arrival {
                        if !(shape.is_finite() && shape > 0.0) {
                            return bad("burstiness (gamma shape) must be positive");
                        }
                    }
                    if max_concurrency == Some(0) {
                        return bad("max concurrency must be at least 1");
                    }
                }
                Schedule::Offline { max_concurrency } => {
                    if c.limits.requests.is_none() {
                        return bad("an offline schedule offers a fixed number of requests: give a request count");
                    }
                    if max_concurrency == Some(0) {
                        return bad("max concurrency must be at least 1");
                    }
                }
                Schedule::Lockstep {
                    batch_size,
                    batches,
                } => {
                    if batch_size == 0 || batches == 0 {
                        return bad(
                            "lockstep needs a batch size and a number of batches of at least 1",
                        );
                    }
                }
                Schedule::Closed { .. } => {}
            }
            if c.steer.is_some()
                && !matches!(c.schedule, Schedule::Open { .. } | Schedule::Offline { .. })
            {
                return bad("a steered cap applies to open-loop and offline classes only");
            }
            if c.limits.requests == Some(0) {
                return bad("the request count must be at least 1");
            }
            if c.limits.duration.is_some_and(|d| d.is_zero()) {
                return bad("the duration must be longer than zero");
            }
            if let Some(u) = c.limits.until_class {
                if u == c.id || !self.classes.iter().any(|o| o.id == u) {
                    return bad("`until` must name another class of the run");
                }
            }
            let open_ended = c.limits.requests.is_none()
                && c.limits.duration.is_none()
                && c.limits.until_class.is_none()
                && !matches!(c.schedule, Schedule::Lockstep { .. });
            if open_ended {
                return bad("give a request count, a duration or a class to stop with");
            }
        }
        Ok(())
    }
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
    /// TTFT and E2E of successful requests, coarsely, for live percentiles (the report's own
    /// statistics are exact and computed apart).
    pub ttft: LiveHistogram,
    pub e2e: LiveHistogram,
    /// Failures by kind (`http_503`, `timeout`); touched only when a request fails.
    pub errors: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Attempts sent again after a retryable failure.
    pub retries: AtomicU64,
    /// Attempts in a row that got no response at all (reset by any response).
    pub unreachable_streak: AtomicU64,
    /// [`mono_ns`] of the last response of any kind (0: none yet).
    pub last_response_ns: AtomicU64,
}

/// Nanoseconds on a process-wide monotonic clock (never 0), for instants kept in atomics.
pub fn mono_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
        + 1
}

/// Buckets of a [`LiveHistogram`]: eight per doubling from 10 µs, to about 20 minutes.
pub const LIVE_BUCKETS: usize = 256;
const LIVE_BASE_NS: f64 = 10_000.0;

/// A lock-free histogram for live displays: one relaxed increment per value, eight buckets per
/// doubling (values within 9%).
#[derive(Debug)]
pub struct LiveHistogram {
    buckets: [AtomicU64; LIVE_BUCKETS],
}

impl Default for LiveHistogram {
    fn default() -> LiveHistogram {
        LiveHistogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl LiveHistogram {
    fn index(ns: u64) -> usize {
        let x = (ns as f64 / LIVE_BASE_NS).max(1.0);
        ((8.0 * x.log2()) as usize).min(LIVE_BUCKETS - 1)
    }

    pub fn record(&self, ns: u64) {
        self.buckets[Self::index(ns)].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counts now (subtract an earlier snapshot for a window).
    pub fn snapshot(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(std::sync::atomic::Ordering::Relaxed))
            .collect()
    }

    /// The quantile `q` of counts from [`LiveHistogram::snapshot`], in ms (a bucket's middle).
    pub fn quantile_ms(counts: &[u64], q: f64) -> Option<f64> {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let lo = LIVE_BASE_NS * 2f64.powf(i as f64 / 8.0);
                return Some(lo * 2f64.powf(1.0 / 16.0) / 1e6);
            }
        }
        None
    }
}

/// What the user (or a signal handler) asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopState {
    Running,
    /// Send nothing more; let in-flight requests finish within the drain bound.
    Drain,
    /// Cancel in-flight requests now.
    Cancel,
}

/// The sending side of a stop request.
#[derive(Clone)]
pub struct Stopper(Arc<watch::Sender<StopState>>);

/// The receiving side. It keeps the channel open itself, so a dropped [`Stopper`] can never make
/// waiting on it spin. Cloning it gives another receiver of the same stop.
#[derive(Clone)]
pub struct StopSignal(
    pub(crate) watch::Receiver<StopState>,
    #[allow(dead_code)] Arc<watch::Sender<StopState>>,
);

impl Stopper {
    pub fn new() -> (Stopper, StopSignal) {
        let (tx, rx) = watch::channel(StopState::Running);
        let tx = Arc::new(tx);
        (Stopper(Arc::clone(&tx)), StopSignal(rx, tx))
    }

    /// First call: stop sending, drain. A second call cancels in-flight requests.
    pub fn request_stop(&self) {
        self.0.send_modify(|s| {
            *s = match *s {
                StopState::Running => StopState::Drain,
                _ => StopState::Cancel,
            }
        });
    }

    pub fn state(&self) -> StopState {
        *self.0.borrow()
    }
}

impl StopSignal {
    pub fn state(&self) -> StopState {
        *self.0.borrow()
    }

    /// True once a stop was asked for.
    pub fn stopped(&self) -> bool {
        self.state() != StopState::Running
    }

    /// Resolves once a stop is asked for (at once if it already was).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|s| *s != StopState::Running).await;
    }
}

/// Why a class stopped sending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    RequestCount,
    Duration,
    BatchesDone,
    /// The user stopped the run (Ctrl-C, SIGTERM).
    Interrupted,
    /// The abort rule: every one of the class's first `failed` requests failed.
    Aborted {
        failed: u64,
    },
    /// The unreachable rule: no response for `seconds` over `attempts` attempts in a row.
    Unreachable {
        seconds: u64,
        attempts: u64,
    },
    /// The failure limit: more than `limit` requests failed for good.
    TooManyFailures {
        failed: u64,
        limit: u64,
    },
    /// Another class's abort stopped the run.
    RunAborted {
        by: String,
    },
    /// The over-saturation watch stopped the run: the server could not keep up.
    OverSaturated,
    /// The class it runs with finished.
    WithClass {
        class: String,
    },
    Internal(String),
}

impl StopReason {
    /// One of the abort rules fired.
    pub fn is_abort(&self) -> bool {
        matches!(
            self,
            StopReason::Aborted { .. }
                | StopReason::Unreachable { .. }
                | StopReason::TooManyFailures { .. }
        )
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::RequestCount => f.write_str("request count reached"),
            StopReason::Duration => f.write_str("duration reached"),
            StopReason::BatchesDone => f.write_str("all batches sent"),
            StopReason::Interrupted => f.write_str("interrupted"),
            StopReason::Aborted { failed } => {
                write!(f, "aborted: all of the first {failed} requests failed")
            }
            StopReason::Unreachable { seconds, attempts } => write!(
                f,
                "aborted (rule `unreachable`): no response from the server for {seconds} s, {attempts} attempts in a row"
            ),
            StopReason::TooManyFailures { failed, limit } => write!(
                f,
                "aborted (rule `max-failures`): {failed} requests failed, more than the limit of {limit}"
            ),
            StopReason::OverSaturated => {
                f.write_str("stopped: over-saturated (outstanding requests grew without bound)")
            }
            StopReason::RunAborted { by } => write!(f, "stopped: class `{by}` aborted the run"),
            StopReason::WithClass { class } => write!(f, "class `{class}` finished"),
            StopReason::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

/// How one class ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassResult {
    pub id: ClassId,
    pub stop_reason: StopReason,
    /// Connections (one per worker) the class opened.
    pub connections: usize,
    /// Requests whose intended send time came (before the duration ended, or before the stop)
    /// but that were never sent, because the concurrency cap held them back.
    pub unsent: u64,
}

/// How the records channel held up: waits mean the records thread fell behind and workers paused
/// before their next request.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Backpressure {
    pub waits: u64,
    pub wait_s: f64,
}

/// How the run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    /// In plan order.
    pub classes: Vec<ClassResult>,
    /// Stopped by the user.
    pub interrupted: bool,
    /// Stopped by a class's abort rule.
    pub aborted: bool,
    pub backpressure: Backpressure,
}

impl RunResult {
    /// Why the run ended, in words: the first class's reason, or the abort.
    pub fn stop_reason(&self) -> String {
        let abort = self.classes.iter().find(|c| c.stop_reason.is_abort());
        let reason = abort
            .or(self.classes.first())
            .map(|c| c.stop_reason.to_string())
            .unwrap_or_else(|| "stopped".into());
        if self.interrupted && !reason.starts_with("interrupted") {
            format!("interrupted ({reason})")
        } else {
            reason
        }
    }

    pub fn connections(&self) -> usize {
        self.classes.iter().map(|c| c.connections).sum()
    }
}
