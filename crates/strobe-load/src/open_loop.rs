//! Open loop: a dispatcher sends each request at its intended instant, whatever the server does.
//!
//! The dispatcher draws intended instants from the arrival process, sleeps until each, and hands
//! the request to an idle worker, opening a new one (a new connection) when none is idle and the
//! cap allows. With a cap reached, the request waits for a worker; its wait is its queue delay.

use std::sync::Arc;
use strobe_client::{Connection, Target};
use strobe_core::RequestSpec;
use strobe_workload::Workload;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::arrival::ArrivalProcess;
use crate::plan::{LoadPlan, LoadResult, StopSignal, StopState};
use crate::worker::{run_request, Shared};

struct Job {
    spec: RequestSpec,
    intended_ns: u64,
}

struct Pool {
    target: Arc<Target>,
    shared: Arc<Shared>,
    idle_tx: mpsc::UnboundedSender<usize>,
    senders: Vec<mpsc::Sender<Job>>,
}

impl Pool {
    fn spawn(&mut self, tasks: &mut JoinSet<()>) -> usize {
        let id = self.senders.len();
        let (tx, mut jobs) = mpsc::channel::<Job>(1);
        self.senders.push(tx);
        let mut conn = Connection::new(Arc::clone(&self.target));
        let (shared, idle) = (Arc::clone(&self.shared), self.idle_tx.clone());
        tasks.spawn(async move {
            let mut hard = shared.hard_cancel.clone();
            while let Some(job) = jobs.recv().await {
                run_request(&mut conn, &job.spec, job.intended_ns, &shared, &mut hard).await;
                if idle.send(id).is_err() {
                    break;
                }
            }
        });
        id
    }
}

/// Why the dispatcher stopped waiting.
enum Wake {
    Ready,
    Stop,
    Deadline,
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

/// Dispatches until the plan ends. Workers go into `tasks`; they exit when this returns (their job
/// channels close) after finishing their current request.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn dispatch(
    plan: &LoadPlan,
    mut arrivals: ArrivalProcess,
    max_concurrency: Option<u32>,
    target: Arc<Target>,
    workload: Arc<dyn Workload>,
    shared: Arc<Shared>,
    stop: &mut StopSignal,
    tasks: &mut JoinSet<()>,
) -> LoadResult {
    let (idle_tx, mut idle_rx) = mpsc::unbounded_channel();
    let mut pool = Pool {
        target,
        shared: Arc::clone(&shared),
        idle_tx,
        senders: Vec::new(),
    };
    let cap = max_concurrency.map_or(usize::MAX, |m| m.max(1) as usize);
    let progress = &shared.progress;
    let clock = shared.clock;

    let load_start = Instant::now();
    let warmup_end = load_start + plan.warmup_duration;
    let mut measured_deadline: Option<Instant> = None;
    let mut index = 0u64;
    let mut measured = 0u64;
    let mut result = LoadResult::default();

    'dispatch: loop {
        if *stop.0.borrow() != StopState::Running {
            result.interrupted = true;
            result.stop_reason = "interrupted".into();
            break;
        }
        if plan.abort_after_failures > 0 {
            let done = progress
                .completed
                .load(std::sync::atomic::Ordering::Relaxed);
            if done >= plan.abort_after_failures
                && progress.failed.load(std::sync::atomic::Ordering::Relaxed) == done
            {
                result.aborted = true;
                result.stop_reason = format!("aborted: all of the first {done} requests failed");
                break;
            }
        }

        let at = load_start + arrivals.next_offset();
        let warmup = index < plan.warmup_requests || at < warmup_end;
        if !warmup {
            if plan.requests.is_some_and(|n| measured >= n) {
                result.stop_reason = "request count reached".into();
                break;
            }
            if measured_deadline.is_none() {
                measured_deadline = plan.duration.map(|d| at + d);
            }
        }
        // Build the request before waiting for its arrival time, so that generating it (images,
        // long prompts) uses the idle gap instead of delaying the send.
        let mut spec = workload.spec(index);
        spec.warmup = warmup;
        match wait_until(at, measured_deadline, stop).await {
            Wake::Ready => {}
            Wake::Stop => continue 'dispatch,
            Wake::Deadline => {
                result.stop_reason = "duration reached".into();
                break;
            }
        }

        let worker = if let Ok(id) = idle_rx.try_recv() {
            id
        } else if pool.senders.len() < cap {
            pool.spawn(tasks)
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

        if !warmup {
            measured += 1;
        }
        let intended_ns = clock.offset_of(at.into_std());
        if pool.senders[worker]
            .try_send(Job { spec, intended_ns })
            .is_err()
        {
            // Unreachable by construction (only idle workers get jobs); never lose a request silently.
            result.stop_reason = "internal error: a worker was not idle".into();
            break;
        }
        index += 1;
    }
    result.workers = pool.senders.len();
    result
}
