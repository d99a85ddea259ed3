//! Report sections filled by `strobe-telemetry`: server-side metrics, GPU samples, the launched
//! engine. Plain data; the crate that measures them owns how.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A sampled value over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Series {
    pub mean: f64,
    pub max: f64,
    pub last: f64,
    /// `[seconds since the run start, value]` pairs.
    pub samples: Vec<[f64; 2]>,
}

impl Series {
    pub fn push(&mut self, t_s: f64, v: f64) {
        let n = self.samples.len() as f64;
        self.mean = (self.mean * n + v) / (n + 1.0);
        self.max = if self.samples.is_empty() {
            v
        } else {
            self.max.max(v)
        };
        self.last = v;
        self.samples.push([t_s, v]);
    }
}

/// A server-side latency histogram's change over the run, in milliseconds. Quantiles are
/// interpolated within the server's buckets (as Prometheus' `histogram_quantile` does), so they
/// are only as fine as those buckets; the mean is exact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HistogramDelta {
    pub count: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

/// What the server's Prometheus endpoint said during the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ServerMetrics {
    pub url: String,
    /// Whose metric names were recognised: `vllm`, `sglang`, `tgi`, or `unknown`.
    pub engine: String,
    pub interval_s: f64,
    pub scrapes: u64,
    pub failed_scrapes: u64,
    /// Why metrics are missing or partial, when they are.
    pub note: Option<String>,
    /// Sampled gauges by canonical name: `running_requests`, `waiting_requests`,
    /// `kv_cache_usage` (fraction 0–1), `prefix_cache_hit_rate` (engines that export it as a gauge).
    pub gauges: BTreeMap<String, Series>,
    /// Counter increases over the run: `preemptions`, `prefix_cache_hits`,
    /// `prefix_cache_queries`, `prompt_tokens`, `generation_tokens`, `requests_finished`.
    pub counters: BTreeMap<String, f64>,
    /// Latency histograms' change over the run: `ttft`, `tpot`, `itl`, `e2e`, `queue`.
    pub histograms: BTreeMap<String, HistogramDelta>,
    /// `prefix_cache_hits / prefix_cache_queries` over the run, when both counters exist.
    pub prefix_cache_hit_rate: Option<f64>,
}

/// One GPU's samples.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GpuDevice {
    pub index: u32,
    pub name: String,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: Series,
    pub utilization_percent: Series,
    pub power_watts: Series,
}

/// GPU telemetry (seed 002's mem_usage).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Gpu {
    /// `nvml` (this machine), `server_metrics` (the engine's /metrics), or `none`.
    pub source: String,
    /// E.g. "no GPU seen: libnvidia-ml.so.1 is not on this machine"; none when not sampled.
    pub note: Option<String>,
    pub devices: Vec<GpuDevice>,
}

/// The engine strobe launched (`--launch`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Engine {
    pub command: String,
    /// `--flag value` pairs of the command line (seed 002's engine_params); bare flags map to "true".
    pub params: BTreeMap<String, String>,
    /// From `/version` (vLLM) or `/info` (TGI), when the server has one.
    pub version: Option<String>,
    pub log_path: String,
    pub ready_after_s: f64,
}
