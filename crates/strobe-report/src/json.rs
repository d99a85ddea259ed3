//! The JSON exporter: the report as pretty-printed JSON (schema `schema/report.v1.schema.json`).

use crate::Report;

/// The JSON Schema every report conforms to.
pub const SCHEMA: &str = include_str!("../schema/report.v1.schema.json");

pub fn render(report: &Report) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(report).unwrap_or_default();
    out.push(b'\n');
    out
}
