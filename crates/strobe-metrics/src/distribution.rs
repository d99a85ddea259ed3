//! One metric's distribution: histogram for percentiles, exact sums for the moments.

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Significant decimal digits kept by the histograms (percentiles within 0.1%).
const SIGNIFICANT_DIGITS: u8 = 3;

/// A distribution of non-negative integer values (nanoseconds, or milli-units for ratios).
#[derive(Clone, Debug)]
pub struct Distribution {
    hist: Histogram<u64>,
    count: u64,
    sum: u128,
    sum_sq: u128,
    min: u64,
    max: u64,
}

impl Default for Distribution {
    fn default() -> Self {
        Distribution {
            hist: Histogram::new(SIGNIFICANT_DIGITS).expect("valid precision"),
            count: 0,
            sum: 0,
            sum_sq: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

/// The standard summary every distribution reports, in the unit chosen by the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

/// Lossless serialised form of a [`Distribution`] (histogram as base64 HdrHistogram V2+deflate;
/// the 128-bit sums as decimal strings, since JSON numbers cannot carry them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DistributionState {
    pub count: u64,
    #[schemars(regex(pattern = r"^[0-9]+$"))]
    pub sum: String,
    #[schemars(regex(pattern = r"^[0-9]+$"))]
    pub sum_sq: String,
    pub min: u64,
    pub max: u64,
    pub hdr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("histogram state is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram state does not decode: {0:?}")]
    Hdr(String),
    #[error("sum `{0}` is not an integer")]
    Sum(String),
}

/// Two distributions are equal when they hold the same values (histogram buckets and exact
/// moments), however their histograms were sized.
impl PartialEq for Distribution {
    fn eq(&self, o: &Distribution) -> bool {
        let buckets = |d: &Distribution| -> Vec<(u64, u64)> {
            d.hist
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        };
        (self.count, self.sum, self.sum_sq, self.min, self.max)
            == (o.count, o.sum, o.sum_sq, o.min, o.max)
            && buckets(self) == buckets(o)
    }
}

impl schemars::JsonSchema for Distribution {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DistributionState".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        DistributionState::json_schema(generator)
    }
}

/// A distribution serialises as its lossless [`DistributionState`].
impl Serialize for Distribution {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.state().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Distribution {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let state = DistributionState::deserialize(d)?;
        Distribution::from_state(&state).map_err(serde::de::Error::custom)
    }
}

impl Distribution {
    #[inline]
    pub fn record(&mut self, value: u64) {
        if self.hist.record(value).is_err() {
            self.hist.saturating_record(value);
        }
        self.count += 1;
        self.sum += value as u128;
        self.sum_sq += (value as u128) * (value as u128);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Values above `limit` (to the histogram's precision, 0.1%).
    pub fn count_above(&self, limit: u64) -> u64 {
        if self.count == 0 || self.max <= limit {
            return 0;
        }
        if self.min > limit {
            return self.count;
        }
        self.count - self.hist.count_between(0, limit).min(self.count)
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value at quantile `q` (0–1), clamped into the exact range (0 when empty).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        self.hist
            .value_at_quantile(q.clamp(0.0, 1.0))
            .clamp(self.min, self.max)
    }

    /// The histogram's buckets as (value, count), ascending (values to 0.1%).
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        if self.count == 0 {
            return vec![];
        }
        self.hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// Population standard deviation (0 when empty).
    pub fn std(&self) -> f64 {
        self.summary(1.0).std
    }

    /// Values in each bin `[edges[i], edges[i+1])` (to the histogram's precision), the last bin
    /// closed; `edges.len() − 1` counts.
    pub fn bins(&self, edges: &[u64]) -> Vec<u64> {
        edges
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                if self.count == 0 || w[1] <= w[0] {
                    return 0;
                }
                let hi = if i + 2 == edges.len() { w[1] } else { w[1] - 1 };
                self.hist.count_between(w[0], hi)
            })
            .collect()
    }

    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// Exact mean of the recorded values (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// Adds another distribution; the result equals recording both value streams into one.
    pub fn merge(&mut self, other: &Distribution) {
        if other.count == 0 {
            return;
        }
        // Auto-resizing histograms of equal precision always add.
        let _ = self.hist.add(&other.hist);
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Summary with every value multiplied by `scale` (e.g. 1e-6 for ns → ms).
    pub fn summary(&self, scale: f64) -> Summary {
        if self.count == 0 {
            return Summary::default();
        }
        let n = self.count as f64;
        let mean = self.sum as f64 / n;
        // Exact integer variance numerator: n·Σx² − (Σx)², then one division.
        let var =
            (self.count as u128 * self.sum_sq).saturating_sub(self.sum * self.sum) as f64 / (n * n);
        let q = |p: f64| {
            // Clamp the histogram's bucket value into the exact range.
            (self.hist.value_at_quantile(p).clamp(self.min, self.max)) as f64 * scale
        };
        Summary {
            count: self.count,
            mean: mean * scale,
            std: var.sqrt() * scale,
            min: self.min as f64 * scale,
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            p99_9: q(0.999),
            max: self.max as f64 * scale,
        }
    }

    pub fn state(&self) -> DistributionState {
        let mut bytes = Vec::new();
        let _ = V2DeflateSerializer::new().serialize(&self.hist, &mut bytes);
        DistributionState {
            count: self.count,
            sum: self.sum.to_string(),
            sum_sq: self.sum_sq.to_string(),
            min: if self.count == 0 { 0 } else { self.min },
            max: self.max,
            hdr: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    pub fn from_state(state: &DistributionState) -> Result<Distribution, StateError> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(&state.hdr)?;
        let mut hist: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| StateError::Hdr(format!("{e:?}")))?;
        hist.auto(true);
        Ok(Distribution {
            hist,
            count: state.count,
            sum: state
                .sum
                .parse()
                .map_err(|_| StateError::Sum(state.sum.clone()))?,
            sum_sq: state
                .sum_sq
                .parse()
                .map_err(|_| StateError::Sum(state.sum_sq.clone()))?,
            min: if state.count == 0 {
                u64::MAX
            } else {
                state.min
            },
            max: state.max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_exact() {
        let mut d = Distribution::default();
        for v in [10, 20, 30, 40] {
            d.record(v);
        }
        let s = d.summary(1.0);
        assert_eq!((s.count, s.mean, s.min, s.max), (4, 25.0, 10.0, 40.0));
        assert!(
            (s.std - 125f64.sqrt()).abs() < 1e-9,
            "population std, got {}",
            s.std
        );
        assert_eq!(s.p50, 20.0);
    }

    #[test]
    fn percentiles_within_a_tenth_of_a_percent() {
        let mut d = Distribution::default();
        for v in 1..=100_000u64 {
            d.record(v * 1_000);
        }
        let s = d.summary(1e-3);
        for (got, want) in [
            (s.p50, 50_000.0),
            (s.p90, 90_000.0),
            (s.p99, 99_000.0),
            (s.p99_9, 99_900.0),
        ] {
            assert!((got - want).abs() / want < 1e-3, "{got} vs {want}");
        }
    }

    #[test]
    fn merge_of_states_equals_one_process() {
        let (mut a, mut b, mut all) = (
            Distribution::default(),
            Distribution::default(),
            Distribution::default(),
        );
        for v in 0..5_000u64 {
            let x = v * v % 9_973 * 1_000 + 17;
            if v % 3 == 0 {
                a.record(x)
            } else {
                b.record(x)
            }
            all.record(x);
        }
        let a = Distribution::from_state(
            &serde_json::from_str(&serde_json::to_string(&a.state()).unwrap()).unwrap(),
        )
        .unwrap();
        let mut merged = Distribution::from_state(&b.state()).unwrap();
        merged.merge(&a);
        assert_eq!(merged.summary(1.0), all.summary(1.0));
        assert_eq!(merged.state(), all.state());
    }

    #[test]
    fn empty_distribution_summarises_to_zeroes_and_round_trips() {
        let d = Distribution::default();
        assert_eq!(d.summary(1.0), Summary::default());
        let back = Distribution::from_state(&d.state()).unwrap();
        assert_eq!(back.count(), 0);
    }
}
