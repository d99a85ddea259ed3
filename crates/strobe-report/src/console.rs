//! The console exporter. A run: vLLM's "Serving Benchmark Result" block per class, then a latency
//! table with mean/median/p95/p99/min/max, the schedule's own block (seed 003's offline figures,
//! seed 001's lockstep batches), SLOs, cost, errors and warnings. An experiment: a table across
//! its runs, and for seed 000's conditions the seed's own layout with each figure beside its
//! baseline.

use std::fmt::Write;
use strobe_metrics::{Cost, Summary};

use crate::summary::{ClassSummary, ExperimentSummary};
use crate::{ClassReport, Report};

const WIDTH: usize = 50;

fn title(out: &mut String, text: &str, fill: char) {
    let pad = WIDTH.saturating_sub(text.chars().count());
    let left = pad / 2;
    let fill_l: String = std::iter::repeat_n(fill, left).collect();
    let fill_r: String = std::iter::repeat_n(fill, pad - left).collect();
    let _ = writeln!(out, "{fill_l}{text}{fill_r}");
}

fn row(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{label:<41}{value:<10}");
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let several = report.classes.len() > 1;
    if let (Some(label), false) = (&report.run.label, several) {
        let _ = writeln!(out, "--- {label} ---");
    }
    for c in &report.classes {
        if several {
            let _ = writeln!(out);
            title(&mut out, &format!(" class `{}` ", c.name), '#');
        }
        class_block(&mut out, report, c);
    }
    if several {
        let _ = writeln!(out);
        all_classes(&mut out, report);
    }
    if let Some(cost) = &report.cost {
        if several {
            cost_block(&mut out, "Cost of the whole run", cost);
        }
    }
    server_side(&mut out, report);
    let c = &report.client;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Client: {:.2} CPU-s ({:.2} of {} cores){}, {} connections, arrivals dated by {} timestamps",
        c.cpu_seconds,
        c.cpu_cores_used,
        c.cpu_cores_available,
        c.cpu_us_per_output_token
            .map(|u| format!(", {u:.3} CPU-µs per output token"))
            .unwrap_or_default(),
        c.connections,
        c.receive_timestamps
    );
    for w in &c.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if report.run.interrupted || report.run.aborted {
        let _ = writeln!(out, "stopped: {}", report.run.stop_reason);
    }
    out
}

fn class_block(out: &mut String, report: &Report, c: &ClassReport) {
    let r = &c.results;
    let load = &c.load;
    if load.schedule == "offline" {
        offline_block(out, c);
    }
    let heading = if report.run.interrupted {
        " Serving Benchmark Result (partial) "
    } else {
        " Serving Benchmark Result "
    };
    title(out, heading, '=');
    row(out, "Successful requests:", r.requests.successful);
    row(out, "Failed requests:", r.requests.failed);
    if r.requests.cancelled > 0 {
        row(out, "Cancelled requests:", r.requests.cancelled);
    }
    if r.requests.unsent > 0 {
        row(out, "Due but never sent:", r.requests.unsent);
    }
    match (load.schedule.as_str(), r.concurrency.requested) {
        ("closed", Some(n)) => row(out, "Maximum request concurrency:", n),
        ("lockstep", Some(n)) => row(out, "Batch size:", n),
        (_, Some(n)) => row(out, "Maximum request concurrency (cap):", n),
        _ => {}
    }
    row(
        out,
        "Achieved concurrency (mean in flight):",
        format!("{:.2}", r.concurrency.achieved_mean),
    );
    if let Some(rate) = load.rate_per_s {
        row(
            out,
            "Request rate configured (req/s):",
            format!("{rate:.2}"),
        );
    }
    row(
        out,
        "Benchmark duration (s):",
        format!("{:.2}", r.duration_s),
    );
    row(out, "Total input tokens:", r.tokens.input);
    row(out, "Total generated tokens:", r.tokens.output);
    row(
        out,
        "Request throughput (req/s):",
        format!("{:.2}", r.throughput.requests_per_s),
    );
    row(
        out,
        "Output token throughput (tok/s):",
        format!("{:.2}", r.throughput.output_tokens_per_s),
    );
    row(
        out,
        "Total Token throughput (tok/s):",
        format!("{:.2}", r.throughput.total_tokens_per_s),
    );
    let block = |out: &mut String, name: &str, short: &str, s: &Summary| {
        title(out, name, '-');
        row(
            out,
            &format!("Mean {short} (ms):"),
            format!("{:.2}", s.mean),
        );
        row(
            out,
            &format!("Median {short} (ms):"),
            format!("{:.2}", s.p50),
        );
        row(out, &format!("P99 {short} (ms):"), format!("{:.2}", s.p99));
    };
    let l = &r.latency;
    if l.ttft_ms.count > 0 {
        block(out, "Time to First Token", "TTFT", &l.ttft_ms);
        block(
            out,
            "Time per Output Token (excl. 1st token)",
            "TPOT",
            &l.tpot_ms,
        );
        block(out, "Inter-token Latency", "ITL", &l.itl_ms);
    }
    block(out, "End-to-end Latency", "E2EL", &l.e2e_ms);
    title(out, "", '=');

    let _ = writeln!(out);
    latency_table(out, r);
    if let Some(b) = &r.batches {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Lockstep batches: {} of {} requests; batch latency (slowest member) p50 {:.2} ms, p95 {:.2} ms, mean {:.2} ms, max {:.2} ms; prefill (slowest first token) p50 {:.2} ms",
            b.count,
            load.batch_size.unwrap_or(0),
            b.latency_ms.p50,
            b.latency_ms.p95,
            b.latency_ms.mean,
            b.latency_ms.max,
            b.prefill_ms.p50
        );
    }
    if let Some(slo) = &c.slo {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "SLOs: {}",
            if slo.all_met { "all met" } else { "MISSED" }
        );
        for ch in &slo.checks {
            let actual = ch
                .actual_ms
                .map(|a| format!("{a:.2} ms"))
                .unwrap_or_else(|| "per request".into());
            let _ = writeln!(
                out,
                "  {:<18} ≤ {:>10.2} ms   {:>14}   {}",
                ch.name,
                ch.limit_ms,
                actual,
                if ch.met { "met" } else { "missed" }
            );
        }
        if let (Some(met), Some(att), Some(g)) =
            (slo.requests_met, slo.attainment, slo.goodput_per_s)
        {
            let _ = writeln!(
                out,
                "  requests within every per-request limit: {met} ({:.1}%); goodput {g:.2} req/s",
                att * 100.0
            );
        }
    }
    if let Some(cost) = &c.cost {
        cost_block(out, "Cost", cost);
    }
    workload_lines(out, c);
    if !r.requests.errors.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Errors:");
        for e in &r.requests.errors {
            let _ = writeln!(out, "  {:<16} {:>8}  e.g. {}", e.kind, e.count, e.example);
        }
    }
}

fn latency_table(out: &mut String, r: &crate::Results) {
    let l = &r.latency;
    let _ = writeln!(
        out,
        "| {:<20} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>8} |",
        "Latency (ms)", "Mean", "Median", "p95", "p99", "Min", "Max", "Count"
    );
    let _ = writeln!(
        out,
        "|{:-<22}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|{:->10}|",
        "", "", "", "", "", "", "", ""
    );
    for (name, s) in [
        ("TTFT", &l.ttft_ms),
        ("TPOT", &l.tpot_ms),
        ("ITL", &l.itl_ms),
        ("E2E latency", &l.e2e_ms),
        ("Queue delay", &l.queue_delay_ms),
    ] {
        if s.count == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "| {name:<20} | {:>9.2} | {:>9.2} | {:>9.2} | {:>9.2} | {:>9.2} | {:>9.2} | {:>8} |",
            s.mean, s.p50, s.p95, s.p99, s.min, s.max, s.count
        );
    }
    if r.tokens_per_chunk.count > 0 {
        let _ = writeln!(
            out,
            "Tokens per chunk: mean {:.2}, max {:.2}",
            r.tokens_per_chunk.mean, r.tokens_per_chunk.max
        );
    }
}

/// Seed 003's offline block.
fn offline_block(out: &mut String, c: &ClassReport) {
    let r = &c.results;
    let line = "* ==========================================================";
    let _ = writeln!(out, "{line}");
    let _ = writeln!(out, "* Total Time:                   {:.2}", r.duration_s);
    let _ = writeln!(
        out,
        "* Total Generations:            {}",
        r.requests.successful
    );
    let _ = writeln!(out, "*");
    let _ = writeln!(
        out,
        "* Generations / Sec:            {:.2}",
        r.throughput.requests_per_s
    );
    let _ = writeln!(
        out,
        "* Generation Tok / Sec:         {:.2}",
        r.throughput.output_tokens_per_s
    );
    let _ = writeln!(
        out,
        "* Prompt Tok / Sec:             {:.2}",
        r.throughput.input_tokens_per_s
    );
    let _ = writeln!(out, "*");
    let _ = writeln!(
        out,
        "* Avg Generation Tokens:        {:.2}",
        r.output_tokens_per_request.mean
    );
    let _ = writeln!(
        out,
        "* Avg Prompt Tokens:            {:.2}",
        r.input_tokens_per_request.mean
    );
    let _ = writeln!(out, "{line}");
}

fn money(v: Option<f64>) -> String {
    v.map(|v| format!("${v:.4}"))
        .unwrap_or_else(|| "n/a".into())
}

fn cost_block(out: &mut String, heading: &str, c: &Cost) {
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{heading} (${:.2} per GPU-hour × {} GPU{}, {:.1} s): ${:.4} in all",
        c.usd_per_gpu_hour,
        c.gpus,
        if c.gpus == 1 { "" } else { "s" },
        c.seconds,
        c.total_usd
    );
    let _ = writeln!(
        out,
        "  per 1M input tokens (prefill) {}   per 1M output tokens (generation) {}",
        money(c.usd_per_million_input_tokens),
        money(c.usd_per_million_output_tokens)
    );
    let _ = writeln!(
        out,
        "  per 1M tokens (blended) {}   per 1,000 requests {}{}",
        money(c.usd_per_million_tokens),
        money(c.usd_per_thousand_requests),
        c.prefill_share
            .map(|s| format!("   prefill share of time {:.1}%", s * 100.0))
            .unwrap_or_default()
    );
}

fn workload_lines(out: &mut String, c: &ClassReport) {
    let w = &c.workload;
    let r = &c.results;
    let _ = writeln!(out, "Workload: {}", w.description);
    let _ = writeln!(
        out,
        "Input lengths: {} under {}",
        if w.exact_input_lengths {
            "exact"
        } else {
            "approximate"
        },
        w.tokenizer
    );
    if let Some(ch) = &r.input_length_check {
        let _ = writeln!(
            out,
            "Server-counted input vs intended: {} of {} exact; difference mean {:+.2}, min {:+}, max {:+} tokens",
            ch.exact, ch.compared, ch.mean_diff, ch.min_diff, ch.max_diff
        );
    }
    if let Some(d) = &w.dataset {
        let dropped: Vec<String> = d.dropped.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let _ = writeln!(
            out,
            "Data set: {} records read, {} examined, {} kept{}{}",
            d.records,
            d.examined,
            d.kept,
            if dropped.is_empty() {
                String::new()
            } else {
                format!("; dropped {}", dropped.join(", "))
            },
            if d.malformed_skipped > 0 {
                format!("; {} malformed skipped", d.malformed_skipped)
            } else {
                String::new()
            }
        );
    }
}

fn all_classes(out: &mut String, report: &Report) {
    title(out, " All classes ", '#');
    let _ = writeln!(
        out,
        "| {:<14} | {:>9} | {:>7} | {:>9} | {:>10} | {:>11} | {:>10} | {:>10} |",
        "class", "schedule", "ok", "req/s", "out tok/s", "total tok/s", "TTFT p95", "E2E p95"
    );
    let _ = writeln!(
        out,
        "|{:-<16}|{:->11}|{:->9}|{:->11}|{:->12}|{:->13}|{:->12}|{:->12}|",
        "", "", "", "", "", "", "", ""
    );
    let mut line = |name: &str, schedule: &str, r: &crate::Results| {
        let _ = writeln!(
            out,
            "| {name:<14} | {schedule:>9} | {:>7} | {:>9.2} | {:>10.1} | {:>11.1} | {:>10.2} | {:>10.2} |",
            r.requests.successful,
            r.throughput.requests_per_s,
            r.throughput.output_tokens_per_s,
            r.throughput.total_tokens_per_s,
            r.latency.ttft_ms.p95,
            r.latency.e2e_ms.p95
        );
    };
    for c in &report.classes {
        line(&c.name, &c.load.schedule, &c.results);
    }
    line("(all)", "", &report.results);
}

/// What the server and its GPUs said, beside the client's view.
fn server_side(out: &mut String, report: &Report) {
    if let Some(m) = &report.server_metrics {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Server metrics ({}, {} scrapes of {}):",
            m.engine, m.scrapes, m.url
        );
        if let Some(note) = &m.note {
            let _ = writeln!(out, "  note: {note}");
        }
        let l = &report.results.latency;
        for (key, label, client) in [
            ("ttft", "TTFT", Some(&l.ttft_ms)),
            ("tpot", "TPOT", Some(&l.tpot_ms)),
            ("itl", "ITL", Some(&l.itl_ms)),
            ("e2e", "E2E latency", Some(&l.e2e_ms)),
            ("queue", "Server queue", None),
        ] {
            if let Some(h) = m.histograms.get(key) {
                if h.count <= 0.0 {
                    continue;
                }
                let beside = client
                    .filter(|c| c.count > 0)
                    .map(|c| format!(" (client: mean {:.2})", c.mean))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {label:<13} server mean {:>9.2} ms, p50 {:.2}, p99 {:.2} over {:.0} requests{beside}",
                    h.mean_ms, h.p50_ms, h.p99_ms, h.count
                );
            }
        }
        for (key, label) in [
            ("running_requests", "running"),
            ("waiting_requests", "waiting"),
            ("kv_cache_usage", "KV-cache usage"),
        ] {
            if let Some(g) = m.gauges.get(key) {
                let _ = writeln!(out, "  {label:<13} mean {:.2}, max {:.2}", g.mean, g.max);
            }
        }
        if let Some(r) = m.prefix_cache_hit_rate {
            let _ = writeln!(out, "  prefix-cache hit rate {:.1}%", r * 100.0);
        }
        if let Some(p) = m.counters.get("preemptions") {
            let _ = writeln!(out, "  preemptions   {p:.0}");
        }
    }
    let g = &report.gpu;
    if g.devices.is_empty() {
        if let Some(note) = &g.note {
            let _ = writeln!(out, "GPU: {note}");
        }
    } else {
        for d in &g.devices {
            let _ = writeln!(
                out,
                "GPU {} {} ({}): memory used max {:.2} GiB of {:.2} GiB, utilisation mean {:.0}%, power mean {:.0} W",
                d.index,
                d.name,
                g.source,
                d.memory_used_bytes.max / 1073741824.0,
                d.memory_total_bytes as f64 / 1073741824.0,
                d.utilization_percent.mean,
                d.power_watts.mean
            );
        }
    }
    if let Some(e) = &report.engine {
        let _ = writeln!(
            out,
            "Engine: {} (ready after {:.1} s{}), log {}",
            e.command,
            e.ready_after_s,
            e.version
                .as_deref()
                .map(|v| format!(", version {v}"))
                .unwrap_or_default(),
            e.log_path
        );
    }
}

/// An experiment: a table across its runs (and for seed 000's conditions, the seed's layout with
/// every interactive figure beside its isolated baseline).
pub fn render_experiment(s: &ExperimentSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(out);
    title(&mut out, &format!(" {} ", s.title), '#');
    if s.kind == "interference" {
        interference(&mut out, s);
    } else {
        points_table(&mut out, s);
    }
    if s.interrupted {
        let _ = writeln!(
            out,
            "stopped after {} of {} runs",
            s.points.len(),
            s.planned
        );
    }
    out
}

fn points_table(out: &mut String, s: &ExperimentSummary) {
    let w = s
        .points
        .iter()
        .map(|p| p.label.chars().count())
        .max()
        .unwrap_or(3)
        .max(3);
    let cw = s
        .points
        .iter()
        .flat_map(|p| p.classes.iter().map(|c| c.name.chars().count()))
        .max()
        .unwrap_or(5)
        .max(5);
    let cost = s
        .points
        .iter()
        .any(|p| p.classes.iter().any(|c| c.cost.is_some()));
    let batches = s
        .points
        .iter()
        .any(|p| p.classes.iter().any(|c| c.batch_latency_ms.is_some()));
    let mut head = format!(
        "| {:<w$} | {:<cw$} | {:>7} | {:>6} | {:>9} | {:>11} | {:>10} | {:>10} | {:>10} |",
        "run", "class", "ok", "failed", "req/s", "out tok/s", "TTFT mean", "TPOT mean", "E2E p95"
    );
    let mut rule = format!(
        "|{:-<a$}|{:-<b$}|{:->9}|{:->8}|{:->11}|{:->13}|{:->12}|{:->12}|{:->12}|",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        a = w + 2,
        b = cw + 2
    );
    if batches {
        head.push_str(&format!(" {:>11} |", "batch p50"));
        rule.push_str(&format!("{:->13}|", ""));
    }
    if cost {
        head.push_str(&format!(" {:>9} | {:>9} |", "$/M in", "$/M out"));
        rule.push_str(&format!("{:->11}|{:->11}|", "", ""));
    }
    let _ = writeln!(out, "{head}");
    let _ = writeln!(out, "{rule}");
    let money = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
    for p in &s.points {
        for c in &p.classes {
            let mut line = format!(
                "| {:<w$} | {:<cw$} | {:>7} | {:>6} | {:>9.2} | {:>11.1} | {:>10.2} | {:>10.2} | {:>10.2} |",
                p.label,
                c.name,
                c.successful,
                c.failed,
                c.throughput.requests_per_s,
                c.throughput.output_tokens_per_s,
                c.ttft_ms.mean,
                c.tpot_ms.mean,
                c.e2e_ms.p95
            );
            if batches {
                line.push_str(&format!(
                    " {:>11} |",
                    c.batch_latency_ms
                        .map_or("-".to_owned(), |b| format!("{:.2}", b.p50))
                ));
            }
            if cost {
                let k = c.cost.as_ref();
                line.push_str(&format!(
                    " {:>9} | {:>9} |",
                    money(k.and_then(|k| k.usd_per_million_input_tokens)),
                    money(k.and_then(|k| k.usd_per_million_output_tokens))
                ));
            }
            let _ = writeln!(out, "{line}");
        }
    }
    if !s.resumed.is_empty() {
        let _ = writeln!(
            out,
            "kept from an earlier, interrupted attempt: {}",
            s.resumed.join(", ")
        );
    }
    if let Some(search) = &s.search {
        search_lines(out, search);
    }
    if let Some(g) = &s.grid {
        grid_lines(out, g);
    }
    for p in &s.points {
        if let Some(f) = &p.report_file {
            let _ = writeln!(out, "{}: {f}", p.label);
        }
    }
}

fn search_lines(out: &mut String, s: &crate::SearchSummary) {
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| probe | {:>11} | {:>8} | {:>6} | verdict | decided by | SLO statistics (limit) |",
        s.variable, "ok", "failed"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|---|---|");
    for p in &s.probes {
        let checks: Vec<String> = p
            .checks
            .iter()
            .map(|c| match c.actual_ms {
                Some(a) => format!("{} {:.1} ({:.0}) ms", c.name, a, c.limit_ms),
                None => format!(
                    "{} {} of {} over {:.0} ms",
                    c.name, c.over_limit, c.samples, c.limit_ms
                ),
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {:>11} | {:>8} | {:>6} | {} | {}{} | {} |",
            p.label,
            p.value,
            p.successful,
            p.failed,
            if p.decided_by.starts_with("inconclusive") {
                "unsure"
            } else if p.pass {
                "pass"
            } else {
                "FAIL"
            },
            p.decided_by,
            if p.saturated { ", over-saturated" } else { "" },
            checks.join(", ")
        );
    }
    let bracket = match (s.lo, s.hi) {
        (Some(l), Some(h)) => format!("[{l}, {h})"),
        (Some(l), None) => format!("[{l}, ?)"),
        (None, Some(h)) => format!("(?, {h})"),
        (None, None) => "none".into(),
    };
    let _ = writeln!(
        out,
        "search: {} ({} probes; bracket {bracket}, precision {})",
        match (s.outcome.as_str(), s.answer) {
            ("found", Some(a)) => format!("capacity = {a} ({})", s.variable),
            ("at_least_max", Some(a)) => format!("capacity ≥ {a} ({})", s.variable),
            (o, Some(a)) => format!("{o}: best passing {a}"),
            (o, None) => o.to_owned(),
        },
        s.probes.len(),
        s.precision
    );
    for n in &s.notes {
        let _ = writeln!(out, "  note: {n}");
    }
}

fn grid_lines(out: &mut String, g: &crate::GridSummary) {
    for f in &g.failed {
        let _ = writeln!(out, "engine `{}` did not run: {}", f.engine, f.error);
    }
    if !g.pareto.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Pareto front (no other point has both more output tok/s per GPU and more tok/s per user):"
        );
        for p in &g.pareto {
            let _ = writeln!(
                out,
                "  {}: {:.1} tok/s per GPU, {:.1} tok/s per user",
                p.label, p.output_tokens_per_s_per_gpu, p.output_tokens_per_s_per_user
            );
        }
    }
}

fn secs(ms: f64) -> String {
    format!("{:.4}s", ms / 1e3)
}

fn batch_lines(out: &mut String, b: &ClassSummary) {
    let _ = writeln!(out, "-   **Token usage (batch-wide):**");
    let _ = writeln!(out, "    -   Prompt tokens: total={}", b.input_tokens);
    let _ = writeln!(out, "    -   Completion tokens: total={}", b.output_tokens);
    let _ = writeln!(out, "-   **Token throughput:**");
    let _ = writeln!(
        out,
        "    -   Prompt tokens/sec: {:.2}",
        b.throughput.input_tokens_per_s
    );
    let _ = writeln!(
        out,
        "    -   Completion tokens/sec: {:.2}",
        b.throughput.output_tokens_per_s
    );
    let _ = writeln!(
        out,
        "    -   Total tokens/sec: {:.2}",
        b.throughput.total_tokens_per_s
    );
    if b.failed > 0 {
        let _ = writeln!(out, "-   Failed batch requests: {}", b.failed);
    }
}

fn user_lines(out: &mut String, u: &ClassSummary, base: Option<&ClassSummary>) {
    let _ = writeln!(out, "-   **Successful requests:** {}", u.successful);
    let _ = writeln!(
        out,
        "-   **Throughput:** {:.2} req/s",
        u.throughput.requests_per_s
    );
    if u.failed > 0 {
        let _ = writeln!(out, "-   **Failed requests:** {}", u.failed);
    }
    for (name, s, b) in [
        ("Latency", &u.e2e_ms, base.map(|b| &b.e2e_ms)),
        ("TTFT", &u.ttft_ms, base.map(|b| &b.ttft_ms)),
    ] {
        let _ = writeln!(out);
        match b {
            Some(_) => {
                let _ = writeln!(out, "| {name} Stats | Value | Isolated | Ratio |");
                let _ = writeln!(out, "| :--- | :--- | :--- | :--- |");
            }
            None => {
                let _ = writeln!(out, "| {name} Stats | Value |");
                let _ = writeln!(out, "| :--- | :--- |");
            }
        }
        for (stat, v, bv) in [
            ("Average", s.mean, b.map(|b| b.mean)),
            ("Median (p50)", s.p50, b.map(|b| b.p50)),
            ("p95", s.p95, b.map(|b| b.p95)),
            ("p99", s.p99, b.map(|b| b.p99)),
            ("Min", s.min, b.map(|b| b.min)),
            ("Max", s.max, b.map(|b| b.max)),
        ] {
            match bv {
                Some(bv) => {
                    let r = if bv > 0.0 {
                        format!("{:.2}x", v / bv)
                    } else {
                        "n/a".into()
                    };
                    let _ = writeln!(out, "| {stat} | {} | {} | {r} |", secs(v), secs(bv));
                }
                None => {
                    let _ = writeln!(out, "| {stat} | {} |", secs(v));
                }
            }
        }
    }
}

/// Seed 000's three test conditions.
fn interference(out: &mut String, s: &ExperimentSummary) {
    let batch_only = s.point("batch-only").and_then(|p| p.class("batch"));
    if let Some(b) = batch_only {
        let _ = writeln!(out, "\n### Test Condition 1: Batch-Only Performance\n");
        batch_lines(out, b);
    }
    let isolated: Vec<_> = s
        .points
        .iter()
        .filter(|p| p.label.starts_with("isolated-"))
        .collect();
    if !isolated.is_empty() {
        let _ = writeln!(
            out,
            "\n### Test Condition 2: Isolated Interactive Performance"
        );
        for p in &isolated {
            if let Some(u) = p.class("interactive") {
                let _ = writeln!(
                    out,
                    "\n#### Interactive Test (Concurrency: {}, Duration: {:.2}s)\n",
                    p.parameters
                        .get("users")
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    u.duration_s
                );
                user_lines(out, u, None);
            }
        }
    }
    let mixed: Vec<_> = s
        .points
        .iter()
        .filter(|p| p.label.starts_with("mixed-"))
        .collect();
    if !mixed.is_empty() {
        let _ = writeln!(out, "\n### Test Condition 3: Mixed-Workload Performance");
    }
    for p in &mixed {
        let users = p
            .parameters
            .get("users")
            .map(|v| v.to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\n#### Mixed-Workload Test (Batch + {users} Concurrent Users)\n"
        );
        if let Some(b) = p.class("batch") {
            batch_lines(out, b);
        }
        if let Some(u) = p.class("interactive") {
            let base = s
                .point(&format!("isolated-c{users}"))
                .and_then(|p| p.class("interactive"));
            let _ = writeln!(
                out,
                "\n**Interactive Results (Concurrency: {users}, Duration: {:.2}s)**",
                u.duration_s
            );
            user_lines(out, u, base);
        }
    }
    if s.comparisons.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n### Interference at a glance (with the batch ÷ without it)\n"
    );
    let _ = writeln!(
        out,
        "| {:<12} | {:<12} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} |",
        "run", "class", "req/s", "E2E mean", "E2E p95", "TTFT mean", "TTFT p95", "tok/s"
    );
    let _ = writeln!(
        out,
        "|{:-<14}|{:-<14}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|",
        "", "", "", "", "", "", "", ""
    );
    for c in &s.comparisons {
        let r = |m: &str| {
            c.row(m)
                .and_then(|r| r.ratio)
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_else(|| "".into())
        };
        let _ = writeln!(
            out,
            "| {:<12} | {:<12} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} |",
            c.label,
            c.class,
            r("requests_per_s"),
            r("e2e_ms.mean"),
            r("e2e_ms.p95"),
            r("ttft_ms.mean"),
            r("ttft_ms.p95"),
            r("total_tokens_per_s")
        );
    }
}
