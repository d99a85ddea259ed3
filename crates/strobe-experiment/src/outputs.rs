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
}

/// `out.json` → `out.LABEL.json`.
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

pub(crate) struct OutputManager {
    outputs: Outputs,
    labels: Vec<String>,
    /// Several runs: `--output` is the summary.
    multi: bool,
    exporter: Box<dyn Exporter>,
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
    pub fn create(
        outputs: Outputs,
        labels: Vec<String>,
        multi: bool,
        summary: &ExperimentSummary,
    ) -> Result<OutputManager, ExperimentError> {
        let m = OutputManager {
            outputs,
            labels,
            multi,
            exporter: Box::new(strobe_report::export::Json),
        };
        if let Some(p) = &m.outputs.report {
            create("--output", p)?;
            if multi {
                m.write_summary(summary)?;
            }
        }
        if let (Some(p), false) = (&m.outputs.records, multi) {
            create("--records", p)?;
        }
        Ok(m)
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
            std::fs::write(&p, self.exporter.run(report)).map_err(|e| {
                ExperimentError::output("--output", &p, format!("cannot write the report: {e}"))
            })?;
            files.push(p);
        }
        if let Some(p) = self.records_path(run) {
            files.push(p);
        }
        Ok(files)
    }

    pub fn write_summary(&self, summary: &ExperimentSummary) -> Result<(), ExperimentError> {
        if let Some(p) = self.summary_path() {
            std::fs::write(p, self.exporter.experiment(summary)).map_err(|e| {
                ExperimentError::output("--output", p, format!("cannot write the summary: {e}"))
            })?;
        }
        Ok(())
    }
}
