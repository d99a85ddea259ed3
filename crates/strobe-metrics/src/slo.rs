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
    pub met: bool,
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
        let summary = |m: SloMetric| -> Summary {
            let d = match m {
                SloMetric::Ttft => &set.ttft_ns,
                SloMetric::Tpot => &set.tpot_ns,
                SloMetric::Itl => &set.itl_ns,
                SloMetric::E2e => &set.e2e_ns,
                SloMetric::QueueDelay => &set.queue_delay_ns,
            };
            d.summary(1e-6)
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
                    let s = summary(t.metric);
                    let actual = (s.count > 0).then(|| stat.of(&s));
                    SloCheck {
                        name: t.name(),
                        limit_ms: t.limit_ms,
                        actual_ms: actual,
                        met: actual.is_some_and(|a| a <= t.limit_ms),
                    }
                }
                None => SloCheck {
                    name: t.name(),
                    limit_ms: t.limit_ms,
                    actual_ms: None,
                    met: measured > 0 && set.slo_met == measured,
                },
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
    }
}
