//! `strobe gateway`: the batched-inference service of seed 000 (issue 14), built on the batch
//! runner of `strobe-batch`.
//!
//! This crate so far holds the durable half: [`store::Store`], the one trait every gateway
//! store implements (files, batches, per-line results, claiming a batch with a lease), and
//! [`store::SqliteStore`], the default store (one file, WAL, `synchronous = FULL`). The HTTP
//! front (the OpenAI Batch API, the interactive proxy, the adaptive batch concurrency and the
//! web page) and the PostgreSQL store build on it.

pub mod store;

pub use store::{Batch, BatchSink, FileObject, NewBatch, SqliteStore, Status, Store, StoreError};
