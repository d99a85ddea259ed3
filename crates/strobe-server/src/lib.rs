//! The built-in target: an OpenAI-compatible server whose timing is known exactly.
//!
//! `strobe serve` answers `/v1/completions` and `/v1/chat/completions` (streaming and not, with the
//! usage chunk), `/v1/models` and `/health`, with a configured time to first token, time between
//! tokens, jitter and output length. It records when it actually handed each request's first and
//! last token to the connection ("the truth", `GET /strobe/truth`), so a client's measurements can
//! be checked against it, and it can inject faults (HTTP errors, a cut stream, malformed SSE, an
//! error event, a stalled stream).
//!
//! With zero delays it answers each request with one pre-rendered write, so that it is cheap enough
//! not to be the bottleneck of a client capacity test.
//!
//! With a [`LoadModel`] its latency grows with load (a cap on requests served at once with a queue,
//! token gaps that widen per stream, prefill per prompt token), so that experiments can show
//! interference against it.
//!
//! With a simulated engine (`ServerConfig::sim`) every completion is timed instead by one shared
//! continuous-batching engine stepped in real time (`strobe_sim::RealTime`): its tokens arrive
//! at the end of the engine steps that made them, and `/metrics` shows the engine's queue,
//! KV-cache use, preemptions and the clock's lag.
//!
//! A request's "received" instant is when its bytes reached the machine (a kernel receive
//! timestamp where Linux gives one), so the truth includes the server's own intake queueing.
//!
//! It depends on no client crate: it is the other side of the wire.

mod body;
mod config;
mod service;
mod stamped;
mod truth;

pub use config::{
    tls_config, Fault, FaultParseError, LoadModel, ModelTokenizer, PromptTokenizer, ServerConfig,
};
pub use service::{bind, serve, ServerHandle};
pub use truth::{EngineTruth, Truth, TruthSummary};
