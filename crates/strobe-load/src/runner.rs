//! Driving a run from start to end: every class's schedule at once on one set of shared handles,
//! the "stop with another class" rule, the user's stop, the drain bound and the final cancel.

use std::sync::Arc;
use strobe_core::{RequestRecord, RunClock};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::arrival::ArrivalProcess;
use crate::class::Class;
use crate::gate::{Gate, Signals};
use crate::open_loop::sleep_until_opt;
use crate::plan::{
    ClassResult, PlanError, RunPlan, RunResult, Schedule, StopReason, StopSignal, StopState,
};
use crate::worker::Shared;
use crate::{closed_loop, lockstep, open_loop};

/// Records waiting for the records thread at most; past this, workers wait (and the waits are
/// reported as back-pressure).
pub const RECORDS_CHANNEL: usize = 16 * 1024;

/// A bounded records channel of the size [`run`] expects.
pub fn records_channel() -> (mpsc::Sender<RequestRecord>, mpsc::Receiver<RequestRecord>) {
    mpsc::channel(RECORDS_CHANNEL)
}

/// Runs the plan to its end and returns how it ended. Records go to `records` as requests finish;
/// the channel closes when the last worker is done.
pub async fn run(
    plan: RunPlan,
    clock: RunClock,
    records: mpsc::Sender<RequestRecord>,
    mut stop: StopSignal,
) -> Result<RunResult, PlanError> {
    plan.validate()?;
    let (hard_tx, hard_rx) = watch::channel(false);
    let (abort_tx, abort_rx) = watch::channel(None);
    let shared = Arc::new(Shared::new(
        clock,
        records,
        Arc::clone(&plan.progress),
        hard_rx,
        abort_rx.clone(),
    ));
    let abort_tx = Arc::new(abort_tx);
    let mut halts = Vec::with_capacity(plan.classes.len());
    let mut classes = Vec::with_capacity(plan.classes.len());
    let mut tasks = JoinSet::new();
    for (i, c) in plan.classes.iter().enumerate() {
        let (halt_tx, halt_rx) = watch::channel(None);
        halts.push(halt_tx);
        let signals = Signals {
            stop: stop.0.clone(),
            abort: abort_rx.clone(),
            halt: halt_rx,
        };
        let limit = match c.schedule {
            Schedule::Lockstep { batches, .. } => Some(batches),
            _ => c.limits.requests,
        };
        let gate = Gate::new(
            &c.name,
            &c.limits,
            limit,
            c.warmup,
            plan.abort_after_failures,
            c.abort,
            signals,
            Arc::clone(&abort_tx),
        );
        let class = Arc::new(Class::new(c.clone(), gate));
        classes.push(Arc::clone(&class));
        let shared = Arc::clone(&shared);
        tasks.spawn(async move { (i, drive(class, shared).await) });
    }

    let mut results: Vec<Option<ClassResult>> = vec![None; plan.classes.len()];
    let mut drain_deadline = None;
    let mut interrupted = false;
    loop {
        if stop.state() != StopState::Running && !interrupted {
            interrupted = true;
            if stop.state() == StopState::Cancel {
                let _ = hard_tx.send(true);
            } else {
                drain_deadline = Some(Instant::now() + plan.drain_timeout);
            }
        }
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok((i, result))) => {
                    // Classes that run as long as this one stop sending now.
                    let id = plan.classes[i].id;
                    for (j, c) in plan.classes.iter().enumerate() {
                        if c.limits.until_class == Some(id) {
                            let _ = halts[j].send(Some(plan.classes[i].name.clone()));
                        }
                    }
                    results[i] = Some(result);
                }
                Some(Err(e)) => {
                    // A class task panicked: stop everything, keep what was measured.
                    let _ = abort_tx.send(Some(format!("internal error: {e}")));
                }
            },
            _ = sleep_until_opt(drain_deadline) => {
                let _ = hard_tx.send(true);
                drain_deadline = None;
            }
            changed = stop.0.changed() => {
                if changed.is_ok() && stop.state() == StopState::Cancel {
                    let _ = hard_tx.send(true);
                }
            }
        }
    }
    let classes: Vec<ClassResult> = results
        .into_iter()
        .zip(&classes)
        .map(|(r, c)| r.unwrap_or_else(|| c.result(0, 0)))
        .collect();
    let aborted = classes.iter().any(|c| c.stop_reason.is_abort());
    Ok(RunResult {
        interrupted: interrupted
            || classes
                .iter()
                .any(|c| c.stop_reason == StopReason::Interrupted),
        aborted,
        classes,
        backpressure: shared.backpressure(),
    })
}

async fn drive(class: Arc<Class>, shared: Arc<Shared>) -> ClassResult {
    let delay = class.plan.start_after;
    if !delay.is_zero() {
        let mut signals = class.gate.signals();
        tokio::select! {
            r = signals.stopped() => {
                class.gate.stop_with(r);
                return class.result(0, 0);
            }
            _ = tokio::time::sleep(delay) => {}
        }
    }
    match class.plan.schedule {
        Schedule::Closed { concurrency } => closed_loop::run(class, shared, concurrency).await,
        Schedule::Open {
            rate,
            arrival,
            max_concurrency,
        } => match ArrivalProcess::new(arrival, rate, class.plan.seed) {
            Ok(arrivals) => open_loop::run(class, shared, arrivals, max_concurrency).await,
            Err(e) => {
                class.gate.stop_with(StopReason::Internal(e.to_string()));
                class.result(0, 0)
            }
        },
        Schedule::Offline { max_concurrency } => {
            open_loop::run(class, shared, ArrivalProcess::offline(), max_concurrency).await
        }
        Schedule::Lockstep { batch_size, .. } => lockstep::run(class, shared, batch_size).await,
    }
}
