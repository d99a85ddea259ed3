//! Fitting the engine to a real one: the overheads and efficiencies that make the simulated
//! closed loop reproduce measured ones.
//!
//! Each measured point is a closed loop (users, requests, mean prompt and output tokens) and what
//! the users saw (mean TTFT, mean TPOT, output tokens/s). The fit runs the same loads on the
//! virtual clock and minimises the squared log-ratios of simulated to measured figures (so that a
//! 10% miss weighs the same on a 20 ms TPOT as on a 2 s TTFT) over five terms: the per-step and
//! per-sequence overheads, the per-request API overhead and the FLOP and bandwidth efficiencies.
//! Per-layer and per-output-token overheads are left at zero: for one model they are
//! indistinguishable from per-step and per-sequence time. Nelder–Mead, in log space, from several
//! starts; deterministic.

use crate::engine::EngineConfig;
use crate::plan::{simulate, Arrival, Lengths, Load, Summary};

/// A measured closed loop.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub label: String,
    pub concurrency: u32,
    /// Measured requests.
    pub requests: u32,
    /// Requests sent first and left out of the figures.
    pub warmup: u32,
    pub prompt: u32,
    pub output: u32,
    /// Seconds.
    pub ttft_mean: f64,
    pub tpot_mean: f64,
    pub output_tokens_per_s: f64,
}

/// One point's measured and simulated figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Residual {
    pub label: String,
    pub concurrency: u32,
    /// (measured, simulated), seconds.
    pub ttft: (f64, f64),
    pub tpot: (f64, f64),
    /// (measured, simulated), tokens/s.
    pub output_tokens_per_s: (f64, f64),
}

impl Residual {
    /// The largest relative error of the three figures.
    pub fn worst(&self) -> f64 {
        [self.ttft, self.tpot, self.output_tokens_per_s]
            .iter()
            .map(|(m, s)| ((s - m) / m).abs())
            .fold(0.0, f64::max)
    }
}

/// What [`fit`] found.
#[derive(Clone, Debug)]
pub struct Fit {
    pub config: EngineConfig,
    pub residuals: Vec<Residual>,
    /// Root mean square of the log-ratios.
    pub rms_log_error: f64,
    pub evaluations: u32,
}

/// Pools repeated runs of one load (the same users, requests, warm-up and mean lengths) into one
/// point whose figures are the medians of the repeats', keeping the first appearance's order.
/// Runs repeated in turn with the other loads (1, 2, 4, 8, 1, 2, 4, 8, …) then see the same slow
/// drift of a shared machine, and the median drops a run from an unlucky minute.
pub fn pool(points: &[Observed]) -> Vec<Observed> {
    let key = |o: &Observed| (o.concurrency, o.requests, o.warmup, o.prompt, o.output);
    let mut groups: Vec<Vec<&Observed>> = Vec::new();
    for o in points {
        match groups.iter_mut().find(|g| key(g[0]) == key(o)) {
            Some(g) => g.push(o),
            None => groups.push(vec![o]),
        }
    }
    groups
        .into_iter()
        .map(|g| {
            if g.len() == 1 {
                return g[0].clone();
            }
            let median = |f: fn(&Observed) -> f64| {
                let mut v: Vec<f64> = g.iter().map(|o| f(o)).collect();
                v.sort_by(f64::total_cmp);
                let n = v.len();
                if n % 2 == 1 {
                    v[n / 2]
                } else {
                    (v[n / 2 - 1] + v[n / 2]) / 2.0
                }
            };
            Observed {
                label: format!("median of {} runs ({}, …)", g.len(), g[0].label),
                ttft_mean: median(|o| o.ttft_mean),
                tpot_mean: median(|o| o.tpot_mean),
                output_tokens_per_s: median(|o| o.output_tokens_per_s),
                ..g[0].clone()
            }
        })
        .collect()
}

/// The simulated figures of `obs`'s load on `config`.
pub fn replay(config: &EngineConfig, obs: &Observed) -> Result<Summary, String> {
    simulate(
        config,
        &Load {
            arrival: Arrival::Closed {
                users: obs.concurrency,
                stagger: 0.0,
            },
            requests: obs.requests.max(1) + obs.warmup,
            lengths: Lengths::Fixed {
                prompt: obs.prompt.max(1),
                output: obs.output.max(1),
            },
            warmup: obs.warmup,
            seed: 0,
            prefixes: std::sync::Arc::from([]),
        },
    )
}

/// Measured against simulated, per point.
pub fn residuals(config: &EngineConfig, points: &[Observed]) -> Result<Vec<Residual>, String> {
    points
        .iter()
        .map(|o| {
            let s = replay(config, o).map_err(|e| format!("{}: {e}", o.label))?;
            Ok(Residual {
                label: o.label.clone(),
                concurrency: o.concurrency,
                ttft: (o.ttft_mean, s.ttft_mean),
                tpot: (o.tpot_mean, s.tpot_mean),
                output_tokens_per_s: (o.output_tokens_per_s, s.output_tokens_per_s),
            })
        })
        .collect()
}

const TERMS: usize = 5;

/// A term [`fit`] sets, named as in model files (`[overheads]` and the efficiencies).
pub const TERM_NAMES: [&str; TERMS] = [
    "per_step",
    "per_seq",
    "per_request_api",
    "flops_efficiency",
    "bw_efficiency",
];

/// Which of the five terms to hold at the base engine's values instead of fitting, parsed from
/// their names (e.g. efficiencies measured by a microbenchmark). At least one must stay free.
pub fn held_terms(names: &[String]) -> Result<[bool; TERMS], String> {
    let mut held = [false; TERMS];
    for n in names {
        let i = TERM_NAMES.iter().position(|t| t == n).ok_or_else(|| {
            format!(
                "{n:?} is not a fitted term; the terms are {}",
                TERM_NAMES.join(", ")
            )
        })?;
        held[i] = true;
    }
    if held.iter().all(|&h| h) {
        return Err("every term is held: nothing is left to fit".into());
    }
    Ok(held)
}

fn apply(base: &EngineConfig, x: &[f64; TERMS], held: [bool; TERMS]) -> EngineConfig {
    let mut c = base.clone();
    let o = &base.overheads;
    let pick = |i: usize, kept: f64, fitted: f64| if held[i] { kept } else { fitted };
    c.overheads.per_step = pick(0, o.per_step, x[0].exp());
    c.overheads.per_seq = pick(1, o.per_seq, x[1].exp());
    c.overheads.per_request_api = pick(2, o.per_request_api, x[2].exp());
    c.flops_efficiency = pick(3, base.flops_efficiency, x[3].exp().min(1.0));
    c.bw_efficiency = pick(4, base.bw_efficiency, x[4].exp().min(1.0));
    c.overheads.per_layer = 0.0;
    c.overheads.per_output_token = 0.0;
    c.overheads.per_request_finish = 0.0;
    c
}

fn loss(base: &EngineConfig, points: &[Observed], x: &[f64; TERMS], held: [bool; TERMS]) -> f64 {
    let c = apply(base, x, held);
    let mut sum = 0.0;
    for o in points {
        let Ok(s) = replay(&c, o) else {
            return f64::INFINITY;
        };
        let mut term = |sim: f64, meas: f64| {
            if meas > 0.0 && sim > 0.0 {
                sum += (sim / meas).ln().powi(2);
            }
        };
        term(s.ttft_mean, o.ttft_mean);
        if o.output > 1 {
            term(s.tpot_mean, o.tpot_mean);
        }
        term(s.output_tokens_per_s, o.output_tokens_per_s);
    }
    // Efficiencies above 1 are not physical: push them back.
    let over: f64 = x[3].max(0.0) + x[4].max(0.0);
    sum + over * over * 10.0
}

/// Nelder–Mead from `start` with initial steps `step`, in as many dimensions as `start` has.
fn nelder_mead(
    f: &mut dyn FnMut(&[f64]) -> f64,
    start: Vec<f64>,
    step: f64,
    iterations: u32,
) -> (Vec<f64>, f64) {
    let n = start.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    let v = f(&start);
    simplex.push((start.clone(), v));
    for i in 0..n {
        let mut p = start.clone();
        p[i] += step;
        let v = f(&p);
        simplex.push((p, v));
    }
    for _ in 0..iterations {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[n].1);
        if (worst - best).abs() < 1e-10 {
            break;
        }
        let mut centroid = vec![0.0; n];
        for (p, _) in &simplex[..n] {
            for i in 0..n {
                centroid[i] += p[i] / n as f64;
            }
        }
        let towards = |t: f64| -> Vec<f64> {
            (0..n)
                .map(|i| centroid[i] + t * (simplex[n].0[i] - centroid[i]))
                .collect()
        };
        let reflected = towards(-1.0);
        let fr = f(&reflected);
        if fr < simplex[0].1 {
            let expanded = towards(-2.0);
            let fe = f(&expanded);
            simplex[n] = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (reflected, fr);
        } else {
            let contracted = towards(if fr < simplex[n].1 { -0.5 } else { 0.5 });
            let fc = f(&contracted);
            if fc < simplex[n].1.min(fr) {
                simplex[n] = (contracted, fc);
            } else {
                let best = simplex[0].0.clone();
                for (p, v) in simplex.iter_mut().skip(1) {
                    for i in 0..n {
                        p[i] = best[i] + 0.5 * (p[i] - best[i]);
                    }
                    *v = f(p);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0)
}

/// Fits `base`'s overheads and efficiencies to `points` (at least two loads, ideally of
/// different concurrency, so that per-sequence cost can be told from per-step cost).
pub fn fit(base: &EngineConfig, points: &[Observed]) -> Result<Fit, String> {
    fit_holding(base, points, [false; TERMS])
}

/// [`fit`], with the terms `held` ([`held_terms`]) kept at `base`'s values: fewer terms from
/// the same runs, so less of their noise is read as the engine's.
pub fn fit_holding(
    base: &EngineConfig,
    points: &[Observed],
    held: [bool; TERMS],
) -> Result<Fit, String> {
    if points.is_empty() {
        return Err("nothing to fit: give at least one measured run".into());
    }
    for o in points {
        if !(o.ttft_mean > 0.0 && o.output_tokens_per_s > 0.0) || o.concurrency == 0 {
            return Err(format!(
                "{}: no usable figures (TTFT {} s, {} output tokens/s, {} users)",
                o.label, o.ttft_mean, o.output_tokens_per_s, o.concurrency
            ));
        }
    }
    // Every load must replay on the base engine before the search starts.
    for o in points {
        replay(base, o).map_err(|e| format!("{}: {e}", o.label))?;
    }
    let o = &base.overheads;
    let first = [
        o.per_step.max(1e-6).ln(),
        o.per_seq.max(1e-7).ln(),
        o.per_request_api.max(1e-6).ln(),
        base.flops_efficiency.ln(),
        base.bw_efficiency.ln(),
    ];
    let free: Vec<usize> = (0..TERMS).filter(|&i| !held[i]).collect();
    let whole = |x: &[f64]| {
        let mut w = first;
        for (k, &i) in free.iter().enumerate() {
            w[i] = x[k];
        }
        w
    };
    let mut evaluations = 0u32;
    let mut f = |x: &[f64]| {
        evaluations += 1;
        loss(base, points, &whole(x), held)
    };
    // Starts spread over orders of magnitude: the step's overhead may be microseconds (a GPU's
    // graphs) or tens of milliseconds (a CPU's Python loop).
    let mut best = (first, f64::INFINITY);
    for shift in [0.0, 3.0, -3.0, 5.0] {
        let mut start = first;
        start[0] += shift;
        start[1] += shift;
        start[2] += shift / 2.0;
        let start: Vec<f64> = free.iter().map(|&i| start[i]).collect();
        let (x, _) = nelder_mead(&mut f, start, 1.0, 400);
        let (x, v) = nelder_mead(&mut f, x, 0.2, 300);
        if v < best.1 {
            best = (whole(&x), v);
        }
    }
    let config = apply(base, &best.0, held);
    let residuals = residuals(&config, points)?;
    let n: usize = points
        .iter()
        .map(|o| if o.output > 1 { 3 } else { 2 })
        .sum();
    Ok(Fit {
        config,
        residuals,
        rms_log_error: (best.1 / n as f64).sqrt(),
        evaluations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(label: &str, users: u32, ttft_ms: f64, tpot_ms: f64, tok_s: f64) -> Observed {
        Observed {
            label: label.into(),
            concurrency: users,
            requests: 10,
            warmup: 1,
            prompt: 256,
            output: 64,
            ttft_mean: ttft_ms / 1e3,
            tpot_mean: tpot_ms / 1e3,
            output_tokens_per_s: tok_s,
        }
    }

    #[test]
    fn repeats_of_one_load_pool_into_their_medians_and_other_loads_stay_apart() {
        let points = [
            obs("a1", 1, 100.0, 30.0, 30.0),
            obs("b1", 2, 150.0, 35.0, 55.0),
            obs("a2", 1, 300.0, 40.0, 20.0),
            obs("b2", 2, 160.0, 36.0, 56.0),
            obs("a3", 1, 110.0, 31.0, 29.0),
            // The same users with another prompt length is another load.
            Observed {
                prompt: 512,
                ..obs("c1", 1, 200.0, 30.0, 25.0)
            },
        ];
        let pooled = pool(&points);
        assert_eq!(pooled.len(), 3);
        let a = &pooled[0];
        assert_eq!((a.concurrency, a.prompt), (1, 256));
        // Medians, each figure on its own: the slow run (300 ms) is dropped, not averaged in.
        assert!((a.ttft_mean - 0.110).abs() < 1e-12, "{a:?}");
        assert!((a.tpot_mean - 0.031).abs() < 1e-12, "{a:?}");
        assert!((a.output_tokens_per_s - 29.0).abs() < 1e-12, "{a:?}");
        assert!(a.label.starts_with("median of 3 runs (a1"), "{}", a.label);
        // Two repeats: their mean.
        let b = &pooled[1];
        assert!((b.ttft_mean - 0.155).abs() < 1e-12, "{b:?}");
        assert!((b.output_tokens_per_s - 55.5).abs() < 1e-12, "{b:?}");
        assert_eq!(pooled[2], points[5]);
    }
}
