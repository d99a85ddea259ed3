//! Profile levels (seed 002): the same class run once per concurrency level, one preflight and one
//! workload build for all of them, each level with fresh text (content seed + k) and the level's
//! own request count.

use serde_json::json;
use std::collections::BTreeMap;
use strobe_load::Schedule;

use crate::experiment::{ClassSpec, Experiment, RunSpec};
use crate::workloads::WorkloadSpec;
use crate::ExperimentOptions;

/// How many measured requests a level sends.
#[derive(Clone, Copy, Debug)]
pub enum LevelRequests {
    /// As the class says (a count or a duration given by the user).
    AsGiven,
    /// The profile's rule for each concurrency.
    PerLevel(&'static strobe_workload::profiles::Profile),
}

/// One run per level of `class` (a closed loop), labelled `c{level}`.
pub fn experiment(
    profile: &str,
    class: ClassSpec,
    workload: WorkloadSpec,
    levels: &[u32],
    requests: LevelRequests,
    options: ExperimentOptions,
) -> Experiment {
    let runs = levels
        .iter()
        .enumerate()
        .map(|(k, &c)| {
            let mut class = class.clone();
            class.schedule = Schedule::Closed { concurrency: c };
            class.content_seed = class.seed.wrapping_add(k as u64);
            if let LevelRequests::PerLevel(p) = requests {
                class.requests = Some(p.requests_for(c));
            }
            RunSpec {
                label: format!("c{c}"),
                parameters: BTreeMap::from([("concurrency".to_owned(), json!(c))]),
                classes: vec![class],
            }
        })
        .collect();
    Experiment::new(
        "levels",
        &format!("profile {profile}: one run per concurrency level"),
        vec![workload],
        runs,
        options,
    )
}
