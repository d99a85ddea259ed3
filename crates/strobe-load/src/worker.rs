//! Running one request on a worker's connection and reporting it: the one request path every
//! schedule shares.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use strobe_client::Connection;
use strobe_core::{ChunkArrivals, ClassId, Outcome, RequestRecord, RequestSpec, RunClock};
use strobe_workload::Workload;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::plan::{mono_ns, Backpressure, ClassPlan, Progress};

/// Connections opened at once while a load warms up: a burst of thousands of SYNs overflows many
/// servers' accept queues (each dropped SYN costs a one-second retransmission).
pub(crate) const WARM_CONNECTS: usize = 32;

/// What every worker of the run shares: read-mostly handles and atomic counters, no lock.
pub(crate) struct Shared {
    pub clock: RunClock,
    records: mpsc::Sender<RequestRecord>,
    pub total: Arc<Progress>,
    pub hard_cancel: watch::Receiver<bool>,
    /// The run's abort (a class's rule fired): requests waiting to retry give up.
    abort: watch::Receiver<Option<String>>,
    pub connecting: Semaphore,
    backpressure_waits: AtomicU64,
    backpressure_ns: AtomicU64,
}

impl Shared {
    pub fn new(
        clock: RunClock,
        records: mpsc::Sender<RequestRecord>,
        total: Arc<Progress>,
        hard_cancel: watch::Receiver<bool>,
        abort: watch::Receiver<Option<String>>,
    ) -> Shared {
        Shared {
            clock,
            records,
            total,
            hard_cancel,
            abort,
            connecting: Semaphore::new(WARM_CONNECTS),
            backpressure_waits: AtomicU64::new(0),
            backpressure_ns: AtomicU64::new(0),
        }
    }

    /// Opens `conn` ahead of its first request, a bounded number at a time. A failure here shows
    /// up as a connect error on the first request.
    pub async fn warm(&self, conn: &mut Connection) {
        let permit = self.connecting.acquire().await;
        let _ = conn.warm().await;
        drop(permit);
    }

    pub fn backpressure(&self) -> Backpressure {
        Backpressure {
            waits: self.backpressure_waits.load(Ordering::Relaxed),
            wait_s: self.backpressure_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }

    /// Hands a record to the records thread. The channel is bounded: when it is full the worker
    /// waits (and the wait is counted), so memory stays bounded and nothing is dropped.
    async fn report(&self, record: RequestRecord) {
        match self.records.try_send(record) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(record)) => {
                let t = std::time::Instant::now();
                let _ = self.records.send(record).await;
                self.backpressure_waits.fetch_add(1, Ordering::Relaxed);
                self.backpressure_ns
                    .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// One request ready to go.
pub(crate) struct Job {
    pub spec: RequestSpec,
    pub intended_ns: u64,
    pub batch: Option<u64>,
}

/// Sends `job` (again after a backoff while its failures are retryable and attempts remain),
/// records its last attempt (cancelled if the hard-cancel signal fires first) and reports it.
pub(crate) async fn run_request(
    conn: &mut Connection,
    job: &Job,
    shared: &Shared,
    plan: &ClassPlan,
    hard: &mut watch::Receiver<bool>,
) {
    let spec = &job.spec;
    let class = &*plan.progress;
    for p in [class, &*shared.total] {
        let now_in_flight = p.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        p.peak_in_flight.fetch_max(now_in_flight, Ordering::Relaxed);
        p.sent.fetch_add(1, Ordering::Relaxed);
    }
    let mut attempt = 0;
    let record = loop {
        attempt += 1;
        let mut record = RequestRecord {
            index: spec.index,
            class: spec.class,
            warmup: spec.warmup,
            intended_ns: job.intended_ns,
            sent_ns: 0,
            first_token_ns: None,
            end_ns: 0,
            chunk_arrivals_ns: ChunkArrivals::default(),
            input_tokens: None,
            input_tokens_source: None,
            output_tokens: None,
            output_tokens_source: None,
            expected_input_tokens: spec.input_tokens,
            batch: job.batch,
            attempts: attempt,
            outcome: Outcome::Cancelled,
            capture: None,
        };
        let cancelled = *hard.borrow() || {
            tokio::select! {
                biased;
                _ = hard.wait_for(|c| *c) => true,
                _ = conn.execute(spec, &shared.clock, &mut record) => false,
            }
        };
        if cancelled {
            let now = shared.clock.now_ns();
            if record.sent_ns == 0 {
                record.sent_ns = now;
            }
            record.end_ns = now;
            record.outcome = Outcome::Cancelled;
            conn.reset();
            break record;
        }
        let kind = match &record.outcome {
            Outcome::Failed { kind, .. } => Some(*kind),
            _ => None,
        };
        if kind.is_some_and(|k| k.unreachable()) {
            for p in [class, &*shared.total] {
                p.unreachable_streak.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            for p in [class, &*shared.total] {
                p.unreachable_streak.store(0, Ordering::Relaxed);
                p.last_response_ns.store(mono_ns(), Ordering::Relaxed);
            }
        }
        if !kind.is_some_and(|k| k.retryable() && attempt < plan.retry.max_attempts) {
            break record;
        }
        let retry_after = record.capture.as_ref().and_then(|c| c.retry_after_ms);
        let jitter = rand::random::<f64>();
        let wait = plan
            .retry
            .wait(attempt, retry_after.or(conn.retry_after_ms()), jitter);
        let mut abort = shared.abort.clone();
        let gave_up = tokio::select! {
            biased;
            _ = hard.wait_for(|c| *c) => true,
            _ = abort.wait_for(|a| a.is_some()) => true,
            _ = tokio::time::sleep(wait) => false,
        };
        if gave_up {
            // Stopped while it could still succeed: no final result.
            if let Some(c) = record.capture.as_mut() {
                c.unfinished = true;
            }
            break record;
        }
        for p in [class, &*shared.total] {
            p.retries.fetch_add(1, Ordering::Relaxed);
        }
    };
    let failed = !record.outcome.is_success();
    let error_kind = match &record.outcome {
        Outcome::Failed { kind, .. } => Some(kind.label()),
        Outcome::Cancelled => Some("cancelled".to_owned()),
        Outcome::Success => None,
    };
    for p in [class, &*shared.total] {
        p.in_flight.fetch_sub(1, Ordering::Relaxed);
        if failed {
            p.failed.fetch_add(1, Ordering::Relaxed);
            if let (Some(k), Ok(mut errors)) = (&error_kind, p.errors.lock()) {
                *errors.entry(k.clone()).or_default() += 1;
            }
        } else if !record.warmup {
            if let Some(t) = record.ttft_ns() {
                p.ttft.record(t);
            }
            p.e2e.record(record.e2e_ns());
        }
        if let Some(n) = record.output_tokens {
            p.output_tokens.fetch_add(n as u64, Ordering::Relaxed);
        }
        // Completed last, so that `failed ≤ completed` holds for every reader.
        p.completed.fetch_add(1, Ordering::Relaxed);
    }
    shared.report(record).await;
}

/// A request spec being prepared. Cheap workloads build it in place; costly ones (generated
/// images) on the blocking pool, so encoding never runs on the runtime's threads and can overlap
/// the request before it.
pub(crate) enum Prepared {
    Ready(RequestSpec),
    Building(JoinHandle<RequestSpec>),
}

impl Prepared {
    pub fn start(workload: &Arc<dyn Workload>, index: u64, class: ClassId) -> Prepared {
        if workload.costly() {
            let w = Arc::clone(workload);
            Prepared::Building(tokio::task::spawn_blocking(move || {
                let mut s = w.spec(index);
                s.class = class;
                s
            }))
        } else {
            let mut s = workload.spec(index);
            s.class = class;
            Prepared::Ready(s)
        }
    }

    /// The spec (for a costly one, once its thread is done). `None` only if that thread panicked.
    pub async fn take(self) -> Option<RequestSpec> {
        match self {
            Prepared::Ready(s) => Some(s),
            Prepared::Building(h) => h.await.ok(),
        }
    }
}

/// Connections opened before the start: every worker opens its connection (a bounded number at
/// a time), says so, and waits; the schedule starts once all are open (or a stop came), so that a
/// connection storm does not overlap the first measured requests.
pub(crate) struct StartBarrier {
    ready_tx: Option<mpsc::UnboundedSender<()>>,
    ready_rx: mpsc::UnboundedReceiver<()>,
    go_tx: watch::Sender<bool>,
    members: usize,
}

/// One worker's side of a [`StartBarrier`].
pub(crate) struct Member {
    ready: mpsc::UnboundedSender<()>,
    go: watch::Receiver<bool>,
}

impl StartBarrier {
    pub fn new() -> StartBarrier {
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        StartBarrier {
            ready_tx: Some(ready_tx),
            ready_rx,
            go_tx: watch::channel(false).0,
            members: 0,
        }
    }

    pub fn member(&mut self) -> Member {
        self.members += 1;
        Member {
            ready: self
                .ready_tx
                .clone()
                .expect("members join before the start"),
            go: self.go_tx.subscribe(),
        }
    }

    /// Waits until every member's connection is open or the class must stop, then starts the
    /// class's clock and releases the members. Keep the returned sender until they are done.
    pub async fn open(mut self, gate: &crate::gate::Gate) -> watch::Sender<bool> {
        self.ready_tx = None;
        let mut signals = gate.signals();
        let mut opened = 0;
        while opened < self.members {
            tokio::select! {
                biased;
                r = signals.stopped() => { gate.stop_with(r); break }
                r = self.ready_rx.recv() => match r {
                    Some(()) => opened += 1,
                    None => break,
                },
            }
        }
        gate.start(tokio::time::Instant::now());
        let _ = self.go_tx.send(true);
        self.go_tx
    }
}

impl Member {
    /// Opens `conn`, reports it open, and waits for the start; false if the start never comes.
    pub async fn arrive(mut self, shared: &Shared, conn: &mut Connection) -> bool {
        shared.warm(conn).await;
        let _ = self.ready.send(());
        drop(self.ready);
        self.go.wait_for(|g| *g).await.is_ok()
    }
}
