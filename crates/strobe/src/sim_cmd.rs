//! `strobe sim plan`: capacity planning on the simulated engine's virtual clock (crate
//! strobe-sim): for each model × GPU, the most users whose steady state meets the SLOs.

use anyhow::{bail, Context};
use serde::Serialize;
use strobe_metrics::slo::{SloMetric, SloStat};
use strobe_metrics::SloTarget;
use strobe_report::WorkloadInfo;
use strobe_sim::{quantile, EngineConfig, Summary};

use crate::cli::{PlanBy, SimPlanArgs};
use crate::exit;

/// One cell of the grid.
#[derive(Serialize)]
struct Cell {
    model: String,
    gpu: String,
    tp: u32,
    /// The most users that meet every SLO (0: not even one), with `--by users`.
    users: Option<u32>,
    /// The highest request rate sent that meets every SLO (0: none), with `--by rate`.
    rate: Option<f64>,
    /// False when the model does not fit on the GPUs.
    fits: bool,
    /// `true` when --max-users itself meets them (the capacity is at least that).
    at_least: bool,
    kv_cache_tokens: Option<u64>,
    requests_per_s: Option<f64>,
    output_tokens_per_s: Option<f64>,
    /// Each SLO's value at `users`, in ms.
    at: Vec<(String, f64)>,
    /// What the next load up missed: `ttft_p99 212.4 ms > 200 ms at 213 users`.
    limited_by: Option<String>,
    note: Option<String>,
}

fn value_ms(t: &SloTarget, s: &Summary) -> f64 {
    let v = match t.metric {
        SloMetric::Ttft => &s.ttft_s,
        SloMetric::Tpot => &s.tpot_s,
        _ => &s.e2e_s,
    };
    let x = match t.stat {
        Some(SloStat::Mean) => v.iter().sum::<f64>() / v.len().max(1) as f64,
        Some(SloStat::P50) => quantile(v, 0.5),
        Some(SloStat::P90) => quantile(v, 0.9),
        Some(SloStat::P95) => quantile(v, 0.95),
        Some(SloStat::P99) => quantile(v, 0.99),
        Some(SloStat::P99_9) => quantile(v, 0.999),
        Some(SloStat::Max) | None => quantile(v, 1.0),
    };
    x * 1e3
}

fn targets(spec: &str) -> anyhow::Result<Vec<SloTarget>> {
    let targets = strobe_metrics::slo::parse(spec).with_context(|| format!("--slo {spec}"))?;
    for t in &targets {
        if !matches!(t.metric, SloMetric::Ttft | SloMetric::Tpot | SloMetric::E2e) {
            bail!(
                "--slo {}: the planner simulates ttft, tpot and e2e; leave out `{}`",
                spec,
                t.name()
            );
        }
        if t.stat.is_none() {
            bail!(
                "--slo {spec}: `{}` is a per-request limit; the planner takes a statistic of the distribution, e.g. {}_p99={}ms",
                t.name(),
                t.name(),
                t.limit_ms
            );
        }
    }
    if targets.is_empty() {
        bail!("--slo: give at least one target, e.g. ttft_p99=200ms");
    }
    Ok(targets)
}

pub fn plan(a: SimPlanArgs) -> anyhow::Result<i32> {
    let slos = targets(&a.slo)?;
    let draft = crate::settings::sim_plan_draft(&a.workload, a.seed, a.samples)?;
    let (class, ws) = draft.resolve(0).map_err(crate::settings::draft_error)?;
    // The requests, per prefix-cache block size (what the prompts' blocks hold depends on it).
    let mut drawn: std::collections::HashMap<Option<u32>, (strobe_sim::Requests, WorkloadInfo)> =
        std::collections::HashMap::new();
    let mut draw = |blocks: Option<u32>| -> anyhow::Result<(strobe_sim::Requests, WorkloadInfo)> {
        if let Some(d) = drawn.get(&blocks) {
            return Ok(d.clone());
        }
        let sim = strobe_experiment::simulated::simulated(&class, &ws, blocks)
            .map_err(|e| anyhow::anyhow!(e))?;
        if drawn.is_empty() {
            for w in &sim.warnings {
                eprintln!("warning: {w}");
            }
        }
        // One shape for all (fixed lengths): said as such.
        let lengths = match sim.load.lengths {
            strobe_sim::Lengths::Each(v) if v.windows(2).all(|w| w[0] == w[1]) && !v.is_empty() => {
                strobe_sim::Lengths::Fixed {
                    prompt: v[0].0,
                    output: v[0].1,
                }
            }
            l => l,
        };
        let requests = strobe_sim::Requests {
            lengths,
            prefixes: sim.load.prefixes,
        };
        if let strobe_sim::Lengths::Each(v) = &requests.lengths {
            if v.iter().any(|(_, o)| *o == 0) {
                bail!("--output-len: every request needs at least 1 output token");
            }
        }
        drawn.insert(blocks, (requests.clone(), sim.workload.clone()));
        Ok((requests, sim.workload))
    };
    let (requests, workload) = draw(None)?;
    if !(a.max_rate.is_finite() && a.max_rate > 0.0) {
        bail!(
            "--max-rate must be a positive number of requests per second, got {}",
            a.max_rate
        );
    }
    let mut cells = Vec::new();
    for model in &a.model {
        for gpu in &a.gpu {
            let spec = format!("{model}@{gpu}");
            let mut config = match EngineConfig::from_spec(&spec) {
                Ok(c) => c,
                Err(e) if e.contains("does not fit") => {
                    let (g, tp) = gpu
                        .rsplit_once('x')
                        .map_or((gpu.as_str(), 1), |(g, n)| (g, n.parse().unwrap_or(1)));
                    cells.push(Cell {
                        model: model.clone(),
                        gpu: g.to_owned(),
                        tp,
                        users: None,
                        rate: None,
                        fits: false,
                        at_least: false,
                        kv_cache_tokens: None,
                        requests_per_s: None,
                        output_tokens_per_s: None,
                        at: vec![],
                        limited_by: None,
                        note: Some(e.split_once(": ").map_or(e.clone(), |(_, r)| r.to_owned())),
                    });
                    continue;
                }
                Err(e) => bail!("--model/--gpu {e}"),
            };
            if let Some(n) = a.max_num_seqs {
                config.max_num_seqs = n;
            }
            if let Some(n) = a.max_num_batched_tokens {
                config.max_num_batched_tokens = n;
            }
            if let Some(name) = &a.overheads {
                config.overheads = crate::settings::overheads(name, "--overheads")?;
            }
            if a.no_chunked_prefill {
                config.enable_chunked_prefill = false;
            }
            config.validate().map_err(|e| {
                anyhow::anyhow!("{spec}: {e} (check --max-num-seqs and --max-num-batched-tokens)")
            })?;
            let kv_tokens = config
                .kv_blocks()
                .map(|b| b * u64::from(config.block_size))
                .ok();
            let (requests, _) = draw(config.enable_prefix_caching.then_some(config.block_size))?;
            let meets = |s: &Summary| slos.iter().all(|t| value_ms(t, s) <= t.limit_ms);
            // (users or requests/s found, its steady state, the first load up that missed)
            let (found, at, above) = if a.by == PlanBy::Rate {
                let cap = strobe_sim::max_rate(&config, &requests, a.max_rate, meets)
                    .map_err(|e| anyhow::anyhow!("{spec}: {e}"))?;
                (
                    cap.rate,
                    cap.at,
                    cap.above.map(|(r, s)| (format!("{r:.2} req/s"), s)),
                )
            } else {
                let cap = strobe_sim::max_users(&config, &requests, a.max_users, meets)
                    .map_err(|e| anyhow::anyhow!("{spec}: {e}"))?;
                (
                    f64::from(cap.users),
                    cap.at,
                    cap.above.map(|(n, s)| (format!("{n} users"), s)),
                )
            };
            let limited_by = above.as_ref().map(|(n, s)| {
                let missed: Vec<String> = slos
                    .iter()
                    .filter(|t| value_ms(t, s) > t.limit_ms)
                    .map(|t| format!("{} {:.1} ms > {} ms", t.name(), value_ms(t, s), t.limit_ms))
                    .collect();
                format!("{} at {n}", missed.join(", "))
            });
            cells.push(Cell {
                model: config.model.name.to_owned(),
                gpu: config.gpu.name.to_owned(),
                tp: config.tp,
                users: (a.by == PlanBy::Users).then_some(found as u32),
                rate: (a.by == PlanBy::Rate).then_some(found),
                fits: true,
                at_least: above.is_none(),
                kv_cache_tokens: kv_tokens,
                requests_per_s: at.as_ref().map(|s| s.requests_per_s),
                output_tokens_per_s: at.as_ref().map(|s| s.output_tokens_per_s),
                at: at
                    .as_ref()
                    .map(|s| slos.iter().map(|t| (t.name(), value_ms(t, s))).collect())
                    .unwrap_or_default(),
                limited_by,
                note: None,
            });
        }
    }
    let slo_text: Vec<String> = slos
        .iter()
        .map(|t| format!("{}={}ms", t.name(), t.limit_ms))
        .collect();
    let (prompt_mean, output_mean) = requests.means();
    let lengths = match &requests.lengths {
        strobe_sim::Lengths::Fixed { prompt, output } => {
            format!("{prompt} prompt + {output} output tokens per request (tokenizer {})", workload.tokenizer)
        }
        strobe_sim::Lengths::Each(v) => format!(
            "{} requests of {} (prompt tokens {}, output {}; means {prompt_mean:.0} and {output_mean:.0}; tokenizer {})",
            v.len(),
            workload.description,
            workload.input_len,
            workload.output_len,
            workload.tokenizer
        ),
    };
    println!(
        "strobe sim plan: {lengths}, {}, SLO {}",
        match a.by {
            PlanBy::Users => "users in a closed loop without think time (steady state, first wave left out)",
            PlanBy::Rate => "Poisson arrivals at the highest rate found to 2% (steady state, first 10% left out)",
        },
        slo_text.join(", ")
    );
    println!(
        "simulated with the overheads {}: a model, not a measurement (docs/sim.md)\n",
        a.overheads
            .as_deref()
            .unwrap_or("vllm (a published fit of vLLM on H100s; not fitted to your engine)")
    );
    let mut header = vec![
        "model".to_owned(),
        "GPUs".to_owned(),
        match a.by {
            PlanBy::Users => "users".to_owned(),
            PlanBy::Rate => "max rate".to_owned(),
        },
        "req/s".to_owned(),
        "output tok/s".to_owned(),
    ];
    header.extend(slos.iter().map(|t| format!("{} ms", t.name())));
    header.push("limited by".to_owned());
    let mut rows = vec![header];
    for c in &cells {
        let mut row = vec![c.model.clone(), format!("{} × {}", c.tp, c.gpu)];
        let found = match (c.users, c.rate) {
            (Some(u), _) => Some(u.to_string()),
            (_, Some(r)) => Some(format!("{r:.2}")),
            _ => None,
        };
        match found.filter(|_| c.fits) {
            None => {
                row.push("-".into());
                row.push("-".into());
                row.push("-".into());
                row.extend(slos.iter().map(|_| "-".to_owned()));
                row.push(c.note.clone().unwrap_or_default());
            }
            Some(u) => {
                row.push(if c.at_least {
                    format!("≥ {u}")
                } else {
                    u.to_string()
                });
                row.push(c.requests_per_s.map_or("-".into(), |v| format!("{v:.2}")));
                row.push(
                    c.output_tokens_per_s
                        .map_or("-".into(), |v| format!("{v:.0}")),
                );
                if c.at.is_empty() {
                    row.extend(slos.iter().map(|_| "-".to_owned()));
                } else {
                    row.extend(c.at.iter().map(|(_, v)| format!("{v:.1}")));
                }
                row.push(match (&c.limited_by, c.at_least) {
                    (_, true) => match a.by {
                        PlanBy::Users => format!("--max-users {}", a.max_users),
                        PlanBy::Rate => format!("--max-rate {}", a.max_rate),
                    },
                    (Some(l), _) => l.clone(),
                    (None, _) => String::new(),
                });
            }
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (v, w))| {
                if (2..r.len() - 1).contains(&i) {
                    format!("{v:>w$}")
                } else {
                    format!("{v:<w$}")
                }
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    if let Some(path) = &a.output {
        let json = serde_json::json!({
            "schema": "strobe.sim_plan.v2",
            "workload": workload,
            "samples": a.samples,
            "prompt_tokens_mean": prompt_mean,
            "output_tokens_mean": output_mean,
            "slo": slo_text,
            "by": match a.by { PlanBy::Users => "users", PlanBy::Rate => "rate" },
            "max_users": a.max_users,
            "max_rate": a.max_rate,
            "cells": cells,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("-o {}: cannot write it", path.display()))?;
        eprintln!("written: {}", path.display());
    }
    Ok(exit::OK)
}

/// A measured closed loop from a saved strobe report (each class of a run, each point of an
/// experiment).
fn observed(path: &std::path::Path) -> anyhow::Result<Vec<strobe_sim::Observed>> {
    let saved = strobe_report::load::read(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = Vec::new();
    for report in saved.reports() {
        for class in &report.classes {
            let label = format!(
                "{}{}{}",
                path.display(),
                report
                    .run
                    .label
                    .as_ref()
                    .map_or(String::new(), |l| format!(" [{l}]")),
                if report.classes.len() > 1 {
                    format!(" class {}", class.name)
                } else {
                    String::new()
                }
            );
            let (load, r) = (&class.load, &class.results);
            let Some(users) = load.concurrency.filter(|_| load.schedule == "closed") else {
                bail!(
                    "{label}: a {} schedule; a fit takes closed loops (strobe run -c N), whose users the simulation can replay",
                    load.schedule
                );
            };
            if r.requests.successful == 0 {
                bail!("{label}: no successful request to fit to");
            }
            out.push(strobe_sim::Observed {
                label,
                concurrency: users,
                requests: r.requests.successful as u32,
                warmup: load.warmup_requests as u32,
                prompt: r.input_tokens_per_request.mean.round() as u32,
                output: r.output_tokens_per_request.mean.round() as u32,
                ttft_mean: r.latency.ttft_ms.mean / 1e3,
                tpot_mean: r.latency.tpot_ms.mean / 1e3,
                output_tokens_per_s: r.throughput.output_tokens_per_s,
            });
        }
    }
    Ok(out)
}

/// Says how repeated runs were pooled, if they were.
fn pooled_note(runs: usize, loads: usize) -> String {
    if loads < runs {
        format!(" (repeats of one load pooled: the medians of {runs} runs at {loads} loads)")
    } else {
        String::new()
    }
}

fn residual_table(title: &str, rows: &[strobe_sim::Residual]) {
    println!("{title}");
    println!(
        "  {:<44} {:>5}  {:>21}  {:>21}  {:>23}",
        "run", "users", "TTFT ms (sim, err)", "TPOT ms (sim, err)", "output tok/s (sim, err)"
    );
    let cell = |(m, s): (f64, f64), scale: f64| {
        format!(
            "{:.1} ({:.1}, {:+.0}%)",
            m * scale,
            s * scale,
            (s - m) / m * 100.0
        )
    };
    for r in rows {
        let label: String = if r.label.chars().count() > 44 {
            let tail: String = r.label.chars().rev().take(43).collect();
            format!("…{}", tail.chars().rev().collect::<String>())
        } else {
            r.label.clone()
        };
        println!(
            "  {:<44} {:>5}  {:>21}  {:>21}  {:>23}",
            label,
            r.concurrency,
            cell(r.ttft, 1e3),
            cell(r.tpot, 1e3),
            cell(r.output_tokens_per_s, 1.0)
        );
    }
}

pub fn fit(a: crate::cli::SimFitArgs) -> anyhow::Result<i32> {
    let base = EngineConfig::from_arg(&a.sim).map_err(|e| anyhow::anyhow!("--sim {e}"))?;
    let mut points = Vec::new();
    for p in &a.reports {
        points.extend(observed(p)?);
    }
    let runs = points.len();
    let points = strobe_sim::pool(&points);
    let held = strobe_sim::held_terms(&a.hold).map_err(|e| anyhow::anyhow!("--hold: {e}"))?;
    let fit = strobe_sim::fit_holding(&base, &points, held).map_err(|e| anyhow::anyhow!("{e}"))?;
    let c = &fit.config;
    println!(
        "strobe sim fit: {} from {} measured run(s){}, {} simulations",
        c.describe(),
        runs,
        pooled_note(runs, points.len()),
        fit.evaluations
    );
    let mark = |i: usize| if held[i] { " (held)" } else { "" };
    println!(
        "  per step {:.3} ms{}, per sequence in a step {:.3} ms{}, per request at the API {:.3} ms{}, FLOP efficiency {:.3}{}, bandwidth efficiency {:.3}{}",
        c.overheads.per_step * 1e3,
        mark(0),
        c.overheads.per_seq * 1e3,
        mark(1),
        c.overheads.per_request_api * 1e3,
        mark(2),
        c.flops_efficiency,
        mark(3),
        c.bw_efficiency,
        mark(4)
    );
    println!("  rms log error {:.3}\n", fit.rms_log_error);
    residual_table(
        "fitted runs (measured, then simulated and its error):",
        &fit.residuals,
    );
    let mut worst_predicted = None;
    if !a.predict.is_empty() {
        let mut check = Vec::new();
        for p in &a.predict {
            check.extend(observed(p)?);
        }
        let checked = check.len();
        let check = strobe_sim::pool(&check);
        if check.len() < checked {
            println!(
                "\n{checked} runs to predict{}",
                pooled_note(checked, check.len())
            );
        }
        let rows = strobe_sim::fit::residuals(c, &check).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!();
        residual_table(
            "predicted runs, not fitted (measured, then simulated and its error):",
            &rows,
        );
        worst_predicted = rows.iter().map(|r| r.worst()).reduce(f64::max);
        if let Some(w) = worst_predicted {
            println!("  largest prediction error: {:.1}%", w * 100.0);
        }
    }
    if let Some(out) = &a.output {
        let mut header = format!(
            "strobe sim fit: {} fitted to {} run(s){}:\n",
            c.describe(),
            runs,
            pooled_note(runs, points.len())
        );
        for r in &fit.residuals {
            header.push_str(&format!(
                "  {} ({} users): largest error {:.1}%\n",
                r.label,
                r.concurrency,
                r.worst() * 100.0
            ));
        }
        if let Some(w) = worst_predicted {
            header.push_str(&format!(
                "predicting {} other run(s): largest error {:.1}%\n",
                a.predict.len(),
                w * 100.0
            ));
        }
        header.push_str("load it with --sim THIS_FILE.toml");
        std::fs::write(out, c.to_toml(&header))
            .with_context(|| format!("-o {}: cannot write it", out.display()))?;
        eprintln!(
            "written: {} (strobe serve --sim {})",
            out.display(),
            out.display()
        );
    }
    if let (Some(limit), Some(w)) = (a.fail_above, worst_predicted) {
        if w * 100.0 > limit {
            eprintln!(
                "error: the fit predicts a run {:.1}% off, above --fail-above {limit}%",
                w * 100.0
            );
            return Ok(exit::CHECK_FAILED);
        }
    }
    Ok(exit::OK)
}

/// `strobe sim run`: one class on the virtual clock, printed as vLLM's benchmark prints a run.
pub fn run(a: crate::cli::SimRunArgs) -> anyhow::Result<i32> {
    let Some(config) = crate::settings::sim(&a.engine)? else {
        bail!("--sim: name the engine to simulate, e.g. --sim llama-3-8b@h100 (or a model file)");
    };
    let draft = crate::settings::class(&a.load, &a.workload)?;
    let (class, ws) = draft.resolve(0).map_err(crate::settings::draft_error)?;
    let slos = class.slo.clone();
    for t in &slos {
        if !matches!(t.metric, SloMetric::Ttft | SloMetric::Tpot | SloMetric::E2e) {
            bail!(
                "--slo: the simulator times ttft, tpot and e2e; leave out `{}`",
                t.name()
            );
        }
    }
    let sim = strobe_experiment::simulated::simulated(
        &class,
        &ws,
        config.enable_prefix_caching.then_some(config.block_size),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    for w in &sim.warnings {
        eprintln!("warning: {w}");
    }
    let s = strobe_sim::simulate_replicas(&config, &sim.load, a.replicas)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.describe()))?;
    let kv_tokens = config
        .kv_blocks()
        .map(|b| b * u64::from(config.block_size))
        .ok();
    let schedule = match sim.load.arrival {
        strobe_sim::Arrival::Closed { users, .. } => format!("closed loop, {users} users"),
        strobe_sim::Arrival::Poisson { rate } => format!("Poisson arrivals at {rate} req/s"),
        strobe_sim::Arrival::Constant { rate } => format!("constant arrivals at {rate} req/s"),
        strobe_sim::Arrival::Offline => "offline, every request at once".into(),
        strobe_sim::Arrival::Lockstep { size } => format!("lockstep batches of {size}"),
    };
    let replicas = if a.replicas > 1 {
        format!(", {} copies (data parallel)", a.replicas)
    } else {
        String::new()
    };
    println!(
        "strobe sim run: {}{replicas}; {} requests ({} warm-up), {schedule}; tokenizer {}",
        config.describe(),
        sim.load.requests,
        sim.load.warmup,
        sim.workload.tokenizer
    );
    println!(
        "simulated on the virtual clock: a model's figures, not a measurement (docs/sim.md)\n"
    );
    let ms = |v: &[f64], q: Option<f64>| {
        1e3 * match q {
            None => v.iter().sum::<f64>() / v.len().max(1) as f64,
            Some(q) => quantile(v, q),
        }
    };
    let line = |k: &str, v: String| println!("{k:<40} {v}");
    println!("{:=^50}", " Simulated Benchmark Result ");
    line("Successful requests:", s.requests.to_string());
    line("Benchmark duration (s):", format!("{:.2}", s.duration));
    line("Total input tokens:", s.prompt_tokens.to_string());
    line("Total generated tokens:", s.output_tokens.to_string());
    line(
        "Request throughput (req/s):",
        format!("{:.2}", s.requests_per_s),
    );
    line(
        "Input token throughput (tok/s):",
        format!("{:.2}", s.prompt_tokens_per_s),
    );
    line(
        "Output token throughput (tok/s):",
        format!("{:.2}", s.output_tokens_per_s),
    );
    line(
        "Total token throughput (tok/s):",
        format!("{:.2}", s.prompt_tokens_per_s + s.output_tokens_per_s),
    );
    for (title, short, v) in [
        ("Time to First Token", "TTFT", &s.ttft_s),
        ("Time per Output Token (excl. 1st token)", "TPOT", &s.tpot_s),
        ("End-to-end Latency", "E2EL", &s.e2e_s),
    ] {
        println!("{:-^50}", title);
        line(
            &format!("Mean {short} (ms):"),
            format!("{:.2}", ms(v, None)),
        );
        line(
            &format!("Median {short} (ms):"),
            format!("{:.2}", ms(v, Some(0.5))),
        );
        line(
            &format!("P99 {short} (ms):"),
            format!("{:.2}", ms(v, Some(0.99))),
        );
    }
    println!("{:-^50}", "Engine");
    line("Steps:", s.steps.to_string());
    line("Largest batch (sequences):", s.max_running.to_string());
    line("Preemptions:", s.preemptions.to_string());
    if s.prefix_queries > 0 {
        line(
            "Prefix-cache hits (prompt tokens):",
            format!(
                "{} of {} ({:.1}%)",
                s.prefix_hits,
                s.prefix_queries,
                100.0 * s.prefix_hits as f64 / s.prefix_queries as f64
            ),
        );
    }
    if let Some(k) = kv_tokens {
        line("KV-cache tokens (per copy):", k.to_string());
    }
    println!("{}", "=".repeat(50));
    let mut missed = Vec::new();
    let verdicts: Vec<serde_json::Value> = slos
        .iter()
        .filter(|t| t.stat.is_some())
        .map(|t| {
            let v = value_ms(t, &s);
            let ok = v <= t.limit_ms;
            if !ok {
                missed.push(t.name());
            }
            println!(
                "SLO {}: {v:.1} ms {} {} ms",
                t.name(),
                if ok { "≤" } else { ">" },
                t.limit_ms
            );
            serde_json::json!({ "slo": t.name(), "limit_ms": t.limit_ms, "value_ms": v, "met": ok })
        })
        .collect();
    if let Some(path) = &a.output {
        let stats = |v: &[f64]| {
            serde_json::json!({
                "mean": ms(v, None), "p50": ms(v, Some(0.5)), "p90": ms(v, Some(0.9)),
                "p95": ms(v, Some(0.95)), "p99": ms(v, Some(0.99)), "max": ms(v, Some(1.0)),
            })
        };
        let json = serde_json::json!({
            "schema": "strobe.sim_run.v1",
            "engine": config.describe(),
            "config": config,
            "replicas": a.replicas,
            "schedule": schedule,
            "requests": sim.load.requests,
            "warmup_requests": sim.load.warmup,
            "workload": sim.workload,
            "results": {
                "requests": s.requests,
                "duration_s": s.duration,
                "prompt_tokens": s.prompt_tokens,
                "output_tokens": s.output_tokens,
                "requests_per_s": s.requests_per_s,
                "prompt_tokens_per_s": s.prompt_tokens_per_s,
                "output_tokens_per_s": s.output_tokens_per_s,
                "ttft_ms": stats(&s.ttft_s),
                "tpot_ms": stats(&s.tpot_s),
                "e2e_ms": stats(&s.e2e_s),
                "steps": s.steps,
                "largest_batch": s.max_running,
                "preemptions": s.preemptions,
                "prefix_cache_queries": s.prefix_queries,
                "prefix_cache_hits": s.prefix_hits,
                "kv_cache_tokens": kv_tokens,
            },
            "slo": verdicts,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("-o {}: cannot write it", path.display()))?;
        eprintln!("written: {}", path.display());
    }
    if a.fail_on_slo && !missed.is_empty() {
        eprintln!("error: SLO missed: {}", missed.join(", "));
        return Ok(exit::CHECK_FAILED);
    }
    Ok(exit::OK)
}
