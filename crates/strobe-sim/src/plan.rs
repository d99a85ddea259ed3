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
    /// Requests that end first and are left out of the figures: the first wave of a closed loop
    /// arrives all at once, which no steady state does.
    pub warmup: u32,
    /// Seconds over which the users' first requests are spread evenly (0: all at once). Users
    /// who start together with identical requests stay in lockstep, each wave one burst of
    /// prefill, which real users are not.
    pub stagger: f64,
    /// An open loop instead: requests sent at this rate (per second, Poisson arrivals from a
    /// fixed seed), whatever is in flight; `concurrency` and `stagger` are then unused.
    pub rate: Option<f64>,
}

/// What the users saw, in seconds and per second of virtual time. Rates are over the span from
/// the first measured request's send to the last request's end, drain included, as strobe's
/// reports count them (so that a fit compares like with like).
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
    /// Per measured request, in seconds, in the order they ended.
    pub ttft_s: Vec<f64>,
    pub tpot_s: Vec<f64>,
    pub e2e_s: Vec<f64>,
}

/// The value at quantile `q` (0–1) of `v`, by nearest rank; 0 for none.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn p99(v: &[f64]) -> f64 {
    quantile(v, 0.99)
}

/// Runs `load` on an engine of `config` in virtual time. Each request reaches the engine
/// `per_request_api` after it is sent; its tokens reach the user at the end of the step that
/// made them.
pub fn closed_loop(config: &EngineConfig, load: &Load) -> Result<Summary, String> {
    if (load.concurrency == 0 && load.rate.is_none()) || load.requests == 0 {
        return Err("a load needs at least one user and one request".into());
    }
    if let Some(r) = load.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(format!(
                "a rate must be a positive number of requests per second, got {r}"
            ));
        }
    }
    let api = config.overheads.per_request_api;
    let mut engine = Engine::new(config.clone())?;
    let mut now = 0.0f64;
    let mut sent = 0u32;
    // Requests on their way to the engine: (arrives at, request), in the order they arrive.
    let mut in_api: std::collections::VecDeque<(f64, Request)> = Default::default();
    // Sent at, first token at.
    let mut times: HashMap<u64, (f64, Option<f64>)> = HashMap::new();
    let (mut ttft, mut tpot, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
    let mut max_running = 0;
    // When the first measured request was sent.
    let mut measured_from = None;
    let send = |now: f64,
                sent: &mut u32,
                in_api: &mut std::collections::VecDeque<(f64, Request)>,
                times: &mut HashMap<u64, (f64, Option<f64>)>| {
        let id = u64::from(*sent);
        *sent += 1;
        times.insert(id, (now, None));
        let item = (
            now + api,
            Request {
                id,
                prompt: load.prompt,
                output: load.output,
            },
        );
        // Kept in arrival order (sends come in time order, so this is nearly always the back).
        let at = in_api
            .iter()
            .rposition(|&(t, _)| t <= item.0)
            .map_or(0, |i| i + 1);
        in_api.insert(at, item);
    };
    if load.warmup >= load.requests {
        return Err(format!(
            "a warm-up of {} requests leaves none of {} to measure",
            load.warmup, load.requests
        ));
    }
    if let Some(rate) = load.rate {
        // Every request at its Poisson instant (exponential gaps from a splitmix64 stream).
        let mut at = 0.0;
        let mut z = 0u64;
        for _ in 0..load.requests {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^= x >> 31;
            let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            send(at, &mut sent, &mut in_api, &mut times);
            at += -u.ln() / rate;
        }
    } else {
        let first_wave = load.concurrency.min(load.requests);
        for i in 0..first_wave {
            let at = load.stagger.max(0.0) * f64::from(i) / f64::from(first_wave);
            send(at, &mut sent, &mut in_api, &mut times);
        }
    }
    loop {
        while in_api.front().is_some_and(|&(t, _)| t <= now) {
            let (_, r) = in_api.pop_front().expect("front exists");
            engine.add(r)?;
        }
        if engine.is_idle() {
            match in_api.front().map(|&(t, _)| t) {
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
                }
                Event::Finished(id) => {
                    let (at, first) = times.remove(&id).expect("sent");
                    let first = first.expect("a first token before the end");
                    // Requests are numbered as sent: the first `warmup` are not measured.
                    if id >= u64::from(load.warmup) {
                        measured_from = Some(measured_from.map_or(at, |m: f64| m.min(at)));
                        ttft.push(first - at);
                        e2e.push(now - at);
                        if load.output > 1 {
                            tpot.push((now - first) / f64::from(load.output - 1));
                        }
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
    let span = now - measured_from.unwrap_or(0.0);
    Ok(Summary {
        requests: n,
        duration: span,
        ttft_mean: mean(&ttft),
        ttft_p99: p99(&ttft),
        tpot_mean: mean(&tpot),
        e2e_mean: mean(&e2e),
        requests_per_s: f64::from(n) / span,
        output_tokens_per_s: f64::from(n) * f64::from(load.output) / span,
        prompt_tokens_per_s: f64::from(n) * f64::from(load.prompt) / span,
        preemptions: engine.preemptions,
        steps: engine.steps,
        max_running,
        ttft_s: ttft,
        tpot_s: tpot,
        e2e_s: e2e,
    })
}

/// The answer of [`max_users`].
#[derive(Clone, Debug)]
pub struct Capacity {
    /// The most users that meet the objectives; 0 when even one does not.
    pub users: u32,
    /// The steady state at `users`.
    pub at: Option<Summary>,
    /// The fewest users found to miss them, and that steady state (`None` when `max_users`
    /// meets them: the capacity is at least that).
    pub above: Option<(u32, Summary)>,
    /// Loads simulated.
    pub probes: u32,
}

/// The most users of a closed loop (each with one request of `prompt` and `output` tokens in
/// flight) in `1..=max_users` whose steady state `meets` the objectives: doubling, then
/// bisection, assuming that more users never lower latency. Each probe runs `3 × users + 100`
/// requests and leaves the first wave of `users` out; the users start spread over the time of
/// one request alone.
pub fn max_users(
    config: &EngineConfig,
    prompt: u32,
    output: u32,
    max_users: u32,
    meets: impl Fn(&Summary) -> bool,
) -> Result<Capacity, String> {
    let mut probes = 0;
    let mut probe = |users: u32, stagger: f64| {
        probes += 1;
        closed_loop(
            config,
            &Load {
                concurrency: users,
                requests: users.saturating_mul(3).saturating_add(100),
                prompt,
                output,
                warmup: users,
                stagger,
                rate: None,
            },
        )
    };
    let max_users = max_users.max(1);
    let first = probe(1, 0.0)?;
    // Users start spread over one request's time alone.
    let stagger = first.e2e_mean;
    if !meets(&first) {
        return Ok(Capacity {
            users: 0,
            at: None,
            above: Some((1, first)),
            probes,
        });
    }
    let (mut lo, mut lo_at) = (1u32, first);
    let mut hi: Option<(u32, Summary)> = None;
    while hi.is_none() && lo < max_users {
        let next = lo.saturating_mul(2).min(max_users);
        let s = probe(next, stagger)?;
        if meets(&s) {
            (lo, lo_at) = (next, s);
        } else {
            hi = Some((next, s));
        }
    }
    while let Some((h, _)) = &hi {
        if *h - lo <= 1 {
            break;
        }
        let mid = lo + (*h - lo) / 2;
        let s = probe(mid, stagger)?;
        if meets(&s) {
            (lo, lo_at) = (mid, s);
        } else {
            hi = Some((mid, s));
        }
    }
    Ok(Capacity {
        users: lo,
        at: Some(lo_at),
        above: hi,
        probes,
    })
}

/// The highest request rate (an open loop of Poisson arrivals) in `(0, max_rate]` whose steady
/// state `meets` the objectives, to 2%: doubling from a tenth of a request per second, then
/// bisection, assuming a higher rate never lowers latency. Each probe sends `60 s × rate`
/// requests (at least 200) and leaves the first 10% out.
pub fn max_rate(
    config: &EngineConfig,
    prompt: u32,
    output: u32,
    max_rate: f64,
    meets: impl Fn(&Summary) -> bool,
) -> Result<RateCapacity, String> {
    let mut probes = 0;
    let mut probe = |rate: f64| {
        probes += 1;
        let requests = ((60.0 * rate) as u32).clamp(200, 200_000);
        closed_loop(
            config,
            &Load {
                concurrency: 0,
                requests,
                prompt,
                output,
                warmup: requests / 10,
                stagger: 0.0,
                rate: Some(rate),
            },
        )
    };
    let mut lo: Option<(f64, Summary)> = None;
    let mut hi: Option<(f64, Summary)> = None;
    let mut rate = 0.1f64.min(max_rate);
    loop {
        let s = probe(rate)?;
        if meets(&s) {
            lo = Some((rate, s));
            if rate >= max_rate {
                break;
            }
            rate = (rate * 2.0).min(max_rate);
        } else {
            hi = Some((rate, s));
            break;
        }
    }
    if lo.is_none() {
        return Ok(RateCapacity {
            rate: 0.0,
            at: None,
            above: hi,
            probes,
        });
    }
    while let (Some((l, _)), Some((h, _))) = (&lo, &hi) {
        if h / l < 1.02 {
            break;
        }
        let mid = (l * h).sqrt();
        let s = probe(mid)?;
        if meets(&s) {
            lo = Some((mid, s));
        } else {
            hi = Some((mid, s));
        }
    }
    let (rate, at) = lo.expect("set above");
    Ok(RateCapacity {
        rate,
        at: Some(at),
        above: hi,
        probes,
    })
}

/// The answer of [`max_rate`].
#[derive(Clone, Debug)]
pub struct RateCapacity {
    /// Requests per second sent at the highest rate found to meet the objectives (0: none).
    pub rate: f64,
    pub at: Option<Summary>,
    /// The lowest rate found to miss them, with its steady state (`None`: `max_rate` meets them).
    pub above: Option<(f64, Summary)>,
    pub probes: u32,
}
