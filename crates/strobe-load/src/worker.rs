//! Running one request on a worker's connection and reporting it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use strobe_client::Connection;
use strobe_core::{ChunkArrivals, Outcome, RequestRecord, RequestSpec, RunClock};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::plan::Progress;

/// Connections opened at once while a load warms up: a burst of thousands of SYNs overflows many
/// servers' accept queues (each dropped SYN costs a one-second retransmission).
pub(crate) const WARM_CONNECTS: usize = 32;

/// What every worker shares: read-mostly handles and atomic counters, no lock.
pub(crate) struct Shared {
    pub clock: RunClock,
    pub records: mpsc::UnboundedSender<RequestRecord>,
    pub progress: Arc<Progress>,
    pub hard_cancel: watch::Receiver<bool>,
    pub connecting: Semaphore,
}

impl Shared {
    pub fn new(
        clock: RunClock,
        records: mpsc::UnboundedSender<RequestRecord>,
        progress: Arc<Progress>,
        hard_cancel: watch::Receiver<bool>,
    ) -> Shared {
        Shared {
            clock,
            records,
            progress,
            hard_cancel,
            connecting: Semaphore::new(WARM_CONNECTS),
        }
    }

    /// Opens `conn` ahead of its first request, a bounded number at a time. A failure here shows
    /// up as a connect error on the first request.
    pub async fn warm(&self, conn: &mut Connection) {
        let permit = self.connecting.acquire().await;
        let _ = conn.warm().await;
        drop(permit);
    }
}

/// Sends `spec`, records it (cancelled if the hard-cancel signal fires first) and reports it.
pub(crate) async fn run_request(
    conn: &mut Connection,
    spec: &RequestSpec,
    intended_ns: u64,
    shared: &Shared,
    hard: &mut watch::Receiver<bool>,
) {
    let p = &shared.progress;
    let now_in_flight = p.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    p.peak_in_flight.fetch_max(now_in_flight, Ordering::Relaxed);
    p.sent.fetch_add(1, Ordering::Relaxed);
    let mut record = RequestRecord {
        index: spec.index,
        class: spec.class,
        warmup: spec.warmup,
        intended_ns,
        sent_ns: 0,
        first_token_ns: None,
        end_ns: 0,
        chunk_arrivals_ns: ChunkArrivals::default(),
        input_tokens: None,
        input_tokens_source: None,
        output_tokens: None,
        output_tokens_source: None,
        expected_input_tokens: spec.input_tokens,
        outcome: Outcome::Cancelled,
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
    }
    p.in_flight.fetch_sub(1, Ordering::Relaxed);
    if !record.outcome.is_success() {
        p.failed.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(n) = record.output_tokens {
        p.output_tokens.fetch_add(n as u64, Ordering::Relaxed);
    }
    // Completed last, so that `failed ≤ completed` holds for every reader.
    p.completed.fetch_add(1, Ordering::Relaxed);
    let _ = shared.records.send(record);
}
