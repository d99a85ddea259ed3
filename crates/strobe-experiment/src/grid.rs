//! Engine-flag grids: the engine launched once per combination of engine flags (for vLLM e.g.
//! `--max-num-seqs` × `--max-num-batched-tokens`), the same load experiment run on each, and the
//! Pareto front of output throughput per GPU against tokens/s per user across every point. An
//! engine that fails to start is recorded and the grid goes on.
//!
//! Each engine's experiment is an ordinary one with its own summary (`out.ENGINE.json`, its runs
//! as `out.ENGINE.POINT.json`), so an interrupted grid resumes engine by engine; the grid's own
//! summary (`--output`) lists every point with the engine flags among its parameters.

use serde_json::json;
use strobe_report::{pareto, EngineFailure, ExperimentSummary, GridSummary, Report};

use crate::error::ExperimentError;
use crate::experiment::Experiment;
use crate::observer::Observer;
use crate::outputs::{finished_experiment, labelled, write_atomically};
use crate::shutdown::Shutdown;
use crate::target::{Session, TargetSpec};

/// One engine flag and its values (`--max-num-seqs`, `[8, 16]`).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineAxis {
    pub flag: String,
    pub values: Vec<String>,
}

/// Parses `FLAG=V1,V2` (`--max-num-seqs=8,16` or `max-num-seqs=8,16`).
pub fn parse_engine_axis(s: &str) -> Result<EngineAxis, String> {
    let (flag, values) = s.split_once('=').ok_or_else(|| {
        format!("--engine-grid `{s}`: expected FLAG=V1,V2, e.g. --max-num-seqs=8,16")
    })?;
    let flag = flag.trim();
    let flag = if flag.starts_with("--") {
        flag.to_owned()
    } else {
        format!("--{flag}")
    };
    if flag.len() < 3 || flag.contains(char::is_whitespace) {
        return Err(format!("--engine-grid `{s}`: `{flag}` is not a flag"));
    }
    let values: Vec<String> = values
        .split(',')
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Err(format!("--engine-grid `{s}`: no values"));
    }
    Ok(EngineAxis { flag, values })
}

/// Every combination of the axes: (label, flags to append).
pub fn combinations(axes: &[EngineAxis]) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<Vec<(String, String)>> = vec![vec![]];
    for a in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                a.values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((a.flag.clone(), v.clone()));
                    p
                })
            })
            .collect();
    }
    out.into_iter()
        .map(|flags| {
            let label = flags
                .iter()
                .map(|(f, v)| format!("{}-{}", f.trim_start_matches('-'), v.replace('/', "_")))
                .collect::<Vec<_>>()
                .join("_");
            (label, flags)
        })
        .collect()
}

/// Quotes a value for the shell command line.
fn shell_word(v: &str) -> String {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.,:/=+".contains(c))
    {
        v.to_owned()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

/// The Pareto front of the summary's points so far.
fn front(summary: &ExperimentSummary, gpus: u32) -> Vec<strobe_report::ParetoPoint> {
    let points: Vec<(String, f64, f64)> = summary
        .points
        .iter()
        .filter_map(|p| {
            let c = p.classes.first()?;
            let per_user =
                (c.tpot_ms.count > 0 && c.tpot_ms.mean > 0.0).then(|| 1000.0 / c.tpot_ms.mean)?;
            Some((
                p.label.clone(),
                c.throughput.output_tokens_per_s / gpus.max(1) as f64,
                per_user,
            ))
        })
        .collect();
    pareto(&points)
}

/// How a grid ended.
pub struct GridOutcome {
    pub summary: ExperimentSummary,
    pub reports: Vec<Report>,
    pub interrupted: bool,
}

/// Runs `exp` once per engine combination, launching each from `target` (which must launch).
pub async fn run(
    target: &TargetSpec,
    axes: &[EngineAxis],
    gpus: u32,
    exp: &Experiment,
    shutdown: &Shutdown,
    observer: &mut dyn Observer,
) -> Result<GridOutcome, ExperimentError> {
    let Some(launch) = &target.launch else {
        return Err(ExperimentError::Invalid(
            "--engine-grid restarts the engine for each combination: give --launch \"vllm serve MODEL ...\"".into(),
        ));
    };
    let engines = combinations(axes);
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut summary = ExperimentSummary::new(
        "grid",
        &format!(
            "engine-flag grid ({} engines) × {}",
            engines.len(),
            exp.title
        ),
        &started_at,
        engines.len() * exp.runs.len(),
    );
    let mut grid = GridSummary::default();
    // The grid's own summary and exports cover every engine; each engine's experiment writes
    // its own beside them (FILE.e1.json, report.e1.html).
    let write = |s: &ExperimentSummary, reports: &[Report]| -> Result<(), ExperimentError> {
        use strobe_report::export::Exporter;
        if let Some(p) = &exp.outputs.report {
            write_atomically(p, &strobe_report::export::Json.experiment(s, reports)).map_err(
                |e| {
                    ExperimentError::output("--output", p, format!("cannot write the summary: {e}"))
                },
            )?;
        }
        for e in &exp.outputs.exports {
            if let Some(x) = strobe_report::export::exporter(&e.format) {
                write_atomically(&e.path, &x.experiment(s, reports)).map_err(|err| {
                    ExperimentError::output(
                        "--export",
                        &e.path,
                        format!("cannot write the file: {err}"),
                    )
                })?;
            }
        }
        Ok(())
    };
    write(&summary, &[])?;
    let mut reports = vec![];
    let mut interrupted = false;
    for (label, flags) in &engines {
        if shutdown.is_requested() {
            interrupted = true;
            break;
        }
        let extra: String = flags
            .iter()
            .map(|(f, v)| format!(" {f} {}", shell_word(v)))
            .collect();
        let engine_text = extra.trim().to_owned();
        grid.engines.push(engine_text.clone());
        let mut spec = target.clone();
        let mut l = launch.clone();
        l.command = format!("{}{extra}", launch.command);
        l.log = labelled(&launch.log, label);
        spec.launch = Some(l);
        let mut sub = exp.clone();
        if let Some(p) = &exp.outputs.report {
            sub.outputs.report = Some(labelled(p, label));
        }
        if let Some(p) = &exp.outputs.records {
            sub.outputs.records = Some(labelled(p, label));
        }
        for e in &mut sub.outputs.exports {
            e.path = labelled(&e.path, label);
        }
        for r in &mut sub.runs {
            for (f, v) in flags {
                let value = v.parse::<f64>().map_or(json!(v), |n| json!(n));
                r.parameters.insert(format!("engine{f}"), value);
            }
        }
        // An engine whose sweep an earlier attempt finished is not launched again.
        if let (Some(p), false) = (&sub.outputs.report, exp.restart) {
            if let Some((s, r)) = finished_experiment(p, &sub.fingerprint_for(&spec)) {
                observer.message(&format!(
                    "engine {label}: finished by an earlier attempt ({}); kept",
                    p.display()
                ));
                summary.target = summary.target.take().or(s.target.clone());
                for mut point in s.points {
                    point.label = format!("{label}.{}", point.label);
                    summary.resumed.push(point.label.clone());
                    summary.points.push(point);
                }
                reports.extend(r);
                grid.pareto = front(&summary, gpus);
                summary.grid = Some(grid.clone());
                write(&summary, &reports)?;
                continue;
            }
        }
        observer.message(&format!("engine {label}: {engine_text}"));
        let session = match Session::open(spec, shutdown, observer).await {
            Ok(s) => s,
            Err(ExperimentError::Interrupted { .. }) => {
                interrupted = true;
                break;
            }
            Err(e) => {
                observer.warning(&format!("engine {label} did not start: {e}; going on"));
                grid.failed.push(EngineFailure {
                    engine: engine_text,
                    error: e.to_string(),
                });
                summary.grid = Some(grid.clone());
                write(&summary, &reports)?;
                continue;
            }
        };
        let result = crate::experiment::run(&session, &sub, shutdown, observer).await;
        session.close().await;
        let outcome = match result {
            Ok(o) => o,
            Err(ExperimentError::Interrupted { .. }) => {
                interrupted = true;
                break;
            }
            Err(e) => {
                observer.warning(&format!(
                    "engine {label}: the experiment failed: {e}; going on"
                ));
                grid.failed.push(EngineFailure {
                    engine: engine_text,
                    error: e.to_string(),
                });
                continue;
            }
        };
        summary.target.get_or_insert_with(|| {
            outcome
                .summary
                .target
                .clone()
                .unwrap_or_else(|| outcome.reports[0].run.target.clone())
        });
        for mut p in outcome.summary.points {
            p.label = format!("{label}.{}", p.label);
            summary.points.push(p);
        }
        reports.extend(outcome.reports);
        grid.pareto = front(&summary, gpus);
        summary.grid = Some(grid.clone());
        write(&summary, &reports)?;
        if outcome.interrupted {
            interrupted = true;
            break;
        }
    }
    summary.interrupted = interrupted;
    summary.grid = Some(grid);
    write(&summary, &reports)?;
    observer.experiment_finished(&summary, exp.outputs.report.as_ref());
    Ok(GridOutcome {
        summary,
        reports,
        interrupted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_axes_cross_into_labelled_flag_sets() {
        let a = parse_engine_axis("--max-num-seqs=8,16").unwrap();
        let b = parse_engine_axis("max-num-batched-tokens=256,512").unwrap();
        let c = combinations(&[a, b]);
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].0, "max-num-seqs-8_max-num-batched-tokens-256");
        assert_eq!(
            c[3].1,
            [
                ("--max-num-seqs".to_owned(), "16".to_owned()),
                ("--max-num-batched-tokens".to_owned(), "512".to_owned())
            ]
        );
        assert!(parse_engine_axis("--max-num-seqs").is_err());
        assert_eq!(shell_word("a b"), "'a b'");
    }

    #[test]
    fn the_front_keeps_only_undominated_points() {
        let pts = vec![
            ("a".to_owned(), 100.0, 50.0),
            ("b".to_owned(), 200.0, 30.0),
            ("c".to_owned(), 150.0, 20.0), // dominated by b
            ("d".to_owned(), 50.0, 60.0),
        ];
        let f = pareto(&pts);
        let labels: Vec<&str> = f.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["b", "a", "d"]);
    }
}
