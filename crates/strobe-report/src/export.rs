//! Exporters: each turns a report, or an experiment's summary, into the bytes of one format. They
//! are pure functions; writing files is the caller's (`strobe-experiment`'s output manager), which
//! creates every output before the first request and rewrites it after each run.

use crate::summary::ExperimentSummary;
use crate::Report;

/// One output format.
pub trait Exporter: Send + Sync {
    /// The format's name, as `--format` spells it.
    fn format(&self) -> &'static str;
    /// A run's report.
    fn run(&self, report: &Report) -> Vec<u8>;
    /// An experiment's summary.
    fn experiment(&self, summary: &ExperimentSummary) -> Vec<u8>;
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
    fn experiment(&self, summary: &ExperimentSummary) -> Vec<u8> {
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
    fn experiment(&self, summary: &ExperimentSummary) -> Vec<u8> {
        crate::console::render_experiment(summary).into_bytes()
    }
}
