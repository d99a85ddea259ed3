//! Token-length distributions for inputs and outputs, drawn per request from its own seeded RNG.

use rand::Rng;
use rand_distr::{Distribution as _, LogNormal, Normal};
use std::sync::Arc;

/// A distribution of token lengths. Draws are clipped to `[min, max]` (at least 1).
#[derive(Clone, Debug, PartialEq)]
pub enum LengthDist {
    /// Always `n`.
    Fixed(u32),
    /// Uniform over `lo..=hi`.
    Uniform { lo: u32, hi: u32 },
    /// Normal with `mean` and `std`, rounded, clipped to `[min, max]`.
    Normal {
        mean: f64,
        std: f64,
        min: u32,
        max: u32,
    },
    /// Log-normal whose own mean and standard deviation are `mean` and `std` (not the underlying
    /// normal's), rounded, clipped to `[min, max]`.
    LogNormal {
        mean: f64,
        std: f64,
        min: u32,
        max: u32,
    },
    /// Uniform draws from observed lengths (a data set's own), named by where they came from.
    Empirical { lengths: Arc<[u32]>, source: String },
}

/// A length as the user gives it: a distribution, or `empirical:FILE` (a data set's own lengths,
/// counted with the run's tokenizer when the workload is built).
#[derive(Clone, Debug, PartialEq)]
pub enum LengthSpec {
    Dist(LengthDist),
    Empirical(std::path::PathBuf),
}

impl LengthSpec {
    /// Parses what [`LengthDist::parse`] does, plus `empirical:FILE`.
    pub fn parse(s: &str) -> Result<LengthSpec, String> {
        match s.trim().strip_prefix("empirical:") {
            Some("") => Err(format!("`{s}`: empirical:FILE needs a data-set file")),
            Some(file) => Ok(LengthSpec::Empirical(file.into())),
            None => LengthDist::parse(s).map(LengthSpec::Dist),
        }
    }
}

impl std::fmt::Display for LengthSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LengthSpec::Dist(d) => d.fmt(f),
            LengthSpec::Empirical(p) => write!(f, "empirical:{}", p.display()),
        }
    }
}

/// The largest length any distribution yields unless told otherwise.
pub const DEFAULT_MAX_LEN: u32 = 1 << 20;

impl LengthDist {
    /// Parses `N`, `uniform:LO:HI`, `normal:MEAN:STD[:MIN:MAX]`, `lognormal:MEAN:STD[:MIN:MAX]`.
    /// `empirical:FILE` needs a tokenizer and is resolved by the caller; this returns an error
    /// naming it.
    pub fn parse(s: &str) -> Result<LengthDist, String> {
        let s = s.trim();
        let parts: Vec<&str> = s.split(':').collect();
        let num = |i: usize, what: &str| -> Result<f64, String> {
            let p = parts
                .get(i)
                .ok_or_else(|| format!("`{s}`: missing {what}"))?;
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("`{s}`: {what} `{p}` is not a number"))?;
            if !v.is_finite() || v < 0.0 {
                return Err(format!("`{s}`: {what} must be a non-negative number"));
            }
            Ok(v)
        };
        let int = |i: usize, what: &str| -> Result<u32, String> {
            let v = num(i, what)?;
            if v.fract() != 0.0 || v > u32::MAX as f64 {
                return Err(format!("`{s}`: {what} must be a whole number"));
            }
            Ok(v as u32)
        };
        let bounds = |mean: f64| -> Result<(u32, u32), String> {
            match parts.len() {
                3 => Ok((1, DEFAULT_MAX_LEN.max((mean * 20.0) as u32))),
                5 => Ok((int(3, "MIN")?.max(1), int(4, "MAX")?)),
                _ => Err(format!(
                    "`{s}`: expected {}:MEAN:STD or {}:MEAN:STD:MIN:MAX",
                    parts[0], parts[0]
                )),
            }
        };
        let d = match parts[0] {
            "fixed" if parts.len() == 2 => LengthDist::Fixed(int(1, "length")?),
            "uniform" if parts.len() == 3 => LengthDist::Uniform {
                lo: int(1, "LO")?,
                hi: int(2, "HI")?,
            },
            "uniform" => return Err(format!("`{s}`: expected uniform:LO:HI")),
            "normal" => {
                let mean = num(1, "MEAN")?;
                let (min, max) = bounds(mean)?;
                LengthDist::Normal {
                    mean,
                    std: num(2, "STD")?,
                    min,
                    max,
                }
            }
            "lognormal" => {
                let mean = num(1, "MEAN")?;
                let (min, max) = bounds(mean)?;
                if mean <= 0.0 {
                    return Err(format!("`{s}`: a log-normal needs MEAN > 0"));
                }
                LengthDist::LogNormal {
                    mean,
                    std: num(2, "STD")?,
                    min,
                    max,
                }
            }
            "empirical" => {
                return Err(format!(
                    "`{s}`: empirical lengths are read from a data set file and need a tokenizer"
                ))
            }
            _ if parts.len() == 1 => LengthDist::Fixed(int(0, "length")?),
            other => {
                return Err(format!(
                "`{s}`: unknown distribution `{other}`; use N, uniform:LO:HI, normal:MEAN:STD[:MIN:MAX], lognormal:MEAN:STD[:MIN:MAX] or empirical:FILE"
            ))
            }
        };
        d.check().map(|_| d)
    }

    fn check(&self) -> Result<(), String> {
        match self {
            LengthDist::Fixed(0) => Err("a length must be at least 1".into()),
            LengthDist::Uniform { lo, hi } if lo > hi || *lo == 0 => {
                Err(format!("uniform:{lo}:{hi}: need 1 <= LO <= HI"))
            }
            LengthDist::Normal { min, max, .. } | LengthDist::LogNormal { min, max, .. }
                if min > max =>
            {
                Err(format!("MIN {min} is above MAX {max}"))
            }
            LengthDist::Empirical { lengths, source } if lengths.is_empty() => {
                Err(format!("{source} has no lengths to sample"))
            }
            _ => Ok(()),
        }
    }

    /// One draw.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> u32 {
        let clip = |v: f64, min: u32, max: u32| -> u32 {
            if v.is_nan() {
                return min;
            }
            (v.round().max(min as f64).min(max as f64)) as u32
        };
        match self {
            LengthDist::Fixed(n) => *n,
            LengthDist::Uniform { lo, hi } => rng.random_range(*lo..=*hi),
            LengthDist::Normal {
                mean,
                std,
                min,
                max,
            } => {
                let v = Normal::new(*mean, *std)
                    .map(|n| n.sample(rng))
                    .unwrap_or(*mean);
                clip(v, *min, *max)
            }
            LengthDist::LogNormal {
                mean,
                std,
                min,
                max,
            } => {
                // Moments of the log-normal → parameters of the underlying normal.
                let sigma2 = (1.0 + (std / mean).powi(2)).ln();
                let mu = mean.ln() - sigma2 / 2.0;
                let v = LogNormal::new(mu, sigma2.sqrt())
                    .map(|n| n.sample(rng))
                    .unwrap_or(*mean);
                clip(v, *min, *max)
            }
            LengthDist::Empirical { lengths, .. } => lengths[rng.random_range(0..lengths.len())],
        }
    }

    /// The smallest value a draw can take.
    pub fn min(&self) -> u32 {
        match self {
            LengthDist::Fixed(n) => *n,
            LengthDist::Uniform { lo, .. } => *lo,
            LengthDist::Normal { min, .. } | LengthDist::LogNormal { min, .. } => *min,
            LengthDist::Empirical { lengths, .. } => lengths.iter().copied().min().unwrap_or(1),
        }
    }

    /// The largest value a draw can take.
    pub fn max(&self) -> u32 {
        match self {
            LengthDist::Fixed(n) => *n,
            LengthDist::Uniform { hi, .. } => *hi,
            LengthDist::Normal { max, .. } | LengthDist::LogNormal { max, .. } => *max,
            LengthDist::Empirical { lengths, .. } => lengths.iter().copied().max().unwrap_or(1),
        }
    }

    /// Builds an empirical distribution; refuses an empty list.
    pub fn empirical(lengths: Vec<u32>, source: String) -> Result<LengthDist, String> {
        let d = LengthDist::Empirical {
            lengths: lengths.into(),
            source,
        };
        d.check().map(|_| d)
    }
}

impl std::fmt::Display for LengthDist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LengthDist::Fixed(n) => write!(f, "{n}"),
            LengthDist::Uniform { lo, hi } => write!(f, "uniform:{lo}:{hi}"),
            LengthDist::Normal {
                mean,
                std,
                min,
                max,
            } => write!(f, "normal:{mean}:{std}:{min}:{max}"),
            LengthDist::LogNormal {
                mean,
                std,
                min,
                max,
            } => write!(f, "lognormal:{mean}:{std}:{min}:{max}"),
            LengthDist::Empirical { lengths, source } => {
                write!(f, "empirical:{source} ({} lengths)", lengths.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn draws(d: &LengthDist, n: usize) -> Vec<u32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        (0..n).map(|_| d.sample(&mut rng)).collect()
    }

    fn mean_std(v: &[u32]) -> (f64, f64) {
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64;
        (m, var.sqrt())
    }

    #[test]
    fn parses_every_form_and_refuses_bad_ones() {
        assert_eq!(LengthDist::parse("128").unwrap(), LengthDist::Fixed(128));
        assert_eq!(
            LengthDist::parse("uniform:10:20").unwrap(),
            LengthDist::Uniform { lo: 10, hi: 20 }
        );
        assert_eq!(
            LengthDist::parse("normal:200:50:10:400").unwrap(),
            LengthDist::Normal {
                mean: 200.0,
                std: 50.0,
                min: 10,
                max: 400
            }
        );
        assert!(matches!(
            LengthDist::parse("lognormal:200:300").unwrap(),
            LengthDist::LogNormal { min: 1, .. }
        ));
        for bad in [
            "0",
            "uniform:20:10",
            "normal:1",
            "normal:a:b",
            "zipf:1:2",
            "-5",
            "1.5",
            "empirical:x.json",
        ] {
            assert!(LengthDist::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn draws_follow_the_distribution_and_respect_bounds() {
        let u = draws(&LengthDist::parse("uniform:10:20").unwrap(), 20_000);
        assert!(u.iter().all(|&x| (10..=20).contains(&x)));
        assert!(u.contains(&10) && u.contains(&20));
        let (m, s) = mean_std(&draws(
            &LengthDist::parse("normal:500:100").unwrap(),
            50_000,
        ));
        assert!(
            (m - 500.0).abs() < 3.0 && (s - 100.0).abs() < 3.0,
            "{m} {s}"
        );
        let clipped = draws(&LengthDist::parse("normal:100:100:50:120").unwrap(), 10_000);
        assert!(clipped.iter().all(|&x| (50..=120).contains(&x)));
        let (m, s) = mean_std(&draws(
            &LengthDist::parse("lognormal:300:600").unwrap(),
            200_000,
        ));
        assert!(
            (m - 300.0).abs() < 15.0 && (s - 600.0).abs() < 80.0,
            "{m} {s}"
        );
        let e = LengthDist::empirical(vec![7, 9], "t".into()).unwrap();
        let d = draws(&e, 1000);
        assert!(d.iter().all(|&x| x == 7 || x == 9) && d.contains(&7) && d.contains(&9));
        assert!(LengthDist::empirical(vec![], "empty.jsonl".into())
            .unwrap_err()
            .contains("empty.jsonl"));
    }
}
