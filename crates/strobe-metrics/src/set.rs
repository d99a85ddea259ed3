//! All statistics of one stream of records (a run, or one class of it).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strobe_core::{Outcome, RequestRecord, TokenSource};

use crate::distribution::{Distribution, DistributionState, StateError};

/// The measured window: first measured send to last measured completion (ns offsets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Window {
    pub fn duration_s(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }

    fn overlap_ns(&self, start: u64, end: u64) -> u64 {
        end.min(self.end_ns)
            .saturating_sub(start.max(self.start_ns))
    }
}

/// Statistics of a stream of records. Warm-up records are excluded from every statistic (they are
/// only counted, and their time in flight inside the window still counts towards concurrency).
#[derive(Clone, Debug, Default)]
pub struct MetricSet {
    pub ttft_ns: Distribution,
    pub tpot_ns: Distribution,
    pub itl_ns: Distribution,
    pub e2e_ns: Distribution,
    pub queue_delay_ns: Distribution,
    /// Output tokens per content chunk, per request, in thousandths.
    pub tokens_per_chunk_milli: Distribution,
    pub output_tokens: Distribution,
    pub input_tokens: Distribution,

    pub successful: u64,
    pub failed: BTreeMap<String, u64>,
    pub cancelled: u64,
    pub warmup: u64,
    pub input_tokens_total: u64,
    pub output_tokens_total: u64,
    /// Successful requests by where their output count came from (`usage`, `chunks`, ...).
    pub output_token_sources: BTreeMap<String, u64>,
    pub content_chunks_total: u64,
    /// Server-reported input lengths against the workload's intended ones.
    pub input_check: InputCheck,

    /// Measured requests: min send and max end.
    window: Option<Window>,
    /// Σ (end − sent) of measured requests (all lie inside the window by construction).
    in_flight_ns_total: u128,
    /// Σ (sent − intended) of measured requests.
    queued_ns_total: u128,
    /// Warm-up intervals, kept to add their overlap with the window at the end (few, bounded by the
    /// warm-up size).
    warmup_intervals: Vec<(u64, u64)>,
}

/// Lossless serialised form of a [`MetricSet`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricSetState {
    pub ttft_ns: DistributionState,
    pub tpot_ns: DistributionState,
    pub itl_ns: DistributionState,
    pub e2e_ns: DistributionState,
    pub queue_delay_ns: DistributionState,
    pub tokens_per_chunk_milli: DistributionState,
    pub output_tokens: DistributionState,
    pub input_tokens: DistributionState,
    pub successful: u64,
    pub failed: BTreeMap<String, u64>,
    pub cancelled: u64,
    pub warmup: u64,
    pub input_tokens_total: u64,
    pub output_tokens_total: u64,
    pub output_token_sources: BTreeMap<String, u64>,
    pub content_chunks_total: u64,
    #[serde(default)]
    pub input_check: InputCheck,
    pub window: Option<Window>,
    pub in_flight_ns_total: String,
    pub queued_ns_total: String,
    pub warmup_intervals: Vec<(u64, u64)>,
}

/// How the server's input counts (`usage.prompt_tokens`) compare with what the workload meant to
/// send, over successful measured requests that have both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputCheck {
    pub compared: u64,
    /// Requests whose server count equals the intended length.
    pub exact: u64,
    /// Σ (server − intended).
    pub diff_sum: i64,
    pub diff_min: i64,
    pub diff_max: i64,
}

impl InputCheck {
    fn add(&mut self, diff: i64) {
        if self.compared == 0 {
            self.diff_min = diff;
            self.diff_max = diff;
        } else {
            self.diff_min = self.diff_min.min(diff);
            self.diff_max = self.diff_max.max(diff);
        }
        self.compared += 1;
        self.exact += (diff == 0) as u64;
        self.diff_sum += diff;
    }

    fn merge(&mut self, o: &InputCheck) {
        if o.compared == 0 {
            return;
        }
        if self.compared == 0 {
            *self = *o;
            return;
        }
        self.compared += o.compared;
        self.exact += o.exact;
        self.diff_sum += o.diff_sum;
        self.diff_min = self.diff_min.min(o.diff_min);
        self.diff_max = self.diff_max.max(o.diff_max);
    }
}

fn source_label(s: TokenSource) -> &'static str {
    match s {
        TokenSource::Usage => "usage",
        TokenSource::Tokenizer => "tokenizer",
        TokenSource::Chunks => "chunks",
        TokenSource::Workload => "workload",
    }
}

impl MetricSet {
    /// Adds one record. This is where the metric definitions of `docs/metrics.md` live.
    pub fn add(&mut self, r: &RequestRecord) {
        if r.warmup {
            self.warmup += 1;
            self.warmup_intervals.push((r.sent_ns, r.end_ns));
            return;
        }
        let w = self.window.get_or_insert(Window {
            start_ns: r.sent_ns,
            end_ns: r.end_ns,
        });
        w.start_ns = w.start_ns.min(r.sent_ns);
        w.end_ns = w.end_ns.max(r.end_ns);
        self.in_flight_ns_total += r.e2e_ns() as u128;
        self.queued_ns_total += r.queue_delay_ns() as u128;
        // Lateness is a property of the schedule, whatever the outcome.
        self.queue_delay_ns.record(r.queue_delay_ns());

        match &r.outcome {
            Outcome::Success => {}
            Outcome::Failed { kind, .. } => {
                *self.failed.entry(kind.label()).or_default() += 1;
                return;
            }
            Outcome::Cancelled => {
                self.cancelled += 1;
                return;
            }
        }
        self.successful += 1;
        self.e2e_ns.record(r.e2e_ns());
        if let Some(t) = r.ttft_ns() {
            self.ttft_ns.record(t);
        }
        if let Some(t) = r.tpot_ns() {
            self.tpot_ns.record(t.round() as u64);
        }
        for gap in r.inter_chunk_gaps_ns() {
            self.itl_ns.record(gap);
        }
        let chunks = r.content_chunks() as u64;
        self.content_chunks_total += chunks;
        if let Some(out) = r.output_tokens {
            self.output_tokens.record(out as u64);
            self.output_tokens_total += out as u64;
            if let Some(per_chunk) = (out as u64 * 1000).checked_div(chunks) {
                self.tokens_per_chunk_milli.record(per_chunk);
            }
        }
        if let Some(src) = r.output_tokens_source {
            *self
                .output_token_sources
                .entry(source_label(src).to_owned())
                .or_default() += 1;
        }
        if let Some(inp) = r.input_tokens {
            self.input_tokens.record(inp as u64);
            self.input_tokens_total += inp as u64;
            if let (Some(TokenSource::Usage), Some(expected)) =
                (r.input_tokens_source, r.expected_input_tokens)
            {
                self.input_check.add(inp as i64 - expected as i64);
            }
        }
    }

    /// Measured requests (successful, failed or cancelled; warm-up excluded).
    pub fn measured(&self) -> u64 {
        self.successful + self.failed_total() + self.cancelled
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    pub fn window(&self) -> Window {
        self.window.unwrap_or_default()
    }

    /// Time-averaged number of requests in flight (sent, not yet complete) over the window.
    pub fn achieved_concurrency(&self) -> f64 {
        let w = self.window();
        let span = w.end_ns.saturating_sub(w.start_ns);
        if span == 0 {
            return 0.0;
        }
        let warm: u128 = self
            .warmup_intervals
            .iter()
            .map(|&(s, e)| w.overlap_ns(s, e) as u128)
            .sum();
        (self.in_flight_ns_total + warm) as f64 / span as f64
    }

    /// Time-averaged number of requests waiting to be sent (intended but not yet sent).
    pub fn average_queued(&self) -> f64 {
        let span = self.window().end_ns.saturating_sub(self.window().start_ns);
        if span == 0 {
            return 0.0;
        }
        self.queued_ns_total as f64 / span as f64
    }

    /// Per-second rate of `count` over the window.
    pub fn per_second(&self, count: u64) -> f64 {
        let d = self.window().duration_s();
        if d > 0.0 {
            count as f64 / d
        } else {
            0.0
        }
    }

    /// Adds another set; the result equals adding both record streams into one.
    pub fn merge(&mut self, o: &MetricSet) {
        self.ttft_ns.merge(&o.ttft_ns);
        self.tpot_ns.merge(&o.tpot_ns);
        self.itl_ns.merge(&o.itl_ns);
        self.e2e_ns.merge(&o.e2e_ns);
        self.queue_delay_ns.merge(&o.queue_delay_ns);
        self.tokens_per_chunk_milli.merge(&o.tokens_per_chunk_milli);
        self.output_tokens.merge(&o.output_tokens);
        self.input_tokens.merge(&o.input_tokens);
        self.successful += o.successful;
        for (k, v) in &o.failed {
            *self.failed.entry(k.clone()).or_default() += v;
        }
        self.cancelled += o.cancelled;
        self.warmup += o.warmup;
        self.input_tokens_total += o.input_tokens_total;
        self.output_tokens_total += o.output_tokens_total;
        for (k, v) in &o.output_token_sources {
            *self.output_token_sources.entry(k.clone()).or_default() += v;
        }
        self.content_chunks_total += o.content_chunks_total;
        self.input_check.merge(&o.input_check);
        self.window = match (self.window, o.window) {
            (Some(a), Some(b)) => Some(Window {
                start_ns: a.start_ns.min(b.start_ns),
                end_ns: a.end_ns.max(b.end_ns),
            }),
            (a, b) => a.or(b),
        };
        self.in_flight_ns_total += o.in_flight_ns_total;
        self.queued_ns_total += o.queued_ns_total;
        self.warmup_intervals.extend_from_slice(&o.warmup_intervals);
        self.warmup_intervals.sort_unstable();
    }

    pub fn state(&self) -> MetricSetState {
        let mut warmup_intervals = self.warmup_intervals.clone();
        warmup_intervals.sort_unstable();
        MetricSetState {
            ttft_ns: self.ttft_ns.state(),
            tpot_ns: self.tpot_ns.state(),
            itl_ns: self.itl_ns.state(),
            e2e_ns: self.e2e_ns.state(),
            queue_delay_ns: self.queue_delay_ns.state(),
            tokens_per_chunk_milli: self.tokens_per_chunk_milli.state(),
            output_tokens: self.output_tokens.state(),
            input_tokens: self.input_tokens.state(),
            successful: self.successful,
            failed: self.failed.clone(),
            cancelled: self.cancelled,
            warmup: self.warmup,
            input_tokens_total: self.input_tokens_total,
            output_tokens_total: self.output_tokens_total,
            output_token_sources: self.output_token_sources.clone(),
            content_chunks_total: self.content_chunks_total,
            input_check: self.input_check,
            window: self.window,
            in_flight_ns_total: self.in_flight_ns_total.to_string(),
            queued_ns_total: self.queued_ns_total.to_string(),
            warmup_intervals,
        }
    }

    pub fn from_state(s: &MetricSetState) -> Result<MetricSet, StateError> {
        let int = |v: &str| v.parse::<u128>().map_err(|_| StateError::Sum(v.to_owned()));
        Ok(MetricSet {
            ttft_ns: Distribution::from_state(&s.ttft_ns)?,
            tpot_ns: Distribution::from_state(&s.tpot_ns)?,
            itl_ns: Distribution::from_state(&s.itl_ns)?,
            e2e_ns: Distribution::from_state(&s.e2e_ns)?,
            queue_delay_ns: Distribution::from_state(&s.queue_delay_ns)?,
            tokens_per_chunk_milli: Distribution::from_state(&s.tokens_per_chunk_milli)?,
            output_tokens: Distribution::from_state(&s.output_tokens)?,
            input_tokens: Distribution::from_state(&s.input_tokens)?,
            successful: s.successful,
            failed: s.failed.clone(),
            cancelled: s.cancelled,
            warmup: s.warmup,
            input_tokens_total: s.input_tokens_total,
            output_tokens_total: s.output_tokens_total,
            output_token_sources: s.output_token_sources.clone(),
            content_chunks_total: s.content_chunks_total,
            input_check: s.input_check,
            window: s.window,
            in_flight_ns_total: int(&s.in_flight_ns_total)?,
            queued_ns_total: int(&s.queued_ns_total)?,
            warmup_intervals: s.warmup_intervals.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strobe_core::{ChunkArrivals, ClassId, ErrorKind};

    /// A hand-made record: sent at `sent` ms, first token after `ttft` ms, then `n − 1` more
    /// chunks `gap` ms apart.
    fn rec(index: u64, intended: u64, sent: u64, ttft: u64, gap: u64, n: u32) -> RequestRecord {
        let ms = 1_000_000;
        let arrivals: Vec<u64> = (0..n as u64).map(|k| (ttft + k * gap) * ms).collect();
        RequestRecord {
            index,
            class: ClassId(0),
            warmup: false,
            intended_ns: intended * ms,
            sent_ns: sent * ms,
            first_token_ns: Some((sent + ttft) * ms),
            end_ns: (sent + ttft + (n as u64 - 1) * gap) * ms,
            chunk_arrivals_ns: ChunkArrivals {
                since_sent_ns: arrivals,
            },
            input_tokens: Some(100),
            input_tokens_source: Some(TokenSource::Usage),
            output_tokens: Some(n),
            output_tokens_source: Some(TokenSource::Usage),
            expected_input_tokens: None,
            outcome: Outcome::Success,
        }
    }

    #[test]
    fn hand_made_records_give_the_defined_metrics() {
        let mut m = MetricSet::default();
        // Two requests, each 1 s long, overlapping for 0.5 s: window 0..1.5 s.
        m.add(&rec(0, 0, 0, 100, 100, 10)); // ttft 100 ms, end 1000 ms
        m.add(&rec(1, 400, 500, 300, 50, 5)); // queued 100 ms, ttft 300 ms, end 500+300+200=1000
        let mut failed = rec(2, 600, 600, 50, 10, 2);
        failed.outcome = Outcome::Failed {
            kind: ErrorKind::HttpStatus(500),
            message: String::new(),
        };
        m.add(&failed);
        let mut warm = rec(3, 0, 0, 10, 10, 2);
        warm.warmup = true;
        m.add(&warm);

        assert_eq!(
            (m.successful, m.failed_total(), m.warmup, m.measured()),
            (2, 1, 1, 3)
        );
        assert_eq!(m.failed["http_500"], 1);
        let ttft = m.ttft_ns.summary(1e-6);
        assert_eq!(
            (ttft.count, ttft.mean, ttft.min, ttft.max),
            (2, 200.0, 100.0, 300.0)
        );
        // TPOT: (1000-100)/9 = 100 ms and (500-300)/4 = 50 ms.
        let tpot = m.tpot_ns.summary(1e-6);
        assert_eq!((tpot.mean, tpot.min, tpot.max), (75.0, 50.0, 100.0));
        // ITL is over gaps: 9 gaps of 100 and 4 of 50.
        let itl = m.itl_ns.summary(1e-6);
        assert_eq!(itl.count, 13);
        assert!((itl.mean - (900.0 + 200.0) / 13.0).abs() < 1e-9);
        // Queue delay counts every measured request, failures included.
        let q = m.queue_delay_ns.summary(1e-6);
        assert_eq!((q.count, q.max), (3, 100.0));
        assert_eq!(
            m.window(),
            Window {
                start_ns: 0,
                end_ns: 1_000_000_000
            }
        );
        assert_eq!(m.output_tokens_total, 15);
        assert_eq!(m.per_second(m.successful), 2.0);
        // In flight: 1000 + 500 + 60 (the failure) ms, plus the warm-up's 20 ms, over 1000 ms.
        assert!(
            (m.achieved_concurrency() - 1.58).abs() < 1e-9,
            "{}",
            m.achieved_concurrency()
        );
        assert_eq!(m.tokens_per_chunk_milli.summary(1e-3).mean, 1.0);
    }

    #[test]
    fn sets_merge_exactly() {
        let (mut a, mut b, mut all) = (
            MetricSet::default(),
            MetricSet::default(),
            MetricSet::default(),
        );
        for i in 0..300u64 {
            let r = rec(
                i,
                i * 7,
                i * 7 + i % 3,
                40 + i % 17,
                5 + i % 4,
                2 + (i % 20) as u32,
            );
            if i % 2 == 0 {
                a.add(&r)
            } else {
                b.add(&r)
            }
            all.add(&r);
        }
        let mut merged = MetricSet::from_state(&b.state()).unwrap();
        merged.merge(&MetricSet::from_state(&a.state()).unwrap());
        assert_eq!(merged.ttft_ns.summary(1.0), all.ttft_ns.summary(1.0));
        assert_eq!(merged.itl_ns.summary(1.0), all.itl_ns.summary(1.0));
        assert_eq!(merged.achieved_concurrency(), all.achieved_concurrency());
        assert_eq!(merged.window(), all.window());
    }
}
