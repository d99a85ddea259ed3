//! The experiment summary (schema `strobe.experiment.v2`): one entry per run of an experiment
//! (profile levels, seed 000's conditions, a scenario), derived from the runs' reports, plus the
//! comparisons the experiment asks for (interactive latency beside the batch against its isolated
//! baseline, the batch's throughput against batch-only).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strobe_metrics::{Cost, Summary};

use crate::{ClassReport, Report, TargetInfo, Throughput, Tool};

/// Identifies the summary's layout.
pub const EXPERIMENT_SCHEMA_ID: &str = "strobe.experiment.v2";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ExperimentSummary {
    /// Always [`EXPERIMENT_SCHEMA_ID`].
    pub schema: String,
    pub tool: Tool,
    /// `levels`, `interference` or `scenario`.
    pub kind: String,
    /// A human title (`profile low: one run per concurrency level`).
    pub title: String,
    pub started_at: String,
    pub target: Option<TargetInfo>,
    /// The experiment was stopped before every run was done.
    pub interrupted: bool,
    /// Runs planned (finished or not).
    pub planned: usize,
    /// Finished runs, in order.
    pub points: Vec<PointSummary>,
    pub comparisons: Vec<Comparison>,
    /// Identifies the experiment's settings: a re-run with the same fingerprint resumes an
    /// interrupted attempt.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Runs taken from an earlier, interrupted attempt instead of being run again.
    #[serde(default)]
    pub resumed: Vec<String>,
    /// A capacity search: its probes, bracket and answer.
    #[serde(default)]
    pub search: Option<SearchSummary>,
    /// An engine-flag grid: the engine configurations that failed to start (their points are
    /// missing), and the Pareto front of the points.
    #[serde(default)]
    pub grid: Option<GridSummary>,
}

/// A capacity search's course and result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SearchSummary {
    /// `rate` (requests/s, open loop) or `concurrency` (closed loop).
    pub variable: String,
    /// The SLOs every probe is judged by.
    pub slo: Vec<strobe_metrics::SloTarget>,
    /// `5%` or `1`: how narrow the bracket must get.
    pub precision: String,
    pub probes: Vec<ProbeResult>,
    /// Highest passing value (the answer, once `outcome` is `found`).
    pub lo: Option<f64>,
    /// Lowest failing value.
    pub hi: Option<f64>,
    /// `found`, `below_min`, `at_least_max`, `out_of_probes`, `stopped` or `running`.
    pub outcome: String,
    pub answer: Option<f64>,
    /// What the reader should know: inconclusive probes, over-saturated bounds, contradictions.
    pub notes: Vec<String>,
}

/// One probe of a capacity search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ProbeResult {
    pub label: String,
    pub value: f64,
    pub duration_s: f64,
    pub successful: u64,
    pub failed: u64,
    /// Met every SLO (counted toward the lower bound).
    pub pass: bool,
    /// `confidence`, `margin`, `point estimate`, `over-saturation` or `inconclusive: probed again`.
    pub decided_by: String,
    /// A re-probe (longer) of an inconclusive value.
    pub reprobe: bool,
    /// Stopped early: outstanding requests grew without bound.
    pub saturated: bool,
    pub checks: Vec<strobe_metrics::SloCheck>,
}

/// An engine-flag grid's outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GridSummary {
    /// Engine flag combinations, in order (`--max-num-seqs 8 --max-num-batched-tokens 512`).
    pub engines: Vec<String>,
    /// Those that did not start, with why.
    pub failed: Vec<EngineFailure>,
    /// Labels of the points on the Pareto front of output tokens/s per GPU against output
    /// tokens/s per user (no other point is better at both), best throughput first.
    pub pareto: Vec<ParetoPoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct EngineFailure {
    pub engine: String,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ParetoPoint {
    pub label: String,
    /// Output tokens/s of the run ÷ GPUs.
    pub output_tokens_per_s_per_gpu: f64,
    /// 1000 / mean TPOT (ms): the decode speed each user sees.
    pub output_tokens_per_s_per_user: f64,
}

/// The points no other point beats at both throughput per GPU and tokens/s per user; each entry
/// is (label, per GPU, per user). Sorted by throughput, best first.
pub fn pareto(points: &[(String, f64, f64)]) -> Vec<ParetoPoint> {
    let mut front: Vec<ParetoPoint> = points
        .iter()
        .filter(|(_, g, u)| g.is_finite() && u.is_finite())
        .filter(|(l, g, u)| {
            !points
                .iter()
                .any(|(l2, g2, u2)| l2 != l && g2 >= g && u2 >= u && (g2 > g || u2 > u))
        })
        .map(|(l, g, u)| ParetoPoint {
            label: l.clone(),
            output_tokens_per_s_per_gpu: *g,
            output_tokens_per_s_per_user: *u,
        })
        .collect();
    front.sort_by(|a, b| {
        b.output_tokens_per_s_per_gpu
            .total_cmp(&a.output_tokens_per_s_per_gpu)
    });
    front
}

/// One finished run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PointSummary {
    pub label: String,
    /// Where the run's full report was written, if it was.
    pub report_file: Option<String>,
    /// What sets this run apart (e.g. `{"concurrency": 4}`).
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub stop_reason: String,
    pub interrupted: bool,
    pub classes: Vec<ClassSummary>,
}

/// The headline figures of one class of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ClassSummary {
    pub name: String,
    pub schedule: String,
    pub successful: u64,
    pub failed: u64,
    pub unsent: u64,
    pub duration_s: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub throughput: Throughput,
    pub achieved_concurrency: f64,
    pub ttft_ms: Summary,
    pub tpot_ms: Summary,
    pub itl_ms: Summary,
    pub e2e_ms: Summary,
    /// Lockstep: batch latency (slowest member's E2E).
    pub batch_latency_ms: Option<Summary>,
    pub cost: Option<Cost>,
    /// Every SLO of the class met (absent without SLOs).
    pub slo_met: Option<bool>,
    pub goodput_per_s: Option<f64>,
}

impl ClassSummary {
    /// A class with nothing measured (for a table's columns when there are no rows).
    pub fn of_empty() -> ClassSummary {
        ClassSummary::default()
    }

    pub fn of(c: &ClassReport) -> ClassSummary {
        let r = &c.results;
        ClassSummary {
            name: c.name.clone(),
            schedule: c.load.schedule.clone(),
            successful: r.requests.successful,
            failed: r.requests.failed,
            unsent: r.requests.unsent,
            duration_s: r.duration_s,
            input_tokens: r.tokens.input,
            output_tokens: r.tokens.output,
            throughput: r.throughput.clone(),
            achieved_concurrency: r.concurrency.achieved_mean,
            ttft_ms: r.latency.ttft_ms,
            tpot_ms: r.latency.tpot_ms,
            itl_ms: r.latency.itl_ms,
            e2e_ms: r.latency.e2e_ms,
            batch_latency_ms: r.batches.as_ref().map(|b| b.latency_ms),
            cost: c.cost.clone(),
            slo_met: c.slo.as_ref().map(|s| s.all_met),
            goodput_per_s: c.slo.as_ref().and_then(|s| s.goodput_per_s),
        }
    }
}

impl PointSummary {
    pub fn of(
        label: &str,
        parameters: BTreeMap<String, serde_json::Value>,
        report: &Report,
        report_file: Option<String>,
    ) -> PointSummary {
        PointSummary {
            label: label.to_owned(),
            report_file,
            parameters,
            stop_reason: report.run.stop_reason.clone(),
            interrupted: report.run.interrupted,
            classes: report.classes.iter().map(ClassSummary::of).collect(),
        }
    }

    pub fn class(&self, name: &str) -> Option<&ClassSummary> {
        self.classes.iter().find(|c| c.name == name)
    }
}

/// One figure beside its baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Ratio {
    /// `e2e_ms.p95`, `output_tokens_per_s`, ...
    pub metric: String,
    pub value: f64,
    pub baseline: f64,
    /// `value / baseline` (absent when the baseline is 0).
    pub ratio: Option<f64>,
}

/// A class of one run against the same class of a baseline run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Comparison {
    /// The run compared (e.g. `mixed-c10`).
    pub label: String,
    pub class: String,
    /// The baseline run (e.g. `isolated-c10`).
    pub baseline: String,
    pub rows: Vec<Ratio>,
}

fn ratio(metric: &str, value: f64, baseline: f64) -> Ratio {
    Ratio {
        metric: metric.to_owned(),
        value,
        baseline,
        ratio: (baseline != 0.0).then(|| value / baseline),
    }
}

fn stats(rows: &mut Vec<Ratio>, name: &str, v: &Summary, b: &Summary) {
    for (stat, x, y) in [
        ("mean", v.mean, b.mean),
        ("p50", v.p50, b.p50),
        ("p95", v.p95, b.p95),
        ("p99", v.p99, b.p99),
        ("min", v.min, b.min),
        ("max", v.max, b.max),
    ] {
        rows.push(ratio(&format!("{name}.{stat}"), x, y));
    }
}

impl Comparison {
    /// Latency (E2E and TTFT) and request rate of `current` against `baseline`.
    pub fn latency(
        label: &str,
        current: &ClassSummary,
        base_label: &str,
        base: &ClassSummary,
    ) -> Comparison {
        let mut rows = vec![ratio(
            "requests_per_s",
            current.throughput.requests_per_s,
            base.throughput.requests_per_s,
        )];
        stats(&mut rows, "e2e_ms", &current.e2e_ms, &base.e2e_ms);
        stats(&mut rows, "ttft_ms", &current.ttft_ms, &base.ttft_ms);
        Comparison {
            label: label.to_owned(),
            class: current.name.clone(),
            baseline: base_label.to_owned(),
            rows,
        }
    }

    /// Token throughput and duration of `current` against `baseline`.
    pub fn throughput(
        label: &str,
        current: &ClassSummary,
        base_label: &str,
        base: &ClassSummary,
    ) -> Comparison {
        let (c, b) = (&current.throughput, &base.throughput);
        Comparison {
            label: label.to_owned(),
            class: current.name.clone(),
            baseline: base_label.to_owned(),
            rows: vec![
                ratio(
                    "input_tokens_per_s",
                    c.input_tokens_per_s,
                    b.input_tokens_per_s,
                ),
                ratio(
                    "output_tokens_per_s",
                    c.output_tokens_per_s,
                    b.output_tokens_per_s,
                ),
                ratio(
                    "total_tokens_per_s",
                    c.total_tokens_per_s,
                    b.total_tokens_per_s,
                ),
                ratio("duration_s", current.duration_s, base.duration_s),
            ],
        }
    }

    pub fn row(&self, metric: &str) -> Option<&Ratio> {
        self.rows.iter().find(|r| r.metric == metric)
    }
}

impl ExperimentSummary {
    pub fn new(kind: &str, title: &str, started_at: &str, planned: usize) -> ExperimentSummary {
        ExperimentSummary {
            schema: EXPERIMENT_SCHEMA_ID.into(),
            tool: Tool {
                name: "strobe".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            kind: kind.to_owned(),
            title: title.to_owned(),
            started_at: started_at.to_owned(),
            target: None,
            interrupted: false,
            planned,
            points: vec![],
            comparisons: vec![],
            fingerprint: None,
            resumed: vec![],
            search: None,
            grid: None,
        }
    }

    pub fn point(&self, label: &str) -> Option<&PointSummary> {
        self.points.iter().find(|p| p.label == label)
    }
}
