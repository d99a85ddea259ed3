//! The engine on the wall clock: one thread steps one [`Engine`] for every request, sleeping out
//! each step's simulated duration, and hands each request its tokens at the end of the step that
//! made them. This is what `strobe serve --sim` streams from; the planner drives the same engine
//! on a virtual clock instead.
//!
//! The clock keeps to its own schedule: a step planned to end at `t` is followed by one planned
//! to start at `t`, whenever the thread actually woke up. How late the tokens of each step were
//! handed over, against the plan, is its lag ([`LagStats`]); a thread that cannot keep up shows
//! it there, rather than silently stretching the simulated times.
//!
//! No async runtime here: a request brings a [`Sink`], a function the clock calls once per token
//! (the server's sink wakes its stream's task), and which says whether anyone still listens.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineConfig, Event, Request};

/// Called once per output token of its request, from the clock's thread, at the end of the step
/// that made it; dropped after the last. Returns false when no one listens any more (the request
/// is then aborted).
pub type Sink = Box<dyn FnMut() -> bool + Send>;

enum Cmd {
    Add {
        req: Request,
        ready: Instant,
        sink: Sink,
    },
    Abort(u64),
    Stop,
}

/// Upper bounds (µs) of the lag histogram's buckets; the last is open.
pub const LAG_BOUNDS_US: &[u64] = &[
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 1_000_000,
];

/// How late steps ended against the clock's plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LagStats {
    pub steps: u64,
    pub sum_ns: u64,
    pub max_ns: u64,
    /// Counts per bucket of [`LAG_BOUNDS_US`], and one more for beyond the last.
    pub buckets: Vec<u64>,
}

impl LagStats {
    fn observe(&mut self, lag: Duration) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; LAG_BOUNDS_US.len() + 1];
        }
        let us = lag.as_micros() as u64;
        let i = LAG_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LAG_BOUNDS_US.len());
        self.buckets[i] += 1;
        self.steps += 1;
        let ns = lag.as_nanos() as u64;
        self.sum_ns += ns;
        self.max_ns = self.max_ns.max(ns);
    }

    /// The upper bound of the bucket holding quantile `q` (an over-estimate by at most one
    /// bucket), in seconds; the maximum where that is smaller.
    pub fn quantile_s(&self, q: f64) -> f64 {
        if self.steps == 0 {
            return 0.0;
        }
        let rank = ((q * self.steps as f64).ceil() as u64).clamp(1, self.steps);
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let bound = LAG_BOUNDS_US
                    .get(i)
                    .map_or(f64::INFINITY, |&b| b as f64 / 1e6);
                return bound.min(self.max_ns as f64 / 1e9);
            }
        }
        self.max_ns as f64 / 1e9
    }

    pub fn mean_s(&self) -> f64 {
        if self.steps == 0 {
            0.0
        } else {
            self.sum_ns as f64 / self.steps as f64 / 1e9
        }
    }
}

/// What the engine is doing, updated after every step.
#[derive(Default)]
struct Shared {
    running: AtomicU64,
    waiting: AtomicU64,
    kv_usage_bits: AtomicU64,
    preemptions: AtomicU64,
    steps: AtomicU64,
    generation_tokens: AtomicU64,
    prompt_tokens: AtomicU64,
    prefix_queries: AtomicU64,
    prefix_hits: AtomicU64,
    /// Seconds of simulated step time, as f64 bits.
    busy_bits: AtomicU64,
    lag: Mutex<LagStats>,
    stop: AtomicBool,
}

/// A snapshot of the engine's state, for `/metrics` and the truth.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub running: u64,
    pub waiting: u64,
    /// Share of KV-cache blocks in use, 0–1.
    pub kv_usage: f64,
    pub kv_blocks: u64,
    pub preemptions: u64,
    pub steps: u64,
    pub generation_tokens: u64,
    /// Prompt tokens of the requests added.
    pub prompt_tokens: u64,
    /// Prompt tokens looked up in the prefix cache, and found there.
    pub prefix_queries: u64,
    pub prefix_hits: u64,
    /// Simulated seconds spent stepping.
    pub busy_s: f64,
    pub lag: LagStats,
}

/// The engine's clock thread. Dropping it stops the thread.
pub struct RealTime {
    tx: Mutex<mpsc::Sender<Cmd>>,
    next_id: AtomicU64,
    shared: Arc<Shared>,
    config: EngineConfig,
    kv_blocks: u64,
    /// A copy of the engine as it started, to check requests against before they are sent.
    check: Engine,
    thread: Option<JoinHandle<()>>,
}

impl RealTime {
    /// Starts the clock thread for an engine of `config`.
    pub fn start(config: EngineConfig) -> Result<RealTime, String> {
        let engine = Engine::new(config.clone())?;
        let check = Engine::new(config.clone())?;
        let kv_blocks = engine.kv_blocks();
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel();
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("strobe-sim-clock".into())
            .spawn(move || run(engine, rx, &s))
            .map_err(|e| format!("cannot start the engine's clock thread: {e}"))?;
        Ok(RealTime {
            tx: Mutex::new(tx),
            next_id: AtomicU64::new(0),
            shared,
            config,
            kv_blocks,
            check,
            thread: Some(thread),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Checks that a request could be served at all (its tokens fit in the KV cache), as a server
    /// checks before it answers 200.
    pub fn fits(&self, prompt: u32, output: u32) -> Result<(), String> {
        if output == 0 {
            return Err("a request for 0 output tokens".into());
        }
        self.check.fits(prompt, output)
    }

    /// Queues a request that reached the server at `received`; it joins the engine
    /// `per_request_api` later. Returns its id, for [`RealTime::abort`]. A request that does not
    /// fit (see [`RealTime::fits`]) is dropped at once: its sink is never called.
    pub fn submit(
        &self,
        prompt: u32,
        output: u32,
        prefix: Arc<[u64]>,
        received: Instant,
        sink: Sink,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ready = received + Duration::from_secs_f64(self.config.overheads.per_request_api);
        self.send(Cmd::Add {
            req: Request {
                id,
                prompt,
                output,
                prefix,
            },
            ready,
            sink,
        });
        id
    }

    /// Drops a request (its client went away); harmless when it has ended.
    pub fn abort(&self, id: u64) {
        self.send(Cmd::Abort(id));
    }

    fn send(&self, cmd: Cmd) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(cmd);
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let s = &self.shared;
        Snapshot {
            running: s.running.load(Ordering::Relaxed),
            waiting: s.waiting.load(Ordering::Relaxed),
            kv_usage: f64::from_bits(s.kv_usage_bits.load(Ordering::Relaxed)),
            kv_blocks: self.kv_blocks,
            preemptions: s.preemptions.load(Ordering::Relaxed),
            steps: s.steps.load(Ordering::Relaxed),
            generation_tokens: s.generation_tokens.load(Ordering::Relaxed),
            prompt_tokens: s.prompt_tokens.load(Ordering::Relaxed),
            prefix_queries: s.prefix_queries.load(Ordering::Relaxed),
            prefix_hits: s.prefix_hits.load(Ordering::Relaxed),
            busy_s: f64::from_bits(s.busy_bits.load(Ordering::Relaxed)),
            lag: s.lag.lock().map(|l| l.clone()).unwrap_or_default(),
        }
    }
}

impl Drop for RealTime {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The clock thread's state besides the engine.
struct Clock {
    /// Requests on their way through the API server, in arrival order.
    pending: VecDeque<(Instant, Request)>,
    sinks: HashMap<u64, Sink>,
    /// Aborts that came in during a step, applied after it.
    aborts: Vec<u64>,
    stopped: bool,
}

impl Clock {
    fn take(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Add { req, ready, sink } => {
                self.sinks.insert(req.id, sink);
                self.pending.push_back((ready, req));
            }
            Cmd::Abort(id) => self.aborts.push(id),
            Cmd::Stop => self.stopped = true,
        }
    }
}

fn run(mut engine: Engine, rx: mpsc::Receiver<Cmd>, shared: &Shared) {
    let mut clock = Clock {
        pending: VecDeque::new(),
        sinks: HashMap::new(),
        aborts: Vec::new(),
        stopped: false,
    };
    // The planned end of the last step, while the engine stays busy.
    let mut planned: Option<Instant> = None;
    let mut busy = 0.0f64;
    let mut prompt_tokens = 0u64;
    let mut generation_tokens = 0u64;
    loop {
        while let Ok(cmd) = rx.try_recv() {
            clock.take(cmd);
        }
        if clock.stopped || shared.stop.load(Ordering::Relaxed) {
            return;
        }
        for id in clock.aborts.drain(..) {
            clock.sinks.remove(&id);
            if !engine.abort(id) {
                clock.pending.retain(|(_, r)| r.id != id);
            }
        }
        // Requests through the API join the engine; the first one's instant starts an idle clock.
        let now = Instant::now();
        let mut joined_at = None;
        while clock.pending.front().is_some_and(|(t, _)| *t <= now) {
            let (t, req) = clock.pending.pop_front().expect("front exists");
            if !clock.sinks.contains_key(&req.id) {
                continue;
            }
            let (id, prompt) = (req.id, req.prompt);
            match engine.add(req) {
                Ok(()) => {
                    prompt_tokens += u64::from(prompt);
                    joined_at.get_or_insert(t);
                }
                Err(_) => {
                    clock.sinks.remove(&id);
                }
            }
        }
        if engine.is_idle() {
            planned = None;
            publish(shared, &engine, busy, prompt_tokens, generation_tokens);
            let wait = clock
                .pending
                .front()
                .map(|(t, _)| t.saturating_duration_since(Instant::now()));
            let cmd = match wait {
                Some(d) => match rx.recv_timeout(d) {
                    Ok(c) => Some(c),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                },
                None => match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return,
                },
            };
            if let Some(c) = cmd {
                clock.take(c);
            }
            continue;
        }
        let start = planned.or(joined_at).unwrap_or(now);
        let Some(step) = engine.step() else {
            continue;
        };
        busy += step.duration;
        let end = start + Duration::from_secs_f64(step.duration);
        publish(shared, &engine, busy, prompt_tokens, generation_tokens);
        // Out the step's time; requests that arrive meanwhile join at the next step.
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            match rx.recv_timeout(end - now) {
                Ok(c) => clock.take(c),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if clock.stopped {
                return;
            }
        }
        for e in &step.events {
            match *e {
                Event::FirstToken(id) | Event::Token(id) => {
                    generation_tokens += 1;
                    let gone = clock.sinks.get_mut(&id).is_some_and(|sink| !sink());
                    if gone {
                        clock.sinks.remove(&id);
                        clock.aborts.push(id);
                    }
                }
                Event::Finished(id) => {
                    clock.sinks.remove(&id);
                }
                Event::Preempted(_) => {}
            }
        }
        // Lag: when the step's last token was handed over, against the step's planned end.
        let lag = Instant::now().saturating_duration_since(end);
        if let Ok(mut l) = shared.lag.lock() {
            l.observe(lag);
        }
        planned = Some(end);
    }
}

fn publish(shared: &Shared, engine: &Engine, busy: f64, prompt: u64, generation: u64) {
    shared
        .running
        .store(engine.running() as u64, Ordering::Relaxed);
    shared
        .waiting
        .store(engine.waiting() as u64, Ordering::Relaxed);
    shared
        .kv_usage_bits
        .store(engine.kv_usage().to_bits(), Ordering::Relaxed);
    shared
        .preemptions
        .store(engine.preemptions, Ordering::Relaxed);
    shared.steps.store(engine.steps, Ordering::Relaxed);
    shared
        .prefix_queries
        .store(engine.prefix_queries, Ordering::Relaxed);
    shared
        .prefix_hits
        .store(engine.prefix_hits, Ordering::Relaxed);
    shared.busy_bits.store(busy.to_bits(), Ordering::Relaxed);
    shared.prompt_tokens.store(prompt, Ordering::Relaxed);
    shared
        .generation_tokens
        .store(generation, Ordering::Relaxed);
}
