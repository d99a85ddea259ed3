//! The JSON exporter: reports (schema `schema/report.v4.schema.json`) and experiment summaries
//! (`schema/experiment.v2.schema.json`) as pretty-printed JSON.

use crate::summary::ExperimentSummary;
use crate::Report;

/// The JSON Schema every report conforms to.
pub const SCHEMA: &str = include_str!("../schema/report.v4.schema.json");
/// The JSON Schema every experiment summary conforms to.
pub const EXPERIMENT_SCHEMA: &str = include_str!("../schema/experiment.v2.schema.json");

fn pretty<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

pub fn render(report: &Report) -> Vec<u8> {
    pretty(report)
}

pub fn render_experiment(summary: &ExperimentSummary) -> Vec<u8> {
    pretty(summary)
}

/// The schemas as the types define them (the shipped files must equal these; see the test
/// `schema_files_match_the_types`, which rewrites them with `STROBE_UPDATE_SCHEMA=1`).
pub fn generated_schemas() -> [(&'static str, serde_json::Value); 2] {
    fn with_header(
        mut v: serde_json::Value,
        id: &str,
        title: &str,
        description: &str,
    ) -> serde_json::Value {
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "$id".into(),
                format!("https://strobe.invalid/schema/{id}").into(),
            );
            o.insert("title".into(), title.into());
            o.insert("description".into(), description.into());
        }
        v
    }
    [
        (
            "report.v4.schema.json",
            with_header(
                serde_json::to_value(schemars::schema_for!(crate::Report)).unwrap_or_default(),
                "report.v4.schema.json",
                "strobe report, version 4",
                "The JSON report of one run (--output FILE.json; one per run of an experiment). Units are in field names: _ms milliseconds, _s seconds, _per_s per second. Metric definitions: docs/metrics.md; changes between versions: docs/report.md.",
            ),
        ),
        (
            "experiment.v2.schema.json",
            with_header(
                serde_json::to_value(schemars::schema_for!(crate::summary::ExperimentSummary)).unwrap_or_default(),
                "experiment.v2.schema.json",
                "strobe experiment summary, version 2",
                "The summary of an experiment of several runs (profile levels, strobe interference): --output FILE.json, each run's report beside it. Derived from the runs' reports.",
            ),
        ),
    ]
}
