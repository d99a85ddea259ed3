//! Closed loop: N workers, each sending its next request the moment its previous one ends.
//!
//! No dispatcher sits between a finished request and the next: each worker claims the next request
//! index from an atomic counter and builds the request itself, so a slot is never idle waiting for
//! another task to be scheduled, even when the server answers in microseconds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use strobe_client::{Connection, Target};
use strobe_workload::Workload;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::plan::{LoadPlan, StopState};
use crate::worker::{run_request, Shared};

/// State shared by the closed loop's workers.
pub(crate) struct ClosedLoop {
    pub plan: LoadPlan,
    pub workload: Arc<dyn Workload>,
    pub stop: watch::Receiver<StopState>,
    next_index: AtomicU64,
    measured: AtomicU64,
    /// Set by `start`: when the load began.
    start: OnceLock<Instant>,
    /// Stop sending at this instant (set by the first measured request when a duration is given).
    deadline: OnceLock<Instant>,
    /// The first reason a worker found to stop.
    pub stop_reason: Mutex<Option<String>>,
    pub aborted: AtomicBool,
}

impl ClosedLoop {
    pub fn new(
        plan: LoadPlan,
        workload: Arc<dyn Workload>,
        stop: watch::Receiver<StopState>,
    ) -> ClosedLoop {
        ClosedLoop {
            plan,
            workload,
            stop,
            next_index: AtomicU64::new(0),
            measured: AtomicU64::new(0),
            start: OnceLock::new(),
            deadline: OnceLock::new(),
            stop_reason: Mutex::new(None),
            aborted: AtomicBool::new(false),
        }
    }

    fn stop_with(&self, reason: String) {
        let mut r = self.stop_reason.lock().unwrap_or_else(|p| p.into_inner());
        r.get_or_insert(reason);
    }

    /// Claims the next request, or says why there is none.
    fn claim(&self, shared: &Shared) -> Option<(u64, bool)> {
        if *self.stop.borrow() != StopState::Running {
            self.stop_with("interrupted".into());
            return None;
        }
        let p = &shared.progress;
        if self.plan.abort_after_failures > 0 {
            let done = p.completed.load(Ordering::Relaxed);
            if done >= self.plan.abort_after_failures && p.failed.load(Ordering::Relaxed) == done {
                self.aborted.store(true, Ordering::Relaxed);
                self.stop_with(format!("aborted: all of the first {done} requests failed"));
                return None;
            }
        }
        let now = Instant::now();
        let start = *self.start.get()?;
        if self.deadline.get().is_some_and(|d| now >= *d) {
            self.stop_with("duration reached".into());
            return None;
        }
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        let warmup = index < self.plan.warmup_requests || now < start + self.plan.warmup_duration;
        if !warmup {
            let n = self.measured.fetch_add(1, Ordering::Relaxed);
            if self.plan.requests.is_some_and(|limit| n >= limit) {
                self.stop_with("request count reached".into());
                return None;
            }
            if let Some(d) = self.plan.duration {
                let deadline = *self.deadline.get_or_init(|| now + d);
                if now >= deadline {
                    self.stop_with("duration reached".into());
                    return None;
                }
            }
        }
        Some((index, warmup))
    }
}

/// Spawns `n` workers; they open their connections and wait for `go`, then loop until the plan
/// ends. `ready` receives one message per worker once its connection is open.
pub(crate) fn spawn(
    n: usize,
    target: &Arc<Target>,
    state: &Arc<ClosedLoop>,
    shared: &Arc<Shared>,
    ready: &mpsc::UnboundedSender<()>,
    go: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) {
    for _ in 0..n {
        let mut conn = Connection::new(Arc::clone(target));
        let (state, shared, ready, mut go) = (
            Arc::clone(state),
            Arc::clone(shared),
            ready.clone(),
            go.clone(),
        );
        tasks.spawn(async move {
            shared.warm(&mut conn).await;
            let _ = ready.send(());
            if go.wait_for(|g| *g).await.is_err() {
                return;
            }
            let mut hard = shared.hard_cancel.clone();
            while let Some((index, warmup)) = state.claim(&shared) {
                let intended_ns = shared.clock.now_ns();
                let mut spec = state.workload.spec(index);
                spec.warmup = warmup;
                run_request(&mut conn, &spec, intended_ns, &shared, &mut hard).await;
            }
        });
    }
}

/// Records the start instant the workers measure warm-up and duration from.
pub(crate) fn start(state: &ClosedLoop) {
    let _ = state.start.set(Instant::now());
}
