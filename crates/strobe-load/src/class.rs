//! A class while it runs: its plan, its gate and its request indices.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::gate::Gate;
use crate::plan::{ClassPlan, ClassResult, StopReason};

pub(crate) struct Class {
    pub plan: ClassPlan,
    pub gate: Gate,
    next_index: AtomicU64,
}

impl Class {
    pub fn new(plan: ClassPlan, gate: Gate) -> Class {
        Class {
            plan,
            gate,
            next_index: AtomicU64::new(0),
        }
    }

    /// The next request index of this class (every schedule draws them here, in order).
    pub fn claim_index(&self) -> u64 {
        self.next_index.fetch_add(1, Ordering::Relaxed)
    }

    pub fn result(&self, connections: usize, unsent: u64) -> ClassResult {
        ClassResult {
            id: self.plan.id,
            stop_reason: self.gate.reason().unwrap_or(StopReason::Internal(
                "the schedule stopped without a reason".into(),
            )),
            connections,
            unsent,
        }
    }
}
