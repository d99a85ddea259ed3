//! The console exporter: vLLM's "Serving Benchmark Result" block, then a latency table with
//! mean/median/p95/p99/min/max, errors and warnings.

use std::fmt::Write;
use strobe_metrics::Summary;

use crate::Report;

const WIDTH: usize = 50;

fn title(out: &mut String, text: &str, fill: char) {
    let pad = WIDTH.saturating_sub(text.len());
    let left = pad / 2;
    let fill_l: String = std::iter::repeat_n(fill, left).collect();
    let fill_r: String = std::iter::repeat_n(fill, pad - left).collect();
    let _ = writeln!(out, "{fill_l}{text}{fill_r}");
}

fn row(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{label:<41}{value:<10}");
}

pub fn render(report: &Report) -> String {
    let r = &report.results;
    let mut out = String::new();
    let heading = if report.run.interrupted {
        " Serving Benchmark Result (partial) "
    } else {
        " Serving Benchmark Result "
    };
    title(&mut out, heading, '=');
    row(&mut out, "Successful requests:", r.requests.successful);
    row(&mut out, "Failed requests:", r.requests.failed);
    if r.requests.cancelled > 0 {
        row(&mut out, "Cancelled requests:", r.requests.cancelled);
    }
    match r.concurrency.requested {
        Some(c) if report.run.load.mode == "concurrency" => {
            row(&mut out, "Maximum request concurrency:", c)
        }
        Some(c) => row(&mut out, "Maximum request concurrency (cap):", c),
        None => {}
    }
    row(
        &mut out,
        "Achieved concurrency (mean in flight):",
        format!("{:.2}", r.concurrency.achieved_mean),
    );
    if let Some(rate) = report.run.load.rate_per_s {
        row(
            &mut out,
            "Request rate configured (req/s):",
            format!("{rate:.2}"),
        );
    }
    row(
        &mut out,
        "Benchmark duration (s):",
        format!("{:.2}", r.duration_s),
    );
    row(&mut out, "Total input tokens:", r.tokens.input);
    row(&mut out, "Total generated tokens:", r.tokens.output);
    row(
        &mut out,
        "Request throughput (req/s):",
        format!("{:.2}", r.throughput.requests_per_s),
    );
    row(
        &mut out,
        "Output token throughput (tok/s):",
        format!("{:.2}", r.throughput.output_tokens_per_s),
    );
    row(
        &mut out,
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
        block(&mut out, "Time to First Token", "TTFT", &l.ttft_ms);
        block(
            &mut out,
            "Time per Output Token (excl. 1st token)",
            "TPOT",
            &l.tpot_ms,
        );
        block(&mut out, "Inter-token Latency", "ITL", &l.itl_ms);
    }
    block(&mut out, "End-to-end Latency", "E2EL", &l.e2e_ms);
    title(&mut out, "", '=');

    let _ = writeln!(out);
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
    let w = &report.run.workload;
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
    if let Some(c) = &r.input_length_check {
        let _ = writeln!(
            out,
            "Server-counted input vs intended: {} of {} exact; difference mean {:+.2}, min {:+}, max {:+} tokens",
            c.exact, c.compared, c.mean_diff, c.min_diff, c.max_diff
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
    if !r.requests.errors.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Errors:");
        for e in &r.requests.errors {
            let _ = writeln!(out, "  {:<16} {:>8}  e.g. {}", e.kind, e.count, e.example);
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
