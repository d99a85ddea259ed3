//! Closed loop: N workers, each sending its next request the moment its previous one ends.
//!
//! No dispatcher sits between a finished request and the next: each worker claims the next request
//! index and builds the request itself, so a slot is never idle waiting for another task to be
//! scheduled, even when the server answers in microseconds. For costly workloads (generated
//! images) a worker builds its next request on the blocking pool while the current one runs.

use std::sync::Arc;
use strobe_client::Connection;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::class::Class;
use crate::plan::{ClassResult, StopReason};
use crate::worker::{run_request, Job, Prepared, Shared, StartBarrier};

/// Runs the class's closed loop to its end: opens `concurrency` connections, starts them together,
/// returns when every worker is done.
pub(crate) async fn run(class: Arc<Class>, shared: Arc<Shared>, concurrency: u32) -> ClassResult {
    let n = concurrency.max(1) as usize;
    let mut barrier = StartBarrier::new();
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let mut conn = Connection::new(Arc::clone(&class.plan.target));
        let (class, shared, member) = (Arc::clone(&class), Arc::clone(&shared), barrier.member());
        tasks.spawn(async move {
            if member.arrive(&shared, &mut conn).await {
                worker(&class, &shared, &mut conn).await;
            }
        });
    }
    let _go = barrier.open(&class.gate).await;
    while tasks.join_next().await.is_some() {}
    class.result(n, 0)
}

async fn worker(class: &Class, shared: &Shared, conn: &mut Connection) {
    let plan = &class.plan;
    let costly = plan.workload.costly();
    let mut hard = shared.hard_cancel.clone();
    let mut next: Option<(u64, Prepared)> = None;
    loop {
        let now = Instant::now();
        let (index, prepared) = next.take().unwrap_or_else(|| {
            let i = class.claim_index();
            (i, Prepared::start(&plan.workload, i, plan.id))
        });
        let Some(warmup) = class.gate.admit(now, index, &plan.progress) else {
            break;
        };
        let intended_ns = shared.clock.offset_of(now.into_std());
        let Some(mut spec) = prepared.take().await else {
            class
                .gate
                .stop_with(StopReason::Internal("building a request panicked".into()));
            break;
        };
        if costly {
            let i = class.claim_index();
            next = Some((i, Prepared::start(&plan.workload, i, plan.id)));
        }
        spec.warmup = warmup;
        let job = Job {
            spec,
            intended_ns,
            batch: None,
        };
        run_request(conn, &job, shared, plan, &mut hard).await;
    }
}
