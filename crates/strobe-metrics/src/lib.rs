//! From [`RequestRecord`]s to statistics.
//!
//! Each metric is a [`Distribution`]: an HDR histogram (3 significant digits, so memory stays flat
//! however long the run) plus exact integer count, sum, sum of squares, min and max. Means,
//! standard deviations, minima and maxima are therefore exact; percentiles are within 0.1%.
//! Every distribution serialises losslessly ([`DistributionState`]) so that the statistics of
//! several strobe processes merge into exactly what one process would have computed.
//!
//! The formulas (TTFT, TPOT, ITL, E2E, queue delay, throughput window, achieved concurrency) are
//! defined in `docs/metrics.md`; [`MetricSet::add`] is their one implementation.
//!
//! This crate never touches the network.

mod distribution;
mod set;

pub use distribution::{Distribution, DistributionState, StateError, Summary};
pub use set::{InputCheck, MetricSet, MetricSetState, Window};
