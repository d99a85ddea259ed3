//! Service-level objectives: targets on distributions (`ttft_p99=500ms`) and per-request limits
//! (`ttft=200ms`) whose joint attainment gives goodput.
//!
//! One spec, `METRIC[_STAT]=DURATION` joined by commas, serves `--slo` flags and scenario files.
//! METRIC is `ttft`, `tpot`, `itl`, `e2e` or `queue_delay`; STAT is `mean`, `p50`, `p90`, `p95`,
//! `p99`, `p99_9` or `max`. Without a STAT the limit applies to each request (for `itl`: the
//! request's largest gap), and a request *meets the SLO* when it succeeded and meets every such
//! limit; goodput counts those requests per second.

use serde::{Deserialize, Serialize};
use strobe_core::RequestRecord;

use crate::{MetricSet, Summary};

/// A latency metric an SLO can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SloMetric {
    Ttft,
    Tpot,
    Itl,
    E2e,
    QueueDelay,
}

impl SloMetric {
    fn parse(s: &str) -> Option<SloMetric> {
        Some(match s {
            "ttft" => SloMetric::Ttft,
            "tpot" => SloMetric::Tpot,
            "itl" => SloMetric::Itl,
            "e2e" => SloMetric::E2e,
            "queue_delay" | "queue" => SloMetric::QueueDelay,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SloMetric::Ttft => "ttft",
            SloMetric::Tpot => "tpot",
            SloMetric::Itl => "itl",
            SloMetric::E2e => "e2e",
            SloMetric::QueueDelay => "queue_delay",
        }
    }
}

/// Which statistic of a distribution a target limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SloStat {
    Mean,
    P50,
    P90,
    P95,
    P99,
    P99_9,
    Max,
}

impl SloStat {
    fn parse(s: &str) -> Option<SloStat> {
        Some(match s {
            "mean" | "avg" => SloStat::Mean,
            "p50" | "median" => SloStat::P50,
            "p90" => SloStat::P90,
            "p95" => SloStat::P95,
            "p99" => SloStat::P99,
            "p99_9" | "p999" => SloStat::P99_9,
            "max" => SloStat::Max,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SloStat::Mean => "mean",
            SloStat::P50 => "p50",
            SloStat::P90 => "p90",
            SloStat::P95 => "p95",
            SloStat::P99 => "p99",
            SloStat::P99_9 => "p99_9",
            SloStat::Max => "max",
        }
    }

    /// The fraction of values a distribution may have above the limit and still meet it (a
    /// p99 target allows 1%); `None` for the mean.
    pub fn allowed_above(self) -> Option<f64> {
        Some(match self {
            SloStat::Mean => return None,
            SloStat::P50 => 0.5,
            SloStat::P90 => 0.1,
            SloStat::P95 => 0.05,
            SloStat::P99 => 0.01,
            SloStat::P99_9 => 0.001,
            SloStat::Max => 0.0,
        })
    }

    fn of(self, s: &Summary) -> f64 {
        match self {
            SloStat::Mean => s.mean,
            SloStat::P50 => s.p50,
            SloStat::P90 => s.p90,
            SloStat::P95 => s.p95,
            SloStat::P99 => s.p99,
            SloStat::P99_9 => s.p99_9,
            SloStat::Max => s.max,
        }
    }
}

/// One objective: `metric` (at `stat`, or per request when `stat` is `None`) at most `limit_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SloTarget {
    pub metric: SloMetric,
    pub stat: Option<SloStat>,
    pub limit_ms: f64,
}

impl SloTarget {
    /// `ttft_p99`, or `ttft` for a per-request limit.
    pub fn name(&self) -> String {
        match self.stat {
            Some(s) => format!("{}_{}", self.metric.name(), s.name()),
            None => self.metric.name().to_owned(),
        }
    }
}

/// Why an SLO spec was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SloError {
    #[error("SLO `{0}`: expected METRIC[_STAT]=DURATION, e.g. ttft_p99=500ms or e2e=2s")]
    Shape(String),
    #[error("SLO `{0}`: unknown metric; use ttft, tpot, itl, e2e or queue_delay")]
    Metric(String),
    #[error("SLO `{0}`: unknown statistic; use mean, p50, p90, p95, p99, p99_9 or max (or none, for a per-request limit)")]
    Stat(String),
    #[error("SLO `{0}`: the limit must be a positive duration with a unit, e.g. 500ms, 2s, 250us")]
    Limit(String),
}

/// Parses a duration with a unit (`500ms`, `2s`, `1.5s`, `250us`) into milliseconds.
fn parse_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("us").or_else(|| s.strip_suffix("µs")) {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e3)
    } else {
        return None;
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v > 0.0).then_some(v * scale)
}

/// Parses one `METRIC[_STAT]=DURATION`.
pub fn parse_target(item: &str) -> Result<SloTarget, SloError> {
    let item = item.trim();
    let (key, limit) = item
        .split_once('=')
        .ok_or_else(|| SloError::Shape(item.to_owned()))?;
    let key = key.trim().to_ascii_lowercase();
    let limit_ms = parse_ms(limit).ok_or_else(|| SloError::Limit(item.to_owned()))?;
    if let Some(metric) = SloMetric::parse(&key) {
        return Ok(SloTarget {
            metric,
            stat: None,
            limit_ms,
        });
    }
    // METRIC_STAT: try every `_` as the split (metric names hold `_` too: queue_delay_p99).
    let mut metric_seen = false;
    for (i, _) in key.match_indices('_') {
        let (m, s) = (&key[..i], &key[i + 1..]);
        if let Some(metric) = SloMetric::parse(m) {
            metric_seen = true;
            if let Some(stat) = SloStat::parse(s) {
                return Ok(SloTarget {
                    metric,
                    stat: Some(stat),
                    limit_ms,
                });
            }
        }
    }
    if metric_seen {
        return Err(SloError::Stat(item.to_owned()));
    }
    Err(SloError::Metric(item.to_owned()))
}

/// Parses a comma-separated list of targets.
pub fn parse(spec: &str) -> Result<Vec<SloTarget>, SloError> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(parse_target)
        .collect()
}

/// The per-request limits of a target list, in ns (what goodput counts against).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[schemars(deny_unknown_fields)]
pub struct RequestSlo {
    pub ttft_ns: Option<u64>,
    pub tpot_ns: Option<u64>,
    pub itl_ns: Option<u64>,
    pub e2e_ns: Option<u64>,
    pub queue_delay_ns: Option<u64>,
}

impl RequestSlo {
    /// The per-request limits among `targets`; `None` when there are none.
    pub fn from_targets(targets: &[SloTarget]) -> Option<RequestSlo> {
        let mut s = RequestSlo::default();
        let mut any = false;
        for t in targets.iter().filter(|t| t.stat.is_none()) {
            let ns = Some((t.limit_ms * 1e6).round() as u64);
            any = true;
            match t.metric {
                SloMetric::Ttft => s.ttft_ns = ns,
                SloMetric::Tpot => s.tpot_ns = ns,
                SloMetric::Itl => s.itl_ns = ns,
                SloMetric::E2e => s.e2e_ns = ns,
                SloMetric::QueueDelay => s.queue_delay_ns = ns,
            }
        }
        any.then_some(s)
    }

    /// A successful request meets the SLO when it is within every limit. A limit on a value the
    /// request does not have (TTFT of a non-streamed request) is not met.
    pub fn met_by(&self, r: &RequestRecord) -> bool {
        if !r.outcome.is_success() {
            return false;
        }
        let within = |limit: Option<u64>, value: Option<u64>| match limit {
            None => true,
            Some(l) => value.is_some_and(|v| v <= l),
        };
        within(self.ttft_ns, r.ttft_ns())
            && within(self.tpot_ns, r.tpot_ns().map(|t| t.round() as u64))
            && within(
                self.itl_ns,
                Some(r.inter_chunk_gaps_ns().max().unwrap_or(0)),
            )
            && within(self.e2e_ns, Some(r.e2e_ns()))
            && within(self.queue_delay_ns, Some(r.queue_delay_ns()))
    }
}

/// Whether a target is met beyond reasonable doubt, given how many requests were measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SloVerdict {
    /// Met: the 95% interval lies within the target.
    Met,
    /// Missed: the 95% interval lies beyond it.
    Missed,
    /// The interval straddles the target: more requests would tell.
    Unsure,
}

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval of a proportion `k / n` at `z`.
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// One target's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SloCheck {
    /// `ttft_p99`, or `ttft` for a per-request limit.
    pub name: String,
    pub limit_ms: f64,
    /// The measured statistic; for a per-request limit, the fraction of measured requests that
    /// met it is in `attainment` instead.
    pub actual_ms: Option<f64>,
    /// The point estimate: the statistic is within the limit.
    pub met: bool,
    /// Values the statistic is over (for a per-request limit: measured requests).
    #[serde(default)]
    pub samples: u64,
    /// Of those, how many were above the limit (per-request: missed any limit).
    #[serde(default)]
    pub over_limit: u64,
    /// The 95% interval: of the fraction above the limit for a percentile, of the mean (ms) for a
    /// mean; absent for a max and for per-request limits, which every request must meet.
    #[serde(default)]
    pub interval: Option<[f64; 2]>,
    /// `met` with the measurement's uncertainty taken into account.
    #[serde(default = "unsure")]
    pub verdict: SloVerdict,
}

fn unsure() -> SloVerdict {
    SloVerdict::Unsure
}

/// Every target's outcome, and goodput.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SloReport {
    pub checks: Vec<SloCheck>,
    /// Successful measured requests within every per-request limit (absent without such limits).
    pub requests_met: Option<u64>,
    /// `requests_met` / measured requests.
    pub attainment: Option<f64>,
    /// `requests_met` per second of the measured window.
    pub goodput_per_s: Option<f64>,
    /// Every distribution target met (per-request limits count as met when every measured
    /// request met them).
    pub all_met: bool,
}

impl SloReport {
    /// Evaluates `targets` against `set` (whose `slo` must hold their per-request limits).
    pub fn evaluate(targets: &[SloTarget], set: &MetricSet) -> SloReport {
        let distribution = |m: SloMetric| match m {
            SloMetric::Ttft => &set.ttft_ns,
            SloMetric::Tpot => &set.tpot_ns,
            SloMetric::Itl => &set.itl_ns,
            SloMetric::E2e => &set.e2e_ns,
            SloMetric::QueueDelay => &set.queue_delay_ns,
        };
        let per_request = set.slo.is_some();
        let measured = set.measured();
        let attainment = per_request.then(|| {
            if measured == 0 {
                0.0
            } else {
                set.slo_met as f64 / measured as f64
            }
        });
        let checks: Vec<SloCheck> = targets
            .iter()
            .map(|t| match t.stat {
                Some(stat) => {
                    let d = distribution(t.metric);
                    let s = d.summary(1e-6);
                    let actual = (s.count > 0).then(|| stat.of(&s));
                    let met = actual.is_some_and(|a| a <= t.limit_ms);
                    let limit_ns = (t.limit_ms * 1e6).floor() as u64;
                    let over = d.count_above(limit_ns);
                    let (interval, verdict) = match stat.allowed_above() {
                        _ if s.count == 0 => (None, SloVerdict::Unsure),
                        // A max is what was seen: no interval.
                        Some(0.0) => (
                            None,
                            if met {
                                SloVerdict::Met
                            } else {
                                SloVerdict::Missed
                            },
                        ),
                        Some(allowed) => {
                            let (lo, hi) = wilson(over, s.count, Z95);
                            let v = if hi <= allowed {
                                SloVerdict::Met
                            } else if lo > allowed {
                                SloVerdict::Missed
                            } else {
                                SloVerdict::Unsure
                            };
                            (Some([lo, hi]), v)
                        }
                        None => {
                            let half = Z95 * s.std / (s.count as f64).sqrt();
                            let (lo, hi) = (s.mean - half, s.mean + half);
                            let v = if hi <= t.limit_ms {
                                SloVerdict::Met
                            } else if lo > t.limit_ms {
                                SloVerdict::Missed
                            } else {
                                SloVerdict::Unsure
                            };
                            (Some([lo, hi]), v)
                        }
                    };
                    SloCheck {
                        name: t.name(),
                        limit_ms: t.limit_ms,
                        actual_ms: actual,
                        met,
                        samples: s.count,
                        over_limit: over,
                        interval,
                        verdict,
                    }
                }
                None => {
                    let met = measured > 0 && set.slo_met == measured;
                    SloCheck {
                        name: t.name(),
                        limit_ms: t.limit_ms,
                        actual_ms: None,
                        met,
                        samples: measured,
                        over_limit: measured - set.slo_met.min(measured),
                        interval: None,
                        // Every request must meet it: one miss settles it; no miss is what was
                        // seen, with no more certainty than the sample gives.
                        verdict: match (measured, met) {
                            (0, _) => SloVerdict::Unsure,
                            (_, true) => SloVerdict::Met,
                            (_, false) => SloVerdict::Missed,
                        },
                    }
                }
            })
            .collect();
        SloReport {
            all_met: checks.iter().all(|c| c.met),
            checks,
            requests_met: per_request.then_some(set.slo_met),
            attainment,
            goodput_per_s: per_request.then(|| set.per_second(set.slo_met)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::tests::rec;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        let t = parse("ttft_p99=500ms, tpot_p99=50ms,e2e=2s,queue_delay_max=1.5s,itl_p99_9=250us")
            .unwrap();
        assert_eq!(t[0].name(), "ttft_p99");
        assert_eq!(t[0].limit_ms, 500.0);
        assert_eq!((t[2].stat, t[2].limit_ms), (None, 2000.0));
        assert_eq!(t[3].name(), "queue_delay_max");
        assert_eq!((t[4].name().as_str(), t[4].limit_ms), ("itl_p99_9", 0.25));
        assert_eq!(
            parse("ttft_p99=500"),
            Err(SloError::Limit("ttft_p99=500".into()))
        );
        assert_eq!(
            parse("ttft_p42=1s"),
            Err(SloError::Stat("ttft_p42=1s".into()))
        );
        assert_eq!(
            parse("latency=1s"),
            Err(SloError::Metric("latency=1s".into()))
        );
        assert_eq!(parse("ttft"), Err(SloError::Shape("ttft".into())));
    }

    #[test]
    fn goodput_counts_requests_within_every_limit() {
        let targets = parse("ttft=150ms,e2e=1s,ttft_p50=200ms").unwrap();
        let mut m = MetricSet::with_slo(RequestSlo::from_targets(&targets));
        m.add(&rec(0, 0, 0, 100, 100, 10)); // ttft 100, e2e 1000: meets both
        m.add(&rec(1, 0, 0, 200, 10, 2)); // ttft 200: misses
        m.add(&rec(2, 0, 0, 100, 200, 10)); // e2e 1900: misses
        let r = SloReport::evaluate(&targets, &m);
        assert_eq!(r.requests_met, Some(1));
        assert!((r.attainment.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // Window 0..1.9 s.
        assert!((r.goodput_per_s.unwrap() - 1.0 / 1.9).abs() < 1e-9);
        assert!(!r.checks[0].met && !r.checks[1].met);
        assert!((r.checks[2].actual_ms.unwrap() - 100.0).abs() < 0.1 && r.checks[2].met);
        assert!(!r.all_met);
        // Per-request: one of three missed.
        assert_eq!((r.checks[0].samples, r.checks[0].over_limit), (3, 2));
        assert_eq!(r.checks[0].verdict, SloVerdict::Missed);
    }

    #[test]
    fn verdicts_allow_for_the_sample_size() {
        // Wilson interval: known values (k=0, n=100: [0, 0.037]; k=5, n=100: [0.0215, 0.112]).
        let (lo, hi) = wilson(0, 100, Z95);
        assert!(lo < 1e-12 && (hi - 0.0370).abs() < 5e-4, "{hi}");
        let (lo, hi) = wilson(5, 100, Z95);
        assert!(
            (lo - 0.0215).abs() < 5e-4 && (hi - 0.1118).abs() < 5e-4,
            "{lo} {hi}"
        );
        // p50 ≤ 150 ms: 100 requests at 100 ms and 20 at 200 ms: 1/6 above, clearly met.
        let targets = parse("ttft_p50=150ms,ttft_p99=150ms").unwrap();
        let mut m = MetricSet::with_slo(None);
        for i in 0..120 {
            let ttft = if i < 100 { 100 } else { 200 };
            m.add(&rec(i, 0, 0, ttft, 10, 3));
        }
        let r = SloReport::evaluate(&targets, &m);
        assert_eq!(r.checks[0].verdict, SloVerdict::Met);
        assert_eq!(r.checks[0].over_limit, 20);
        // p99: 17% above against 1% allowed: missed beyond doubt.
        assert_eq!(r.checks[1].verdict, SloVerdict::Missed);
        // 3 of 100 above a p95 limit: the point estimate meets it, the interval does not settle it.
        let targets = parse("ttft_p95=150ms").unwrap();
        let mut m = MetricSet::with_slo(None);
        for i in 0..100 {
            let ttft = if i < 97 { 100 } else { 200 };
            m.add(&rec(i, 0, 0, ttft, 10, 3));
        }
        let r = SloReport::evaluate(&targets, &m);
        assert!(r.checks[0].met);
        assert_eq!(r.checks[0].verdict, SloVerdict::Unsure);
    }
}
