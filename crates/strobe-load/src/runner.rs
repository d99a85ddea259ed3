//! Driving a load from start to end: the closed or open loop, then the drain.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use strobe_client::Target;
use strobe_core::{RequestRecord, RunClock};
use strobe_workload::Workload;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::arrival::{ArrivalError, ArrivalProcess};
use crate::closed_loop::{self, ClosedLoop};
use crate::open_loop;
use crate::plan::{LoadMode, LoadPlan, LoadResult, Progress, StopSignal, StopState};
use crate::worker::Shared;

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
    let (hard_tx, hard_rx) = watch::channel(false);
    let shared = Arc::new(Shared::new(clock, records, Arc::clone(&progress), hard_rx));
    let mut tasks = JoinSet::new();

    let (mut result, closed) = match plan.mode {
        LoadMode::Concurrency(n) => {
            let n = n.max(1) as usize;
            let state = Arc::new(ClosedLoop::new(plan.clone(), workload, stop.0.clone()));
            let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
            let (go_tx, go_rx) = watch::channel(false);
            closed_loop::spawn(n, &target, &state, &shared, &ready_tx, &go_rx, &mut tasks);
            drop(ready_tx);
            // Start only once every connection is open, so that a connection storm does not
            // overlap the first measured requests.
            let mut opened = 0;
            while opened < n {
                tokio::select! {
                    biased;
                    _ = stop.0.changed() => break,
                    r = ready_rx.recv() => match r {
                        Some(()) => opened += 1,
                        None => break,
                    },
                }
            }
            closed_loop::start(&state);
            let _ = go_tx.send(true);
            let result = LoadResult {
                workers: n,
                ..LoadResult::default()
            };
            (result, Some((state, go_tx)))
        }
        LoadMode::Rate {
            rate,
            arrival,
            max_concurrency,
        } => {
            let arrivals = ArrivalProcess::new(arrival, rate, plan.seed)?;
            let result = open_loop::dispatch(
                &plan,
                arrivals,
                max_concurrency,
                target,
                workload,
                Arc::clone(&shared),
                &mut stop,
                &mut tasks,
            )
            .await;
            (result, None)
        }
    };
    drop(shared);

    // Wait for every worker: closed-loop workers stop on their own when the plan ends; open-loop
    // ones once their job channel closed (it did when `dispatch` returned). A stop request starts
    // the drain bound; past it, or on a second request, in-flight requests are cancelled.
    let mut drain_deadline = result
        .interrupted
        .then(|| Instant::now() + plan.drain_timeout);
    if *stop.0.borrow() == StopState::Cancel {
        let _ = hard_tx.send(true);
    }
    loop {
        tokio::select! {
            joined = tasks.join_next() => if joined.is_none() { break },
            _ = sleep_until_opt(drain_deadline) => {
                let _ = hard_tx.send(true);
                drain_deadline = None;
            }
            changed = stop.0.changed() => {
                if changed.is_err() {
                    continue;
                }
                result.interrupted = true;
                match *stop.0.borrow() {
                    StopState::Cancel => {
                        let _ = hard_tx.send(true);
                    }
                    _ => {
                        if drain_deadline.is_none() && !*hard_tx.borrow() {
                            drain_deadline = Some(Instant::now() + plan.drain_timeout);
                        }
                    }
                }
            }
        }
    }

    if let Some((state, _go)) = closed {
        result.aborted = state.aborted.load(Ordering::Relaxed);
        let reason = state
            .stop_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if result.stop_reason.is_empty() {
            result.stop_reason = reason.unwrap_or_else(|| "stopped".into());
        }
    }
    if result.interrupted && !result.stop_reason.starts_with("interrupted") {
        result.stop_reason = format!("interrupted ({})", result.stop_reason);
    }
    Ok(result)
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
