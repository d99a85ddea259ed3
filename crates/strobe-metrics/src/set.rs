//! All statistics of one stream of records (a run, or one class of it).
//!
//! [`MetricSet`] is defined once, by the `mergeable!` macro below: each field is declared a single
//! time and is then serialised losslessly, deserialised and merged from that one declaration. A
//! new metric is a new field (with a [`Merge`] type) and a line in [`MetricSet::add`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strobe_core::{Outcome, RequestRecord, TokenSource};

use crate::distribution::Distribution;
use crate::slo::RequestSlo;

/// Combining two partial statistics into what one stream of all their records would give.
pub trait Merge {
    fn merge(&mut self, other: &Self);
}

impl Merge for Distribution {
    fn merge(&mut self, other: &Self) {
        Distribution::merge(self, other)
    }
}

impl Merge for u64 {
    fn merge(&mut self, other: &Self) {
        *self += *other;
    }
}

impl Merge for BTreeMap<String, u64> {
    fn merge(&mut self, other: &Self) {
        for (k, v) in other {
            *self.entry(k.clone()).or_default() += v;
        }
    }
}

impl Merge for Vec<(u64, u64)> {
    fn merge(&mut self, other: &Self) {
        self.extend_from_slice(other);
        self.sort_unstable();
    }
}

/// Defines a struct whose fields are merged field by field, so the field list is written once.
macro_rules! mergeable {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Merge for $name {
            fn merge(&mut self, other: &Self) {
                $( Merge::merge(&mut self.$field, &other.$field); )*
            }
        }
    };
}

/// A 128-bit sum, serialised as a decimal string (JSON numbers cannot carry it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum128(pub u128);

impl Merge for Sum128 {
    fn merge(&mut self, other: &Self) {
        self.0 += other.0;
    }
}

impl schemars::JsonSchema for Sum128 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Sum128".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "a 128-bit sum as a decimal string"
        })
    }
}

impl Serialize for Sum128 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Sum128 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map(Sum128)
            .map_err(|_| serde::de::Error::custom(format!("sum `{s}` is not an integer")))
    }
}

/// The measured window: first measured send to last measured completion (ns offsets).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[schemars(deny_unknown_fields)]
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

impl Merge for Option<Window> {
    fn merge(&mut self, other: &Self) {
        *self = match (*self, *other) {
            (Some(a), Some(b)) => Some(Window {
                start_ns: a.start_ns.min(b.start_ns),
                end_ns: a.end_ns.max(b.end_ns),
            }),
            (a, b) => a.or(b),
        };
    }
}

/// How the server's input counts (`usage.prompt_tokens`) compare with what the workload meant to
/// send, over successful measured requests that have both.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[schemars(deny_unknown_fields)]
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
}

impl Merge for InputCheck {
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

/// One lockstep batch, as its successful measured members describe it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[schemars(deny_unknown_fields)]
pub struct BatchStats {
    pub members: u64,
    /// The slowest member's E2E: the batch latency.
    pub max_e2e_ns: u64,
    /// The last member's TTFT: when every member had started generating.
    pub max_ttft_ns: u64,
}

impl Merge for BTreeMap<u64, BatchStats> {
    fn merge(&mut self, other: &Self) {
        for (k, b) in other {
            let e = self.entry(*k).or_default();
            e.members += b.members;
            e.max_e2e_ns = e.max_e2e_ns.max(b.max_e2e_ns);
            e.max_ttft_ns = e.max_ttft_ns.max(b.max_ttft_ns);
        }
    }
}

/// The per-request SLO is configuration: merging keeps the first one given.
impl Merge for Option<RequestSlo> {
    fn merge(&mut self, other: &Self) {
        if self.is_none() {
            *self = *other;
        }
    }
}

mergeable! {
    /// Statistics of a stream of records. Warm-up records are excluded from every statistic (they
    /// are only counted, and their time in flight inside the window still counts towards
    /// concurrency). Serialised, it is the lossless state a report carries.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    #[schemars(deny_unknown_fields)]
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
        #[serde(default)]
        pub input_check: InputCheck,

        /// Measured requests: min send and max end.
        pub window: Option<Window>,
        /// Σ (end − sent) of measured requests (all lie inside the window by construction).
        pub in_flight_ns_total: Sum128,
        /// Σ (sent − intended) of measured requests.
        pub queued_ns_total: Sum128,
        /// Warm-up intervals, kept to add their overlap with the window at the end (few, bounded
        /// by the warm-up size).
        pub warmup_intervals: Vec<(u64, u64)>,
        /// Lockstep batches by index (empty for other schedules).
        #[serde(default)]
        pub batches: BTreeMap<u64, BatchStats>,
        /// The per-request SLO that `slo_met` counts against, if one was set.
        #[serde(default)]
        pub slo: Option<RequestSlo>,
        /// Successful measured requests that met every per-request SLO.
        #[serde(default)]
        pub slo_met: u64,
        /// Per-interval activity over the whole run (warm-up included), for charts.
        #[serde(default)]
        pub timeline: crate::Timeline,
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
    /// An empty set that counts requests meeting `slo` (goodput).
    pub fn with_slo(slo: Option<RequestSlo>) -> MetricSet {
        MetricSet {
            slo,
            ..MetricSet::default()
        }
    }

    /// Adds one record. This is where the metric definitions of `docs/metrics.md` live.
    pub fn add(&mut self, r: &RequestRecord) {
        self.timeline.add(r);
        if r.warmup {
            self.warmup += 1;
            // Kept sorted (as a merge leaves them), so the state does not depend on the order
            // records arrived in.
            let at = self
                .warmup_intervals
                .partition_point(|&i| i <= (r.sent_ns, r.end_ns));
            self.warmup_intervals.insert(at, (r.sent_ns, r.end_ns));
            return;
        }
        let w = self.window.get_or_insert(Window {
            start_ns: r.sent_ns,
            end_ns: r.end_ns,
        });
        w.start_ns = w.start_ns.min(r.sent_ns);
        w.end_ns = w.end_ns.max(r.end_ns);
        self.in_flight_ns_total.0 += r.e2e_ns() as u128;
        self.queued_ns_total.0 += r.queue_delay_ns() as u128;
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
        if let Some(b) = r.batch {
            let e = self.batches.entry(b).or_default();
            e.members += 1;
            e.max_e2e_ns = e.max_e2e_ns.max(r.e2e_ns());
            e.max_ttft_ns = e.max_ttft_ns.max(r.ttft_ns().unwrap_or(0));
        }
        if self.slo.is_some_and(|s| s.met_by(r)) {
            self.slo_met += 1;
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
        (self.in_flight_ns_total.0 + warm) as f64 / span as f64
    }

    /// Time-averaged number of requests waiting to be sent (intended but not yet sent).
    pub fn average_queued(&self) -> f64 {
        let span = self.window().end_ns.saturating_sub(self.window().start_ns);
        if span == 0 {
            return 0.0;
        }
        self.queued_ns_total.0 as f64 / span as f64
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

    /// Σ (end − sent) of measured requests, in seconds: the request-time the set occupied.
    pub fn request_seconds(&self) -> f64 {
        self.in_flight_ns_total.0 as f64 / 1e9
    }

    /// Batch latencies (each batch's slowest member's E2E) as a distribution.
    pub fn batch_latency_ns(&self) -> Distribution {
        let mut d = Distribution::default();
        for b in self.batches.values() {
            d.record(b.max_e2e_ns);
        }
        d
    }

    /// Adds another set; the result equals adding both record streams into one.
    pub fn merge(&mut self, o: &MetricSet) {
        Merge::merge(self, o)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use strobe_core::{ChunkArrivals, ClassId, ErrorKind};

    /// A hand-made record: sent at `sent` ms, first token after `ttft` ms, then `n − 1` more
    /// chunks `gap` ms apart.
    pub fn rec(index: u64, intended: u64, sent: u64, ttft: u64, gap: u64, n: u32) -> RequestRecord {
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
            batch: None,
            attempts: 1,
            outcome: Outcome::Success,
            capture: None,
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

    fn json(m: &MetricSet) -> String {
        serde_json::to_string(m).unwrap()
    }

    #[test]
    fn sets_merge_exactly_through_their_serialised_state() {
        let (mut a, mut b, mut all) = (
            MetricSet::default(),
            MetricSet::default(),
            MetricSet::default(),
        );
        for i in 0..300u64 {
            let mut r = rec(
                i,
                i * 7,
                i * 7 + i % 3,
                40 + i % 17,
                5 + i % 4,
                2 + (i % 20) as u32,
            );
            r.batch = Some(i / 10);
            r.warmup = i < 5;
            if i % 2 == 0 {
                a.add(&r)
            } else {
                b.add(&r)
            }
            all.add(&r);
        }
        let back = |m: &MetricSet| -> MetricSet { serde_json::from_str(&json(m)).unwrap() };
        let mut merged = back(&b);
        merged.merge(&back(&a));
        // Every field, histograms included, equals the one-stream set.
        assert_eq!(merged, all);
        assert_eq!(merged.achieved_concurrency(), all.achieved_concurrency());
        assert_eq!(
            merged.batch_latency_ns().summary(1.0),
            all.batch_latency_ns().summary(1.0)
        );
    }

    #[test]
    fn lockstep_batch_latency_is_the_slowest_member() {
        let mut m = MetricSet::default();
        for (i, (ttft, n)) in [(10, 5), (30, 3), (20, 9)].into_iter().enumerate() {
            let mut r = rec(i as u64, 0, 0, ttft, 10, n);
            r.batch = Some(0);
            m.add(&r);
        }
        let b = m.batches[&0];
        // E2E: 10+40=50, 30+20=50, 20+80=100 ms; the slowest TTFT is 30 ms.
        assert_eq!(
            (b.members, b.max_e2e_ns, b.max_ttft_ns),
            (3, 100_000_000, 30_000_000)
        );
        assert_eq!(m.batch_latency_ns().summary(1e-6).max, 100.0);
    }

    #[test]
    fn a_corrupt_state_is_an_error_not_a_panic() {
        let mut v: serde_json::Value = serde_json::from_str(&json(&MetricSet::default())).unwrap();
        v["ttft_ns"]["hdr"] = "not base64!".into();
        assert!(serde_json::from_value::<MetricSet>(v.clone()).is_err());
        v["ttft_ns"] = serde_json::to_value(Distribution::default()).unwrap();
        v["in_flight_ns_total"] = "12x".into();
        let e = serde_json::from_value::<MetricSet>(v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("12x"), "{e}");
    }
}
