//! Experiments: many runs on one prepared target.
//!
//! A [`Session`] prepares a target once — the built-in target, a URL, or an engine strobe
//! launches — and checks it. An [`Experiment`] is an ordered list of runs, each holding one or more
//! request classes at once (a batch beside interactive users), with workloads built once and
//! varied per run (fresh text, same lengths). [`run`] drives the runs through the one schedule core
//! (`strobe-load`), writes each run's report as it ends and rewrites the summary after every run,
//! and stops cleanly on the process-wide [`Shutdown`] at any stage.
//!
//! Experiment kinds are small builders on that core: a single run, profile levels
//! ([`levels`]), seed 000's three conditions ([`interference`]) and scenario files
//! ([`scenario`]). Nothing here prints: progress and results go to an [`Observer`].
//!
//! It holds no request loop of its own.

pub mod draft;
mod error;
mod experiment;
pub mod grid;
pub mod interference;
pub mod levels;
mod model_tokenizer;
mod observer;
pub mod outputs;
pub mod presets;
mod records;
mod run;
pub mod saturation;
pub mod scenario;
pub mod search;
mod server_tokenizer;
mod shutdown;
pub mod simulated;
pub mod sweep;
mod target;
mod telemetry;
pub mod workloads;

pub use error::ExperimentError;
pub use experiment::{
    run, ClassSpec, CompareKind, ComparisonSpec, Experiment, ExperimentOptions, Outcome,
    RequestOptions, RunSpec,
};
pub use model_tokenizer::model_tokenizer;
pub use observer::{LiveRun, Observer, Silent, Stage};
pub use outputs::{Export, Outputs};
pub use server_tokenizer::ServerTokenizer;
pub use shutdown::Shutdown;
pub use target::{LaunchSpec, MetricsSource, Session, TargetSpec, TelemetrySpec};
pub use workloads::{ImageSpec, InputLength, TokenizerChoice, WorkloadSpec};
