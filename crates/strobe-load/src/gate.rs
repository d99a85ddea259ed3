//! The rules every schedule shares: whether the next request (or lockstep batch) may go, and
//! whether it is warm-up. Stop requests, the abort rule, warm-up by count and time, the request
//! limit, the duration and the "stop with another class" rule all live here, once.
//!
//! A schedule asks [`Gate::admit`] with the request's intended instant (closed loop and lockstep:
//! now; open loop: its arrival instant) and the unit's index (request index; lockstep: batch
//! index). The first refusal's reason is kept.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::plan::{
    AbortRules, Limits, Progress, StopReason, StopState, Warmup, UNREACHABLE_ATTEMPTS,
};

/// Signals that end a class's sending, shared with its schedule's waits.
#[derive(Clone)]
pub(crate) struct Signals {
    /// The user's stop (all classes).
    pub stop: watch::Receiver<StopState>,
    /// The run's abort: the first class whose abort rule fired, by name (all classes).
    pub abort: watch::Receiver<Option<String>>,
    /// This class's own halt: the class it stops with has finished.
    pub halt: watch::Receiver<Option<String>>,
}

impl Signals {
    /// Why sending must end now, if it must.
    pub fn reason(&self) -> Option<StopReason> {
        if *self.stop.borrow() != StopState::Running {
            return Some(StopReason::Interrupted);
        }
        if let Some(by) = self.abort.borrow().clone() {
            return Some(StopReason::RunAborted { by });
        }
        if let Some(class) = self.halt.borrow().clone() {
            return Some(StopReason::WithClass { class });
        }
        None
    }

    /// Resolves when any signal changes (the caller re-checks [`Signals::reason`]).
    pub async fn changed(&mut self) {
        tokio::select! {
            r = self.stop.changed() => if r.is_err() { std::future::pending::<()>().await },
            r = self.abort.changed() => if r.is_err() { std::future::pending::<()>().await },
            r = self.halt.changed() => if r.is_err() { std::future::pending::<()>().await },
        }
    }

    /// Resolves once a reason to stop exists.
    pub async fn stopped(&mut self) -> StopReason {
        loop {
            if let Some(r) = self.reason() {
                return r;
            }
            self.changed().await;
        }
    }
}

/// One class's admission state.
pub(crate) struct Gate {
    name: String,
    limit: Option<u64>,
    duration: Option<Duration>,
    warmup: Warmup,
    abort_after_failures: u64,
    rules: AbortRules,
    signals: Signals,
    abort_tx: std::sync::Arc<watch::Sender<Option<String>>>,
    /// When the class began (after its start delay).
    start: OnceLock<Instant>,
    /// Stop sending at this instant (set by the first measured unit when a duration is given).
    deadline: OnceLock<Instant>,
    measured: AtomicU64,
    reason: Mutex<Option<StopReason>>,
    pub aborted: AtomicBool,
}

impl Gate {
    /// `limit` counts units: requests, or batches for lockstep.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        limits: &Limits,
        limit: Option<u64>,
        warmup: Warmup,
        abort_after_failures: u64,
        rules: AbortRules,
        signals: Signals,
        abort_tx: std::sync::Arc<watch::Sender<Option<String>>>,
    ) -> Gate {
        Gate {
            name: name.to_owned(),
            limit,
            duration: limits.duration,
            warmup,
            abort_after_failures,
            rules,
            signals,
            abort_tx,
            start: OnceLock::new(),
            deadline: OnceLock::new(),
            measured: AtomicU64::new(0),
            reason: Mutex::new(None),
            aborted: AtomicBool::new(false),
        }
    }

    pub fn signals(&self) -> Signals {
        self.signals.clone()
    }

    /// Marks the class's start: warm-up time is measured from it.
    pub fn start(&self, at: Instant) {
        let _ = self.start.set(at);
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.get().copied()
    }

    /// Records `reason` unless an earlier one was recorded.
    pub fn stop_with(&self, reason: StopReason) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        r.get_or_insert(reason);
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Measured units admitted so far.
    pub fn measured(&self) -> u64 {
        self.measured.load(Ordering::Relaxed)
    }

    /// Measured units the limit still allows (`None`: no count limit).
    pub fn remaining(&self) -> Option<u64> {
        self.limit.map(|l| l.saturating_sub(self.measured()))
    }

    /// May unit `index`, intended at `at`, go? `Some(warmup)` if so; `None` (with the reason
    /// recorded) if the class must stop sending.
    pub fn admit(&self, at: Instant, index: u64, progress: &Progress) -> Option<bool> {
        if let Some(r) = self.signals.reason() {
            self.stop_with(r);
            return None;
        }
        if self.check_rules(progress).is_some() {
            return None;
        }
        if self.deadline.get().is_some_and(|d| at >= *d) {
            self.stop_with(StopReason::Duration);
            return None;
        }
        let start = *self.start.get_or_init(|| at);
        let warmup = index < self.warmup.requests || at < start + self.warmup.duration;
        if !warmup {
            let n = self.measured.fetch_add(1, Ordering::Relaxed);
            if self.limit.is_some_and(|limit| n >= limit) {
                self.measured.fetch_sub(1, Ordering::Relaxed);
                self.stop_with(StopReason::RequestCount);
                return None;
            }
            if let Some(d) = self.duration {
                let deadline = *self.deadline.get_or_init(|| at + d);
                if at >= deadline {
                    self.measured.fetch_sub(1, Ordering::Relaxed);
                    self.stop_with(StopReason::Duration);
                    return None;
                }
            }
        }
        Some(warmup)
    }

    /// Checks the abort rules; when one fires, records it, stops the run and returns it.
    pub fn check_rules(&self, progress: &Progress) -> Option<StopReason> {
        let fired = self.rule_fired(progress)?;
        self.aborted.store(true, Ordering::Relaxed);
        self.stop_with(fired.clone());
        self.abort_tx.send_if_modified(|a| {
            if a.is_none() {
                *a = Some(self.name.clone());
                true
            } else {
                false
            }
        });
        Some(fired)
    }

    fn rule_fired(&self, progress: &Progress) -> Option<StopReason> {
        let done = progress.completed.load(Ordering::Relaxed);
        let failed = progress.failed.load(Ordering::Relaxed);
        if self.abort_after_failures > 0 && done >= self.abort_after_failures && failed == done {
            return Some(StopReason::Aborted { failed: done });
        }
        if let Some(limit) = self.rules.max_failures {
            if failed > limit {
                return Some(StopReason::TooManyFailures { failed, limit });
            }
        }
        if let (Some(d), Some(start)) = (self.rules.unreachable_for, self.start.get()) {
            let streak = progress.unreachable_streak.load(Ordering::Relaxed);
            if streak >= UNREACHABLE_ATTEMPTS {
                // Quiet since the last response, or since the start when none came.
                let last = progress.last_response_ns.load(Ordering::Relaxed);
                let quiet = if last > 0 {
                    Duration::from_nanos(crate::plan::mono_ns().saturating_sub(last))
                } else {
                    start.elapsed()
                };
                if quiet >= d {
                    return Some(StopReason::Unreachable {
                        seconds: quiet.as_secs(),
                        attempts: streak,
                    });
                }
            }
        }
        None
    }

    /// Resolves when the class must stop: a signal, or (checked each second, for classes whose
    /// workers are all busy retrying) an abort rule.
    pub async fn stopped(&self, signals: &mut Signals, progress: &Progress) -> StopReason {
        loop {
            if let Some(r) = signals.reason() {
                return r;
            }
            if let Some(r) = self.check_rules(progress) {
                return r;
            }
            tokio::select! {
                _ = signals.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Takes back an admitted measured unit that was never sent.
    pub fn unadmit(&self, warmup: bool) {
        if !warmup {
            self.measured.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
