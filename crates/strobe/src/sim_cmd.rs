//! `strobe sim plan`: capacity planning on the simulated engine's virtual clock (crate
//! strobe-sim): for each model × GPU, the most users whose steady state meets the SLOs.

use anyhow::{bail, Context};
use serde::Serialize;
use strobe_metrics::slo::{SloMetric, SloStat};
use strobe_metrics::SloTarget;
use strobe_sim::{quantile, EngineConfig, Summary};

use crate::cli::SimPlanArgs;
use crate::exit;

/// One cell of the grid.
#[derive(Serialize)]
struct Cell {
    model: String,
    gpu: String,
    tp: u32,
    /// The most users that meet every SLO (0: not even one); `None` when the model does not fit.
    users: Option<u32>,
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
    if a.output_len == 0 {
        bail!("--output-len must be at least 1");
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
            let kv_tokens = config
                .kv_blocks()
                .map(|b| b * u64::from(config.block_size))
                .ok();
            let meets = |s: &Summary| slos.iter().all(|t| value_ms(t, s) <= t.limit_ms);
            let cap = strobe_sim::max_users(&config, a.input_len, a.output_len, a.max_users, meets)
                .map_err(|e| anyhow::anyhow!("{spec}: {e}"))?;
            let limited_by = cap.above.as_ref().map(|(n, s)| {
                let missed: Vec<String> = slos
                    .iter()
                    .filter(|t| value_ms(t, s) > t.limit_ms)
                    .map(|t| format!("{} {:.1} ms > {} ms", t.name(), value_ms(t, s), t.limit_ms))
                    .collect();
                format!("{} at {n} users", missed.join(", "))
            });
            cells.push(Cell {
                model: config.model.name.to_owned(),
                gpu: config.gpu.name.to_owned(),
                tp: config.tp,
                users: Some(cap.users),
                at_least: cap.above.is_none(),
                kv_cache_tokens: kv_tokens,
                requests_per_s: cap.at.as_ref().map(|s| s.requests_per_s),
                output_tokens_per_s: cap.at.as_ref().map(|s| s.output_tokens_per_s),
                at: cap
                    .at
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
    println!(
        "strobe sim plan: {} prompt + {} output tokens per request, users in a closed loop (steady state, first wave left out), SLO {}",
        a.input_len,
        a.output_len,
        slo_text.join(", ")
    );
    println!("simulated with the engine model's default (unfitted) overheads: a model, not a measurement (docs/sim.md)\n");
    let mut header = vec![
        "model".to_owned(),
        "GPUs".to_owned(),
        "users".to_owned(),
        "req/s".to_owned(),
        "output tok/s".to_owned(),
    ];
    header.extend(slos.iter().map(|t| format!("{} ms", t.name())));
    header.push("limited by".to_owned());
    let mut rows = vec![header];
    for c in &cells {
        let mut row = vec![c.model.clone(), format!("{} × {}", c.tp, c.gpu)];
        match c.users {
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
                    (_, true) => format!("--max-users {}", a.max_users),
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
            "schema": "strobe.sim_plan.v1",
            "input_len": a.input_len,
            "output_len": a.output_len,
            "slo": slo_text,
            "max_users": a.max_users,
            "cells": cells,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("-o {}: cannot write it", path.display()))?;
        eprintln!("written: {}", path.display());
    }
    Ok(exit::OK)
}
