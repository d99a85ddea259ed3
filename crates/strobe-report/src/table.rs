//! The flat view of results that the tabular exporters share: one row per class per point, with
//! named columns. CSV writes every column; Markdown picks some.

use std::collections::BTreeSet;

use strobe_metrics::Summary;

use crate::summary::{ClassSummary, ExperimentSummary, PointSummary};
use crate::Report;

/// A cell: a number (printed with enough digits), text, or nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Int(u64),
    Num(f64),
    Text(String),
    Empty,
}

impl Cell {
    /// As CSV writes it: full precision for numbers, nothing for `Empty`.
    pub fn plain(&self) -> String {
        match self {
            Cell::Int(v) => v.to_string(),
            Cell::Num(v) if v.is_finite() => {
                // Six significant figures are past any timing's precision, and keep files small.
                let s = format!("{v:.6}");
                let s = s.trim_end_matches('0').trim_end_matches('.');
                if s == "-0" {
                    "0".into()
                } else {
                    s.into()
                }
            }
            Cell::Num(_) => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Empty => String::new(),
        }
    }

    /// As a person reads it: numbers rounded to what they can tell apart.
    pub fn short(&self) -> String {
        match self {
            Cell::Num(v) if v.is_finite() => {
                let a = v.abs();
                if a >= 1000.0 {
                    format!("{v:.0}")
                } else if a >= 100.0 {
                    format!("{v:.1}")
                } else if a >= 0.1 || a == 0.0 {
                    format!("{v:.2}")
                } else {
                    // Small figures (cost per request) keep two significant digits.
                    let d = (-a.log10()).ceil() as usize + 1;
                    format!("{v:.d$}")
                }
            }
            Cell::Empty => "–".into(),
            other => other.plain(),
        }
    }
}

impl From<&serde_json::Value> for Cell {
    fn from(v: &serde_json::Value) -> Cell {
        match v {
            serde_json::Value::Number(n) => n
                .as_u64()
                .map(Cell::Int)
                .or_else(|| n.as_f64().map(Cell::Num))
                .unwrap_or(Cell::Empty),
            serde_json::Value::String(s) => Cell::Text(s.clone()),
            serde_json::Value::Null => Cell::Empty,
            other => Cell::Text(other.to_string()),
        }
    }
}

/// The latency statistics every row carries, per metric.
pub const STATS: [&str; 6] = ["mean", "p50", "p90", "p95", "p99", "max"];
/// Latency metrics in rows: column `ttft_ms_p99` and so on.
pub const LATENCIES: [&str; 4] = ["ttft", "tpot", "itl", "e2e"];

fn stat(s: &Summary, which: &str) -> Cell {
    if s.count == 0 {
        return Cell::Empty;
    }
    Cell::Num(match which {
        "mean" => s.mean,
        "p50" => s.p50,
        "p90" => s.p90,
        "p95" => s.p95,
        "p99" => s.p99,
        _ => s.max,
    })
}

/// Rows with named columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The cell of `row` in column `name`.
    pub fn get(&self, row: usize, name: &str) -> Option<&Cell> {
        self.rows.get(row)?.get(self.column(name)?)
    }
}

fn opt(v: Option<f64>) -> Cell {
    v.map_or(Cell::Empty, Cell::Num)
}

fn class_cells(c: &ClassSummary) -> Vec<(String, Cell)> {
    let t = &c.throughput;
    let mut v: Vec<(String, Cell)> = vec![
        ("class".into(), Cell::Text(c.name.clone())),
        ("schedule".into(), Cell::Text(c.schedule.clone())),
        ("successful".into(), Cell::Int(c.successful)),
        ("failed".into(), Cell::Int(c.failed)),
        ("unsent".into(), Cell::Int(c.unsent)),
        ("duration_s".into(), Cell::Num(c.duration_s)),
        ("input_tokens".into(), Cell::Int(c.input_tokens)),
        ("output_tokens".into(), Cell::Int(c.output_tokens)),
        ("requests_per_s".into(), Cell::Num(t.requests_per_s)),
        ("input_tokens_per_s".into(), Cell::Num(t.input_tokens_per_s)),
        (
            "output_tokens_per_s".into(),
            Cell::Num(t.output_tokens_per_s),
        ),
        ("total_tokens_per_s".into(), Cell::Num(t.total_tokens_per_s)),
        (
            "achieved_concurrency".into(),
            Cell::Num(c.achieved_concurrency),
        ),
    ];
    for (name, s) in [
        ("ttft", &c.ttft_ms),
        ("tpot", &c.tpot_ms),
        ("itl", &c.itl_ms),
        ("e2e", &c.e2e_ms),
    ] {
        for which in STATS {
            v.push((format!("{name}_ms_{which}"), stat(s, which)));
        }
    }
    let batch = c.batch_latency_ms.as_ref();
    v.push((
        "batch_latency_ms_mean".into(),
        batch.map_or(Cell::Empty, |b| stat(b, "mean")),
    ));
    v.push((
        "batch_latency_ms_p99".into(),
        batch.map_or(Cell::Empty, |b| stat(b, "p99")),
    ));
    v.push((
        "slo_met".into(),
        c.slo_met.map_or(Cell::Empty, |m| Cell::Text(m.to_string())),
    ));
    v.push(("goodput_per_s".into(), opt(c.goodput_per_s)));
    let cost = c.cost.as_ref();
    v.push(("usd_total".into(), opt(cost.map(|c| c.total_usd))));
    v.push((
        "usd_per_million_input_tokens".into(),
        opt(cost.and_then(|c| c.usd_per_million_input_tokens)),
    ));
    v.push((
        "usd_per_million_output_tokens".into(),
        opt(cost.and_then(|c| c.usd_per_million_output_tokens)),
    ));
    v
}

/// One row per class per point; the points' parameters become columns after `point`.
pub fn rows(points: &[PointSummary]) -> Table {
    let params: BTreeSet<&String> = points.iter().flat_map(|p| p.parameters.keys()).collect();
    let mut table = Table::default();
    for p in points {
        for c in &p.classes {
            let mut cells = vec![("point".to_owned(), Cell::Text(p.label.clone()))];
            for k in &params {
                cells.push((
                    (*k).clone(),
                    p.parameters.get(*k).map_or(Cell::Empty, Cell::from),
                ));
            }
            cells.extend(class_cells(c));
            if table.columns.is_empty() {
                table.columns = cells.iter().map(|(n, _)| n.clone()).collect();
            }
            table.rows.push(cells.into_iter().map(|(_, c)| c).collect());
        }
    }
    if table.columns.is_empty() {
        let empty = ClassSummary::of_empty();
        table.columns = std::iter::once("point".to_owned())
            .chain(params.iter().map(|k| (*k).clone()))
            .chain(class_cells(&empty).into_iter().map(|(n, _)| n))
            .collect();
    }
    table
}

/// A single run as one point (labelled by its label, else `run`).
pub fn run_point(report: &Report) -> PointSummary {
    PointSummary::of(
        report.run.label.as_deref().unwrap_or("run"),
        Default::default(),
        report,
        None,
    )
}

/// The experiment's rows.
pub fn experiment_rows(summary: &ExperimentSummary) -> Table {
    rows(&summary.points)
}
