//! The engine on a virtual clock: a closed-loop load (a fixed number of users, each sending its
//! next request when the last one ends) run as fast as the CPU allows, and what the users saw.

use std::collections::HashMap;

use crate::engine::{Engine, EngineConfig, Event, Request};

/// A closed-loop load of identical requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Load {
    /// Users, each with one request in flight.
    pub concurrency: u32,
    /// Requests in all.
    pub requests: u32,
    pub prompt: u32,
    pub output: u32,
}

/// What the users saw, in seconds and per second of virtual time.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub requests: u32,
    pub duration: f64,
    pub ttft_mean: f64,
    pub ttft_p99: f64,
    /// Mean over requests of (E2E − TTFT) / (output − 1).
    pub tpot_mean: f64,
    pub e2e_mean: f64,
    pub requests_per_s: f64,
    pub output_tokens_per_s: f64,
    pub prompt_tokens_per_s: f64,
    pub preemptions: u64,
    pub steps: u64,
    pub max_running: usize,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn p99(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((0.99 * s.len() as f64).ceil() as usize).clamp(1, s.len().max(1));
    s.get(rank - 1).copied().unwrap_or(0.0)
}

/// Runs `load` on an engine of `config` in virtual time. Each request reaches the engine
/// `per_request_api` after it is sent; its tokens reach the user at the end of the step that
/// made them.
pub fn closed_loop(config: &EngineConfig, load: &Load) -> Result<Summary, String> {
    if load.concurrency == 0 || load.requests == 0 {
        return Err("a load needs at least one user and one request".into());
    }
    let api = config.overheads.per_request_api;
    let mut engine = Engine::new(config.clone())?;
    let mut now = 0.0f64;
    let mut sent = 0u32;
    // Requests on their way to the engine: (arrives at, request).
    let mut in_api: Vec<(f64, Request)> = Vec::new();
    // Sent at, first token at.
    let mut times: HashMap<u64, (f64, Option<f64>)> = HashMap::new();
    let (mut ttft, mut tpot, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
    let mut max_running = 0;
    let send = |now: f64,
                sent: &mut u32,
                in_api: &mut Vec<(f64, Request)>,
                times: &mut HashMap<u64, (f64, Option<f64>)>| {
        let id = u64::from(*sent);
        *sent += 1;
        times.insert(id, (now, None));
        in_api.push((
            now + api,
            Request {
                id,
                prompt: load.prompt,
                output: load.output,
            },
        ));
    };
    for _ in 0..load.concurrency.min(load.requests) {
        send(now, &mut sent, &mut in_api, &mut times);
    }
    loop {
        let mut k = 0;
        while k < in_api.len() {
            if in_api[k].0 <= now {
                let (_, r) = in_api.remove(k);
                engine.add(r)?;
            } else {
                k += 1;
            }
        }
        if engine.is_idle() {
            match in_api.iter().map(|&(t, _)| t).min_by(f64::total_cmp) {
                Some(t) => {
                    now = t;
                    continue;
                }
                None => break,
            }
        }
        let step = engine.step().expect("the engine has work");
        now += step.duration;
        max_running = max_running.max(
            engine.running()
                + step
                    .events
                    .iter()
                    .filter(|e| matches!(e, Event::Finished(_)))
                    .count(),
        );
        for e in step.events {
            match e {
                Event::FirstToken(id) => {
                    let t = times.get_mut(&id).expect("sent");
                    t.1 = Some(now);
                    ttft.push(now - t.0);
                }
                Event::Finished(id) => {
                    let (at, first) = times.remove(&id).expect("sent");
                    let first = first.expect("a first token before the end");
                    e2e.push(now - at);
                    if load.output > 1 {
                        tpot.push((now - first) / f64::from(load.output - 1));
                    }
                    if sent < load.requests {
                        send(now, &mut sent, &mut in_api, &mut times);
                    }
                }
                Event::Token(_) | Event::Preempted(_) => {}
            }
        }
    }
    let n = e2e.len() as u32;
    Ok(Summary {
        requests: n,
        duration: now,
        ttft_mean: mean(&ttft),
        ttft_p99: p99(&ttft),
        tpot_mean: mean(&tpot),
        e2e_mean: mean(&e2e),
        requests_per_s: f64::from(n) / now,
        output_tokens_per_s: f64::from(n) * f64::from(load.output) / now,
        prompt_tokens_per_s: f64::from(n) * f64::from(load.prompt) / now,
        preemptions: engine.preemptions,
        steps: engine.steps,
        max_running,
    })
}
