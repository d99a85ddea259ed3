//! What the target actually did, per completed stream: the ground truth a client is checked against.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Mutex;
use std::time::Duration;

/// Server-side timings of completed streams (updated once per stream, not per token).
pub struct Truth {
    inner: Mutex<Inner>,
    /// Streams being served now.
    running: std::sync::atomic::AtomicI64,
    /// Requests waiting for a running slot (with `max_running`).
    waiting: std::sync::atomic::AtomicI64,
    /// `POST /reset_prefix_cache` calls (the target has no cache; it counts them for tests).
    resets: std::sync::atomic::AtomicU64,
    /// TCP connections accepted.
    connections: std::sync::atomic::AtomicU64,
}

impl Inner {
    fn new() -> Inner {
        Inner {
            accepted: 0,
            prompt_tokens: 0,
            images: 0,
            ttft: Stat::new(),
            tpot: Stat::new(),
            streams: 0,
            faults: Default::default(),
            ttft_buckets: Buckets::default(),
            tpot_buckets: Buckets::default(),
            e2e_buckets: Buckets::default(),
        }
    }
}

struct Inner {
    accepted: u64,
    prompt_tokens: u64,
    images: u64,
    ttft: Stat,
    tpot: Stat,
    streams: u64,
    /// Faults injected, by name.
    faults: std::collections::BTreeMap<String, u64>,
    /// Prometheus-style cumulative buckets (seconds) of TTFT and E2E, for `/metrics`.
    ttft_buckets: Buckets,
    tpot_buckets: Buckets,
    e2e_buckets: Buckets,
}

/// Bucket bounds in seconds, as vLLM's latency histograms use.
const BOUNDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
];

#[derive(Default)]
struct Buckets {
    counts: Vec<u64>,
    sum_s: f64,
    count: u64,
}

impl Buckets {
    fn observe(&mut self, secs: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BOUNDS.len()];
        }
        for (i, b) in BOUNDS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum_s += secs;
        self.count += 1;
    }

    fn render(&self, name: &str, model: &str, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, b) in BOUNDS.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\",model_name=\"{model}\"}} {c}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\",model_name=\"{model}\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{model_name=\"{model}\"}} {}", self.sum_s);
        let _ = writeln!(out, "{name}_count{{model_name=\"{model}\"}} {}", self.count);
    }
}

struct Stat {
    hist: Histogram<u64>,
    sum_ns: f64,
    count: u64,
}

impl Stat {
    fn new() -> Stat {
        Stat {
            hist: Histogram::new(3).expect("3 significant digits is valid"),
            sum_ns: 0.0,
            count: 0,
        }
    }
    fn record(&mut self, ns: u64) {
        if self.hist.record(ns.max(1)).is_err() {
            self.hist.saturating_record(ns.max(1));
        }
        self.sum_ns += ns as f64;
        self.count += 1;
    }
    fn summary(&self) -> TruthStat {
        let ms = |v: u64| v as f64 / 1e6;
        if self.count == 0 {
            return TruthStat::default();
        }
        TruthStat {
            count: self.count,
            mean_ms: self.sum_ns / self.count as f64 / 1e6,
            min_ms: ms(self.hist.min()),
            p50_ms: ms(self.hist.value_at_quantile(0.5)),
            p99_ms: ms(self.hist.value_at_quantile(0.99)),
            max_ms: ms(self.hist.max()),
        }
    }
}

/// Summary of one server-side timing.
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct TruthStat {
    pub count: u64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// `GET /strobe/truth`: TTFT is from the request being received (headers and body read) to the
/// first token handed to the connection; TPOT is (last − first token) / (tokens − 1).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct TruthSummary {
    /// Completion requests accepted (past validation), streamed or not.
    #[serde(default)]
    pub accepted_requests: u64,
    /// Σ usage.prompt_tokens over accepted requests.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Images received in accepted chat requests (each a valid base64 data URL or an http(s) URL).
    #[serde(default)]
    pub images: u64,
    pub completed_streams: u64,
    /// `POST /reset_prefix_cache` calls received.
    #[serde(default)]
    pub prefix_cache_resets: u64,
    /// TCP connections accepted (a client that reuses its connections opens few).
    #[serde(default)]
    pub connections: u64,
    /// Faults injected, by name (`cut`, `http-503`, `reset`, ...).
    #[serde(default)]
    pub faults: std::collections::BTreeMap<String, u64>,
    pub ttft: TruthStat,
    pub tpot: TruthStat,
    /// With a simulated engine: what it did, and how well its clock kept time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineTruth>,
}

/// The simulated engine's side of the truth.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct EngineTruth {
    /// `llama-3-8b on 1 × h100`.
    pub simulates: String,
    pub steps: u64,
    pub preemptions: u64,
    pub kv_cache_blocks: u64,
    pub generation_tokens: u64,
    /// Simulated seconds spent in steps.
    pub busy_s: f64,
    /// How late the clock handed each step's tokens over against its plan: mean, p50, p99
    /// (bucket upper bounds) and max, in milliseconds.
    pub lag_mean_ms: f64,
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
}

impl EngineTruth {
    pub fn of(engine: &strobe_sim::RealTime) -> EngineTruth {
        let s = engine.snapshot();
        EngineTruth {
            simulates: engine.config().describe(),
            steps: s.steps,
            preemptions: s.preemptions,
            kv_cache_blocks: s.kv_blocks,
            generation_tokens: s.generation_tokens,
            busy_s: s.busy_s,
            lag_mean_ms: s.lag.mean_s() * 1e3,
            lag_p50_ms: s.lag.quantile_s(0.5) * 1e3,
            lag_p99_ms: s.lag.quantile_s(0.99) * 1e3,
            lag_max_ms: s.lag.max_ns as f64 / 1e6,
        }
    }
}

impl Default for Truth {
    fn default() -> Self {
        Truth {
            inner: Mutex::new(Inner::new()),
            running: std::sync::atomic::AtomicI64::new(0),
            waiting: std::sync::atomic::AtomicI64::new(0),
            resets: std::sync::atomic::AtomicU64::new(0),
            connections: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Truth {
    /// A request passed validation.
    pub fn record_accepted(&self, prompt_tokens: u32, images: u32) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.accepted += 1;
        g.prompt_tokens += prompt_tokens as u64;
        g.images += images as u64;
    }

    pub fn record_stream(&self, ttft: Duration, first_to_last: Duration, tokens: u32) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.streams += 1;
        g.ttft.record(ttft.as_nanos() as u64);
        g.ttft_buckets.observe(ttft.as_secs_f64());
        g.e2e_buckets.observe((ttft + first_to_last).as_secs_f64());
        if tokens >= 2 {
            g.tpot
                .record(first_to_last.as_nanos() as u64 / (tokens as u64 - 1));
            g.tpot_buckets
                .observe(first_to_last.as_secs_f64() / f64::from(tokens - 1));
        }
    }

    /// The prefix cache was asked to empty.
    pub fn record_prefix_cache_reset(&self) {
        self.resets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A TCP connection was accepted.
    pub fn record_connection(&self) {
        self.connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn summary(&self) -> TruthSummary {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        TruthSummary {
            accepted_requests: g.accepted,
            prompt_tokens: g.prompt_tokens,
            images: g.images,
            completed_streams: g.streams,
            prefix_cache_resets: self.resets.load(std::sync::atomic::Ordering::Relaxed),
            connections: self.connections.load(std::sync::atomic::Ordering::Relaxed),
            faults: g.faults.clone(),
            ttft: g.ttft.summary(),
            tpot: g.tpot.summary(),
            engine: None,
        }
    }

    /// A fault was injected into a response.
    pub fn record_fault(&self, name: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *g.faults.entry(name.to_owned()).or_default() += 1;
    }

    /// A whole (non-streamed) response: only its end-to-end latency is known.
    pub fn record_whole(&self, e2e: Duration) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.e2e_buckets.observe(e2e.as_secs_f64());
    }

    pub fn stream_started(&self) {
        self.running
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn stream_ended(&self) {
        self.running
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Streams being served now.
    pub fn running(&self) -> i64 {
        self.running.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A request starts (`+1`) or stops (`-1`) waiting for a running slot.
    pub fn waiting(&self, delta: i64) {
        self.waiting
            .fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
    }

    /// `GET /metrics`: Prometheus text in vLLM's metric names (so that scrapers can be tested
    /// against the built-in target): running and waiting requests (the engine's, when given), and
    /// TTFT, TPOT and E2E histograms of completed ones.
    pub fn prometheus(&self, model: &str, engine: Option<(u64, u64)>) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let running = engine.map_or_else(
            || {
                self.running
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .max(0)
            },
            |(r, _)| r as i64,
        );
        let _ = writeln!(out, "# TYPE vllm:num_requests_running gauge");
        let _ = writeln!(
            out,
            "vllm:num_requests_running{{model_name=\"{model}\"}} {running}"
        );
        let _ = writeln!(out, "# TYPE vllm:num_requests_waiting gauge");
        let waiting = engine.map_or_else(
            || {
                self.waiting
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .max(0)
            },
            |(_, w)| w as i64,
        );
        let _ = writeln!(
            out,
            "vllm:num_requests_waiting{{model_name=\"{model}\"}} {waiting}"
        );
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.ttft_buckets
            .render("vllm:time_to_first_token_seconds", model, &mut out);
        g.tpot_buckets
            .render("vllm:time_per_output_token_seconds", model, &mut out);
        g.e2e_buckets
            .render("vllm:e2e_request_latency_seconds", model, &mut out);
        out
    }

    pub fn reset(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *g = Inner::new();
    }
}
