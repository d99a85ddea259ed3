//! `strobe gateway`: the batched-inference service of seed 000 (issue 14), built on the batch
//! runner of `strobe-batch`.
//!
//! - [`store`]: the one trait every gateway store implements (files, batches, per-line
//!   results, claiming a batch with a lease) and [`store::SqliteStore`], the default store (one
//!   file, WAL, `synchronous = FULL`); [`postgres::PgStore`] for several gateways sharing the
//!   work (`FOR UPDATE SKIP LOCKED`).
//! - [`server`]: the OpenAI Batch API, the interactive proxy, `/metrics`.
//! - [`worker`]: claims batches and runs them through strobe's batch runner, one offline class
//!   of the experiment layer whose concurrency the policy steers.
//! - [`policy`]: AIMD on the interactive latency the proxy sees and the engine's queue.
//! - [`page`]: the web page.

pub mod page;
pub mod policy;
pub mod postgres;
pub mod server;
pub mod store;
pub mod worker;

pub use policy::PolicyConfig;
pub use postgres::PgStore;
pub use server::{serve, Gateway, GatewayConfig};
pub use store::{Batch, BatchSink, FileObject, NewBatch, SqliteStore, Status, Store, StoreError};
