//! Exporters: each turns a report, or an experiment (its summary and its runs' reports), into the
//! bytes of one format. They are pure functions; writing files is the caller's (`strobe-experiment`'s
//! output manager), which creates every output before the first request and rewrites it after each
//! run.

use crate::summary::ExperimentSummary;
use crate::Report;

/// One output format.
pub trait Exporter: Send + Sync {
    /// The format's name, as `--export` spells it.
    fn format(&self) -> &'static str;
    /// A run's report.
    fn run(&self, report: &Report) -> Vec<u8>;
    /// An experiment: its summary and the reports of its finished runs, in order.
    fn experiment(&self, summary: &ExperimentSummary, reports: &[Report]) -> Vec<u8>;
}

/// Every format, by name: `json`, `text`, `csv`, `md`, `vllm-json`, `html`.
pub const FORMATS: [&str; 6] = ["json", "text", "csv", "md", "vllm-json", "html"];

/// The exporter of `format` (one of [`FORMATS`]).
pub fn exporter(format: &str) -> Option<Box<dyn Exporter>> {
    Some(match format {
        "json" => Box::new(Json),
        "text" => Box::new(Text),
        "csv" => Box::new(Csv),
        "md" | "markdown" => Box::new(Markdown),
        "vllm-json" => Box::new(VllmJson),
        "html" => Box::new(Html),
        _ => return None,
    })
}

/// The format a file name implies (`.csv`, `.md`, `.html`, `.json`, `.txt`).
pub fn format_of_path(path: &std::path::Path) -> Option<&'static str> {
    match path.extension()?.to_str()? {
        "json" => Some("json"),
        "csv" => Some("csv"),
        "md" | "markdown" => Some("md"),
        "html" | "htm" => Some("html"),
        "txt" | "text" => Some("text"),
        _ => None,
    }
}

/// The versioned JSON report and summary.
pub struct Json;

impl Exporter for Json {
    fn format(&self) -> &'static str {
        "json"
    }
    fn run(&self, report: &Report) -> Vec<u8> {
        crate::json::render(report)
    }
    fn experiment(&self, summary: &ExperimentSummary, _: &[Report]) -> Vec<u8> {
        crate::json::render_experiment(summary)
    }
}

/// The console text (what strobe prints), as a file.
pub struct Text;

impl Exporter for Text {
    fn format(&self) -> &'static str {
        "text"
    }
    fn run(&self, report: &Report) -> Vec<u8> {
        crate::console::render(report).into_bytes()
    }
    fn experiment(&self, summary: &ExperimentSummary, _: &[Report]) -> Vec<u8> {
        crate::console::render_experiment(summary).into_bytes()
    }
}

/// One row per class per point (a single run is one point), every figure in its own column.
pub struct Csv;

impl Exporter for Csv {
    fn format(&self) -> &'static str {
        "csv"
    }
    fn run(&self, report: &Report) -> Vec<u8> {
        crate::tabular::csv(&crate::table::rows(&[crate::table::run_point(report)]))
    }
    fn experiment(&self, summary: &ExperimentSummary, _: &[Report]) -> Vec<u8> {
        crate::tabular::csv(&crate::table::experiment_rows(summary))
    }
}

/// Markdown tables, for pull requests, wikis and notebooks.
pub struct Markdown;

impl Exporter for Markdown {
    fn format(&self) -> &'static str {
        "md"
    }
    fn run(&self, report: &Report) -> Vec<u8> {
        crate::tabular::markdown_run(report).into_bytes()
    }
    fn experiment(&self, summary: &ExperimentSummary, _: &[Report]) -> Vec<u8> {
        crate::tabular::markdown_experiment(summary).into_bytes()
    }
}

/// The result file of vLLM's `vllm bench serve --save-result` (a run), or the `summary.json` of
/// `vllm bench sweep serve` (an experiment: a list of such results with the point's parameters).
pub struct VllmJson;

impl Exporter for VllmJson {
    fn format(&self) -> &'static str {
        "vllm-json"
    }
    fn run(&self, report: &Report) -> Vec<u8> {
        let mut out = serde_json::to_vec(&crate::vllm::result(report)).unwrap_or_default();
        out.push(b'\n');
        out
    }
    fn experiment(&self, summary: &ExperimentSummary, reports: &[Report]) -> Vec<u8> {
        let mut out =
            serde_json::to_vec_pretty(&crate::vllm::sweep(summary, reports)).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// One self-contained HTML page with inline SVG charts.
pub struct Html;

impl Exporter for Html {
    fn format(&self) -> &'static str {
        "html"
    }
    fn run(&self, report: &Report) -> Vec<u8> {
        crate::html::run(report).into_bytes()
    }
    fn experiment(&self, summary: &ExperimentSummary, reports: &[Report]) -> Vec<u8> {
        crate::html::experiment(summary, reports).into_bytes()
    }
}
