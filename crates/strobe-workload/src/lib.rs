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
    Dataset, DatasetError, DatasetFormat, DatasetSpec, DatasetWorkload, FilterRules, LoadOptions,
};

/// Input and output length when neither flags nor a profile give one (and the output length of a
/// data-set record that has none).
pub const DEFAULT_LEN: u32 = 128;
pub use lengths::{LengthDist, LengthSpec};
pub use synthetic::{ChatShape, ImageSettings, SyntheticWorkload, WordPool};
pub use tokenizer::{HfTokenizer, TokenCounter, TokenizerError, WordCounter};

/// How one run of an experiment varies a workload built once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variation {
    /// Seeds the text (and a data set's starting record); lengths keep the workload's own seed.
    pub content_seed: u64,
    /// Conversations interleaved (multi-turn), when the user did not fix it: the run's concurrency.
    pub sessions: Option<u32>,
}

/// A seeded source of request specs.
pub trait Workload: Send + Sync {
    /// The same workload for another run: fresh text under `v.content_seed`, same lengths.
    fn vary(&self, v: Variation) -> std::sync::Arc<dyn Workload>;
    /// The spec of request `index`. The same workload and index always give the same spec.
    fn spec(&self, index: u64) -> RequestSpec;
    /// A one-line human description, for reports.
    fn describe(&self) -> String;
    /// Takes request `index` before it is built; false when there is none: a workload drawn from
    /// a pool that several classes share (a batch spread over upstreams) ends its class when the
    /// pool is empty, as a request count would. The open loop and offline schedules ask (a batch
    /// is always offline); others never end early.
    fn claim(&self, _index: u64) -> bool {
        true
    }
    /// Building a spec takes long enough (generated images: milliseconds) that schedules build it
    /// on a blocking thread, off the async runtime, ahead of its send.
    fn costly(&self) -> bool {
        false
    }
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
