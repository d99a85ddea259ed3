//! Seed 000's three test conditions: (1) the batch alone, (2) interactive users alone at each
//! concurrency for a fixed time, (3) the batch with each number of users beside it for as long as
//! the batch runs. The summary sets every interactive figure of (3) beside its baseline in (2) and
//! the batch's throughput in (3) beside (1).
//!
//! Every run draws fresh text (content seed + k) with the same lengths, so the batch of (3) is the
//! batch of (1) in shape but not in prompts, and no run is served from the previous run's prefix
//! cache.

use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::experiment::{ClassSpec, CompareKind, ComparisonSpec, Experiment, RunSpec};
use crate::workloads::WorkloadSpec;
use crate::{ExperimentError, ExperimentOptions};

/// Which of the conditions to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conditions {
    pub batch_only: bool,
    pub isolated: bool,
    pub mixed: bool,
}

impl Conditions {
    pub const ALL: Conditions = Conditions {
        batch_only: true,
        isolated: true,
        mixed: true,
    };
}

/// The experiment's parts.
#[derive(Clone, Debug)]
pub struct Interference {
    /// The batch: named `batch`; its schedule and size as given.
    pub batch: (ClassSpec, WorkloadSpec),
    /// The interactive users: named `interactive`; a closed loop whose concurrency each run sets.
    pub interactive: (ClassSpec, WorkloadSpec),
    /// Concurrent users, one isolated and one mixed run each (seed 000: 1 and 10).
    pub users: Vec<u32>,
    /// How long each isolated run lasts (seed 000: 30 s).
    pub duration: Duration,
    pub conditions: Conditions,
}

pub fn experiment(
    i: Interference,
    options: ExperimentOptions,
) -> Result<Experiment, ExperimentError> {
    if i.users.is_empty() || i.users.contains(&0) {
        return Err(ExperimentError::Invalid(
            "--users needs one or more numbers of concurrent users, each at least 1".into(),
        ));
    }
    let (mut batch, batch_w) = i.batch;
    let (mut users, users_w) = i.interactive;
    batch.name = "batch".into();
    batch.workload = 0;
    users.name = "interactive".into();
    users.workload = 1;
    users.requests = None;
    users.until = None;
    let mut runs = Vec::new();
    let mut comparisons = Vec::new();
    let mut next =
        |classes: Vec<ClassSpec>, label: String, params: BTreeMap<String, serde_json::Value>| {
            let k = runs.len() as u64;
            let classes = classes
                .into_iter()
                .map(|mut c| {
                    c.content_seed = c.seed.wrapping_add(k);
                    c
                })
                .collect();
            runs.push(RunSpec {
                label,
                parameters: params,
                classes,
            });
        };
    let user_class = |n: u32, until_batch: bool| {
        let mut u = users.clone();
        u.schedule = strobe_load::Schedule::Closed { concurrency: n };
        if until_batch {
            // Beside the batch, the users run for exactly as long as it does (seed 000).
            u.until = Some("batch".into());
            u.duration = None;
        } else {
            u.duration = Some(i.duration);
        }
        u
    };
    if i.conditions.batch_only {
        next(
            vec![batch.clone()],
            "batch-only".into(),
            BTreeMap::from([("users".to_owned(), json!(0))]),
        );
    }
    if i.conditions.isolated {
        for &n in &i.users {
            next(
                vec![user_class(n, false)],
                format!("isolated-c{n}"),
                BTreeMap::from([("users".to_owned(), json!(n))]),
            );
        }
    }
    if i.conditions.mixed {
        for &n in &i.users {
            let label = format!("mixed-c{n}");
            next(
                vec![batch.clone(), user_class(n, true)],
                label.clone(),
                BTreeMap::from([("users".to_owned(), json!(n))]),
            );
            comparisons.push(ComparisonSpec {
                label: label.clone(),
                class: "interactive".into(),
                baseline: format!("isolated-c{n}"),
                kind: CompareKind::Latency,
            });
            comparisons.push(ComparisonSpec {
                label,
                class: "batch".into(),
                baseline: "batch-only".into(),
                kind: CompareKind::Throughput,
            });
        }
    }
    // The interactive class's duration applies to isolated runs only.
    batch.until = None;
    let mut e = Experiment::new(
        "interference",
        "batch and interactive users on one server (seed 000's three conditions)",
        vec![batch_w, users_w],
        runs,
        options,
    );
    e.comparisons = comparisons;
    Ok(e)
}
