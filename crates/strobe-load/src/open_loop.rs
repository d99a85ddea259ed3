//! Open loop (and offline): a dispatcher sends each request at its intended instant, whatever the
//! server does.
//!
//! The dispatcher draws intended instants from the arrival process, sleeps until each, and hands
//! the request to an idle worker, opening a new one (a new connection) when none is idle and the
//! cap allows. With the cap reached, the request waits for a worker; its wait is its queue delay.
//! Requests whose instant came but that the cap kept from being sent before the duration ended
//! (or the run was stopped) are counted as `unsent`, never dropped silently. Offline is the same
//! loop with every request due at the start. A class may carry a steered cap
//! ([`crate::plan::Steer`]): the number in flight is kept at or under its current value too (0
//! pauses the class), so a controller outside (the gateway's) can make a batch yield. A workload
//! drawn from a shared pool ends the class when it is empty ([`strobe_workload::Workload::claim`]).

use std::sync::Arc;
use strobe_client::Connection;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::arrival::ArrivalProcess;
use crate::class::Class;
use crate::gate::Signals;
use crate::plan::{ClassResult, StopReason};
use crate::worker::{run_request, Job, Prepared, Shared};

/// Counting unsent requests stops here (an uncapped loop at an absurd rate cannot hang).
const MAX_COUNTED: u64 = 100_000_000;

struct Pool {
    class: Arc<Class>,
    shared: Arc<Shared>,
    idle_tx: mpsc::UnboundedSender<usize>,
    senders: Vec<mpsc::Sender<Job>>,
    tasks: JoinSet<()>,
}

impl Pool {
    fn spawn(&mut self) -> usize {
        let id = self.senders.len();
        let (tx, mut jobs) = mpsc::channel::<Job>(1);
        self.senders.push(tx);
        let mut conn = Connection::new(Arc::clone(&self.class.plan.target));
        let (class, shared, idle) = (
            Arc::clone(&self.class),
            Arc::clone(&self.shared),
            self.idle_tx.clone(),
        );
        self.tasks.spawn(async move {
            // A bounded number of connects at a time; the first job waits, and its wait is queue
            // delay.
            shared.warm(&mut conn).await;
            let mut hard = shared.hard_cancel.clone();
            while let Some(job) = jobs.recv().await {
                run_request(&mut conn, &job, &shared, &class.plan, &mut hard).await;
                if idle.send(id).is_err() {
                    break;
                }
            }
        });
        id
    }
}

/// Requests due from `first` (included, if before `until`) on, before `until`, at most `remaining`.
fn count_due(
    first: Instant,
    start: Instant,
    arrivals: &mut ArrivalProcess,
    until: Instant,
    remaining: Option<u64>,
) -> u64 {
    let cap = remaining.unwrap_or(MAX_COUNTED).min(MAX_COUNTED);
    let mut n = 0;
    let mut at = first;
    while at < until && n < cap {
        n += 1;
        at = start + arrivals.next_offset();
    }
    n
}

/// Returns when a steered cap changes; never when there is none (or its sender is gone).
async fn steer_changed(steer: &mut Option<watch::Receiver<u32>>) {
    if let Some(s) = steer {
        if s.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// Waits until `at`; `Err(reason)` if the class must stop first.
async fn wait_until(at: Instant, signals: &mut Signals) -> Result<(), StopReason> {
    loop {
        if let Some(r) = signals.reason() {
            return Err(r);
        }
        if at <= Instant::now() {
            return Ok(());
        }
        tokio::select! {
            biased;
            _ = signals.changed() => {}
            _ = tokio::time::sleep_until(at) => return Ok(()),
        }
    }
}

pub(crate) async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Dispatches until the class ends, then waits for its workers.
pub(crate) async fn run(
    class: Arc<Class>,
    shared: Arc<Shared>,
    mut arrivals: ArrivalProcess,
    max_concurrency: Option<u32>,
) -> ClassResult {
    let (idle_tx, mut idle_rx) = mpsc::unbounded_channel();
    let mut pool = Pool {
        class: Arc::clone(&class),
        shared: Arc::clone(&shared),
        idle_tx,
        senders: Vec::new(),
        tasks: JoinSet::new(),
    };
    let cap = max_concurrency.map_or(usize::MAX, |m| m.max(1) as usize);
    let plan = &class.plan;
    let gate = &class.gate;
    let mut signals = gate.signals();
    let start = Instant::now();
    gate.start(start);
    let mut unsent = 0u64;
    // Idle workers in the order they became idle (the longest idle is reused first, as the
    // channel alone did, so no keep-alive connection sits unused long enough to be closed), and
    // workers with a request: a steered cap counts the busy ones.
    let mut idle: std::collections::VecDeque<usize> = Default::default();
    let mut busy = 0usize;
    let mut steer = plan.steer.as_ref().map(|s| s.0.clone());

    loop {
        let at = start + arrivals.next_offset();
        let index = class.claim_index();
        let Some(warmup) = gate.admit(at, index, &plan.progress) else {
            // A refusal by count or duration means nothing more was due; a stop leaves the
            // arrivals that were already due unsent.
            if !matches!(
                gate.reason(),
                Some(StopReason::RequestCount | StopReason::Duration)
            ) {
                unsent += count_due(at, start, &mut arrivals, Instant::now(), gate.remaining());
            }
            break;
        };
        if !plan.workload.claim(index) {
            // A shared pool ran dry: nothing more is due for this class.
            gate.unadmit(warmup);
            gate.stop_with(StopReason::RequestCount);
            break;
        }
        // Build the request before waiting for its arrival time, so that generating it uses the
        // idle gap instead of delaying the send.
        let prepared = Prepared::start(&plan.workload, index, plan.id);
        if let Err(reason) = wait_until(at, &mut signals).await {
            gate.unadmit(warmup);
            gate.stop_with(reason);
            unsent += count_due(at, start, &mut arrivals, Instant::now(), gate.remaining());
            break;
        }
        let waited = loop {
            while let Ok(id) = idle_rx.try_recv() {
                idle.push_back(id);
                busy -= 1;
            }
            let limit = steer
                .as_ref()
                .map_or(cap, |s| cap.min(*s.borrow() as usize));
            if busy < limit {
                // Workers are busy or idle, so with none idle there are `busy` < `cap` of them.
                break Ok(idle.pop_front().unwrap_or_else(|| pool.spawn()));
            }
            tokio::select! {
                biased;
                r = gate.stopped(&mut signals, &plan.progress) => break Err((r, Instant::now())),
                _ = sleep_until_opt(gate.deadline()) => {
                    break Err((StopReason::Duration, gate.deadline().unwrap_or_else(Instant::now)));
                }
                id = idle_rx.recv() => match id {
                    Some(id) => {
                        idle.push_back(id);
                        busy -= 1;
                    }
                    None => break Err((
                        StopReason::Internal("every worker of the open loop exited".into()),
                        Instant::now(),
                    )),
                },
                _ = steer_changed(&mut steer) => {}
            }
        };
        let worker = match waited {
            Ok(id) => id,
            Err((reason, until)) => {
                gate.unadmit(warmup);
                gate.stop_with(reason);
                unsent += count_due(at, start, &mut arrivals, until, gate.remaining());
                break;
            }
        };
        let Some(mut spec) = prepared.take().await else {
            gate.unadmit(warmup);
            gate.stop_with(StopReason::Internal("building a request panicked".into()));
            break;
        };
        spec.warmup = warmup;
        let job = Job {
            spec,
            intended_ns: shared.clock.offset_of(at.into_std()),
            batch: None,
        };
        busy += 1;
        if pool.senders[worker].try_send(job).is_err() {
            // Unreachable by construction (only idle workers get jobs); never lose a request silently.
            gate.stop_with(StopReason::Internal("a worker was not idle".into()));
            unsent += 1;
            break;
        }
    }
    let connections = pool.senders.len();
    // Closing the job channels lets each worker finish its current request and exit.
    pool.senders.clear();
    while pool.tasks.join_next().await.is_some() {}
    class.result(connections, unsent)
}
