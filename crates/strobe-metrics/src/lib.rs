//! From [`RequestRecord`](strobe_core::RequestRecord)s to statistics.
//!
//! Each metric is a [`Distribution`]: an HDR histogram (3 significant digits, so memory stays flat
//! however long the run) plus exact integer count, sum, sum of squares, min and max. Means,
//! standard deviations, minima and maxima are therefore exact; percentiles are within 0.1%.
//! Every statistic serialises losslessly, so the statistics of several strobe processes merge into
//! exactly what one process would have computed ([`Merge`]).
//!
//! The formulas (TTFT, TPOT, ITL, E2E, queue delay, throughput window, achieved concurrency,
//! lockstep batch latency, goodput, cost) are defined in `docs/metrics.md`; [`MetricSet::add`],
//! [`SloReport`] and [`Cost`] are their one implementation. [`ClassSets`] keeps one set per request
//! class and derives the run's overall set by merging them.
//!
//! This crate never touches the network.

mod classes;
pub mod cost;
mod distribution;
mod set;
pub mod slo;
mod timeline;

pub use classes::ClassSets;
pub use cost::{Cost, GpuPrice};
pub use distribution::{Distribution, DistributionState, StateError, Summary};
pub use set::{BatchStats, InputCheck, Merge, MetricSet, Sum128, Window};
pub use slo::{wilson, RequestSlo, SloCheck, SloReport, SloTarget, SloVerdict, Z95};
pub use timeline::{Timeline, MAX_BUCKETS};
