//! Reading saved results back: a run's report, an experiment's summary with its runs' reports,
//! and per-request records (untrusted input: each bad line is an error naming the file and line).

use std::path::{Path, PathBuf};

use strobe_core::{ClassId, RequestRecord};
use strobe_metrics::{ClassSets, RequestSlo, SloTarget};

use crate::summary::ExperimentSummary;
use crate::{ClassInput, Report, ReportInputs, RequestInfo, TargetInfo};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
}

fn file_error(path: &Path, message: impl Into<String>) -> LoadError {
    LoadError::File {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// `out.json` → `out.LABEL.json`: where an experiment writes each run's report (and records).
pub fn labelled(p: &Path, label: &str) -> PathBuf {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match p.extension() {
        Some(ext) => format!("{stem}.{label}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{label}"),
    };
    p.with_file_name(name)
}

/// What a results file held.
#[derive(Clone, Debug)]
pub enum Saved {
    Run(Box<Report>),
    /// A summary and the reports of its points that could be read (in order).
    Experiment(Box<ExperimentSummary>, Vec<Report>),
}

impl Saved {
    /// The runs' reports.
    pub fn reports(&self) -> Vec<&Report> {
        match self {
            Saved::Run(r) => vec![r],
            Saved::Experiment(_, rs) => rs.iter().collect(),
        }
    }
}

/// Reads a report (`strobe.report.*`) or an experiment summary (`strobe.experiment.*`, whose run
/// reports are read from the files it lists, or beside it).
pub fn read(path: &Path) -> Result<Saved, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        file_error(
            path,
            format!("not JSON ({e}); give a report or summary strobe wrote with -o"),
        )
    })?;
    let schema = v["schema"].as_str().unwrap_or("");
    if schema.starts_with("strobe.experiment.") {
        let s: ExperimentSummary = serde_json::from_value(v).map_err(|e| {
            file_error(
                path,
                format!("not an experiment summary strobe can read: {e}"),
            )
        })?;
        let mut reports = vec![];
        for p in &s.points {
            let beside = labelled(path, &p.label);
            let candidates: Vec<PathBuf> = p
                .report_file
                .iter()
                .map(PathBuf::from)
                .chain(std::iter::once(beside))
                .collect();
            let found = candidates.iter().find(|c| c.is_file()).ok_or_else(|| {
                file_error(
                    path,
                    format!(
                        "the report of run `{}` is missing (looked for {})",
                        p.label,
                        candidates
                            .iter()
                            .map(|c| c.display().to_string())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                )
            })?;
            match read(found)? {
                Saved::Run(r) => reports.push(*r),
                Saved::Experiment(..) => {
                    return Err(file_error(found, "is a summary, not a run's report"))
                }
            }
        }
        return Ok(Saved::Experiment(Box::new(s), reports));
    }
    if !schema.starts_with("strobe.report.") {
        return Err(file_error(
            path,
            if schema.is_empty() {
                "has no `schema` field: not a strobe report or experiment summary (per-request \
                 records are read with `strobe report RUN.json --records FILE.jsonl`)"
                    .to_owned()
            } else {
                format!("has schema `{schema}`: not a strobe report or experiment summary")
            },
        ));
    }
    let r: Report = serde_json::from_value(v)
        .map_err(|e| file_error(path, format!("not a report this strobe can read: {e}")))?;
    Ok(Saved::Run(Box::new(r)))
}

/// Reads a records file (JSON lines). A half-written last line (a run killed mid-write) is
/// skipped and counted; any other bad line is an error.
pub fn records(path: &Path) -> Result<(Vec<RequestRecord>, usize), LoadError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    let mut out = vec![];
    let mut skipped = 0;
    let lines: Vec<&str> = text.split('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RequestRecord>(line) {
            Ok(r) => {
                if let Err(problem) = r.validate() {
                    return Err(LoadError::Line {
                        path: path.display().to_string(),
                        line: i + 1,
                        message: format!("not a consistent record: {problem}"),
                    });
                }
                out.push(r)
            }
            // The last line without its newline: cut off by a kill.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => skipped += 1,
            Err(e) => {
                return Err(LoadError::Line {
                    path: path.display().to_string(),
                    line: i + 1,
                    message: format!("not a strobe record: {e}"),
                })
            }
        }
    }
    Ok((out, skipped))
}

/// How to cut records when recomputing.
#[derive(Clone, Debug, Default)]
pub struct Recut {
    /// Treat the first N requests sent (of each class) as warm-up, instead of the run's marks.
    pub warmup_requests: Option<u64>,
    /// Treat requests sent in the first seconds as warm-up.
    pub warmup_s: Option<f64>,
    /// Keep only these classes (by record `class` id).
    pub classes: Option<Vec<u16>>,
}

/// Per-class statistics of `records`, cut as `recut` says (warm-up marks replaced when a cut is
/// given); `slo` gives each class id's per-request limits (for goodput).
pub fn statistics(
    records: &mut [RequestRecord],
    recut: &Recut,
    slo: impl Fn(u16) -> Option<strobe_metrics::RequestSlo>,
) -> ClassSets {
    records.sort_by_key(|r| (r.class.0, r.sent_ns, r.index));
    let keep = |r: &RequestRecord| {
        recut
            .classes
            .as_ref()
            .is_none_or(|c| c.contains(&r.class.0))
    };
    let mut ids: Vec<u16> = records
        .iter()
        .filter(|r| keep(r))
        .map(|r| r.class.0)
        .collect();
    ids.dedup();
    let mut sets = ClassSets::new(ids.iter().map(|&id| (ClassId(id), slo(id))));
    let mut seen: std::collections::BTreeMap<u16, u64> = Default::default();
    for r in records.iter_mut().filter(|r| keep(r)) {
        let k = seen.entry(r.class.0).or_default();
        if recut.warmup_requests.is_some() || recut.warmup_s.is_some() {
            r.warmup = recut.warmup_requests.is_some_and(|n| *k < n)
                || recut.warmup_s.is_some_and(|s| (r.sent_ns as f64) < s * 1e9);
        }
        *k += 1;
        sets.add(r);
    }
    sets
}

/// The SLO targets a class of a saved report was judged by.
pub fn slo_targets(c: &crate::ClassReport) -> Vec<SloTarget> {
    c.slo
        .iter()
        .flat_map(|s| &s.checks)
        .filter_map(|ch| {
            strobe_metrics::slo::parse_target(&format!("{}={}ms", ch.name, ch.limit_ms)).ok()
        })
        .collect()
}

/// A report recomputed from records: every statistic from the records alone, cut as `recut` says
/// and judged by `slo` (else by the SLOs of `base`). `base`, the run's original report when there
/// is one, gives the classes' names and settings, the target and the server side.
pub fn rebuild(
    mut records: Vec<RequestRecord>,
    source: &str,
    base: Option<&Report>,
    recut: &Recut,
    slo: Option<&[SloTarget]>,
) -> Report {
    let base_class = |id: u16| base.and_then(|b| b.classes.iter().find(|c| c.id == id));
    let targets = |id: u16| -> Vec<SloTarget> {
        match slo {
            Some(t) => t.to_vec(),
            None => base_class(id).map(slo_targets).unwrap_or_default(),
        }
    };
    let sets = statistics(&mut records, recut, |id| {
        RequestSlo::from_targets(&targets(id))
    });
    let classes = sets
        .iter()
        .map(|(id, m)| {
            let b = base_class(id.0);
            ClassInput {
                name: b.map_or(format!("class-{}", id.0), |c| c.name.clone()),
                id: id.0,
                request: b.map_or(
                    RequestInfo {
                        api: "unknown".into(),
                        endpoint: String::new(),
                        streaming: m.ttft_ns.count() > 0,
                        extra_body: Default::default(),
                    },
                    |c| c.request.clone(),
                ),
                workload: b.map(|c| c.workload.clone()).unwrap_or_default(),
                load: b.map(|c| c.load.clone()).unwrap_or_default(),
                stop_reason: b.map_or("unknown".into(), |c| c.stop_reason.clone()),
                unsent: b.map_or(0, |c| c.results.requests.unsent),
                peak_in_flight: b.map_or(0, |c| c.results.concurrency.peak_in_flight),
                slo: targets(id.0),
            }
        })
        .collect();
    let client = base.map(|b| b.client.clone());
    let mut report = Report::build(
        &sets,
        ReportInputs {
            started_at: base.map(|b| b.run.started_at.clone()).unwrap_or_default(),
            experiment: base.and_then(|b| b.run.experiment.clone()),
            label: base.and_then(|b| b.run.label.clone()),
            target: base.map_or(
                TargetInfo {
                    base_url: "(unknown: recomputed from records)".into(),
                    model: String::new(),
                    built_in: false,
                    extra_header_names: vec![],
                    tls: None,
                },
                |b| b.run.target.clone(),
            ),
            classes,
            stop_reason: base.map_or("unknown".into(), |b| b.run.stop_reason.clone()),
            interrupted: base.is_some_and(|b| b.run.interrupted),
            aborted: base.is_some_and(|b| b.run.aborted),
            peak_in_flight: base.map_or(0, |b| b.results.concurrency.peak_in_flight),
            error_examples: base
                .map(|b| {
                    b.results
                        .requests
                        .errors
                        .iter()
                        .map(|e| (e.kind.clone(), e.example.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            cpu_seconds: client.as_ref().map_or(0.0, |c| c.cpu_seconds),
            wall_seconds: 0.0,
            cpu_cores_available: client.as_ref().map_or(0, |c| c.cpu_cores_available),
            connections: client.as_ref().map_or(0, |c| c.connections),
            includes_built_in_target: client.as_ref().is_some_and(|c| c.includes_built_in_target),
            receive_timestamps: client
                .as_ref()
                .map_or("unknown".into(), |c| c.receive_timestamps.clone()),
            sockets_kernel_timestamps: client.as_ref().map_or(0, |c| c.sockets_kernel_timestamps),
            sockets_user_timestamps: client.as_ref().map_or(0, |c| c.sockets_user_timestamps),
            backpressure_waits: client.as_ref().map_or(0, |c| c.records_backpressure_waits),
            backpressure_s: client.as_ref().map_or(0.0, |c| c.records_backpressure_s),
            price: base
                .and_then(|b| b.cost.as_ref())
                .map(|c| strobe_metrics::GpuPrice {
                    usd_per_gpu_hour: c.usd_per_gpu_hour,
                    gpus: c.gpus,
                }),
        },
    );
    if let Some(b) = base {
        report.client.cpu_cores_used = b.client.cpu_cores_used;
        report.server_metrics = b.server_metrics.clone();
        report.gpu = b.gpu.clone();
        report.engine = b.engine.clone();
        report.run.saturation = b.run.saturation.clone();
    }
    report.client.warnings.insert(
        0,
        format!(
            "recomputed from the records in {source}{}",
            match (recut.warmup_requests, recut.warmup_s) {
                (Some(n), _) => format!(" with the first {n} requests of each class as warm-up"),
                (None, Some(s)) => format!(" with requests sent in the first {s} s as warm-up"),
                _ => String::new(),
            }
        ),
    );
    report
}
