//! `strobe report`, `strobe plot` and `strobe compare`: saved results in, bytes out. Reading,
//! recomputing, drawing and testing live in `strobe-report`; this is flags and files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use strobe_report::compare::{self, Criteria};
use strobe_report::export;
use strobe_report::load::{self, Recut, Saved};
use strobe_report::summary::{ExperimentSummary, PointSummary};
use strobe_report::Report;

use crate::cli::{CompareArgs, PlotArgs, ReportArgs};
use crate::exit;

fn write_out(path: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(p) => {
            std::fs::write(p, bytes).with_context(|| format!("-o {}: cannot write", p.display()))
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            Ok(out.flush()?)
        }
    }
}

/// Several run reports as one experiment (a table across them), labelled by run label or file.
fn as_experiment(
    files: &[std::path::PathBuf],
    reports: Vec<Report>,
) -> (ExperimentSummary, Vec<Report>) {
    let started = reports
        .first()
        .map(|r| r.run.started_at.clone())
        .unwrap_or_default();
    let mut s = ExperimentSummary::new(
        "reports",
        "strobe runs side by side",
        &started,
        reports.len(),
    );
    s.target = reports.first().map(|r| r.run.target.clone());
    for (f, r) in files.iter().zip(&reports) {
        let label = f
            .file_stem()
            .map(|x| x.to_string_lossy().into_owned())
            .or_else(|| r.run.label.clone())
            .unwrap_or_default();
        s.points.push(PointSummary::of(
            &label,
            BTreeMap::new(),
            r,
            Some(f.display().to_string()),
        ));
    }
    (s, reports)
}

fn read_all(files: &[std::path::PathBuf]) -> anyhow::Result<Saved> {
    if files.len() == 1 {
        return Ok(load::read(&files[0])?);
    }
    let mut reports = vec![];
    for f in files {
        match load::read(f)? {
            Saved::Run(r) => reports.push(*r),
            Saved::Experiment(..) => bail!(
                "{}: give one experiment summary alone, or several run reports",
                f.display()
            ),
        }
    }
    let (s, r) = as_experiment(files, reports);
    Ok(Saved::Experiment(Box::new(s), r))
}

pub fn report(a: ReportArgs) -> anyhow::Result<i32> {
    let exporter = export::exporter(&a.format).ok_or_else(|| {
        anyhow!(
            "--format {}: not a format strobe writes (one of {})",
            a.format,
            export::FORMATS.join(", ")
        )
    })?;
    let recut_flags = a.warmup_requests.is_some()
        || a.warmup.is_some()
        || !a.classes.is_empty()
        || a.slo.is_some();
    let saved = match &a.records {
        Some(rec) => {
            let base = match a.files.as_slice() {
                [] => None,
                [f] => match load::read(f)? {
                    Saved::Run(r) => Some(*r),
                    Saved::Experiment(..) => bail!("{}: with --records give the run's own report, not a summary", f.display()),
                },
                _ => bail!("--records recomputes one run: give at most its one report"),
            };
            let (records, skipped) = load::records(rec)?;
            if records.is_empty() {
                bail!("{}: holds no records", rec.display());
            }
            if skipped > 0 {
                eprintln!("warning: {}: the last line was cut short (a stopped run) and was skipped", rec.display());
            }
            let classes = if a.classes.is_empty() {
                None
            } else {
                let mut ids = vec![];
                for name in &a.classes {
                    let id = base
                        .as_ref()
                        .and_then(|b| b.class(name).map(|c| c.id))
                        .or_else(|| name.parse().ok())
                        .ok_or_else(|| anyhow!("--class {name}: no such class (give a name from the report, or a record class id)"))?;
                    ids.push(id);
                }
                Some(ids)
            };
            let slo = match &a.slo {
                Some(spec) => Some(strobe_metrics::slo::parse(spec).map_err(|e| anyhow!("--slo: {e}"))?),
                None => None,
            };
            let recut = Recut {
                warmup_requests: a.warmup_requests,
                warmup_s: a.warmup.map(|d| d.as_secs_f64()),
                classes,
            };
            let r = load::rebuild(records, &rec.display().to_string(), base.as_ref(), &recut, slo.as_deref());
            Saved::Run(Box::new(r))
        }
        None if recut_flags => bail!("--warmup, --warmup-requests, --class and --slo recompute from records: add --records FILE.jsonl"),
        None if a.files.is_empty() => bail!("give a report or summary to render (or --records FILE.jsonl)"),
        None => read_all(&a.files)?,
    };
    let bytes = match &saved {
        Saved::Run(r) => exporter.run(r),
        Saved::Experiment(s, rs) => exporter.experiment(s, rs),
    };
    write_out(a.output.as_deref(), &bytes)?;
    Ok(exit::OK)
}

pub fn plot(a: PlotArgs) -> anyhow::Result<i32> {
    if a.format != "svg" && a.format != "png" {
        bail!("--format {}: write svg or png", a.format);
    }
    let saved = load::read(&a.file)?;
    let figures = match &saved {
        Saved::Run(r) => strobe_report::figures::run(r),
        Saved::Experiment(s, rs) => strobe_report::figures::experiment(s, rs),
    };
    if a.list {
        for f in &figures {
            println!("{}", f.name);
        }
        return Ok(exit::OK);
    }
    for c in &a.charts {
        if !figures.iter().any(|f| f.name == *c) {
            bail!(
                "--chart {c}: {} has no such chart; it has: {}",
                a.file.display(),
                figures
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("--out-dir {}: cannot create", a.out_dir.display()))?;
    if a.format == "png" && !strobe_report::raster::has_fonts() {
        eprintln!("warning: no fonts are installed: the PNG charts will have no text (install fonts-dejavu-core, or use --format svg)");
    }
    let mut written = vec![];
    for f in figures
        .iter()
        .filter(|f| a.charts.is_empty() || a.charts.contains(&f.name))
    {
        let svg = f.figure.svg();
        let path = a.out_dir.join(format!("{}.{}", f.name, a.format));
        let bytes = if a.format == "png" {
            strobe_report::raster::png(&svg, a.scale).map_err(|e| anyhow!("{}: {e}", f.name))?
        } else {
            svg.into_bytes()
        };
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path.display().to_string());
    }
    eprintln!("{} charts written: {}", written.len(), written.join(", "));
    Ok(exit::OK)
}

/// Runs to compare: (label, report) pairs of a saved result.
fn runs(saved: &Saved) -> Vec<(String, &Report)> {
    match saved {
        Saved::Run(r) => vec![(String::new(), r.as_ref())],
        Saved::Experiment(s, rs) => s
            .points
            .iter()
            .map(|p| p.label.clone())
            .zip(rs.iter())
            .collect(),
    }
}

pub fn compare(a: CompareArgs) -> anyhow::Result<i32> {
    for m in a.fail_on.iter().chain(&a.metrics) {
        if m != "all" && !compare::METRICS.contains(&m.as_str()) {
            bail!(
                "`{m}` is not a metric compare knows; use one of {}",
                compare::METRICS.join(", ")
            );
        }
    }
    if !(0.0..0.5).contains(&a.alpha) {
        bail!(
            "--alpha {}: give a level between 0 and 0.5, e.g. 0.01",
            a.alpha
        );
    }
    if !["text", "md", "json"].contains(&a.format.as_str()) {
        bail!("--format {}: write text, md or json", a.format);
    }
    let c = Criteria {
        threshold: a.threshold,
        alpha: a.alpha,
    };
    let base = load::read(&a.base)?;
    let mut regressed = vec![];
    let mut json = vec![];
    let mut out = String::new();
    for new_path in &a.new {
        let new = load::read(new_path)?;
        let base_runs = runs(&base);
        let new_runs = runs(&new);
        let single = base_runs.len() == 1 && new_runs.len() == 1;
        let mut matched = 0;
        for (label, n) in &new_runs {
            let Some((_, b)) = base_runs.iter().find(|(l, _)| single || l == label) else {
                continue;
            };
            matched += 1;
            let changes: Vec<compare::Change> = compare::compare(b, n, &c)
                .into_iter()
                .filter(|ch| a.metrics.is_empty() || a.metrics.contains(&ch.metric))
                .collect();
            let name = |p: &Path, l: &str| {
                if l.is_empty() {
                    p.display().to_string()
                } else {
                    format!("{} [{l}]", p.display())
                }
            };
            let (bn, nn) = (name(&a.base, label), name(new_path, label));
            for ch in changes.iter().filter(|ch| ch.regressed) {
                if a.fail_on.iter().any(|m| m == "all" || *m == ch.metric) {
                    regressed.push(format!(
                        "{nn}: class `{}` {} {:+.1}%",
                        ch.class,
                        ch.metric,
                        ch.relative.unwrap_or(0.0) * 100.0
                    ));
                }
            }
            match a.format.as_str() {
                "json" => json.push(serde_json::json!({"base": bn, "new": nn, "changes": changes})),
                f => {
                    out.push_str(&compare::render(&changes, &bn, &nn, &c, f == "md"));
                    out.push('\n');
                }
            }
        }
        if matched == 0 {
            bail!(
                "{} and {} share no run labels to compare",
                a.base.display(),
                new_path.display()
            );
        }
    }
    if a.format == "json" {
        out = serde_json::to_string_pretty(&json)? + "\n";
    }
    print!("{out}");
    if regressed.is_empty() {
        Ok(exit::OK)
    } else {
        for r in &regressed {
            eprintln!("regressed: {r}");
        }
        Ok(exit::CHECK_FAILED)
    }
}
