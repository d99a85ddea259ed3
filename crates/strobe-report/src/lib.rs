//! The report: one versioned type, and exporters that turn it into bytes.
//!
//! [`Report`] is what a run produced, in the shape of `schema/report.v1.schema.json`. Every field
//! carries its unit in its name (`ttft_ms`, `duration_s`). The report also carries the lossless
//! state of its statistics, so reports of several processes can be merged exactly.
//!
//! Exporters are pure functions of a report ([`console::render`], [`json::render`]); the per-request
//! records stream has its own line encoder ([`records::line`]). Nothing here runs a benchmark.

pub mod console;
pub mod json;
mod model;
pub mod records;
mod telemetry;

pub use model::*;
pub use telemetry::*;
