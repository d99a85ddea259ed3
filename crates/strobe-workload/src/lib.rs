//! Workloads: what each request says, as a pure function of the seed and the request index.
//!
//! A [`Workload`] maps a request index to a [`RequestSpec`]. Index-addressed generation makes runs
//! reproducible whatever order workers ask in, and lets several processes share one stream.
//! Everything that needs counting (exact-length word pools, chat-template overhead, data-set
//! lengths) is done once when the workload is built, so `spec` is cheap.
//! This crate knows nothing about HTTP, schedules or timing.

pub mod dataset;
pub mod images;
pub mod lengths;
pub mod picture;
pub mod profiles;
pub mod pyrandom;
pub mod stats;
pub mod synthetic;
pub mod tokenizer;
pub mod words;

use rand::rngs::StdRng;
use rand::SeedableRng;
use strobe_core::RequestSpec;

pub use dataset::{
    Dataset, DatasetError, DatasetFormat, DatasetWorkload, FilterRules, LoadOptions,
};
pub use lengths::LengthDist;
pub use synthetic::{ChatShape, ImageSettings, SyntheticWorkload, WordPool};
pub use tokenizer::{HfTokenizer, TokenCounter, TokenizerError, WordCounter};

/// A seeded source of request specs.
pub trait Workload: Send + Sync {
    /// The spec of request `index`. The same workload and index always give the same spec.
    fn spec(&self, index: u64) -> RequestSpec;
    /// A one-line human description, for reports.
    fn describe(&self) -> String;
}

/// The RNG of request `index` under `seed`: splitmix64 of both, so neighbouring indices get
/// unrelated streams.
pub(crate) fn rng_for(seed: u64, index: u64) -> StdRng {
    let mut z = seed
        .wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}
