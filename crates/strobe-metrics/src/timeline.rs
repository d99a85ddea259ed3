//! What happened when: per-interval counts over a run, for charts of throughput, requests in
//! flight and latency over time.
//!
//! The run is cut into equal intervals from its start (offset 0). Each interval counts the
//! requests that ended in it (and their tokens and latency sums, so a chart can show the mean
//! latency of the requests that ended then) and the request-time in flight that overlapped it
//! (so its mean in-flight count is exact). Intervals start at one second; when a run outgrows
//! [`MAX_BUCKETS`] of them, neighbours are merged and the interval doubles, so a timeline stays
//! small however long the run. Warm-up requests count too: a chart shows the whole run, with the
//! measured window marked.

use serde::{Deserialize, Serialize};
use strobe_core::{Outcome, RequestRecord};

use crate::set::Merge;

/// The most intervals a timeline keeps before it doubles their width.
pub const MAX_BUCKETS: usize = 1024;
const FIRST_BUCKET_NS: u64 = 1_000_000_000;

/// Per-interval counts, as parallel arrays (index `i` covers `[i·bucket_ns, (i+1)·bucket_ns)`).
/// Arrays read from a file may differ in length: a missing entry is zero.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Timeline {
    /// Interval width in nanoseconds (0 for an empty timeline).
    pub bucket_ns: u64,
    /// Successful requests that ended in the interval.
    pub completed: Vec<u64>,
    /// Failed or cancelled requests that ended in the interval.
    pub failed: Vec<u64>,
    /// Output tokens of the successful requests that ended in the interval.
    pub output_tokens: Vec<u64>,
    /// Σ of the time each request (sent → end) overlapped the interval: divided by the interval
    /// it is the mean number of requests in flight.
    pub in_flight_ns: Vec<u64>,
    /// Σ TTFT and Σ E2E of the successful requests that ended in the interval, in nanoseconds.
    pub ttft_ns_sum: Vec<u64>,
    pub e2e_ns_sum: Vec<u64>,
    /// Successful requests with a TTFT that ended in the interval.
    pub ttft_count: Vec<u64>,
}

fn at(v: &[u64], i: usize) -> u64 {
    v.get(i).copied().unwrap_or(0)
}

fn bump(v: &mut Vec<u64>, i: usize, by: u64) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] = v[i].saturating_add(by);
}

impl Timeline {
    fn columns(&mut self) -> [&mut Vec<u64>; 7] {
        [
            &mut self.completed,
            &mut self.failed,
            &mut self.output_tokens,
            &mut self.in_flight_ns,
            &mut self.ttft_ns_sum,
            &mut self.e2e_ns_sum,
            &mut self.ttft_count,
        ]
    }

    /// Intervals covered (the longest array).
    pub fn len(&self) -> usize {
        [
            &self.completed,
            &self.failed,
            &self.output_tokens,
            &self.in_flight_ns,
            &self.ttft_ns_sum,
            &self.e2e_ns_sum,
            &self.ttft_count,
        ]
        .iter()
        .map(|v| v.len())
        .max()
        .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Doubles the interval width, merging neighbours.
    fn coarsen(&mut self) {
        self.bucket_ns = self.bucket_ns.saturating_mul(2);
        for col in self.columns() {
            let merged = col
                .chunks(2)
                .map(|p| p.iter().fold(0u64, |a, &b| a.saturating_add(b)))
                .collect();
            *col = merged;
        }
    }

    /// Widens the intervals until offset `ns` falls inside the first [`MAX_BUCKETS`].
    fn fit(&mut self, ns: u64) {
        if self.bucket_ns == 0 {
            self.bucket_ns = FIRST_BUCKET_NS;
        }
        while ns / self.bucket_ns >= MAX_BUCKETS as u64 {
            self.coarsen();
        }
    }

    pub fn add(&mut self, r: &RequestRecord) {
        let (sent, end) = (r.sent_ns, r.end_ns.max(r.sent_ns));
        self.fit(end);
        let w = self.bucket_ns;
        let i = (end / w) as usize;
        match r.outcome {
            Outcome::Success => {
                bump(&mut self.completed, i, 1);
                bump(
                    &mut self.output_tokens,
                    i,
                    r.output_tokens.unwrap_or(0) as u64,
                );
                bump(&mut self.e2e_ns_sum, i, end - sent);
                if let Some(t) = r.ttft_ns() {
                    bump(&mut self.ttft_ns_sum, i, t);
                    bump(&mut self.ttft_count, i, 1);
                }
            }
            _ => bump(&mut self.failed, i, 1),
        }
        let mut b = sent / w;
        while b * w < end {
            let lo = (b * w).max(sent);
            let hi = ((b + 1) * w).min(end);
            bump(&mut self.in_flight_ns, b as usize, hi - lo);
            b += 1;
        }
    }

    /// Interval start times in seconds.
    pub fn starts_s(&self) -> Vec<f64> {
        (0..self.len())
            .map(|i| i as f64 * self.bucket_ns as f64 / 1e9)
            .collect()
    }

    fn width_s(&self) -> f64 {
        self.bucket_ns as f64 / 1e9
    }

    /// Successful requests per second in each interval.
    pub fn requests_per_s(&self) -> Vec<f64> {
        (0..self.len())
            .map(|i| at(&self.completed, i) as f64 / self.width_s())
            .collect()
    }

    /// Output tokens per second in each interval.
    pub fn output_tokens_per_s(&self) -> Vec<f64> {
        (0..self.len())
            .map(|i| at(&self.output_tokens, i) as f64 / self.width_s())
            .collect()
    }

    /// Mean requests in flight in each interval.
    pub fn mean_in_flight(&self) -> Vec<f64> {
        (0..self.len())
            .map(|i| at(&self.in_flight_ns, i) as f64 / self.bucket_ns.max(1) as f64)
            .collect()
    }

    /// Mean TTFT (ms) of the requests that ended in each interval (None where none did).
    pub fn mean_ttft_ms(&self) -> Vec<Option<f64>> {
        (0..self.len())
            .map(|i| {
                let n = at(&self.ttft_count, i);
                (n > 0).then(|| at(&self.ttft_ns_sum, i) as f64 / n as f64 / 1e6)
            })
            .collect()
    }

    /// Mean E2E (ms) of the successful requests that ended in each interval.
    pub fn mean_e2e_ms(&self) -> Vec<Option<f64>> {
        (0..self.len())
            .map(|i| {
                let n = at(&self.completed, i);
                (n > 0).then(|| at(&self.e2e_ns_sum, i) as f64 / n as f64 / 1e6)
            })
            .collect()
    }
}

impl Merge for Timeline {
    fn merge(&mut self, o: &Timeline) {
        if o.bucket_ns == 0 {
            return;
        }
        let mut o = o.clone();
        if self.bucket_ns == 0 {
            self.bucket_ns = o.bucket_ns;
        }
        // Widths only ever double from the same start, so the wider is a multiple of the other.
        while self.bucket_ns < o.bucket_ns {
            self.coarsen();
        }
        while o.bucket_ns < self.bucket_ns {
            o.coarsen();
        }
        for (mine, theirs) in self.columns().into_iter().zip(o.columns()) {
            for (i, &v) in theirs.iter().enumerate() {
                bump(mine, i, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::tests::rec;

    #[test]
    fn intervals_count_completions_tokens_and_time_in_flight() {
        let mut t = Timeline::default();
        // Sent at 0.5 s, first token 100 ms later, 10 chunks 100 ms apart: ends at 1.5 s.
        t.add(&rec(0, 500, 500, 100, 100, 10));
        // Sent at 2.2 s, ends at 2.2 + 0.3 + 4×0.05 = 2.7 s.
        t.add(&rec(1, 2200, 2200, 300, 50, 5));
        assert_eq!(t.bucket_ns, 1_000_000_000);
        assert_eq!(t.completed, vec![0, 1, 1]);
        assert_eq!(t.output_tokens, vec![0, 10, 5]);
        // 0.5 s in flight in [0,1), 0.5 s in [1,2), 0.5 s in [2,3).
        assert_eq!(t.mean_in_flight(), vec![0.5, 0.5, 0.5]);
        assert_eq!(t.mean_ttft_ms(), vec![None, Some(100.0), Some(300.0)]);
        assert_eq!(t.mean_e2e_ms()[1], Some(1000.0));
    }

    #[test]
    fn a_long_run_doubles_the_interval_instead_of_growing() {
        let mut t = Timeline::default();
        for k in 0..3000u64 {
            // One 10 ms request every second for 3,000 s.
            t.add(&rec(k, k * 1000, k * 1000, 10, 1, 1));
        }
        assert!(t.len() <= MAX_BUCKETS, "{}", t.len());
        assert_eq!(t.bucket_ns, 4_000_000_000);
        assert_eq!(t.completed.iter().sum::<u64>(), 3000);
        assert_eq!(t.completed[0], 4);
        // In flight: 3,000 requests × 10 ms, whatever the width.
        assert_eq!(t.in_flight_ns.iter().sum::<u64>(), 3000 * 10_000_000);
    }

    #[test]
    fn merging_timelines_of_different_widths_equals_one_timeline_of_all_records() {
        let records: Vec<_> = (0..2500u64)
            .map(|k| rec(k, k * 700, k * 700, 5 + k % 7, 3, 4))
            .collect();
        let mut whole = Timeline::default();
        records.iter().for_each(|r| whole.add(r));
        let (mut a, mut b) = (Timeline::default(), Timeline::default());
        // `a` holds only early records (1 s intervals), `b` the late ones (wider intervals).
        records[..100].iter().for_each(|r| a.add(r));
        records[100..].iter().for_each(|r| b.add(r));
        assert_ne!(a.bucket_ns, b.bucket_ns);
        a.merge(&b);
        assert_eq!(a, whole);
    }
}
