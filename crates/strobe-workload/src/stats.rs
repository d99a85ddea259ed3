//! Length statistics of a data set and the distributions fitted to them, for
//! `strobe dataset stats` and for profiles.

use serde::Serialize;

/// Statistics of one list of token lengths.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LengthStats {
    pub count: u64,
    pub mean: f64,
    pub std: f64,
    pub min: u32,
    pub p50: u32,
    pub p90: u32,
    pub p95: u32,
    pub p99: u32,
    pub max: u32,
    /// Power-of-two bins: `[lo, hi)` and how many lengths fall in each (empty bins left out at the
    /// ends).
    pub histogram: Vec<Bin>,
    /// Fitted `--input-len`/`--output-len` values: a normal and a log-normal with the observed mean
    /// and standard deviation, clipped to the observed range.
    pub fit_normal: String,
    pub fit_lognormal: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bin {
    pub lo: u32,
    pub hi: u32,
    pub count: u64,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Statistics of `values`; `None` when empty.
pub fn length_stats(values: &[u32]) -> Option<LengthStats> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len() as f64;
    let mean = sorted.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = sorted
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = var.sqrt();
    let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
    let mut histogram: Vec<Bin> = Vec::new();
    let mut lo = 1u64;
    while lo <= max as u64 {
        let hi = lo * 2;
        let count = sorted
            .iter()
            .filter(|&&v| (v as u64) >= lo && (v as u64) < hi || (lo == 1 && v == 0))
            .count() as u64;
        histogram.push(Bin {
            lo: if lo == 1 { 0 } else { lo as u32 },
            hi: hi.min(u32::MAX as u64) as u32,
            count,
        });
        lo = hi;
    }
    while histogram.first().is_some_and(|b| b.count == 0) {
        histogram.remove(0);
    }
    let min1 = min.max(1);
    Some(LengthStats {
        count: sorted.len() as u64,
        mean,
        std,
        min,
        p50: percentile(&sorted, 50.0),
        p90: percentile(&sorted, 90.0),
        p95: percentile(&sorted, 95.0),
        p99: percentile(&sorted, 99.0),
        max,
        histogram,
        fit_normal: format!("normal:{mean:.1}:{std:.1}:{min1}:{}", max.max(min1)),
        fit_lognormal: format!(
            "lognormal:{:.1}:{std:.1}:{min1}:{}",
            mean.max(1.0),
            max.max(min1)
        ),
    })
}

/// The text `strobe dataset stats` prints for input and output lengths: a table, a histogram of
/// each, and the fitted length specs.
pub fn render(input: Option<&LengthStats>, output: Option<&LengthStats>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:>8} {:>9} {:>9} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7}",
        "tokens", "count", "mean", "std", "min", "p50", "p90", "p99", "max", ""
    );
    for (name, s) in [("input", input), ("output", output)] {
        match s {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "{:<14} {:>8} {:>9.1} {:>9.1} {:>6} {:>6} {:>6} {:>6} {:>6}",
                    name, s.count, s.mean, s.std, s.min, s.p50, s.p90, s.p99, s.max
                );
            }
            None => {
                let _ = writeln!(out, "{name:<14} (the data set has no {name} lengths)");
            }
        }
    }
    for (name, flag, s) in [
        ("input", "--input-len", input),
        ("output", "--output-len", output),
    ] {
        if let Some(s) = s {
            let _ = writeln!(out, "\n{name} tokens histogram");
            histogram(&mut out, s);
            let _ = writeln!(out, "fitted: {flag} {}", s.fit_normal);
            let _ = writeln!(out, "        {flag} {}", s.fit_lognormal);
        }
    }
    out
}

fn histogram(out: &mut String, s: &LengthStats) {
    use std::fmt::Write as _;
    let peak = s
        .histogram
        .iter()
        .map(|b| b.count)
        .max()
        .unwrap_or(1)
        .max(1);
    for b in &s.histogram {
        let bar = "#".repeat(((b.count * 50).div_ceil(peak)) as usize);
        let _ = writeln!(out, "  [{:>6}, {:>6})  {:>7}  {bar}", b.lo, b.hi, b.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LengthDist;

    #[test]
    fn statistics_percentiles_histogram_and_fits() {
        let v: Vec<u32> = (1..=100).collect();
        let s = length_stats(&v).unwrap();
        assert_eq!(
            (s.count, s.min, s.max, s.p50, s.p90, s.p99),
            (100, 1, 100, 50, 90, 99)
        );
        assert!((s.mean - 50.5).abs() < 1e-9);
        assert_eq!(s.histogram.iter().map(|b| b.count).sum::<u64>(), 100);
        assert_eq!(
            s.histogram[0],
            Bin {
                lo: 0,
                hi: 2,
                count: 1
            }
        );
        assert_eq!(
            s.histogram.last().unwrap(),
            &Bin {
                lo: 64,
                hi: 128,
                count: 37
            }
        );
        // The fits are valid length specs.
        assert!(matches!(
            LengthDist::parse(&s.fit_normal).unwrap(),
            LengthDist::Normal {
                min: 1,
                max: 100,
                ..
            }
        ));
        assert!(LengthDist::parse(&s.fit_lognormal).is_ok());
        assert!(length_stats(&[]).is_none());
    }
}
