//! The engine on a virtual clock: a load (a closed loop of users, Poisson arrivals, or every
//! request offered at once) run as fast as the CPU allows, and what the users saw.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::engine::{Engine, EngineConfig, Event, Request};

/// When requests are sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrival {
    /// A closed loop: `users`, each sending its next request when its last one ends. Their
    /// first requests are spread evenly over `stagger` seconds (0: all at once; users who start
    /// together with identical requests stay in lockstep, each wave one burst of prefill, which
    /// real users are not).
    Closed { users: u32, stagger: f64 },
    /// An open loop: Poisson arrivals at `rate` requests per second, whatever is in flight.
    Poisson { rate: f64 },
    /// An open loop at `rate` requests per second, evenly spaced.
    Constant { rate: f64 },
    /// Every request offered at once (vLLM's offline benchmark: `LLM.generate` on the list).
    Offline,
    /// Lockstep batches (seed 001): `size` requests at once, the next batch when the last of
    /// them has ended.
    Lockstep { size: u32 },
}

/// Prompt and output tokens per request.
#[derive(Clone, Debug, PartialEq)]
pub enum Lengths {
    Fixed {
        prompt: u32,
        output: u32,
    },
    /// Request `i` takes entry `i % len` (a data set's requests, in the order they are sent).
    Each(Arc<[(u32, u32)]>),
}

impl Lengths {
    fn of(&self, i: u32) -> (u32, u32) {
        match self {
            Lengths::Fixed { prompt, output } => (*prompt, *output),
            Lengths::Each(v) => v[i as usize % v.len()],
        }
    }
}

/// The requests a capacity search sends: their lengths, and what their prompts hold for the
/// prefix cache. Request `i` of a probe takes entry `i % len` of each.
#[derive(Clone, Debug, PartialEq)]
pub struct Requests {
    pub lengths: Lengths,
    /// As [`Load::prefixes`]; empty: prompts share nothing.
    pub prefixes: Arc<[Arc<[u64]>]>,
}

impl Requests {
    /// Every request `prompt` tokens in and `output` out, sharing nothing.
    pub fn fixed(prompt: u32, output: u32) -> Requests {
        Requests {
            lengths: Lengths::Fixed { prompt, output },
            prefixes: Arc::from([]),
        }
    }

    /// Mean prompt and output tokens.
    pub fn means(&self) -> (f64, f64) {
        match &self.lengths {
            Lengths::Fixed { prompt, output } => (f64::from(*prompt), f64::from(*output)),
            Lengths::Each(v) => {
                let n = v.len().max(1) as f64;
                (
                    v.iter().map(|(p, _)| f64::from(*p)).sum::<f64>() / n,
                    v.iter().map(|(_, o)| f64::from(*o)).sum::<f64>() / n,
                )
            }
        }
    }
}

/// A load.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub arrival: Arrival,
    /// Requests in all.
    pub requests: u32,
    pub lengths: Lengths,
    /// Requests that end first and are left out of the figures: the first wave of a closed loop
    /// arrives all at once, which no steady state does.
    pub warmup: u32,
    /// Seeds the Poisson arrivals.
    pub seed: u64,
    /// What request `i`'s prompt blocks hold (`engine::block_hashes`), entry `i % len`, for the
    /// prefix cache; empty: prompts share nothing.
    pub prefixes: Arc<[Arc<[u64]>]>,
}

impl Load {
    /// `users` in a closed loop, starting together, `requests` of one shape, none left out.
    pub fn closed(users: u32, requests: u32, prompt: u32, output: u32) -> Load {
        Load {
            arrival: Arrival::Closed {
                users,
                stagger: 0.0,
            },
            requests,
            lengths: Lengths::Fixed { prompt, output },
            warmup: 0,
            seed: 0,
            prefixes: Arc::from([]),
        }
    }

    fn prefix(&self, i: u32) -> Arc<[u64]> {
        if self.prefixes.is_empty() {
            return Arc::from([]);
        }
        Arc::clone(&self.prefixes[i as usize % self.prefixes.len()])
    }
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
    /// Tokens of the measured requests.
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub preemptions: u64,
    /// Prompt tokens looked up in the prefix cache, and found there.
    pub prefix_queries: u64,
    pub prefix_hits: u64,
    pub steps: u64,
    pub max_running: usize,
    /// Per measured request, in seconds, in the order they ended.
    pub ttft_s: Vec<f64>,
    /// Requests of at least two output tokens only.
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

/// Exponential gaps of mean `1/rate` from a splitmix64 stream seeded by `seed`.
struct Poisson {
    z: u64,
    rate: f64,
}

impl Poisson {
    fn gap(&mut self) -> f64 {
        self.z = self.z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.z;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        -u.ln() / self.rate
    }
}

/// Runs `load` on an engine of `config` in virtual time. Each request reaches the engine
/// `per_request_api` after it is sent; its tokens reach the user at the end of the step that
/// made them, and its end `per_request_finish` after its last token.
pub fn simulate(config: &EngineConfig, load: &Load) -> Result<Summary, String> {
    if load.requests == 0 {
        return Err("a load needs at least one request".into());
    }
    match load.arrival {
        Arrival::Closed { users: 0, .. } => {
            return Err("a closed loop needs at least one user".into())
        }
        Arrival::Poisson { rate } | Arrival::Constant { rate }
            if !(rate.is_finite() && rate > 0.0) =>
        {
            return Err(format!(
                "a rate must be a positive number of requests per second, got {rate}"
            ))
        }
        Arrival::Lockstep { size: 0 } => {
            return Err("a lockstep batch needs at least one request".into())
        }
        _ => {}
    }
    if let Lengths::Each(v) = &load.lengths {
        if v.is_empty() {
            return Err("no request lengths given".into());
        }
    }
    if load.warmup >= load.requests {
        return Err(format!(
            "a warm-up of {} requests leaves none of {} to measure",
            load.warmup, load.requests
        ));
    }
    let api = config.overheads.per_request_api;
    let finish = config.overheads.per_request_finish;
    let mut engine = Engine::new(config.clone())?;
    let mut now = 0.0f64;
    let mut sent = 0u32;
    // Requests on their way to the engine: (arrives at, request), in the order they arrive.
    let mut in_api: VecDeque<(f64, Request)> = VecDeque::new();
    // Sent at, first token at.
    let mut times: HashMap<u64, (f64, Option<f64>)> = HashMap::new();
    // Sends due when a request's end reaches its user (closed loops, lockstep), in time order.
    let mut due: VecDeque<f64> = VecDeque::new();
    let (mut ttft, mut tpot, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
    let (mut prompt_tokens, mut output_tokens) = (0u64, 0u64);
    let mut max_running = 0;
    // When the first measured request was sent, and when the last one's end reached its user.
    let mut measured_from = None;
    let mut last_end = 0.0f64;
    let send = |at: f64,
                sent: &mut u32,
                in_api: &mut VecDeque<(f64, Request)>,
                times: &mut HashMap<u64, (f64, Option<f64>)>|
     -> Result<(), String> {
        let (prompt, output) = load.lengths.of(*sent);
        let id = u64::from(*sent);
        let req = Request {
            id,
            prompt: prompt.max(1),
            output: output.max(1),
            prefix: load.prefix(*sent),
        };
        *sent += 1;
        times.insert(id, (at, None));
        let item = (at + api, req);
        // Kept in arrival order (sends come in time order, so this is nearly always the back).
        let pos = in_api
            .iter()
            .rposition(|&(t, _)| t <= item.0)
            .map_or(0, |i| i + 1);
        in_api.insert(pos, item);
        Ok(())
    };
    match load.arrival {
        Arrival::Poisson { rate } => {
            let mut gaps = Poisson { z: load.seed, rate };
            let mut at = 0.0;
            for _ in 0..load.requests {
                send(at, &mut sent, &mut in_api, &mut times)?;
                at += gaps.gap();
            }
        }
        Arrival::Constant { rate } => {
            for i in 0..load.requests {
                send(f64::from(i) / rate, &mut sent, &mut in_api, &mut times)?;
            }
        }
        Arrival::Offline => {
            for _ in 0..load.requests {
                send(0.0, &mut sent, &mut in_api, &mut times)?;
            }
        }
        Arrival::Lockstep { size } => {
            for _ in 0..size.min(load.requests) {
                send(0.0, &mut sent, &mut in_api, &mut times)?;
            }
        }
        Arrival::Closed { users, stagger } => {
            let first_wave = users.min(load.requests);
            for i in 0..first_wave {
                let at = stagger.max(0.0) * f64::from(i) / f64::from(first_wave);
                send(at, &mut sent, &mut in_api, &mut times)?;
            }
        }
    }
    loop {
        // Closed-loop users whose last request's end has reached them send their next one.
        while due.front().is_some_and(|&t| t <= now) {
            let at = due.pop_front().expect("front exists");
            if sent < load.requests {
                send(at, &mut sent, &mut in_api, &mut times)?;
            }
        }
        while in_api.front().is_some_and(|&(t, _)| t <= now) {
            let (_, r) = in_api.pop_front().expect("front exists");
            engine.add(r)?;
        }
        if engine.is_idle() {
            let next_api = in_api.front().map(|&(t, _)| t);
            let next_due = due.front().copied().filter(|_| sent < load.requests);
            if next_api.is_none() && next_due.is_none() {
                break;
            }
            now = now.max(
                next_api
                    .unwrap_or(f64::INFINITY)
                    .min(next_due.unwrap_or(f64::INFINITY)),
            );
            continue;
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
                    let end = now + finish;
                    last_end = last_end.max(end);
                    // Requests are numbered as sent: the first `warmup` are not measured.
                    if id >= u64::from(load.warmup) {
                        let (prompt, output) = load.lengths.of(id as u32);
                        let output = output.max(1);
                        measured_from = Some(measured_from.map_or(at, |m: f64| m.min(at)));
                        ttft.push(first - at);
                        e2e.push(end - at);
                        if output > 1 {
                            tpot.push((end - first) / f64::from(output - 1));
                        }
                        prompt_tokens += u64::from(prompt.max(1));
                        output_tokens += u64::from(output);
                    }
                    match load.arrival {
                        Arrival::Closed { .. } => {
                            if finish > 0.0 {
                                let pos = due.iter().rposition(|&t| t <= end).map_or(0, |i| i + 1);
                                due.insert(pos, end);
                            } else if sent < load.requests {
                                send(now, &mut sent, &mut in_api, &mut times)?;
                            }
                        }
                        // The batch's last request ended: the next batch goes when its end
                        // reaches the client.
                        Arrival::Lockstep { size } if times.is_empty() && in_api.is_empty() => {
                            for _ in 0..size {
                                let pos = due.iter().rposition(|&t| t <= end).map_or(0, |i| i + 1);
                                due.insert(pos, end);
                            }
                        }
                        _ => {}
                    }
                }
                Event::Token(_) | Event::Preempted(_) => {}
            }
        }
    }
    let span = last_end.max(now) - measured_from.unwrap_or(0.0);
    Ok(Summary::of(
        span,
        Samples {
            ttft,
            tpot,
            e2e,
            prompt_tokens,
            output_tokens,
        },
        Counts {
            preemptions: engine.preemptions,
            prefix_queries: engine.prefix_queries,
            prefix_hits: engine.prefix_hits,
            steps: engine.steps,
            max_running,
        },
    ))
}

/// What the measured requests saw.
struct Samples {
    ttft: Vec<f64>,
    tpot: Vec<f64>,
    e2e: Vec<f64>,
    prompt_tokens: u64,
    output_tokens: u64,
}

/// What the engine did.
struct Counts {
    preemptions: u64,
    prefix_queries: u64,
    prefix_hits: u64,
    steps: u64,
    max_running: usize,
}

impl Summary {
    /// The figures of `s` over `duration` seconds.
    fn of(duration: f64, s: Samples, c: Counts) -> Summary {
        let n = s.e2e.len() as u32;
        Summary {
            requests: n,
            duration,
            ttft_mean: mean(&s.ttft),
            ttft_p99: p99(&s.ttft),
            tpot_mean: mean(&s.tpot),
            e2e_mean: mean(&s.e2e),
            requests_per_s: f64::from(n) / duration,
            output_tokens_per_s: s.output_tokens as f64 / duration,
            prompt_tokens_per_s: s.prompt_tokens as f64 / duration,
            prompt_tokens: s.prompt_tokens,
            output_tokens: s.output_tokens,
            preemptions: c.preemptions,
            prefix_queries: c.prefix_queries,
            prefix_hits: c.prefix_hits,
            steps: c.steps,
            max_running: c.max_running,
            ttft_s: s.ttft,
            tpot_s: s.tpot,
            e2e_s: s.e2e,
        }
    }
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

/// The most users of a closed loop (each with one of `requests` in flight) in `1..=max_users`
/// whose steady state `meets` the objectives: doubling, then bisection, assuming that more users
/// never lower latency. Each probe runs `3 × users + 100` requests and leaves the first wave of
/// `users` out; the users start spread over the mean time of a request alone.
pub fn max_users(
    config: &EngineConfig,
    requests: &Requests,
    max_users: u32,
    meets: impl Fn(&Summary) -> bool,
) -> Result<Capacity, String> {
    let mut probes = 0;
    let mut probe = |users: u32, stagger: f64| {
        probes += 1;
        simulate(
            config,
            &Load {
                arrival: Arrival::Closed { users, stagger },
                requests: users.saturating_mul(3).saturating_add(100),
                lengths: requests.lengths.clone(),
                warmup: users,
                seed: 0,
                prefixes: Arc::clone(&requests.prefixes),
            },
        )
    };
    let max_users = max_users.max(1);
    let first = probe(1, 0.0)?;
    // Users start spread over one request's mean time alone.
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
    requests: &Requests,
    max_rate: f64,
    meets: impl Fn(&Summary) -> bool,
) -> Result<RateCapacity, String> {
    let mut probes = 0;
    let mut probe = |rate: f64| {
        probes += 1;
        let n = ((60.0 * rate) as u32).clamp(200, 200_000);
        simulate(
            config,
            &Load {
                arrival: Arrival::Poisson { rate },
                requests: n,
                lengths: requests.lengths.clone(),
                warmup: n / 10,
                seed: 0,
                prefixes: Arc::clone(&requests.prefixes),
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

/// `load` spread over `replicas` copies of the engine that share nothing (data parallelism, as
/// MLPerf's 8 × H200 submissions run eight engines of one GPU each): request `i` goes to copy
/// `i % replicas`; each copy gets its share of the users, of the rate (a Poisson stream thinned
/// at random is Poisson; each copy draws its own from `seed + copy`) or of a lockstep batch.
/// The figures are of all requests together, over the longest copy's span.
pub fn simulate_replicas(
    config: &EngineConfig,
    load: &Load,
    replicas: u32,
) -> Result<Summary, String> {
    if replicas <= 1 {
        return simulate(config, load);
    }
    let share = |n: u32, r: u32| n / replicas + u32::from(r < n % replicas);
    let mut parts = Vec::new();
    for r in 0..replicas {
        let requests = share(load.requests, r);
        if requests == 0 {
            continue;
        }
        let lengths = Lengths::Each(
            (0..requests)
                .map(|k| load.lengths.of(r + k * replicas))
                .collect::<Vec<_>>()
                .into(),
        );
        let arrival = match load.arrival {
            Arrival::Closed { users, stagger } => Arrival::Closed {
                users: share(users, r).max(1),
                stagger,
            },
            Arrival::Poisson { rate } => Arrival::Poisson {
                rate: rate / f64::from(replicas),
            },
            Arrival::Constant { rate } => Arrival::Constant {
                rate: rate / f64::from(replicas),
            },
            Arrival::Offline => Arrival::Offline,
            Arrival::Lockstep { size } => Arrival::Lockstep {
                size: share(size, r).max(1),
            },
        };
        let prefixes: Vec<Arc<[u64]>> = if load.prefixes.is_empty() {
            Vec::new()
        } else {
            (0..requests)
                .map(|k| load.prefix(r + k * replicas))
                .collect()
        };
        let part = Load {
            arrival,
            requests,
            lengths,
            warmup: share(load.warmup, r).min(requests - 1),
            seed: load.seed.wrapping_add(u64::from(r)),
            prefixes: prefixes.into(),
        };
        parts.push(simulate(config, &part).map_err(|e| format!("copy {r}: {e}"))?);
    }
    let duration = parts.iter().map(|p| p.duration).fold(0.0, f64::max);
    let cat = |f: fn(&Summary) -> &Vec<f64>| -> Vec<f64> {
        parts.iter().flat_map(|p| f(p).iter().copied()).collect()
    };
    Ok(Summary::of(
        duration,
        Samples {
            ttft: cat(|p| &p.ttft_s),
            tpot: cat(|p| &p.tpot_s),
            e2e: cat(|p| &p.e2e_s),
            prompt_tokens: parts.iter().map(|p| p.prompt_tokens).sum(),
            output_tokens: parts.iter().map(|p| p.output_tokens).sum(),
        },
        Counts {
            preemptions: parts.iter().map(|p| p.preemptions).sum(),
            prefix_queries: parts.iter().map(|p| p.prefix_queries).sum(),
            prefix_hits: parts.iter().map(|p| p.prefix_hits).sum(),
            steps: parts.iter().map(|p| p.steps).sum(),
            max_running: parts.iter().map(|p| p.max_running).max().unwrap_or(0),
        },
    ))
}
