//! What a load is (mode, limits, warm-up) and how it is steered and reported while it runs.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::arrival::Arrival;

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
pub(crate) enum StopState {
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
    pub(crate) watch::Receiver<StopState>,
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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadResult {
    /// Why dispatching stopped, in words.
    pub stop_reason: String,
    /// Stopped by the user.
    pub interrupted: bool,
    /// Stopped by the abort rule (every early request failed).
    pub aborted: bool,
    /// Workers (= connections) the run used.
    pub workers: usize,
}
