//! Capacity search: the highest request rate (or concurrency) whose run meets the SLOs. The
//! [`decider`] chooses each probe from the verdicts so far; this module runs the probes as runs
//! of one experiment on the prepared session (one workload build, fresh prompt text per probe),
//! writes each probe's report as it ends and rewrites the summary, with the search's course, after
//! every probe.

pub mod decider;

use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use strobe_metrics::{SloReport, SloVerdict};
use strobe_report::{ExperimentSummary, PointSummary, ProbeResult, Report, SearchSummary};

use crate::draft::ClassDraft;
use crate::error::ExperimentError;
use crate::experiment::{prepare_workloads, probe_bodies, Experiment, RunSpec};
use crate::observer::{Observer, Stage};
use crate::outputs::OutputManager;
use crate::shutdown::Shutdown;
use crate::target::Session;
use crate::ExperimentOptions;
pub use decider::{Answer, DecidedBy, Measured, Next, Precision, SearchSpec, Variable};

/// A probe with more failed requests than this fraction fails, whatever its latency.
pub const MAX_PROBE_ERROR_RATE: f64 = 0.05;

/// A search to run.
#[derive(Clone, Debug)]
pub struct Search {
    pub spec: SearchSpec,
    /// Each probe's class: the load variable is set per probe; its SLOs judge it.
    pub base: ClassDraft,
    /// How long a probe sends (a re-probe runs 2×, 4×, ... as long).
    pub probe_duration: Duration,
}

/// How the search ended.
pub struct SearchOutcome {
    pub summary: ExperimentSummary,
    pub reports: Vec<Report>,
    pub interrupted: bool,
}

fn precision_text(p: Precision) -> String {
    match p {
        Precision::Relative(r) => format!("{}%", r * 100.0),
        Precision::Absolute(a) => format!("{a}"),
    }
}

/// What the decider needs from a probe's report.
fn measured(value: f64, report: &Report) -> (Measured, Vec<strobe_metrics::SloCheck>) {
    let c = &report.classes[0];
    let empty = SloReport {
        checks: vec![],
        requests_met: None,
        attainment: None,
        goodput_per_s: None,
        all_met: false,
    };
    let slo = c.slo.as_ref().unwrap_or(&empty);
    let mut verdict = if slo.checks.is_empty() {
        SloVerdict::Unsure
    } else {
        SloVerdict::Met
    };
    let mut margin = f64::NEG_INFINITY;
    for ch in &slo.checks {
        match ch.verdict {
            SloVerdict::Missed => verdict = SloVerdict::Missed,
            SloVerdict::Unsure if verdict == SloVerdict::Met => verdict = SloVerdict::Unsure,
            _ => {}
        }
        let m = match ch.actual_ms {
            Some(a) if a > 0.0 => (a / ch.limit_ms).ln(),
            Some(_) => f64::NEG_INFINITY,
            None if ch.met => -0.1,
            None => 0.1,
        };
        margin = margin.max(m);
    }
    let r = &c.results.requests;
    let measured_n = r.successful + r.failed;
    let errors = measured_n > 0 && r.failed as f64 > MAX_PROBE_ERROR_RATE * measured_n as f64;
    let nothing = r.successful == 0;
    if errors || nothing {
        verdict = SloVerdict::Missed;
    }
    let saturated = report.run.saturation.as_ref().is_some_and(|s| s.detected);
    (
        Measured {
            value,
            verdict,
            met: slo.all_met && !errors && !nothing,
            margin: if margin.is_finite() { margin } else { f64::NAN },
            saturated,
        },
        slo.checks.clone(),
    )
}

fn label_of(k: usize, v: Variable, value: f64) -> String {
    format!("probe{:02}-{}-{}", k + 1, v.name(), value)
}

/// Runs the search on a prepared session.
pub async fn run(
    session: &Session,
    search: &Search,
    options: ExperimentOptions,
    shutdown: &Shutdown,
    observer: &mut dyn Observer,
) -> Result<SearchOutcome, ExperimentError> {
    let spec = &search.spec;
    if search.base.slo.is_empty() {
        return Err(ExperimentError::Invalid(
            "a capacity search needs SLOs to judge its probes: give --slo, e.g. --slo ttft_p99=500ms,tpot_p99=50ms".into(),
        ));
    }
    if !(spec.min > 0.0 && spec.min <= spec.start && spec.start <= spec.max) {
        return Err(ExperimentError::Invalid(format!(
            "the search needs 0 < --search-min ({}) ≤ --search-start ({}) ≤ --search-max ({})",
            spec.min, spec.start, spec.max
        )));
    }
    let make_run = |k: usize, value: f64, longer: u32| -> Result<RunSpec, ExperimentError> {
        let mut d = search.base.clone();
        d.set(spec.variable.name(), &value.to_string())
            .map_err(|e| ExperimentError::Invalid(format!("--{}: {}", e.key, e.message)))?;
        d.requests = None;
        d.duration = Some(search.probe_duration * longer);
        let (mut class, _) = d.resolve(0).map_err(|e| {
            ExperimentError::Invalid(format!("--{}: {}", e.key.replace('_', "-"), e.message))
        })?;
        class.content_seed = class.seed.wrapping_add(k as u64 + 1);
        Ok(RunSpec {
            label: label_of(k, spec.variable, value),
            parameters: BTreeMap::from([
                (spec.variable.name().to_owned(), json!(value)),
                ("probe".to_owned(), json!(k + 1)),
            ]),
            classes: vec![class],
        })
    };
    // The first probe's class stands for every probe when the workload is built.
    let mut template = search.base.clone();
    template
        .set(spec.variable.name(), &spec.start.to_string())
        .map_err(|e| ExperimentError::Invalid(format!("--{}: {}", e.key, e.message)))?;
    template.requests = None;
    template.duration = Some(search.probe_duration);
    let (_, workload) = template.resolve(0).map_err(|e| {
        ExperimentError::Invalid(format!("--{}: {}", e.key.replace('_', "-"), e.message))
    })?;
    let title = format!(
        "capacity search: the highest {} meeting {}",
        spec.variable.name(),
        search
            .base
            .slo
            .iter()
            .map(|t| format!("{}≤{}ms", t.name(), t.limit_ms))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut exp = Experiment::new(
        "search",
        &title,
        vec![workload],
        vec![make_run(0, spec.start, 1)?],
        options,
    );
    // Probes are decided as the search goes: nothing to resume; over-saturated probes stop.
    exp.restart = true;
    exp.stop_when_saturated = spec.variable == Variable::Rate;
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut summary = ExperimentSummary::new(&exp.kind, &exp.title, &started_at, 0);
    let mut outputs = OutputManager::create(exp.outputs.clone(), vec![], true, &summary, false)?;
    observer.stage(&Stage::BuildingWorkloads);
    let prepared = prepare_workloads(session, &exp, shutdown, observer).await?;
    probe_bodies(session, &exp, shutdown, observer).await?;
    exp.runs.clear();

    let mut decider = decider::Decider::new(spec.clone());
    let mut search_summary = SearchSummary {
        variable: spec.variable.name().into(),
        slo: search.base.slo.clone(),
        precision: precision_text(spec.precision),
        probes: vec![],
        lo: None,
        hi: None,
        outcome: "running".into(),
        answer: None,
        notes: vec![],
    };
    let mut reports = vec![];
    let mut interrupted = false;
    let answer = loop {
        let (value, longer) = match decider.next_step() {
            Next::Done(a) => break Some(a),
            Next::Probe { value, longer } => (value, longer),
        };
        if shutdown.is_requested() {
            interrupted = true;
            break None;
        }
        let k = exp.runs.len();
        let run = make_run(k, value, longer)?;
        let i = outputs.add_run(&run.label);
        exp.runs.push(run);
        summary.planned = exp.runs.len();
        observer.stage(&Stage::Run {
            index: i,
            of: 0,
            label: Some(exp.runs[i].label.clone()),
        });
        let records = outputs.begin_run(i)?;
        let report = crate::run::run_one(
            session,
            &exp,
            i,
            &exp.runs[i],
            &prepared,
            shutdown,
            observer,
            records,
        )
        .await?;
        let files = outputs.write_run(i, &report)?;
        summary
            .target
            .get_or_insert_with(|| report.run.target.clone());
        summary.points.push(PointSummary::of(
            &exp.runs[i].label,
            exp.runs[i].parameters.clone(),
            &report,
            outputs.report_path(i).map(|p| p.display().to_string()),
        ));
        if report.run.interrupted || report.run.aborted {
            interrupted = report.run.interrupted;
            if report.run.aborted {
                search_summary.notes.push(format!(
                    "probe {} aborted: {}",
                    exp.runs[i].label, report.run.stop_reason
                ));
            }
            observer.run_finished(&report, &files);
            reports.push(report);
            break None;
        }
        let (m, checks) = measured(value, &report);
        let p = decider.record(m);
        let c = &report.classes[0].results;
        search_summary.probes.push(ProbeResult {
            label: exp.runs[i].label.clone(),
            value,
            duration_s: c.duration_s,
            successful: c.requests.successful,
            failed: c.requests.failed,
            pass: p.pass,
            decided_by: p.decided_by.name().into(),
            reprobe: p.reprobe,
            saturated: m.saturated,
            checks,
        });
        let (lo, hi) = decider.bracket();
        search_summary.lo = lo.map(|p| p.measured.value);
        search_summary.hi = hi.map(|p| p.measured.value);
        summary.search = Some(search_summary.clone());
        reports.push(report);
        outputs.write_summary(&summary, &reports)?;
        if let Some(report) = reports.last() {
            observer.run_finished(report, &files);
        }
    };
    let unit = match spec.variable {
        Variable::Rate => " requests/s",
        Variable::Concurrency => " concurrent requests",
    };
    let s = &mut search_summary;
    match answer {
        Some(Answer::Found { lo, hi }) => {
            s.outcome = "found".into();
            s.answer = Some(lo);
            s.lo = Some(lo);
            s.hi = Some(hi);
        }
        Some(Answer::BelowMin { min }) => {
            s.outcome = "below_min".into();
            s.hi = Some(min);
            s.notes
                .push(format!("even the minimum, {min}{unit}, misses the SLOs"));
        }
        Some(Answer::AtLeastMax { max }) => {
            s.outcome = "at_least_max".into();
            s.lo = Some(max);
            s.answer = Some(max);
            s.notes.push(format!("the maximum, {max}{unit}, meets the SLOs: the capacity is at least that (raise --search-max)"));
        }
        Some(Answer::OutOfProbes { lo, hi }) => {
            s.outcome = "out_of_probes".into();
            s.lo = lo;
            s.hi = hi;
            s.answer = lo;
            s.notes.push(format!(
                "the probe budget ({}) ran out before the bracket reached the precision",
                spec.max_probes
            ));
        }
        None => s.outcome = "stopped".into(),
    }
    for p in decider.probes() {
        let v = p.measured.value;
        match p.decided_by {
            DecidedBy::Pending => s.notes.push(format!(
                "{v}{unit}: inconclusive (the 95% interval straddles a limit); probed again for longer"
            )),
            DecidedBy::PointEstimate => s.notes.push(format!(
                "{v}{unit}: still inconclusive after {} re-probes: decided on the point estimate ({})",
                spec.reprobes,
                if p.pass { "pass" } else { "fail" }
            )),
            _ => {}
        }
    }
    if let Some(h) = decider.bracket().1.filter(|h| h.measured.saturated) {
        s.notes.push(format!(
            "the upper bound {}{unit} comes from a probe stopped for over-saturation (outstanding requests grew without bound): it is over capacity by observation, not by its latency figures",
            h.measured.value
        ));
    }
    for (pass, fail) in decider.contradictions() {
        s.notes.push(format!(
            "not monotone: {pass}{unit} passed above the failing {fail}{unit}; the answer keeps the lower bound"
        ));
    }
    summary.search = Some(search_summary);
    summary.interrupted = interrupted;
    outputs.write_summary(&summary, &reports)?;
    observer.experiment_finished(&summary, outputs.summary_path());
    observer.stage(&Stage::Finished);
    Ok(SearchOutcome {
        summary,
        reports,
        interrupted,
    })
}
