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

/// The exit code CI can trust: 2 when a run measured nothing, 1 when its failures passed
/// `--max-error-rate`, else 0.
fn checks(reports: &[Report], max_error_rate: f64) -> i32 {
    let mut code = exit::OK;
    for r in reports {
        let q = &r.results.requests;
        let name = r
            .run
            .label
            .as_deref()
            .map(|l| format!("run `{l}`: "))
            .unwrap_or_default();
        if q.successful == 0 {
            eprintln!(
                "error: {name}measured nothing: {} requests failed, {} were cancelled, {} were never sent",
                q.failed, q.cancelled, q.unsent
            );
            return exit::ERROR;
        }
        let rate = q.failed as f64 / q.measured.max(1) as f64;
        if rate > max_error_rate {
            eprintln!(
                "error: {name}{} of {} measured requests failed ({:.1}%), above --max-error-rate {:.1}%",
                q.failed,
                q.measured,
                rate * 100.0,
                max_error_rate * 100.0
            );
            code = exit::CHECK_FAILED;
        }
    }
    code
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
        checks(&outcome.reports, plan.max_error_rate)
    };
    Ok(Execution {
        exit_code,
        summary: plan.experiment.is_multi().then_some(outcome.summary),
        reports: outcome.reports,
    })
}
