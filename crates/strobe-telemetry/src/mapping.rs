//! Known engines' metric names, mapped to canonical ones.

use std::collections::BTreeMap;

use crate::prometheus::Sample;

/// How samples of one canonical metric combine across label sets (engines, models, GPUs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    Sum,
    Max,
}

/// What kind of metric a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Sampled over time.
    Gauge { combine: Combine },
    /// Monotonic; its increase over the run is reported.
    Counter,
    /// A histogram in seconds (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// One known name.
pub struct Known {
    pub engine: &'static str,
    pub name: &'static str,
    pub canonical: &'static str,
    pub kind: Kind,
}

const fn gauge(
    engine: &'static str,
    name: &'static str,
    canonical: &'static str,
    combine: Combine,
) -> Known {
    Known {
        engine,
        name,
        canonical,
        kind: Kind::Gauge { combine },
    }
}
const fn counter(engine: &'static str, name: &'static str, canonical: &'static str) -> Known {
    Known {
        engine,
        name,
        canonical,
        kind: Kind::Counter,
    }
}
const fn histogram(engine: &'static str, name: &'static str, canonical: &'static str) -> Known {
    Known {
        engine,
        name,
        canonical,
        kind: Kind::Histogram,
    }
}

/// Every name strobe understands. Several names may map to one canonical metric (engines renamed
/// theirs across versions); the first present wins.
pub const KNOWN: &[Known] = &[
    // vLLM (V1 engine; older names after the newer ones)
    gauge(
        "vllm",
        "vllm:num_requests_running",
        "running_requests",
        Combine::Sum,
    ),
    gauge(
        "vllm",
        "vllm:num_requests_waiting",
        "waiting_requests",
        Combine::Sum,
    ),
    gauge(
        "vllm",
        "vllm:kv_cache_usage_perc",
        "kv_cache_usage",
        Combine::Max,
    ),
    gauge(
        "vllm",
        "vllm:gpu_cache_usage_perc",
        "kv_cache_usage",
        Combine::Max,
    ),
    counter("vllm", "vllm:num_preemptions_total", "preemptions"),
    counter("vllm", "vllm:prefix_cache_hits_total", "prefix_cache_hits"),
    counter(
        "vllm",
        "vllm:gpu_prefix_cache_hits_total",
        "prefix_cache_hits",
    ),
    counter(
        "vllm",
        "vllm:prefix_cache_queries_total",
        "prefix_cache_queries",
    ),
    counter(
        "vllm",
        "vllm:gpu_prefix_cache_queries_total",
        "prefix_cache_queries",
    ),
    counter("vllm", "vllm:prompt_tokens_total", "prompt_tokens"),
    counter("vllm", "vllm:generation_tokens_total", "generation_tokens"),
    histogram("vllm", "vllm:time_to_first_token_seconds", "ttft"),
    histogram("vllm", "vllm:request_time_per_output_token_seconds", "tpot"),
    histogram("vllm", "vllm:time_per_output_token_seconds", "tpot"),
    histogram("vllm", "vllm:inter_token_latency_seconds", "itl"),
    histogram("vllm", "vllm:e2e_request_latency_seconds", "e2e"),
    histogram("vllm", "vllm:request_queue_time_seconds", "queue"),
    // SGLang
    gauge(
        "sglang",
        "sglang:num_running_reqs",
        "running_requests",
        Combine::Sum,
    ),
    gauge(
        "sglang",
        "sglang:num_queue_reqs",
        "waiting_requests",
        Combine::Sum,
    ),
    gauge(
        "sglang",
        "sglang:token_usage",
        "kv_cache_usage",
        Combine::Max,
    ),
    gauge(
        "sglang",
        "sglang:cache_hit_rate",
        "prefix_cache_hit_rate",
        Combine::Max,
    ),
    counter("sglang", "sglang:prompt_tokens_total", "prompt_tokens"),
    counter(
        "sglang",
        "sglang:generation_tokens_total",
        "generation_tokens",
    ),
    counter("sglang", "sglang:num_requests_total", "requests_finished"),
    histogram("sglang", "sglang:time_to_first_token_seconds", "ttft"),
    histogram("sglang", "sglang:time_per_output_token_seconds", "tpot"),
    histogram("sglang", "sglang:inter_token_latency_seconds", "itl"),
    histogram("sglang", "sglang:e2e_request_latency_seconds", "e2e"),
    histogram("sglang", "sglang:queue_time_seconds", "queue"),
    // Hugging Face TGI
    gauge(
        "tgi",
        "tgi_batch_current_size",
        "running_requests",
        Combine::Sum,
    ),
    gauge("tgi", "tgi_queue_size", "waiting_requests", Combine::Sum),
    counter("tgi", "tgi_request_success", "requests_finished"),
    histogram("tgi", "tgi_request_duration", "e2e"),
    histogram("tgi", "tgi_request_queue_duration", "queue"),
    histogram("tgi", "tgi_request_mean_time_per_token_duration", "tpot"),
];

/// NVIDIA DCGM exporter names, read for GPU telemetry of a remote engine (per `gpu` label).
pub const DCGM_MEMORY_USED_MIB: &str = "DCGM_FI_DEV_FB_USED";
pub const DCGM_MEMORY_FREE_MIB: &str = "DCGM_FI_DEV_FB_FREE";
pub const DCGM_UTILIZATION: &str = "DCGM_FI_DEV_GPU_UTIL";
pub const DCGM_POWER_WATTS: &str = "DCGM_FI_DEV_POWER_USAGE";

/// Cumulative histogram state: `le` bounds with cumulative counts, plus sum and count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cumulative {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

/// One scrape, reduced to canonical names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    pub gauges: BTreeMap<&'static str, f64>,
    pub counters: BTreeMap<&'static str, f64>,
    pub histograms: BTreeMap<&'static str, Cumulative>,
    /// Engines whose names appeared.
    pub engines: Vec<&'static str>,
    /// DCGM per-GPU values: gpu label → (used MiB, free MiB, util %, power W).
    pub dcgm: BTreeMap<String, [Option<f64>; 4]>,
}

/// Reduces samples to canonical values.
pub fn read(samples: &[Sample]) -> Reading {
    let mut by_name: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        by_name.entry(s.name.as_str()).or_default().push(s);
    }
    let mut r = Reading::default();
    for k in KNOWN {
        let taken = |r: &Reading| match k.kind {
            Kind::Gauge { .. } => r.gauges.contains_key(k.canonical),
            Kind::Counter => r.counters.contains_key(k.canonical),
            Kind::Histogram => r.histograms.contains_key(k.canonical),
        };
        if taken(&r) {
            continue;
        }
        match k.kind {
            Kind::Gauge { combine } => {
                if let Some(v) = by_name.get(k.name) {
                    let vals = v.iter().map(|s| s.value).filter(|x| x.is_finite());
                    let combined = match combine {
                        Combine::Sum => vals.sum::<f64>(),
                        Combine::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                    };
                    if combined.is_finite() {
                        r.gauges.insert(k.canonical, combined);
                        note_engine(&mut r, k.engine);
                    }
                }
            }
            Kind::Counter => {
                // Counters may be exposed with or without the `_total` suffix.
                let v = by_name
                    .get(k.name)
                    .or_else(|| by_name.get(k.name.trim_end_matches("_total")));
                if let Some(v) = v {
                    r.counters
                        .insert(k.canonical, v.iter().map(|s| s.value).sum());
                    note_engine(&mut r, k.engine);
                }
            }
            Kind::Histogram => {
                let bucket = format!("{}_bucket", k.name);
                let Some(buckets) = by_name.get(bucket.as_str()) else {
                    continue;
                };
                let mut h = Cumulative::default();
                let mut bounds: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
                for b in buckets {
                    let le = match b.label("le").map(|l| l.parse::<f64>()) {
                        Some(Ok(le)) => le,
                        _ if b.label("le") == Some("+Inf") => f64::INFINITY,
                        _ => continue,
                    };
                    let e = bounds.entry(le.to_bits()).or_insert((le, 0.0));
                    e.1 += b.value;
                }
                h.buckets = bounds.into_values().collect();
                h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                h.sum = by_name
                    .get(format!("{}_sum", k.name).as_str())
                    .map_or(0.0, |v| v.iter().map(|s| s.value).sum());
                h.count = by_name
                    .get(format!("{}_count", k.name).as_str())
                    .map_or(0.0, |v| v.iter().map(|s| s.value).sum());
                r.histograms.insert(k.canonical, h);
                note_engine(&mut r, k.engine);
            }
        }
    }
    for (name, slot) in [
        (DCGM_MEMORY_USED_MIB, 0),
        (DCGM_MEMORY_FREE_MIB, 1),
        (DCGM_UTILIZATION, 2),
        (DCGM_POWER_WATTS, 3),
    ] {
        for s in by_name.get(name).into_iter().flatten() {
            let gpu = s.label("gpu").unwrap_or("0").to_owned();
            r.dcgm.entry(gpu).or_default()[slot] = Some(s.value);
        }
    }
    r
}

fn note_engine(r: &mut Reading, engine: &'static str) {
    if !r.engines.contains(&engine) {
        r.engines.push(engine);
    }
}

/// The change of a cumulative histogram between two readings, in milliseconds.
pub fn delta(before: Option<&Cumulative>, after: &Cumulative) -> strobe_report::HistogramDelta {
    let empty = Cumulative::default();
    let before = before.unwrap_or(&empty);
    let count = after.count - before.count;
    let sum = after.sum - before.sum;
    let buckets: Vec<(f64, f64)> = after
        .buckets
        .iter()
        .map(|&(le, c)| {
            let prev = before
                .buckets
                .iter()
                .find(|b| b.0 == le)
                .map_or(0.0, |b| b.1);
            (le, c - prev)
        })
        .collect();
    let q = |p: f64| quantile(&buckets, count, p) * 1e3;
    strobe_report::HistogramDelta {
        count,
        mean_ms: if count > 0.0 { sum / count * 1e3 } else { 0.0 },
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
    }
}

/// `histogram_quantile`: linear interpolation inside the bucket holding the rank; a rank in the
/// `+Inf` bucket reports the highest finite bound.
fn quantile(buckets: &[(f64, f64)], count: f64, p: f64) -> f64 {
    if count <= 0.0 || buckets.is_empty() {
        return 0.0;
    }
    let rank = p * count;
    let mut prev_le = 0.0;
    let mut prev_c = 0.0;
    for &(le, c) in buckets {
        if c >= rank {
            if le.is_infinite() {
                return prev_le;
            }
            let in_bucket = c - prev_c;
            if in_bucket <= 0.0 {
                return le;
            }
            return prev_le + (le - prev_le) * (rank - prev_c) / in_bucket;
        }
        prev_le = if le.is_finite() { le } else { prev_le };
        prev_c = c;
    }
    prev_le
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::parse;

    const VLLM: &str = r#"
vllm:num_requests_running{engine="0",model_name="m"} 3
vllm:num_requests_running{engine="1",model_name="m"} 2
vllm:num_requests_waiting{engine="0",model_name="m"} 7
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.5
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 30
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 120
vllm:num_preemptions_total{engine="0",model_name="m"} 4
vllm:time_to_first_token_seconds_bucket{le="0.01",model_name="m"} 10
vllm:time_to_first_token_seconds_bucket{le="0.02",model_name="m"} 30
vllm:time_to_first_token_seconds_bucket{le="0.04",model_name="m"} 40
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 40
vllm:time_to_first_token_seconds_sum{model_name="m"} 0.6
vllm:time_to_first_token_seconds_count{model_name="m"} 40
"#;

    #[test]
    fn vllm_names_map_to_canonical_ones() {
        let r = read(&parse(VLLM));
        assert_eq!(r.engines, vec!["vllm"]);
        assert_eq!(r.gauges["running_requests"], 5.0, "summed over engines");
        assert_eq!(r.gauges["waiting_requests"], 7.0);
        assert_eq!(r.gauges["kv_cache_usage"], 0.5, "max over engines");
        assert_eq!(r.counters["prefix_cache_hits"], 30.0);
        assert_eq!(r.counters["preemptions"], 4.0);
        let h = &r.histograms["ttft"];
        assert_eq!(h.buckets.len(), 4);
        assert_eq!((h.sum, h.count), (0.6, 40.0));
    }

    #[test]
    fn histogram_deltas_give_mean_and_interpolated_quantiles() {
        let before = Cumulative {
            buckets: vec![
                (0.01, 10.0),
                (0.02, 10.0),
                (0.04, 10.0),
                (f64::INFINITY, 10.0),
            ],
            sum: 0.05,
            count: 10.0,
        };
        let after = read(&parse(VLLM)).histograms["ttft"].clone();
        let d = delta(Some(&before), &after);
        // 30 new observations: 20 in (10, 20] ms, 10 in (20, 40] ms; sum 0.55 s.
        assert_eq!(d.count, 30.0);
        assert!((d.mean_ms - 550.0 / 30.0).abs() < 1e-9);
        assert!(
            (d.p50_ms - 17.5).abs() < 1e-9,
            "rank 15 of the 20 in (10,20]: {}",
            d.p50_ms
        );
        assert!((d.p90_ms - 34.0).abs() < 1e-9, "{}", d.p90_ms);
        let d0 = delta(None, &Cumulative::default());
        assert_eq!(d0.count, 0.0);
    }

    #[test]
    fn sglang_tgi_and_dcgm_are_recognised() {
        let text = "sglang:num_running_reqs 4\nsglang:cache_hit_rate 0.3\ntgi_queue_size 2\nDCGM_FI_DEV_FB_USED{gpu=\"0\"} 1024\nDCGM_FI_DEV_POWER_USAGE{gpu=\"0\"} 300.5\n";
        let r = read(&parse(text));
        assert_eq!(r.engines, vec!["sglang", "tgi"]);
        assert_eq!(r.gauges["running_requests"], 4.0, "first known name wins");
        assert_eq!(r.gauges["prefix_cache_hit_rate"], 0.3);
        assert_eq!(r.dcgm["0"], [Some(1024.0), None, None, Some(300.5)]);
    }
}
