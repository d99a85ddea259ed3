//! Arrival processes of open-loop load.

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp, Gamma};
use std::time::Duration;

/// How gaps between intended send times are drawn, at a given mean rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arrival {
    /// Exponential gaps (coefficient of variation 1): independent users.
    Poisson,
    /// Equal gaps of exactly 1/rate.
    Constant,
    /// Gamma gaps with this shape ("burstiness", as vLLM names it): below 1 burstier than Poisson,
    /// above 1 more regular; coefficient of variation 1/√shape.
    Gamma { shape: f64 },
}

#[derive(Debug, thiserror::Error)]
pub enum ArrivalError {
    #[error("--rate must be a positive number of requests per second, got {0}")]
    Rate(f64),
    #[error("--burstiness must be positive, got {0}")]
    Shape(f64),
}

enum Sampler {
    Exp(Exp<f64>),
    Constant(f64),
    Gamma(Gamma<f64>),
}

/// A seeded sequence of intended send offsets.
pub struct ArrivalProcess {
    sampler: Sampler,
    rng: StdRng,
    next_s: f64,
}

impl ArrivalProcess {
    pub fn new(arrival: Arrival, rate: f64, seed: u64) -> Result<ArrivalProcess, ArrivalError> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(ArrivalError::Rate(rate));
        }
        let sampler = match arrival {
            Arrival::Poisson => Sampler::Exp(Exp::new(rate).map_err(|_| ArrivalError::Rate(rate))?),
            Arrival::Constant => Sampler::Constant(1.0 / rate),
            Arrival::Gamma { shape } => {
                if !(shape.is_finite() && shape > 0.0) {
                    return Err(ArrivalError::Shape(shape));
                }
                Sampler::Gamma(
                    Gamma::new(shape, 1.0 / (shape * rate))
                        .map_err(|_| ArrivalError::Shape(shape))?,
                )
            }
        };
        Ok(ArrivalProcess {
            sampler,
            rng: StdRng::seed_from_u64(seed ^ 0xA5A5_5A5A_1234_5678),
            next_s: 0.0,
        })
    }

    /// Every request due at the start (offline): all gaps are zero.
    pub fn offline() -> ArrivalProcess {
        ArrivalProcess {
            sampler: Sampler::Constant(0.0),
            rng: StdRng::seed_from_u64(0),
            next_s: 0.0,
        }
    }

    /// The next gap in seconds.
    pub fn gap_s(&mut self) -> f64 {
        match &self.sampler {
            Sampler::Exp(e) => e.sample(&mut self.rng),
            Sampler::Constant(g) => *g,
            Sampler::Gamma(g) => g.sample(&mut self.rng),
        }
    }

    /// The next intended offset from the start of the load (the first request goes at 0).
    pub fn next_offset(&mut self) -> Duration {
        let at = self.next_s;
        self.next_s += self.gap_s();
        Duration::from_secs_f64(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(arrival: Arrival, rate: f64, n: usize) -> (f64, f64) {
        let mut p = ArrivalProcess::new(arrival, rate, 42).unwrap();
        let g: Vec<f64> = (0..n).map(|_| p.gap_s()).collect();
        let mean = g.iter().sum::<f64>() / n as f64;
        let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn poisson_gaps_have_mean_one_over_rate_and_cv_one() {
        let (mean, cv) = gaps(Arrival::Poisson, 50.0, 50_000);
        assert!((mean * 50.0 - 1.0).abs() < 0.02, "mean {mean}");
        assert!((cv - 1.0).abs() < 0.03, "cv {cv}");
    }

    #[test]
    fn constant_gaps_are_exact() {
        let (mean, cv) = gaps(Arrival::Constant, 8.0, 1_000);
        assert_eq!(mean, 0.125);
        assert_eq!(cv, 0.0);
        let mut p = ArrivalProcess::new(Arrival::Constant, 4.0, 0).unwrap();
        let offs: Vec<_> = (0..3).map(|_| p.next_offset()).collect();
        assert_eq!(
            offs,
            vec![
                Duration::ZERO,
                Duration::from_millis(250),
                Duration::from_millis(500)
            ]
        );
    }

    #[test]
    fn gamma_gaps_have_cv_one_over_sqrt_shape() {
        for shape in [0.25, 4.0] {
            let (mean, cv) = gaps(Arrival::Gamma { shape }, 20.0, 80_000);
            assert!(
                (mean * 20.0 - 1.0).abs() < 0.03,
                "shape {shape}: mean {mean}"
            );
            let want = 1.0 / f64::sqrt(shape);
            assert!(
                (cv - want).abs() / want < 0.05,
                "shape {shape}: cv {cv}, want {want}"
            );
        }
    }

    #[test]
    fn same_seed_same_arrivals_and_bad_input_is_refused() {
        let mut a = ArrivalProcess::new(Arrival::Poisson, 3.0, 9).unwrap();
        let mut b = ArrivalProcess::new(Arrival::Poisson, 3.0, 9).unwrap();
        for _ in 0..100 {
            assert_eq!(a.next_offset(), b.next_offset());
        }
        assert!(ArrivalProcess::new(Arrival::Poisson, 0.0, 0).is_err());
        assert!(ArrivalProcess::new(Arrival::Gamma { shape: -1.0 }, 1.0, 0).is_err());
    }
}
