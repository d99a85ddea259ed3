//! Comparing runs: per-metric changes of a new run against a base, each with a test that says
//! whether the change is larger than the two runs' own noise.
//!
//! The tests work on the runs' per-request data as the reports keep it (lossless histograms, to
//! the histogram's 0.1% resolution), so no records file is needed:
//! - a percentile (`ttft_p99`): the share of the new run's requests above the base's p99 against
//!   the base's own share above it, a one-sided Fisher exact test (exact at the few requests a
//!   p99 rests on) — under "nothing changed" both are about 1%, whatever the distribution;
//! - a mean (`tpot_mean`): Welch's t-test on the two means;
//! - throughput (`output_tokens_per_s`, `requests_per_s`): Welch's t-test on the per-interval
//!   rates of the two runs' measured windows (one second each, from the report's timeline);
//! - every latency metric also gets a Mann–Whitney U test of the whole distribution (shift in
//!   either direction), reported beside it.
//!
//! A metric *regressed* when it moved the wrong way by more than the threshold and its test's
//! one-sided p-value is below `alpha`. Two runs of the same target differ by noise only, so they
//! are not flagged; a real regression of a few percent on a few hundred requests is.

use serde::Serialize;
use strobe_metrics::{Distribution, MetricSet, Timeline};

use crate::Report;

/// Metrics `compare` knows, by name.
pub const METRICS: [&str; 20] = [
    "ttft_p50",
    "ttft_p90",
    "ttft_p99",
    "ttft_mean",
    "tpot_p50",
    "tpot_p90",
    "tpot_p99",
    "tpot_mean",
    "itl_p50",
    "itl_p99",
    "itl_mean",
    "e2e_p50",
    "e2e_p90",
    "e2e_p99",
    "e2e_mean",
    "queue_delay_p99",
    "output_tokens_per_s",
    "requests_per_s",
    "total_tokens_per_s",
    "error_rate",
];

/// How to judge changes.
#[derive(Clone, Debug)]
pub struct Criteria {
    /// Relative change that counts (0.05: 5%).
    pub threshold: f64,
    /// One-sided significance level.
    pub alpha: f64,
}

impl Default for Criteria {
    fn default() -> Criteria {
        Criteria {
            threshold: 0.05,
            alpha: 0.01,
        }
    }
}

/// One metric of one class, base against new.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub metric: String,
    pub class: String,
    pub base: f64,
    pub new: f64,
    /// `(new − base) / base` (absent when the base is 0).
    pub relative: Option<f64>,
    /// Higher is worse (latency, errors) or better (throughput).
    pub higher_is_worse: bool,
    /// The test used and its one-sided p-value for "worse" (absent when it cannot be computed,
    /// e.g. too few requests).
    pub test: &'static str,
    pub p_worse: Option<f64>,
    /// Mann–Whitney U two-sided p-value of the whole distribution (latency metrics).
    pub p_shift: Option<f64>,
    /// Moved the wrong way beyond the threshold, and significantly.
    pub regressed: bool,
    /// Moved the right way beyond the threshold, and significantly.
    pub improved: bool,
}

/// Standard normal upper tail, P(Z > z) (Abramowitz and Stegun 7.1.26, error < 1.5e-7).
pub fn normal_sf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        erfc / 2.0
    } else {
        1.0 - erfc / 2.0
    }
}

/// Fisher's exact test, one-sided: the p-value of `kn` or more of `nn` against `kb` of `nb`
/// (the hypergeometric tail), exact at the few-requests tails a p99 has.
pub fn fisher_greater(kn: u64, nn: u64, kb: u64, nb: u64) -> f64 {
    let (n_all, k_all, n) = (nn + nb, kn + kb, nn);
    let lo = n.saturating_sub(n_all - k_all);
    let hi = k_all.min(n);
    if hi <= lo {
        return 1.0;
    }
    // Log pmf up to a constant, by the ratio pmf(x+1)/pmf(x).
    let mut logs = Vec::with_capacity((hi - lo + 1) as usize);
    let mut l = 0.0f64;
    logs.push(l);
    let (k, rest, nf) = (k_all as f64, (n_all - k_all) as f64, n as f64);
    for x in lo..hi {
        let x = x as f64;
        l += ((k - x) * (nf - x)).ln() - ((x + 1.0) * (rest - nf + x + 1.0)).ln();
        logs.push(l);
    }
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = logs.iter().map(|v| (v - top).exp()).collect();
    let total: f64 = w.iter().sum();
    let from = (kn.saturating_sub(lo) as usize).min(w.len());
    (w[from..].iter().sum::<f64>() / total).min(1.0)
}

/// One-sided p-value that `new`'s share above `limit` exceeds `base`'s.
fn proportion_test(base: &Distribution, new: &Distribution, limit: u64) -> Option<f64> {
    let (nb, nn) = (base.count(), new.count());
    if nb < 20 || nn < 20 {
        return None;
    }
    Some(fisher_greater(
        new.count_above(limit),
        nn,
        base.count_above(limit),
        nb,
    ))
}

/// One-sided p-value that the mean of `new` exceeds the mean of `base` (Welch, normal tail:
/// both samples are large here, or the test is skipped).
fn welch(base: (f64, f64, f64), new: (f64, f64, f64)) -> Option<f64> {
    let ((mb, sb, nb), (mn, sn, nn)) = (base, new);
    if nb < 5.0 || nn < 5.0 {
        return None;
    }
    let se = (sb * sb / nb + sn * sn / nn).sqrt();
    if se == 0.0 {
        return Some(if mn > mb {
            0.0
        } else if mn < mb {
            1.0
        } else {
            0.5
        });
    }
    Some(normal_sf((mn - mb) / se))
}

/// Mann–Whitney U two-sided p-value of two histograms (normal approximation with the tie
/// correction; buckets are ties).
pub fn mann_whitney(a: &[(u64, u64)], b: &[(u64, u64)]) -> Option<f64> {
    let (na, nb) = (
        a.iter().map(|x| x.1).sum::<u64>() as f64,
        b.iter().map(|x| x.1).sum::<u64>() as f64,
    );
    if na < 8.0 || nb < 8.0 {
        return None;
    }
    let (mut i, mut j) = (0, 0);
    let (mut rank, mut ra, mut ties) = (0.0f64, 0.0f64, 0.0f64);
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.0.min(y.0),
            (Some(x), None) => x.0,
            (None, Some(y)) => y.0,
            _ => break,
        };
        let ca = if a.get(i).is_some_and(|x| x.0 == v) {
            i += 1;
            a[i - 1].1 as f64
        } else {
            0.0
        };
        let cb = if b.get(j).is_some_and(|y| y.0 == v) {
            j += 1;
            b[j - 1].1 as f64
        } else {
            0.0
        };
        let t = ca + cb;
        let mid = rank + (t + 1.0) / 2.0;
        ra += ca * mid;
        ties += t * t * t - t;
        rank += t;
    }
    let n = na + nb;
    let u = ra - na * (na + 1.0) / 2.0;
    let mean = na * nb / 2.0;
    let var = na * nb / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if var <= 0.0 {
        return Some(1.0);
    }
    let z = (u - mean).abs() / var.sqrt();
    Some((2.0 * normal_sf(z)).min(1.0))
}

fn dist<'a>(m: &'a MetricSet, name: &str) -> Option<&'a Distribution> {
    Some(match name {
        "ttft" => &m.ttft_ns,
        "tpot" => &m.tpot_ns,
        "itl" => &m.itl_ns,
        "e2e" => &m.e2e_ns,
        "queue_delay" => &m.queue_delay_ns,
        _ => return None,
    })
}

/// Per-interval rates inside the measured window (intervals wholly inside it).
fn interval_rates(m: &MetricSet, what: &str) -> Vec<f64> {
    let t: &Timeline = &m.timeline;
    let (Some(w), true) = (m.window, t.bucket_ns > 0) else {
        return vec![];
    };
    let v = match what {
        "output_tokens_per_s" => t.output_tokens_per_s(),
        "requests_per_s" => t.requests_per_s(),
        _ => {
            let a = t.output_tokens_per_s();
            // Input tokens are not in the timeline: scale output by the run's ratio.
            let ratio = if m.output_tokens_total > 0 {
                (m.input_tokens_total + m.output_tokens_total) as f64 / m.output_tokens_total as f64
            } else {
                0.0
            };
            a.into_iter().map(|x| x * ratio).collect()
        }
    };
    let b = t.bucket_ns;
    v.into_iter()
        .enumerate()
        .filter(|(i, _)| {
            let (s, e) = (*i as u64 * b, (*i as u64 + 1) * b);
            s >= w.start_ns && e <= w.end_ns
        })
        .map(|(_, x)| x)
        .collect()
}

fn mean_std(v: &[f64]) -> (f64, f64, f64) {
    let n = v.len() as f64;
    if n == 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, var.sqrt(), n)
}

/// One metric of two sets.
pub fn change(
    metric: &str,
    class: &str,
    base: &MetricSet,
    new: &MetricSet,
    c: &Criteria,
) -> Option<Change> {
    let (b, n, higher_is_worse, test, p_worse, p_shift) = if let Some((name, stat)) = metric
        .rsplit_once('_')
        .filter(|(n, _)| dist(base, n).is_some())
    {
        let (db, dn) = (dist(base, name)?, dist(new, name)?);
        if db.count() == 0 || dn.count() == 0 {
            return None;
        }
        let shift = mann_whitney(&db.buckets(), &dn.buckets());
        if stat == "mean" {
            let p = welch(
                (db.mean(), db.std(), db.count() as f64),
                (dn.mean(), dn.std(), dn.count() as f64),
            );
            (
                db.mean() / 1e6,
                dn.mean() / 1e6,
                true,
                "Welch t (mean)",
                p,
                shift,
            )
        } else {
            let q = match stat {
                "p50" => 0.5,
                "p90" => 0.9,
                "p95" => 0.95,
                "p99" => 0.99,
                _ => return None,
            };
            let limit = db.quantile(q);
            let p = proportion_test(db, dn, limit);
            (
                limit as f64 / 1e6,
                dn.quantile(q) as f64 / 1e6,
                true,
                "share above the base's percentile (Fisher exact)",
                p,
                shift,
            )
        }
    } else if metric == "error_rate" {
        let rate = |m: &MetricSet| m.failed_total() as f64 / m.measured().max(1) as f64;
        let (nb, nn) = (base.measured() as f64, new.measured() as f64);
        let (pb, pn) = (rate(base), rate(new));
        let pooled = (base.failed_total() + new.failed_total()) as f64 / (nb + nn).max(1.0);
        let se = (pooled * (1.0 - pooled) * (1.0 / nb.max(1.0) + 1.0 / nn.max(1.0))).sqrt();
        let p = if se > 0.0 {
            Some(normal_sf((pn - pb) / se))
        } else {
            Some(if pn > pb { 0.0 } else { 1.0 })
        };
        (pb, pn, true, "two-proportion z", p, None)
    } else {
        let (rb, rn) = (interval_rates(base, metric), interval_rates(new, metric));
        let total = |m: &MetricSet| match metric {
            "output_tokens_per_s" => m.per_second(m.output_tokens_total),
            "requests_per_s" => m.per_second(m.successful),
            "total_tokens_per_s" => m.per_second(m.output_tokens_total + m.input_tokens_total),
            _ => f64::NAN,
        };
        let (vb, vn) = (total(base), total(new));
        if !vb.is_finite() {
            return None;
        }
        // Lower is worse: test new < base as base > new.
        let p = welch(mean_std(&rn), mean_std(&rb));
        (vb, vn, false, "Welch t on per-second rates", p, None)
    };
    let relative = (b != 0.0).then(|| (n - b) / b);
    let worse_by = relative.map(|r| if higher_is_worse { r } else { -r });
    let sig = |p: Option<f64>| p.is_some_and(|p| p < c.alpha);
    let improved_p = p_worse.map(|p| 1.0 - p);
    Some(Change {
        metric: metric.to_owned(),
        class: class.to_owned(),
        base: b,
        new: n,
        relative,
        higher_is_worse,
        test,
        p_worse,
        p_shift,
        regressed: worse_by.is_some_and(|w| w > c.threshold) && sig(p_worse),
        improved: worse_by.is_some_and(|w| w < -c.threshold) && sig(improved_p),
    })
}

/// Every known metric of every class the two runs share (by name), and of the whole run when
/// they have several classes.
pub fn compare(base: &Report, new: &Report, c: &Criteria) -> Vec<Change> {
    let mut out = vec![];
    for bc in &base.classes {
        let Some(nc) = new.class(&bc.name) else {
            continue;
        };
        for m in METRICS {
            out.extend(change(m, &bc.name, &bc.state, &nc.state, c));
        }
    }
    out
}

/// The comparison as a table for the terminal (or Markdown with `markdown`).
pub fn render(changes: &[Change], base: &str, new: &str, c: &Criteria, markdown: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}{new} against {base}: a change counts beyond {:.1}% when its one-sided p < {}",
        if markdown { "### " } else { "" },
        c.threshold * 100.0,
        c.alpha
    );
    if markdown {
        out.push_str("\n| class | metric | base | new | change | p (worse) | p (shift) | verdict |\n|---|---|---:|---:|---:|---:|---:|---|\n");
    } else {
        let _ = writeln!(
            out,
            "{:<12} {:<20} {:>12} {:>12} {:>9} {:>10} {:>10}  verdict",
            "class", "metric", "base", "new", "change", "p(worse)", "p(shift)"
        );
    }
    let p = |v: Option<f64>| match v {
        Some(p) if p < 1e-4 => "<0.0001".to_owned(),
        Some(p) => format!("{p:.4}"),
        None => "–".to_owned(),
    };
    for ch in changes {
        let verdict = if ch.regressed {
            "REGRESSED"
        } else if ch.improved {
            "improved"
        } else {
            "same"
        };
        let rel = ch
            .relative
            .map_or("–".to_owned(), |r| format!("{:+.1}%", r * 100.0));
        let v = |x: f64| crate::table::Cell::Num(x).short();
        if markdown {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                ch.class,
                ch.metric,
                v(ch.base),
                v(ch.new),
                rel,
                p(ch.p_worse),
                p(ch.p_shift),
                verdict
            );
        } else {
            let _ = writeln!(
                out,
                "{:<12} {:<20} {:>12} {:>12} {:>9} {:>10} {:>10}  {verdict}",
                ch.class,
                ch.metric,
                v(ch.base),
                v(ch.new),
                rel,
                p(ch.p_worse),
                p(ch.p_shift)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values_ms: impl IntoIterator<Item = f64>) -> MetricSet {
        let mut m = MetricSet::default();
        for v in values_ms {
            m.ttft_ns.record((v * 1e6) as u64);
        }
        m
    }

    /// A deterministic pseudo-random stream (SplitMix64) in [0, 1).
    fn uniform(seed: u64) -> impl Iterator<Item = f64> {
        let mut x = seed;
        std::iter::repeat_with(move || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        })
    }

    /// Log-normal-ish latencies around `median` ms.
    fn latencies(seed: u64, n: usize, median: f64) -> Vec<f64> {
        let u: Vec<f64> = uniform(seed).take(2 * n).collect();
        u.chunks(2)
            .map(|p| {
                let z = (-2.0 * p[0].max(1e-12).ln()).sqrt()
                    * (2.0 * std::f64::consts::PI * p[1]).cos();
                median * (0.3 * z).exp()
            })
            .collect()
    }

    #[test]
    fn the_normal_tail_is_right() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_sf(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_sf(-1.644_854) - 0.95).abs() < 1e-6);
    }

    #[test]
    fn two_samples_of_one_distribution_are_not_flagged() {
        let c = Criteria::default();
        let mut flagged = 0;
        for seed in 0..40 {
            let a = set(latencies(seed, 500, 100.0));
            let b = set(latencies(seed + 1000, 500, 100.0));
            for m in ["ttft_p50", "ttft_p99", "ttft_mean"] {
                let ch = change(m, "x", &a, &b, &c).unwrap();
                if ch.regressed {
                    eprintln!("{seed} {ch:?}");
                }
                flagged += ch.regressed as u32;
            }
        }
        // 120 tests at alpha 1% and a 5% threshold: none expected.
        assert!(flagged <= 1, "{flagged} false alarms");
    }

    #[test]
    fn a_twenty_percent_slower_ttft_is_flagged_at_every_statistic() {
        let c = Criteria::default();
        let a = set(latencies(1, 500, 100.0));
        let b = set(latencies(2, 500, 100.0).into_iter().map(|v| v * 1.2));
        for m in ["ttft_p50", "ttft_p90", "ttft_mean"] {
            let ch = change(m, "x", &a, &b, &c).unwrap();
            assert!(ch.regressed, "{ch:?}");
            assert!((ch.relative.unwrap() - 0.2).abs() < 0.08, "{ch:?}");
        }
        let shift = change("ttft_p50", "x", &a, &b, &c)
            .unwrap()
            .p_shift
            .unwrap();
        assert!(shift < 1e-6, "{shift}");
        // And the other way round is an improvement, not a regression.
        let back = change("ttft_p50", "x", &b, &a, &c).unwrap();
        assert!(back.improved && !back.regressed, "{back:?}");
    }

    #[test]
    fn fishers_test_matches_a_hand_count() {
        // 3 of 3 against 0 of 3: the most extreme table, p = 1 / C(6, 3) = 0.05.
        assert!((fisher_greater(3, 3, 0, 3) - 0.05).abs() < 1e-12);
        // Equal shares: the tail holds half or more.
        assert!(fisher_greater(5, 500, 5, 500) > 0.5);
    }

    #[test]
    fn mann_whitney_matches_a_hand_count() {
        // a = {1, 2}, b = {3, 4}: U = 0, the most extreme for 2 and 2, but too few to test.
        assert_eq!(mann_whitney(&[(1, 1), (2, 1)], &[(3, 1), (4, 1)]), None);
        // Identical samples: no shift at all.
        let a: Vec<(u64, u64)> = (1..=20).map(|v| (v, 1)).collect();
        assert!((mann_whitney(&a, &a).unwrap() - 1.0).abs() < 1e-9);
    }
}
