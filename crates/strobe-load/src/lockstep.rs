//! Lockstep batches (seed 001): B requests released together on B open connections; the next
//! batch goes once every member of this one has completed. Records carry their batch index, so
//! batch latency (the slowest member's E2E) is derived from records like every other metric.

use std::sync::Arc;
use strobe_client::Connection;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::class::Class;
use crate::plan::{ClassResult, StopReason};
use crate::worker::{run_request, Job, Prepared, Shared, StartBarrier};

pub(crate) async fn run(class: Arc<Class>, shared: Arc<Shared>, batch_size: u32) -> ClassResult {
    let b = batch_size.max(1) as usize;
    let plan = &class.plan;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let mut barrier = StartBarrier::new();
    let mut senders = Vec::with_capacity(b);
    let mut tasks = JoinSet::new();
    for _ in 0..b {
        let (tx, mut jobs) = mpsc::channel::<Job>(1);
        senders.push(tx);
        let mut conn = Connection::new(Arc::clone(&plan.target));
        let (class, shared, done, member) = (
            Arc::clone(&class),
            Arc::clone(&shared),
            done_tx.clone(),
            barrier.member(),
        );
        tasks.spawn(async move {
            if !member.arrive(&shared, &mut conn).await {
                return;
            }
            let mut hard = shared.hard_cancel.clone();
            while let Some(job) = jobs.recv().await {
                run_request(&mut conn, &job, &shared, &class.plan, &mut hard).await;
                let _ = done.send(());
            }
        });
    }
    drop(done_tx);
    let gate = &class.gate;
    let _go = barrier.open(gate).await;

    let mut batch = 0u64;
    'batches: while let Some(warmup) = gate.admit(Instant::now(), batch, &plan.progress) {
        // Build every member first (costly ones in parallel on the blocking pool), so the batch
        // leaves at one instant.
        let prepared: Vec<Prepared> = (0..b)
            .map(|_| Prepared::start(&plan.workload, class.claim_index(), plan.id))
            .collect();
        let mut specs = Vec::with_capacity(b);
        for p in prepared {
            match p.take().await {
                Some(mut s) => {
                    s.warmup = warmup;
                    specs.push(s);
                }
                None => {
                    gate.stop_with(StopReason::Internal("building a request panicked".into()));
                    break 'batches;
                }
            }
        }
        let intended_ns = shared.clock.now_ns();
        let mut sent = 0;
        for (tx, spec) in senders.iter().zip(specs) {
            let job = Job {
                spec,
                intended_ns,
                batch: Some(batch),
            };
            if tx.send(job).await.is_ok() {
                sent += 1;
            }
        }
        for _ in 0..sent {
            if done_rx.recv().await.is_none() {
                break;
            }
        }
        batch += 1;
    }
    senders.clear();
    while tasks.join_next().await.is_some() {}
    let mut result = class.result(b, 0);
    if result.stop_reason == StopReason::RequestCount {
        result.stop_reason = StopReason::BatchesDone;
    }
    result
}
