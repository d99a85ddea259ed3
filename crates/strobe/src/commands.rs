//! Running a typed plan: open the session, run the experiment, always close the session, map the
//! outcome to an exit code.

use strobe_experiment::{ExperimentError, Session, Shutdown};
use strobe_report::{ExperimentSummary, Report};

use crate::exit;
use crate::progress::{Console, Interactivity};
use crate::settings::Plan;

/// What a command produced.
pub struct Execution {
    pub exit_code: i32,
    /// Every finished run's report, in order.
    pub reports: Vec<Report>,
    pub summary: Option<ExperimentSummary>,
}

impl Execution {
    /// The last run's report.
    pub fn report(&self) -> &Report {
        self.reports
            .last()
            .expect("an execution that returned has a report")
    }
}

/// Runs `plan` until it ends or `shutdown` is requested.
pub async fn execute(
    plan: Plan,
    ui: Interactivity,
    shutdown: &Shutdown,
) -> anyhow::Result<Execution> {
    let mut console = Console::new(plan.quiet, ui);
    let interrupted = |stage: &str| {
        eprintln!("interrupted while {stage}; nothing was measured");
        Ok(Execution {
            exit_code: exit::INTERRUPTED,
            reports: vec![],
            summary: None,
        })
    };
    let session = match Session::open(plan.target, shutdown, &mut console).await {
        Ok(s) => s,
        Err(ExperimentError::Interrupted { stage }) => return interrupted(stage),
        Err(e) => return Err(e.into()),
    };
    let launched = session.launched();
    let result = strobe_experiment::run(&session, &plan.experiment, shutdown, &mut console).await;
    session.close().await;
    if launched && !plan.quiet {
        eprintln!("the engine was stopped");
    }
    let outcome = match result {
        Ok(o) => o,
        Err(ExperimentError::Interrupted { stage }) => return interrupted(stage),
        Err(e) => return Err(e.into()),
    };
    let exit_code = if outcome.interrupted {
        exit::INTERRUPTED
    } else if outcome.aborted {
        if let Some(r) = outcome.reports.last() {
            eprintln!("error: {}; see the errors above", r.run.stop_reason);
        }
        exit::ERROR
    } else {
        exit::OK
    };
    Ok(Execution {
        exit_code,
        summary: plan.experiment.is_multi().then_some(outcome.summary),
        reports: outcome.reports,
    })
}
