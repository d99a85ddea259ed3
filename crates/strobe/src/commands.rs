//! Running a typed plan: open the session, run the experiment, always close the session, map the
//! outcome to an exit code.

use strobe_experiment::{ExperimentError, Session, Shutdown};
use strobe_report::{ExperimentSummary, Report};

use crate::exit;
use crate::progress::{Console, Interactivity};
use crate::settings::{Plan, Work};

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
fn checks(reports: &[Report], max_error_rate: f64, fail_on_slo: bool) -> i32 {
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
        if fail_on_slo {
            for c in &r.classes {
                let Some(slo) = &c.slo else { continue };
                for ch in slo.checks.iter().filter(|ch| !ch.met) {
                    eprintln!(
                        "error: {name}class `{}` missed its SLO {} (limit {} ms{}) (--fail-on-slo)",
                        c.name,
                        ch.name,
                        ch.limit_ms,
                        match ch.actual_ms {
                            Some(a) => format!(", measured {a:.2} ms"),
                            None => format!(", {} of {} requests over", ch.over_limit, ch.samples),
                        }
                    );
                    code = exit::CHECK_FAILED;
                }
            }
        }
    }
    code
}

/// Runs `plan` until it ends or `shutdown` is requested, then writes the `--export FORMAT=-`
/// outputs to standard output.
pub async fn execute(
    plan: Plan,
    ui: Interactivity,
    shutdown: &Shutdown,
) -> anyhow::Result<Execution> {
    let formats = plan.stdout_exports.clone();
    let execution = execute_plan(plan, ui, shutdown).await?;
    if !execution.reports.is_empty() {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for f in &formats {
            let Some(x) = strobe_report::export::exporter(f) else {
                continue;
            };
            let bytes = match &execution.summary {
                Some(s) => x.experiment(s, &execution.reports),
                None => x.run(execution.report()),
            };
            out.write_all(&bytes)?;
        }
        out.flush()?;
    }
    Ok(execution)
}

async fn execute_plan(
    plan: Plan,
    ui: Interactivity,
    shutdown: &Shutdown,
) -> anyhow::Result<Execution> {
    let mut console = Console::new(plan.quiet, ui);
    if plan.tui {
        console.enable_tui(shutdown.clone(), plan.title());
    }
    // Standard output carries an export: the summaries go to stderr.
    console.summary_to_stderr = !plan.stdout_exports.is_empty();
    let interrupted = |stage: &str| {
        eprintln!("interrupted while {stage}; nothing was measured");
        Ok(Execution {
            exit_code: exit::INTERRUPTED,
            reports: vec![],
            summary: None,
        })
    };
    if let Work::Grid {
        axes,
        gpus,
        experiment,
    } = &plan.work
    {
        let outcome = match strobe_experiment::grid::run(
            &plan.target,
            axes,
            *gpus,
            experiment,
            shutdown,
            &mut console,
        )
        .await
        {
            Ok(o) => o,
            Err(ExperimentError::Interrupted { stage }) => return interrupted(stage),
            Err(e) => return Err(e.into()),
        };
        let failed = outcome.summary.grid.as_ref().map_or(0, |g| g.failed.len());
        let exit_code = if outcome.interrupted {
            exit::INTERRUPTED
        } else if outcome.reports.is_empty() {
            eprintln!("error: no engine of the grid ran");
            exit::ERROR
        } else {
            let code = checks(&outcome.reports, plan.max_error_rate, plan.fail_on_slo);
            if failed > 0 {
                eprintln!("error: {failed} engine configuration(s) of the grid did not run (see the summary's grid.failed)");
                code.max(exit::CHECK_FAILED)
            } else {
                code
            }
        };
        return Ok(Execution {
            exit_code,
            reports: outcome.reports,
            summary: Some(outcome.summary),
        });
    }
    let session = match Session::open(plan.target, shutdown, &mut console).await {
        Ok(s) => s,
        Err(ExperimentError::Interrupted { stage }) => return interrupted(stage),
        Err(e) => return Err(e.into()),
    };
    let launched = session.launched();
    let result = match &plan.work {
        Work::Experiment(exp) => {
            strobe_experiment::run(&session, exp, shutdown, &mut console).await
        }
        Work::Search(search, options) => strobe_experiment::search::run(
            &session,
            search,
            options.clone(),
            shutdown,
            &mut console,
        )
        .await
        .map(|o| strobe_experiment::Outcome {
            reports: o.reports,
            summary: o.summary,
            interrupted: o.interrupted,
            aborted: false,
        }),
        Work::Grid { .. } => unreachable!("handled above"),
    };
    session.close().await;
    if launched && !plan.quiet {
        eprintln!("the engine was stopped");
    }
    let outcome = match result {
        Ok(o) => o,
        Err(ExperimentError::Interrupted { stage }) => return interrupted(stage),
        Err(e) => return Err(e.into()),
    };
    if let Work::Search(..) = &plan.work {
        let search = outcome.summary.search.as_ref();
        let exit_code = match search.map(|s| s.outcome.as_str()) {
            _ if outcome.interrupted => exit::INTERRUPTED,
            Some("found" | "at_least_max") => exit::OK,
            Some("below_min") => {
                eprintln!("error: even the lowest load probed misses the SLOs");
                exit::CHECK_FAILED
            }
            _ => exit::CHECK_FAILED,
        };
        return Ok(Execution {
            exit_code,
            reports: outcome.reports,
            summary: Some(outcome.summary),
        });
    }
    let multi = matches!(&plan.work, Work::Experiment(e) if e.is_multi());
    let exit_code = if outcome.interrupted {
        exit::INTERRUPTED
    } else if outcome.aborted {
        if let Some(r) = outcome.reports.last() {
            eprintln!("error: {}; see the errors above", r.run.stop_reason);
        }
        exit::ERROR
    } else {
        checks(&outcome.reports, plan.max_error_rate, plan.fail_on_slo)
    };
    Ok(Execution {
        exit_code,
        summary: multi.then_some(outcome.summary),
        reports: outcome.reports,
    })
}

/// The end of `strobe batch`: seed 000's batch figures, where the lines stand, and the exit code
/// (0: every line has its result; 1: lines are still pending, a re-run resumes them).
pub fn batch_outcome(execution: &Execution, job: &strobe_batch::BatchJob, quiet: bool) -> i32 {
    let (succeeded, failed) = job.counts();
    let done = succeeded + failed;
    let pending = job.total.saturating_sub(done);
    let store_failed = job.failure();
    if let Some(e) = &store_failed {
        eprintln!(
            "error: storing results stopped: {e}; lines without a stored result stay pending"
        );
    }
    if !quiet {
        if let Some(r) = execution.reports.last() {
            let t = &r.results;
            eprintln!(
                "batch: {} lines; {} succeeded, {} failed (in the error file), {} pending{}",
                job.total,
                succeeded,
                failed,
                pending,
                if job.recovered.succeeded + job.recovered.failed > 0 {
                    format!(
                        "; {} had results before this run",
                        job.recovered.succeeded + job.recovered.failed
                    )
                } else {
                    String::new()
                }
            );
            eprintln!(
                "  token usage (this run): prompt {}, completion {}",
                t.tokens.input, t.tokens.output
            );
            eprintln!(
                "  token throughput: prompt {:.2} tok/s, completion {:.2} tok/s, total {:.2} tok/s ({:.2} lines/s)",
                t.throughput.input_tokens_per_s,
                t.throughput.output_tokens_per_s,
                t.throughput.total_tokens_per_s,
                t.throughput.requests_per_s
            );
        }
    }
    if pending > 0 {
        let why = execution
            .reports
            .last()
            .map(|r| r.run.stop_reason.clone())
            .unwrap_or_default();
        eprintln!(
            "batch incomplete ({why}): {pending} lines have no result yet; run the same command again to resume"
        );
    }
    // A failed line is a result like any other: the run's own checks do not decide the code.
    if store_failed.is_some() {
        exit::ERROR
    } else if pending > 0 {
        exit::CHECK_FAILED
    } else {
        exit::OK
    }
}
