//! The report: one versioned type, the experiment summary, and exporters that turn them into
//! bytes.
//!
//! [`Report`] is what a run produced, in the shape of `schema/report.v4.schema.json`: the run as a
//! whole and each request class on its own. Every field carries its unit in its name (`ttft_ms`,
//! `duration_s`). Each class carries the lossless state of its statistics, so reports of several
//! processes can be merged exactly. [`ExperimentSummary`] (`schema/experiment.v2.schema.json`) is
//! derived from the reports of an experiment's runs.
//!
//! Exporters ([`export::Exporter`]: console text, JSON, CSV, Markdown, vLLM's result JSON, HTML
//! with [`charts`] of [`figures`]) are pure functions of a report or an experiment; the per-request records stream has its own line encoder ([`records::line`]). Nothing
//! here runs a benchmark or writes a file.

pub mod charts;
pub mod compare;
pub mod console;
pub mod export;
pub mod figures;
pub mod html;
pub mod json;
pub mod load;
mod model;
pub mod raster;
pub mod records;
pub mod summary;
pub mod table;
mod tabular;
mod telemetry;
pub mod vllm;

pub use model::*;
pub use summary::{
    pareto, ClassSummary, Comparison, EngineFailure, ExperimentSummary, GridSummary, ParetoPoint,
    PointSummary, ProbeResult, Ratio, SearchSummary,
};
pub use telemetry::*;
