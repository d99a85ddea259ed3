//! CSV and Markdown, both from the rows of [`crate::table`].

use std::fmt::Write;

use crate::summary::ExperimentSummary;
use crate::table::{self, Cell, Table};
use crate::Report;

/// Every column of every row, with a header line.
pub fn csv(t: &Table) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(vec![]);
    let _ = w.write_record(&t.columns);
    for row in &t.rows {
        let _ = w.write_record(row.iter().map(Cell::plain));
    }
    w.into_inner().unwrap_or_default()
}

/// A Markdown table of the named columns (those that exist), with their headings.
fn md_table(out: &mut String, t: &Table, columns: &[(&str, &str)]) {
    let cols: Vec<(usize, &str)> = columns
        .iter()
        .filter_map(|(name, heading)| t.column(name).map(|i| (i, *heading)))
        .collect();
    let _ = writeln!(
        out,
        "| {} |",
        cols.iter().map(|(_, h)| *h).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(
        out,
        "|{}|",
        cols.iter()
            .map(|(i, _)| {
                // Numbers right-aligned, text (names, schedules) left.
                let text = t
                    .rows
                    .iter()
                    .all(|r| matches!(r[*i], Cell::Text(_) | Cell::Empty));
                if text {
                    "---"
                } else {
                    "---:"
                }
            })
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in &t.rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|(i, _)| row[*i].short().replace('|', "\\|"))
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

const HEADLINE: [(&str, &str); 9] = [
    ("class", "class"),
    ("schedule", "schedule"),
    ("successful", "ok"),
    ("failed", "failed"),
    ("duration_s", "time (s)"),
    ("requests_per_s", "req/s"),
    ("output_tokens_per_s", "output tok/s"),
    ("total_tokens_per_s", "total tok/s"),
    ("achieved_concurrency", "in flight"),
];

fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A run: what was measured where, then headline, latency, SLO and cost tables per class.
pub fn markdown_run(r: &Report) -> String {
    let mut out = String::new();
    let t = &r.run.target;
    let _ = writeln!(
        out,
        "# strobe run{}\n",
        r.run
            .label
            .as_deref()
            .map(|l| format!(" `{l}`"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "- target: {} (model `{}`){}",
        escape(&t.base_url),
        escape(&t.model),
        if t.built_in { ", built-in" } else { "" }
    );
    if let Some(e) = &r.engine {
        let _ = writeln!(
            out,
            "- engine: `{}`{}",
            escape(&e.command),
            e.version
                .as_deref()
                .map(|v| format!(", version {v}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "- started {}, stopped: {}{}",
        r.run.started_at,
        escape(&r.run.stop_reason),
        if r.run.interrupted {
            " (interrupted: partial)"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "- strobe {}\n", r.tool.version);
    let rows = table::rows(&[table::run_point(r)]);
    out.push_str("## Throughput\n\n");
    md_table(&mut out, &rows, &HEADLINE);
    out.push_str("\n## Latency (ms)\n\n");
    out.push_str("| class | metric | mean | p50 | p90 | p95 | p99 | max |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (i, c) in r.classes.iter().enumerate() {
        for m in table::LATENCIES {
            let cells: Vec<String> = table::STATS
                .iter()
                .map(|s| {
                    rows.get(i, &format!("{m}_ms_{s}"))
                        .map_or("–".into(), Cell::short)
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                escape(&c.name),
                m.to_uppercase(),
                cells.join(" | ")
            );
        }
    }
    let slo: Vec<_> = r
        .classes
        .iter()
        .filter_map(|c| c.slo.as_ref().map(|s| (c, s)))
        .collect();
    if !slo.is_empty() {
        out.push_str("\n## SLOs\n\n| class | target | limit (ms) | measured | verdict |\n|---|---|---:|---:|---|\n");
        for (c, s) in slo {
            for ch in &s.checks {
                let measured = match ch.actual_ms {
                    Some(a) => format!("{a:.2} ms"),
                    None => format!("{} of {} over", ch.over_limit, ch.samples),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    escape(&c.name),
                    ch.name,
                    ch.limit_ms,
                    measured,
                    format!("{:?}", ch.verdict).to_lowercase()
                );
            }
            if let Some(g) = s.goodput_per_s {
                let _ = writeln!(out, "| {} | goodput | | {g:.2} req/s | |", escape(&c.name));
            }
        }
    }
    if r.classes.iter().any(|c| c.cost.is_some()) {
        out.push_str("\n## Cost\n\n");
        md_table(
            &mut out,
            &rows,
            &[
                ("class", "class"),
                ("usd_total", "USD"),
                ("usd_per_million_input_tokens", "USD / M input tokens"),
                ("usd_per_million_output_tokens", "USD / M output tokens"),
            ],
        );
    }
    if !r.client.warnings.is_empty() {
        out.push_str("\n## Warnings\n\n");
        for w in &r.client.warnings {
            let _ = writeln!(out, "- {}", escape(w));
        }
    }
    out
}

/// An experiment: one table across its points, then its comparisons, search or grid.
pub fn markdown_experiment(s: &ExperimentSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", escape(&s.title));
    if let Some(t) = &s.target {
        let _ = writeln!(
            out,
            "- target: {} (model `{}`)",
            escape(&t.base_url),
            escape(&t.model)
        );
    }
    let _ = writeln!(
        out,
        "- {} of {} runs{}, started {}, strobe {}\n",
        s.points.len(),
        s.planned,
        if s.interrupted { " (interrupted)" } else { "" },
        s.started_at,
        s.tool.version
    );
    let rows = table::experiment_rows(s);
    let mut cols: Vec<(String, String)> = vec![("point".into(), "point".into())];
    let params: Vec<String> = rows
        .columns
        .iter()
        .skip(1)
        .take_while(|c| *c != "class")
        .cloned()
        .collect();
    cols.extend(params.iter().map(|p| (p.clone(), p.clone())));
    for (name, heading) in [
        ("class", "class"),
        ("successful", "ok"),
        ("failed", "failed"),
        ("requests_per_s", "req/s"),
        ("output_tokens_per_s", "output tok/s"),
        ("ttft_ms_p50", "TTFT p50 (ms)"),
        ("ttft_ms_p99", "TTFT p99 (ms)"),
        ("tpot_ms_p50", "TPOT p50 (ms)"),
        ("tpot_ms_p99", "TPOT p99 (ms)"),
        ("e2e_ms_p99", "E2E p99 (ms)"),
        ("goodput_per_s", "goodput (req/s)"),
        ("usd_per_million_output_tokens", "USD / M output tok"),
    ] {
        cols.push((name.into(), heading.into()));
    }
    // Columns that are empty in every row (no SLOs, no price) are left out.
    let cols: Vec<(&str, &str)> = cols
        .iter()
        .filter(|(n, _)| {
            rows.column(n)
                .is_some_and(|i| rows.rows.iter().any(|r| r[i] != Cell::Empty))
                || n == "point"
        })
        .map(|(n, h)| (n.as_str(), h.as_str()))
        .collect();
    md_table(&mut out, &rows, &cols);
    if !s.comparisons.is_empty() {
        out.push_str("\n## Against the baseline\n\n| run | class | baseline | metric | value | baseline value | ratio |\n|---|---|---|---|---:|---:|---:|\n");
        for c in &s.comparisons {
            for r in &c.rows {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    c.label,
                    c.class,
                    c.baseline,
                    r.metric,
                    Cell::Num(r.value).short(),
                    Cell::Num(r.baseline).short(),
                    r.ratio.map_or("–".into(), |x| format!("{x:.2}×"))
                );
            }
        }
    }
    if let Some(search) = &s.search {
        let _ = writeln!(
            out,
            "\n## Capacity search ({})\n\nOutcome: **{}**{}\n",
            search.variable,
            search.outcome,
            search
                .answer
                .map(|a| format!(", answer {a}"))
                .unwrap_or_default()
        );
        out.push_str(
            "| probe | value | ok | failed | pass | decided by |\n|---|---:|---:|---:|---|---|\n",
        );
        for p in &search.probes {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                p.label, p.value, p.successful, p.failed, p.pass, p.decided_by
            );
        }
        for n in &search.notes {
            let _ = writeln!(out, "\n- {}", escape(n));
        }
    }
    if let Some(g) = &s.grid {
        out.push_str("\n## Pareto front\n\n| point | output tok/s per GPU | output tok/s per user |\n|---|---:|---:|\n");
        for p in &g.pareto {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} |",
                p.label, p.output_tokens_per_s_per_gpu, p.output_tokens_per_s_per_user
            );
        }
        for f in &g.failed {
            let _ = writeln!(
                out,
                "\n- engine `{}` failed: {}",
                escape(&f.engine),
                escape(&f.error)
            );
        }
    }
    out
}
