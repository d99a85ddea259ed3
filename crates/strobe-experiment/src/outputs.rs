//! The output manager: it owns every file an experiment writes. It creates them before the first
//! request (a bad path fails at once, naming the flag), writes each run's report as that run ends
//! and rewrites the experiment summary after every run, so an interrupted experiment leaves every
//! finished run on disk.
//!
//! A single run writes `--output` itself. An experiment of several runs writes its summary to
//! `--output` and each run's report beside it, named by the run's label (`out.json` →
//! `out.c4.json`); records files likewise (`rec.jsonl` → `rec.c4.jsonl`).

use std::path::{Path, PathBuf};
use strobe_report::export::Exporter;
use strobe_report::{ExperimentSummary, Report};

use crate::error::ExperimentError;
use crate::records::RecordsFile;

/// Where outputs go (each optional).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outputs {
    /// `--output`: the report (single run) or the summary (several runs).
    pub report: Option<PathBuf>,
    /// `--records`: one JSON line per request.
    pub records: Option<PathBuf>,
    /// `--export FORMAT=FILE`: more formats of the same results (HTML, CSV, Markdown,
    /// vllm-json, ...), rewritten after every run. For several runs each holds the whole
    /// experiment. (`-`, standard output, is the caller's: written once at the end.)
    pub exports: Vec<Export>,
}

/// One `--export`: a format (a name of [`strobe_report::export::FORMATS`]) and a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    pub format: String,
    pub path: PathBuf,
}

pub use strobe_report::load::labelled;

/// Writes a file so that a reader (or a later run after a `kill -9`) finds either the old
/// content or the new, never half of it: a temporary file beside it, synced, then renamed.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A finished experiment's summary and reports at `path`, when its fingerprint is `fingerprint`
/// (an engine of a grid that need not run again).
pub(crate) fn finished_experiment(
    path: &Path,
    fingerprint: &str,
) -> Option<(ExperimentSummary, Vec<Report>)> {
    let summary: ExperimentSummary = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    if summary.fingerprint.as_deref() != Some(fingerprint)
        || summary.interrupted
        || summary.points.len() < summary.planned
    {
        return None;
    }
    let mut reports = vec![];
    for p in &summary.points {
        let file = p.report_file.as_ref()?;
        let r: Report = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
        if r.run.interrupted || r.run.aborted {
            return None;
        }
        reports.push(r);
    }
    Some((summary, reports))
}

/// What an earlier attempt at the same experiment left in the outputs.
pub(crate) struct Earlier {
    /// Run index → its finished report.
    pub reports: Vec<(usize, Report)>,
    /// Why nothing was taken from an earlier summary that was there, for the user.
    pub note: Option<String>,
}

/// Reads back the runs an interrupted attempt at this experiment (same fingerprint) finished, so
/// a re-run does only the rest. A finished attempt, another experiment's summary or an unreadable
/// file gives nothing (and says why).
pub(crate) fn earlier_runs(outputs: &Outputs, labels: &[String], fingerprint: &str) -> Earlier {
    let none = |note: Option<String>| Earlier {
        reports: vec![],
        note,
    };
    let Some(path) = &outputs.report else {
        return none(None);
    };
    let Ok(bytes) = std::fs::read(path) else {
        return none(None);
    };
    let summary: ExperimentSummary = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(_) if bytes.is_empty() => return none(None),
        Err(_) => {
            return none(Some(format!(
                "{} holds no experiment summary strobe can read; starting over",
                path.display()
            )))
        }
    };
    if summary.fingerprint.as_deref() != Some(fingerprint) {
        return none(Some(format!(
            "{} is from another experiment (other settings); starting over",
            path.display()
        )));
    }
    let finished = summary.points.iter().filter(|p| !p.interrupted).count();
    if !summary.interrupted && finished >= summary.planned {
        return none(Some(format!(
            "{} holds a finished run of this experiment; running it again (--restart is implied)",
            path.display()
        )));
    }
    let mut reports = vec![];
    for point in summary.points.iter().filter(|p| !p.interrupted) {
        let Some(i) = labels.iter().position(|l| *l == point.label) else {
            continue;
        };
        let file = labelled(path, &point.label);
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        match serde_json::from_slice::<Report>(&bytes) {
            // An aborted run (its server failed) is run again, like an interrupted one.
            Ok(r)
                if !r.run.interrupted
                    && !r.run.aborted
                    && r.run.label.as_deref() == Some(point.label.as_str()) =>
            {
                reports.push((i, r))
            }
            _ => {}
        }
    }
    none(None).with(reports)
}

impl Earlier {
    fn with(mut self, reports: Vec<(usize, Report)>) -> Earlier {
        self.reports = reports;
        self
    }
}

pub(crate) struct OutputManager {
    outputs: Outputs,
    labels: Vec<String>,
    /// Several runs: `--output` is the summary.
    multi: bool,
    exporter: Box<dyn Exporter>,
    exports: Vec<(Box<dyn Exporter>, PathBuf)>,
}

fn create(what: &'static str, path: &Path) -> Result<std::fs::File, ExperimentError> {
    if path.is_dir() {
        return Err(ExperimentError::output(
            what,
            path,
            "is a folder; give a file name",
        ));
    }
    std::fs::File::create(path)
        .map_err(|e| ExperimentError::output(what, path, format!("cannot create the file: {e}")))
}

impl OutputManager {
    /// Creates the files that exist from the start: the single run's report and records, or the
    /// summary (written empty now, so a reader always finds valid JSON).
    ///
    /// `resuming`: the summary on disk lists runs an earlier attempt finished; it stays as it is
    /// until the first run ends (the new summary lists them too), so a stop before that loses
    /// nothing.
    pub fn create(
        outputs: Outputs,
        labels: Vec<String>,
        multi: bool,
        summary: &ExperimentSummary,
        resuming: bool,
    ) -> Result<OutputManager, ExperimentError> {
        let mut exports = vec![];
        for e in &outputs.exports {
            let exporter = strobe_report::export::exporter(&e.format).ok_or_else(|| {
                ExperimentError::output(
                    "--export",
                    &e.path,
                    format!(
                        "`{}` is not a format strobe writes (one of {})",
                        e.format,
                        strobe_report::export::FORMATS.join(", ")
                    ),
                )
            })?;
            create("--export", &e.path)?;
            exports.push((exporter, e.path.clone()));
        }
        let m = OutputManager {
            outputs,
            labels,
            multi,
            exporter: Box::new(strobe_report::export::Json),
            exports,
        };
        if let Some(p) = &m.outputs.report {
            if resuming {
                // Still writable? (Without truncating it.)
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(p)
                    .map_err(|e| {
                        ExperimentError::output(
                            "--output",
                            p,
                            format!("cannot write the file: {e}"),
                        )
                    })?;
            } else {
                create("--output", p)?;
                if multi {
                    m.write_summary(summary, &[])?;
                }
            }
        }
        if let (Some(p), false) = (&m.outputs.records, multi) {
            create("--records", p)?;
        }
        Ok(m)
    }

    /// A run decided on the way (a search's probe); returns its index.
    pub fn add_run(&mut self, label: &str) -> usize {
        self.labels.push(label.to_owned());
        self.labels.len() - 1
    }

    pub fn report_path(&self, run: usize) -> Option<PathBuf> {
        let p = self.outputs.report.as_ref()?;
        Some(if self.multi {
            labelled(p, &self.labels[run])
        } else {
            p.clone()
        })
    }

    pub fn records_path(&self, run: usize) -> Option<PathBuf> {
        let p = self.outputs.records.as_ref()?;
        Some(if self.multi {
            labelled(p, &self.labels[run])
        } else {
            p.clone()
        })
    }

    pub fn summary_path(&self) -> Option<&PathBuf> {
        self.outputs.report.as_ref().filter(|_| self.multi)
    }

    /// Creates run `run`'s files before its first request; returns its records file.
    pub fn begin_run(&self, run: usize) -> Result<Option<RecordsFile>, ExperimentError> {
        if let (Some(p), true) = (self.report_path(run), self.multi) {
            create("--output", &p)?;
        }
        match self.records_path(run) {
            Some(p) => Ok(Some(std::io::BufWriter::with_capacity(
                256 * 1024,
                create("--records", &p)?,
            ))),
            None => Ok(None),
        }
    }

    /// Writes run `run`'s report; returns the files the run wrote.
    pub fn write_run(&self, run: usize, report: &Report) -> Result<Vec<PathBuf>, ExperimentError> {
        let mut files = vec![];
        if let Some(p) = self.report_path(run) {
            write_atomically(&p, &self.exporter.run(report)).map_err(|e| {
                ExperimentError::output("--output", &p, format!("cannot write the report: {e}"))
            })?;
            files.push(p);
        }
        if let Some(p) = self.records_path(run) {
            files.push(p);
        }
        if !self.multi {
            for (exporter, p) in &self.exports {
                write_atomically(p, &exporter.run(report)).map_err(|e| {
                    ExperimentError::output("--export", p, format!("cannot write the file: {e}"))
                })?;
                files.push(p.clone());
            }
        }
        Ok(files)
    }

    /// Rewrites the summary and every export of the experiment (`reports`: the finished runs).
    pub fn write_summary(
        &self,
        summary: &ExperimentSummary,
        reports: &[Report],
    ) -> Result<(), ExperimentError> {
        if let Some(p) = self.summary_path() {
            write_atomically(p, &self.exporter.experiment(summary, reports)).map_err(|e| {
                ExperimentError::output("--output", p, format!("cannot write the summary: {e}"))
            })?;
        }
        if self.multi {
            for (exporter, p) in &self.exports {
                write_atomically(p, &exporter.experiment(summary, reports)).map_err(|e| {
                    ExperimentError::output("--export", p, format!("cannot write the file: {e}"))
                })?;
            }
        }
        Ok(())
    }
}
