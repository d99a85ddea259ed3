//! A class on the simulated engine's virtual clock (`strobe sim run`): the requests a `strobe
//! run` of the same flags would send — the same workload (profile, data set, length
//! distributions, tokenizer, seed) and the same schedule — as prompt and output lengths and
//! arrival times for `strobe_sim::simulate`, with no server and no wall clock.
//!
//! The lengths are the workload's own: [`crate::workloads::build`] with the run's tokenizer
//! (without one, the built-in target's word rule, which is what the simulated server counts),
//! then each request's `input_tokens` and `max_tokens` by index, as the schedule core would take
//! them.

use std::sync::Arc;

use strobe_core::Prompt;
use strobe_load::{Arrival as LoadArrival, Schedule};
use strobe_report::WorkloadInfo;
use strobe_sim::engine::{block_hashes, block_hashes_of_ids};
use strobe_sim::{Arrival, Lengths, Load};

use crate::workloads::{build, BuildContext};
use crate::{ClassSpec, WorkloadSpec};

/// A class as the simulator replays it.
#[derive(Debug)]
pub struct SimulatedClass {
    pub load: Load,
    /// What the workload was (tokenizer, data set, lengths), as a report describes it.
    pub workload: WorkloadInfo,
    pub warnings: Vec<String>,
}

/// The simulator's load for `class` with workload `ws`. With `prefix_blocks` (the engine's
/// block size, when it caches prefixes), each prompt is hashed block by block so that shared
/// prefixes and resent conversation history hit the engine's prefix cache: its token ids under
/// a tokenizer file (blocks of tokens, as the prompt's length counts them), else its words (as
/// the simulated server hashes what it receives). Refuses, naming the flag, what the virtual clock does
/// not replay: a duration instead of a request count, gamma arrivals, an open loop's concurrency
/// cap.
pub fn simulated(
    class: &ClassSpec,
    ws: &WorkloadSpec,
    prefix_blocks: Option<u32>,
) -> Result<SimulatedClass, String> {
    if class.duration.is_some() || class.until.is_some() {
        return Err(
            "--duration: the virtual clock runs a number of requests; give -n instead".into(),
        );
    }
    if !class.warmup.duration.is_zero() {
        return Err(
            "--warmup: the virtual clock leaves out a number of requests; give --warmup-requests instead"
                .into(),
        );
    }
    let (arrival, measured) = match class.schedule {
        Schedule::Closed { concurrency } => (
            Arrival::Closed {
                users: concurrency,
                stagger: 0.0,
            },
            class.requests,
        ),
        Schedule::Open {
            max_concurrency: Some(_),
            ..
        } => {
            return Err(
                "--max-concurrency: the virtual clock's open loop has no cap; leave it out".into(),
            )
        }
        Schedule::Open { rate, arrival, .. } => (
            match arrival {
                LoadArrival::Poisson => Arrival::Poisson { rate },
                LoadArrival::Constant => Arrival::Constant { rate },
                LoadArrival::Gamma { .. } => {
                    return Err("--burstiness / --arrival gamma: the virtual clock draws Poisson or constant arrivals".into())
                }
            },
            class.requests,
        ),
        // Offered at once, at most N in flight: N users, each taking the next request as one
        // ends.
        Schedule::Offline {
            max_concurrency: Some(n),
        } => (
            Arrival::Closed {
                users: n,
                stagger: 0.0,
            },
            class.requests,
        ),
        Schedule::Offline {
            max_concurrency: None,
        } => (Arrival::Offline, class.requests),
        Schedule::Lockstep {
            batch_size,
            batches,
        } => (
            Arrival::Lockstep { size: batch_size },
            Some(u64::from(batch_size) * batches),
        ),
    };
    let measured =
        measured.ok_or("-n: the virtual clock needs a number of requests (e.g. -n 1000)")?;
    let warmup = match class.schedule {
        Schedule::Lockstep { batch_size, .. } => class.warmup.requests * u64::from(batch_size),
        _ => class.warmup.requests,
    };
    let total = measured + warmup;
    let total32 = u32::try_from(total)
        .map_err(|_| format!("-n: {total} requests are more than the virtual clock replays"))?;
    let concurrency = match arrival {
        Arrival::Closed { users, .. } => users,
        Arrival::Lockstep { size } => size,
        _ => 1,
    };
    let built = build(
        ws,
        BuildContext {
            api: class.request.api,
            seed: class.seed,
            // The simulated server counts prompts as the built-in target does.
            built_in: true,
            server_tokenizer: None,
            max_model_len: None,
            needed: Some(total),
            concurrency,
        },
    )
    .map_err(|e| e.to_string())?;
    let mut lengths = Vec::with_capacity(total as usize);
    let mut prefixes: Vec<Arc<[u64]>> = Vec::new();
    for i in 0..total {
        let spec = built.workload.spec(i);
        let prompt = spec.input_tokens.ok_or_else(|| {
            format!(
                "request {i}: its prompt length is unknown (give --tokenizer PATH for exact lengths)"
            )
        })?;
        lengths.push((prompt, spec.max_tokens));
        if let Some(block) = prefix_blocks {
            let text = match &spec.prompt {
                Prompt::Text(t) => t.clone(),
                Prompt::Messages(ms) => ms
                    .iter()
                    .map(|m| m.content.joined_text().into_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
                Prompt::Raw(_) => String::new(),
            };
            let hashes = match built.counter.token_ids(&text) {
                Some(ids) => {
                    block_hashes_of_ids(&ids.map_err(|e| format!("request {i}: {e}"))?, block)
                }
                None => block_hashes(text.split_whitespace(), block),
            };
            prefixes.push(hashes.into());
        }
    }
    Ok(SimulatedClass {
        load: Load {
            arrival,
            requests: total32,
            lengths: Lengths::Each(Arc::from(lengths)),
            warmup: warmup as u32,
            seed: class.seed,
            prefixes: prefixes.into(),
        },
        workload: built.info,
        warnings: built.warnings,
    })
}
