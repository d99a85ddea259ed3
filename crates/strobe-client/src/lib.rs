//! One request on the wire.
//!
//! This crate owns the OpenAI-compatible protocol as a client sees it: request bodies for
//! completions and chat, streaming (SSE) and whole responses, timestamps taken as bytes arrive,
//! TLS, usage parsing and the classification of failures into [`strobe_core::ErrorKind`]. It also
//! checks, before a run, that the server answers and serves the model.
//!
//! It does not decide *when* requests are sent (that is `strobe-load`) and computes no statistics.

pub mod chunk;
pub mod http1;
mod preflight;
mod request;
pub mod sse;
mod target;
pub mod tls;

pub use preflight::{
    get, post_json, preflight, probe_body, BodyProbe, JsonCalls, PreflightError, ServerInfo,
};
pub use request::Connection;
pub use target::{build_headers, BaseUrl, SocketStamps, Target, TargetError};
pub use tls::{TlsClient, TlsOptions};
