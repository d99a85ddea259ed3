//! What an experiment tells its caller as it goes (the binary prints it, a TUI draws it, a test
//! steers by it). The experiment never prints.

use std::path::PathBuf;
use std::sync::Arc;
use strobe_core::RunClock;
use strobe_load::Progress;
use strobe_report::{ExperimentSummary, Report};

/// A stage of an experiment, announced when it begins.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// The engine command started (secrets in it redacted).
    LaunchingEngine {
        pid: u32,
        command: String,
        log: PathBuf,
    },
    /// What a launched engine answers while strobe waits for it.
    EngineWaiting {
        status: String,
    },
    EngineReady {
        after_s: f64,
    },
    Preflight {
        url: String,
    },
    BuildingWorkloads,
    Run {
        index: usize,
        of: usize,
        label: Option<String>,
    },
    Finished,
}

/// A run's live counters (read-only).
pub struct LiveRun {
    pub label: Option<String>,
    pub index: usize,
    pub of: usize,
    pub clock: RunClock,
    /// The whole run.
    pub total: Arc<Progress>,
    /// Requests the run will send, when counts bound every class.
    pub planned: Option<u64>,
    pub classes: Vec<(String, Arc<Progress>)>,
}

pub trait Observer: Send {
    fn stage(&mut self, _stage: &Stage) {}
    /// Something the user should know, once ("no --url given: ...").
    fn message(&mut self, _text: &str) {}
    fn warning(&mut self, _text: &str) {}
    fn run_started(&mut self, _live: &LiveRun) {}
    /// A run ended and its outputs are written (`files`).
    fn run_finished(&mut self, _report: &Report, _files: &[PathBuf]) {}
    /// Every run of a multi-run experiment ended (or the experiment was stopped).
    fn experiment_finished(&mut self, _summary: &ExperimentSummary, _file: Option<&PathBuf>) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}
