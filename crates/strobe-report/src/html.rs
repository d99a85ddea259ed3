//! The HTML report: one self-contained file (inline CSS and SVG, no script, no fetch), for a run or
//! a whole experiment. It reads offline and as a mail attachment, and prints.

use std::fmt::Write;

use crate::figures::{self, Named};
use crate::summary::ExperimentSummary;
use crate::table::{self, Cell};
use crate::Report;

const CSS: &str = r#"
:root { --ink:#222; --muted:#666; --line:#e3e3e3; --accent:#4e79a7; --bad:#c0392b; --good:#2e7d32; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Roboto, sans-serif; color: var(--ink); background: #f6f7f9; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 28px 48px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: var(--muted); }
h2 { font-size: 18px; margin: 30px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 12px; margin-top: 18px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .v { font-size: 22px; font-weight: 600; }
.card .k { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); font-size: 13.5px; margin: 6px 0; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: #eef1f5; font-weight: 600; }
td:first-child, th:first-child, table.kv td, table.kv th { text-align: left; }
table.kv td { white-space: normal; word-break: break-word; }
table.kv th { width: 200px; }
.scroll { overflow-x: auto; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 14px; }
figure.chart { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 6px; }
figure.chart svg { width: 100%; height: auto; display: block; }
.met { color: var(--good); font-weight: 600; } .missed { color: var(--bad); font-weight: 600; } .unsure { color: #b8860b; font-weight: 600; }
ul.warn li { color: #8a4b00; }
code { background: #eef1f5; padding: 1px 4px; border-radius: 3px; font-size: 13px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12.5px; }
@media print { body { background: #fff; } .charts { grid-template-columns: 1fr 1fr; } }
"#;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, subtitle: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>{}</title><style>{CSS}</style></head><body><main>\
         <header><h1>{}</h1><p>{}</p></header>{body}\
         <footer>Written by strobe {}. Metric definitions: docs/metrics.md. Charts are drawn from the report's own statistics \
         (lossless histograms and per-interval timelines).</footer></main></body></html>\n",
        esc(title),
        esc(title),
        subtitle,
        env!("CARGO_PKG_VERSION"),
    )
}

fn card(out: &mut String, value: &str, key: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>",
        esc(value),
        esc(key)
    );
}

fn kv(out: &mut String, rows: &[(&str, String)]) {
    out.push_str("<table class=\"kv\">");
    for (k, v) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), v);
    }
    out.push_str("</table>");
}

fn charts(out: &mut String, figs: &[Named], names: &[&str]) {
    let chosen: Vec<&Named> = figs
        .iter()
        .filter(|f| {
            names.iter().any(|n| {
                f.name == *n || (n.ends_with('*') && f.name.starts_with(&n[..n.len() - 1]))
            })
        })
        .collect();
    if chosen.is_empty() {
        return;
    }
    out.push_str("<div class=\"charts\">");
    for f in chosen {
        let _ = write!(
            out,
            "<figure class=\"chart\" data-chart=\"{}\">{}</figure>",
            esc(&f.name),
            f.figure.svg()
        );
    }
    out.push_str("</div>");
}

/// An HTML table of the named columns of `t` (those that exist and are not empty everywhere).
fn html_table(out: &mut String, t: &table::Table, columns: &[(&str, &str)]) {
    let cols: Vec<(usize, &str)> = columns
        .iter()
        .filter_map(|(n, h)| t.column(n).map(|i| (i, *h)))
        .filter(|(i, _)| *i == 0 || t.rows.iter().any(|r| r[*i] != Cell::Empty))
        .collect();
    out.push_str("<div class=\"scroll\"><table><tr>");
    for (_, h) in &cols {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for r in &t.rows {
        out.push_str("<tr>");
        for (i, _) in &cols {
            let _ = write!(out, "<td>{}</td>", esc(&r[*i].short()));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table></div>");
}

fn num(v: f64) -> String {
    Cell::Num(v).short()
}

/// The run's setting; `whole_run`: also how it stopped and its classes (not for an experiment,
/// whose runs differ).
fn environment(out: &mut String, r: &Report, whole_run: bool) {
    let t = &r.run.target;
    let mut rows: Vec<(&str, String)> = vec![
        (
            "target",
            format!(
                "<code>{}</code>{}",
                esc(&t.base_url),
                if t.built_in { " (built-in target)" } else { "" }
            ),
        ),
        ("model", esc(&t.model)),
        (
            "TLS",
            t.tls
                .as_ref()
                .map(|tls| {
                    format!(
                        "{}{}",
                        tls.version.clone().unwrap_or_default(),
                        if tls.insecure {
                            ", certificate not checked (--insecure)"
                        } else {
                            ""
                        }
                    )
                })
                .unwrap_or_default(),
        ),
        (
            "started",
            if whole_run {
                esc(&r.run.started_at)
            } else {
                String::new()
            },
        ),
    ];
    if whole_run {
        rows.push((
            "stopped",
            format!(
                "{}{}",
                esc(&r.run.stop_reason),
                if r.run.interrupted {
                    " (interrupted: partial results)"
                } else {
                    ""
                }
            ),
        ));
    }
    if let Some(e) = &r.engine {
        rows.push((
            "engine command",
            format!("<code>{}</code>", esc(&e.command)),
        ));
        rows.push((
            "engine version",
            e.version.as_deref().map(esc).unwrap_or_default(),
        ));
        rows.push(("engine ready after", format!("{:.1} s", e.ready_after_s)));
    }
    for d in &r.gpu.devices {
        rows.push((
            "GPU",
            format!(
                "{} {} ({:.1} GiB; up to {:.1} GiB used)",
                d.index,
                esc(&d.name),
                d.memory_total_bytes as f64 / (1u64 << 30) as f64,
                d.memory_used_bytes.max / (1u64 << 30) as f64
            ),
        ));
    }
    if let Some(note) = &r.gpu.note {
        rows.push(("GPU", esc(note)));
    }
    let c = &r.client;
    rows.push((
        "client",
        format!(
            "{:.2} CPU-s ({:.2} of {} cores), {} connections, {} receive timestamps",
            c.cpu_seconds,
            c.cpu_cores_used,
            c.cpu_cores_available,
            c.connections,
            esc(&c.receive_timestamps)
        ),
    ));
    for cl in r.classes.iter().filter(|_| whole_run) {
        rows.push((
            "class",
            format!(
                "<b>{}</b>: {} {}; {}; {}",
                esc(&cl.name),
                esc(&cl.request.api),
                if cl.request.streaming {
                    "streaming"
                } else {
                    "not streaming"
                },
                esc(&cl.workload.description),
                esc(&load_text(&cl.load))
            ),
        ));
    }
    kv(out, &rows);
}

fn load_text(l: &crate::LoadInfo) -> String {
    let mut parts = vec![l.schedule.clone()];
    if let Some(c) = l.concurrency {
        parts.push(format!("concurrency {c}"));
    }
    if let Some(r) = l.rate_per_s {
        parts.push(format!("{r} requests/s"));
    }
    if let Some(b) = l.batch_size {
        parts.push(format!("batches of {b}"));
    }
    if let Some(n) = l.requests {
        parts.push(format!("{n} requests"));
    }
    if let Some(d) = l.duration_s {
        parts.push(format!("{d} s"));
    }
    parts.join(", ")
}

const THROUGHPUT_COLUMNS: [(&str, &str); 10] = [
    ("class", "class"),
    ("schedule", "schedule"),
    ("successful", "successful"),
    ("failed", "failed"),
    ("unsent", "unsent"),
    ("duration_s", "time (s)"),
    ("requests_per_s", "requests/s"),
    ("output_tokens_per_s", "output tokens/s"),
    ("total_tokens_per_s", "total tokens/s"),
    ("achieved_concurrency", "in flight (mean)"),
];

fn slo_section(out: &mut String, r: &Report) {
    let with: Vec<_> = r
        .classes
        .iter()
        .filter_map(|c| Some((c, c.slo.as_ref()?)))
        .collect();
    if with.is_empty() {
        return;
    }
    out.push_str("<h2>SLOs</h2><table><tr><th>class</th><th>target</th><th>limit</th><th>measured</th><th>95% interval</th><th>verdict</th></tr>");
    for (c, s) in with {
        for ch in &s.checks {
            let verdict = format!("{:?}", ch.verdict).to_lowercase();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td><td>{}</td><td class=\"{verdict}\">{verdict}</td></tr>",
                esc(&c.name),
                esc(&ch.name),
                num(ch.limit_ms),
                match ch.actual_ms {
                    Some(a) => format!("{} ms", num(a)),
                    None => format!("{} of {} over", ch.over_limit, ch.samples),
                },
                ch.interval.map(|[a, b]| format!("{a:.4} – {b:.4}")).unwrap_or_default(),
            );
        }
        if let (Some(g), Some(a)) = (s.goodput_per_s, s.attainment) {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>goodput</td><td></td><td>{} requests/s</td><td>{:.1}% of requests met every limit</td><td></td></tr>",
                esc(&c.name),
                num(g),
                a * 100.0
            );
        }
    }
    out.push_str("</table>");
}

fn cost_section(out: &mut String, rows: &table::Table) {
    let i = rows.column("usd_total");
    if i.is_none_or(|i| rows.rows.iter().all(|r| r[i] == Cell::Empty)) {
        return;
    }
    out.push_str("<h2>Cost</h2>");
    html_table(
        out,
        rows,
        &[
            ("point", "run"),
            ("class", "class"),
            ("usd_total", "USD"),
            (
                "usd_per_million_input_tokens",
                "USD per million input tokens",
            ),
            (
                "usd_per_million_output_tokens",
                "USD per million output tokens",
            ),
        ],
    );
}

fn latency_table(out: &mut String, rows: &table::Table) {
    out.push_str("<div class=\"scroll\"><table><tr><th>class</th><th>metric</th>");
    for s in table::STATS {
        let _ = write!(out, "<th>{s} (ms)</th>");
    }
    out.push_str("</tr>");
    for (i, row) in rows.rows.iter().enumerate() {
        let class = rows
            .column("class")
            .map(|c| row[c].short())
            .unwrap_or_default();
        for m in table::LATENCIES {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td>",
                esc(&class),
                m.to_uppercase()
            );
            for s in table::STATS {
                let v = rows
                    .get(i, &format!("{m}_ms_{s}"))
                    .map_or("–".into(), Cell::short);
                let _ = write!(out, "<td>{}</td>", esc(&v));
            }
            out.push_str("</tr>");
        }
    }
    out.push_str("</table></div>");
}

fn warnings(out: &mut String, w: &[String]) {
    if w.is_empty() {
        return;
    }
    out.push_str("<h2>Warnings</h2><ul class=\"warn\">");
    for x in w {
        let _ = write!(out, "<li>{}</li>", esc(x));
    }
    out.push_str("</ul>");
}

/// The report of one run.
pub fn run(r: &Report) -> String {
    let mut b = String::new();
    let res = &r.results;
    b.push_str("<section class=\"cards\">");
    card(&mut b, &num(res.throughput.requests_per_s), "requests/s");
    card(
        &mut b,
        &num(res.throughput.output_tokens_per_s),
        "output tokens/s",
    );
    let l = &res.latency;
    if l.ttft_ms.count > 0 {
        card(&mut b, &format!("{} ms", num(l.ttft_ms.p50)), "TTFT p50");
        card(&mut b, &format!("{} ms", num(l.ttft_ms.p99)), "TTFT p99");
    }
    if l.tpot_ms.count > 0 {
        card(&mut b, &format!("{} ms", num(l.tpot_ms.p50)), "TPOT p50");
    }
    card(&mut b, &format!("{} ms", num(l.e2e_ms.p99)), "E2E p99");
    card(
        &mut b,
        &format!("{} / {}", res.requests.successful, res.requests.measured),
        "requests succeeded",
    );
    if let Some(c) = r
        .cost
        .as_ref()
        .and_then(|c| c.usd_per_million_output_tokens)
    {
        card(&mut b, &format!("${c:.3}"), "per million output tokens");
    }
    b.push_str("</section>");
    b.push_str("<h2>What was measured</h2>");
    environment(&mut b, r, true);
    let rows = table::rows(&[table::run_point(r)]);
    b.push_str("<h2>Throughput</h2>");
    html_table(&mut b, &rows, &THROUGHPUT_COLUMNS);
    b.push_str("<h2>Latency</h2>");
    latency_table(&mut b, &rows);
    slo_section(&mut b, r);
    cost_section(&mut b, &rows);
    let figs = figures::run(r);
    b.push_str("<h2>Latency distributions</h2>");
    charts(
        &mut b,
        &figs,
        &[
            "ttft-cdf",
            "ttft-histogram",
            "tpot-cdf",
            "tpot-histogram",
            "itl-cdf",
            "itl-histogram",
            "e2e-cdf",
            "e2e-histogram",
        ],
    );
    b.push_str("<h2>Over time</h2>");
    charts(
        &mut b,
        &figs,
        &[
            "throughput-over-time",
            "requests-over-time",
            "in-flight-over-time",
            "ttft-over-time",
            "e2e-over-time",
        ],
    );
    if figs
        .iter()
        .any(|f| ["server-queue", "kv-cache", "gpu-memory"].contains(&f.name.as_str()))
    {
        b.push_str("<h2>Server side</h2>");
        charts(&mut b, &figs, &["server-queue", "kv-cache", "gpu-memory"]);
    }
    if let Some(e) = &r.engine {
        if !e.params.is_empty() {
            b.push_str("<h3>Engine flags</h3>");
            let rows: Vec<(&str, String)> =
                e.params.iter().map(|(k, v)| (k.as_str(), esc(v))).collect();
            kv(&mut b, &rows);
        }
    }
    warnings(&mut b, &r.client.warnings);
    let title = match &r.run.label {
        Some(l) => format!("strobe run {l}"),
        None => "strobe run".to_owned(),
    };
    let subtitle = format!(
        "{} · model {} · {}",
        esc(&r.run.target.base_url),
        esc(&r.run.target.model),
        esc(&r.run.started_at)
    );
    page(&title, &subtitle, &b)
}

/// The report of an experiment: the table across its runs, the sweep's charts, comparisons,
/// the search or grid, then each run in brief.
pub fn experiment(s: &ExperimentSummary, reports: &[Report]) -> String {
    let mut b = String::new();
    let rows = table::experiment_rows(s);
    b.push_str("<section class=\"cards\">");
    card(
        &mut b,
        &format!("{} / {}", s.points.len(), s.planned),
        "runs finished",
    );
    if let Some((name, xs)) = figures::sweep_axis(s) {
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        card(
            &mut b,
            &format!("{} – {}", crate::charts::tick(lo), crate::charts::tick(hi)),
            &format!("swept: {name}"),
        );
    }
    if let Some(best) = s
        .points
        .iter()
        .flat_map(|p| p.classes.iter())
        .map(|c| c.throughput.output_tokens_per_s)
        .reduce(f64::max)
    {
        card(&mut b, &num(best), "best output tokens/s");
    }
    if let Some(search) = &s.search {
        card(
            &mut b,
            &search.answer.map_or(search.outcome.clone(), num),
            &format!("capacity ({})", search.variable),
        );
    }
    b.push_str("</section>");
    if let Some(r) = reports.first() {
        b.push_str("<h2>What was measured</h2>");
        environment(&mut b, r, false);
    }
    b.push_str("<h2>Runs</h2>");
    let mut cols: Vec<(String, String)> = vec![("point".into(), "run".into())];
    cols.extend(
        rows.columns
            .iter()
            .skip(1)
            .take_while(|c| *c != "class")
            .map(|c| (c.clone(), c.clone())),
    );
    for (n, h) in [
        ("class", "class"),
        ("successful", "ok"),
        ("failed", "failed"),
        ("requests_per_s", "requests/s"),
        ("output_tokens_per_s", "output tokens/s"),
        ("achieved_concurrency", "in flight"),
        ("ttft_ms_p50", "TTFT p50 (ms)"),
        ("ttft_ms_p99", "TTFT p99 (ms)"),
        ("tpot_ms_p50", "TPOT p50 (ms)"),
        ("tpot_ms_p99", "TPOT p99 (ms)"),
        ("e2e_ms_p50", "E2E p50 (ms)"),
        ("e2e_ms_p99", "E2E p99 (ms)"),
        ("batch_latency_ms_mean", "batch latency (ms)"),
        ("slo_met", "SLOs met"),
        ("goodput_per_s", "goodput (req/s)"),
    ] {
        cols.push((n.into(), h.into()));
    }
    let cols: Vec<(&str, &str)> = cols.iter().map(|(a, c)| (a.as_str(), c.as_str())).collect();
    html_table(&mut b, &rows, &cols);
    let figs = figures::experiment(s, reports);
    if figs.iter().any(|f| f.name.starts_with("sweep-")) {
        b.push_str("<h2>Against the swept setting</h2>");
        charts(
            &mut b,
            &figs,
            &[
                "sweep-*",
                "throughput-per-gpu-vs-per-user",
                "ttft-cdf-by-point",
            ],
        );
    }
    if figs.iter().any(|f| f.name.starts_with("interference-")) || !s.comparisons.is_empty() {
        b.push_str("<h2>Against the baseline</h2>");
        charts(&mut b, &figs, &["interference-*"]);
        b.push_str("<div class=\"scroll\"><table><tr><th>run</th><th>class</th><th>baseline</th><th>metric</th><th>value</th><th>baseline value</th><th>ratio</th></tr>");
        for c in &s.comparisons {
            for r in &c.rows {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&c.label),
                    esc(&c.class),
                    esc(&c.baseline),
                    esc(&r.metric),
                    num(r.value),
                    num(r.baseline),
                    r.ratio.map_or("–".into(), |x| format!("{x:.2}×"))
                );
            }
        }
        b.push_str("</table></div>");
    }
    if let Some(search) = &s.search {
        b.push_str("<h2>Capacity search</h2>");
        charts(&mut b, &figs, &["search-probes"]);
        b.push_str("<table><tr><th>probe</th><th>value</th><th>successful</th><th>failed</th><th>met the SLOs</th><th>decided by</th></tr>");
        for p in &search.probes {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                esc(&p.label),
                num(p.value),
                p.successful,
                p.failed,
                if p.pass { "met" } else { "missed" },
                if p.pass { "yes" } else { "no" },
                esc(&p.decided_by)
            );
        }
        b.push_str("</table>");
        if !search.notes.is_empty() {
            b.push_str("<ul>");
            for n in &search.notes {
                let _ = write!(b, "<li>{}</li>", esc(n));
            }
            b.push_str("</ul>");
        }
    }
    if let Some(g) = &s.grid {
        b.push_str("<h2>Engine configurations</h2>");
        charts(&mut b, &figs, &["throughput-per-gpu-vs-per-user"]);
        b.push_str("<table><tr><th>on the Pareto front</th><th>output tokens/s per GPU</th><th>output tokens/s per user</th></tr>");
        for p in &g.pareto {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.label),
                num(p.output_tokens_per_s_per_gpu),
                num(p.output_tokens_per_s_per_user)
            );
        }
        b.push_str("</table>");
        for f in &g.failed {
            let _ = write!(
                b,
                "<p class=\"missed\">{} did not start: {}</p>",
                esc(&f.engine),
                esc(&f.error)
            );
        }
    }
    cost_section(&mut b, &rows);
    let warn: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            let label = r.run.label.clone().unwrap_or_default();
            r.client
                .warnings
                .iter()
                .map(move |w| format!("{label}: {w}"))
        })
        .collect();
    warnings(&mut b, &warn);
    let subtitle = format!(
        "{} · {}{} · {}",
        esc(&s.kind),
        s.target
            .as_ref()
            .map(|t| format!("{} · model {}", esc(&t.base_url), esc(&t.model)))
            .unwrap_or_default(),
        if s.interrupted { " · interrupted" } else { "" },
        esc(&s.started_at)
    );
    page(&s.title, &subtitle, &b)
}
