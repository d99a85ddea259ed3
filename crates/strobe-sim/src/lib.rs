//! A model of a continuous-batching LLM inference engine (issue 13), the one engine model that a
//! real-time simulated server and a faster-than-real-time planner are to share.
//!
//! - [`shape`]: a model's shape and a GPU's, with presets and their sources.
//! - [`engine`]: the engine: each step batches the running sequences' decode tokens with chunked
//!   prefill up to a token budget and a sequence cap, as vLLM's scheduler does; its time is the
//!   larger of compute and memory time plus overheads; the KV cache is paged in blocks from the
//!   memory the weights leave, and a sequence that finds no free block preempts the newest
//!   running one (recompute), as vLLM does; full prompt blocks are cached and shared by later
//!   prompts that start the same way (vLLM's automatic prefix caching).
//! - [`plan`]: a virtual clock that drives the engine with a load (a closed loop, Poisson or
//!   constant arrivals, everything at once, lockstep batches; over data-parallel copies) and
//!   reports what users would see.
//! - [`realtime`]: the wall clock: one thread steps the engine for every request and hands each
//!   its tokens at the end of the step that made them (what `strobe serve --sim` streams from),
//!   reporting how late it kept to its plan.
//!
//! The engine and the virtual clock are pure and deterministic: the same inputs give the same
//! timings, to the nanosecond. The real-time clock keeps to the same step times and reports how
//! late it handed each step's tokens over.
//!
//! - [`file`]: model files (TOML): custom shapes, and what a fit writes.
//! - [`fit`]: the overheads and efficiencies that reproduce a real engine's measured closed loops.

pub mod engine;
pub mod file;
pub mod fit;
pub mod plan;
pub mod realtime;
pub mod shape;

pub use engine::{Engine, EngineConfig, Event, Overheads, Step};
pub use fit::{fit, fit_holding, held_terms, pool, Fit, Observed, Residual};
pub use plan::{
    max_rate, max_users, quantile, simulate, simulate_replicas, Arrival, Capacity, Lengths, Load,
    RateCapacity, Requests, Summary,
};
pub use realtime::{LagStats, RealTime, Sink, Snapshot};
pub use shape::{Gpu, Model};
