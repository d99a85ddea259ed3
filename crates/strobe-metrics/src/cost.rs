//! What the measured work cost, from a GPU price (seed 001).
//!
//! The run's cost is `price per GPU-hour × GPUs × seconds`, the seconds being the measured window.
//! It is split between prefill (input tokens) and generation (output tokens) in proportion to the
//! time successful requests spent in each phase: prefill share = Σ TTFT / Σ E2E. In a run with
//! several classes the window's cost is first split between classes in proportion to their
//! requests' summed time in flight (Σ E2E). docs/metrics.md states the method and its caveats.

use serde::{Deserialize, Serialize};

use crate::MetricSet;

/// The price of the hardware serving the run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GpuPrice {
    pub usd_per_gpu_hour: f64,
    pub gpus: u32,
}

/// Cost figures of a run or a class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Cost {
    pub usd_per_gpu_hour: f64,
    pub gpus: u32,
    /// Wall seconds of GPU time attributed to this run or class.
    pub seconds: f64,
    pub total_usd: f64,
    /// Fraction of the time attributed to prefill (Σ TTFT / Σ E2E); absent without TTFTs
    /// (non-streamed requests).
    pub prefill_share: Option<f64>,
    pub usd_per_million_input_tokens: Option<f64>,
    pub usd_per_million_output_tokens: Option<f64>,
    /// Blended: total cost over input + output tokens.
    pub usd_per_million_tokens: Option<f64>,
    pub usd_per_thousand_requests: Option<f64>,
}

impl Cost {
    /// Cost of `set`'s work over `seconds` of GPU time at `price`.
    pub fn of(set: &MetricSet, price: GpuPrice, seconds: f64) -> Cost {
        let total_usd = price.usd_per_gpu_hour * price.gpus as f64 * seconds / 3600.0;
        let streamed = set.ttft_ns.count() > 0 && set.ttft_ns.count() == set.e2e_ns.count();
        let prefill_share = (streamed && set.e2e_ns.sum() > 0)
            .then(|| set.ttft_ns.sum() as f64 / set.e2e_ns.sum() as f64);
        let per_million = |usd: f64, tokens: u64| (tokens > 0).then(|| usd / tokens as f64 * 1e6);
        Cost {
            usd_per_gpu_hour: price.usd_per_gpu_hour,
            gpus: price.gpus,
            seconds,
            total_usd,
            prefill_share,
            usd_per_million_input_tokens: prefill_share
                .and_then(|s| per_million(total_usd * s, set.input_tokens_total)),
            usd_per_million_output_tokens: prefill_share
                .and_then(|s| per_million(total_usd * (1.0 - s), set.output_tokens_total)),
            usd_per_million_tokens: per_million(
                total_usd,
                set.input_tokens_total + set.output_tokens_total,
            ),
            usd_per_thousand_requests: (set.successful > 0)
                .then(|| total_usd / set.successful as f64 * 1e3),
        }
    }
}

/// Splits `seconds` between sets in proportion to their requests' time in flight.
pub fn attribute_seconds(sets: &[&MetricSet], seconds: f64) -> Vec<f64> {
    let total: f64 = sets.iter().map(|s| s.request_seconds()).sum();
    sets.iter()
        .map(|s| {
            if total > 0.0 {
                seconds * s.request_seconds() / total
            } else {
                seconds / sets.len().max(1) as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::tests::rec;

    #[test]
    fn cost_splits_prefill_and_generation_by_time() {
        let mut m = MetricSet::default();
        // TTFT 100 ms, E2E 1000 ms; TTFT 300 ms, E2E 500 ms: Σ TTFT 400, Σ E2E 1500.
        m.add(&rec(0, 0, 0, 100, 100, 10));
        m.add(&rec(1, 0, 500, 300, 50, 5));
        // $3.60 per GPU-hour, 2 GPUs, 1000 s: $2.
        let c = Cost::of(
            &m,
            GpuPrice {
                usd_per_gpu_hour: 3.6,
                gpus: 2,
            },
            1000.0,
        );
        assert!((c.total_usd - 2.0).abs() < 1e-12);
        let share = 400.0 / 1500.0;
        assert!((c.prefill_share.unwrap() - share).abs() < 1e-12);
        // 200 input tokens, 15 output tokens, 2 requests.
        let input = c.usd_per_million_input_tokens.unwrap();
        assert!((input - 2.0 * share / 200.0 * 1e6).abs() < 1e-6, "{input}");
        let output = c.usd_per_million_output_tokens.unwrap();
        assert!((output - 2.0 * (1.0 - share) / 15.0 * 1e6).abs() < 1e-6);
        assert!((c.usd_per_million_tokens.unwrap() - 2.0 / 215.0 * 1e6).abs() < 1e-6);
        assert!((c.usd_per_thousand_requests.unwrap() - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn classes_share_the_window_by_time_in_flight() {
        let (mut a, mut b) = (MetricSet::default(), MetricSet::default());
        a.add(&rec(0, 0, 0, 100, 100, 10)); // 1000 ms in flight
        b.add(&rec(1, 0, 0, 100, 100, 4)); // 400 ms
        b.add(&rec(2, 0, 0, 100, 100, 7)); // 700 ms
        let s = attribute_seconds(&[&a, &b], 21.0);
        assert!(
            (s[0] - 10.0).abs() < 1e-9 && (s[1] - 11.0).abs() < 1e-9,
            "{s:?}"
        );
        // Non-streamed requests: no phase split, the blended figures remain.
        let mut whole = rec(3, 0, 0, 100, 100, 3);
        whole.first_token_ns = None;
        let mut w = MetricSet::default();
        w.add(&whole);
        let c = Cost::of(
            &w,
            GpuPrice {
                usd_per_gpu_hour: 1.0,
                gpus: 1,
            },
            3600.0,
        );
        assert_eq!(
            (c.prefill_share, c.usd_per_million_input_tokens),
            (None, None)
        );
        assert!((c.usd_per_million_tokens.unwrap() - 1e6 / 103.0).abs() < 1e-6);
    }
}
