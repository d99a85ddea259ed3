//! What can stop an experiment, with messages that say how to fix it.

use std::path::PathBuf;

/// Why an experiment could not run (a failed request is data, never one of these).
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Target(#[from] strobe_client::TargetError),
    #[error(transparent)]
    Preflight(#[from] strobe_client::PreflightError),
    #[error(transparent)]
    Launch(#[from] strobe_telemetry::launch::LaunchError),
    #[error("cannot start the built-in target on 127.0.0.1: {0}")]
    BuiltIn(std::io::Error),
    #[error("{flag} {url}: {reason}")]
    MetricsUrl {
        flag: &'static str,
        url: String,
        reason: String,
    },
    #[error("workload of class `{class}`: {source}")]
    Workload {
        class: String,
        source: crate::workloads::WorkloadError,
    },
    #[error("{what} {path}: {reason}")]
    Output {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Plan(#[from] strobe_load::PlanError),
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    #[error("{0}")]
    Invalid(String),
    /// The server refused the shape of every request of a class.
    #[error("{url} refused a request shaped like the run's (HTTP {status}): {message}{}", fix.as_deref().map(|f| format!("\n{f}")).unwrap_or_default())]
    BodyRefused {
        url: String,
        status: u16,
        message: String,
        fix: Option<String>,
    },
    /// Stopped by the user (Ctrl-C, SIGTERM, SIGHUP) before any run began.
    #[error("interrupted while {stage}")]
    Interrupted { stage: &'static str },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ExperimentError {
    pub(crate) fn output(
        what: &'static str,
        path: &std::path::Path,
        e: impl std::fmt::Display,
    ) -> ExperimentError {
        ExperimentError::Output {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }
}
