//! Settings of the built-in target.

use std::str::FromStr;
use std::time::Duration;

/// A fault the target can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and an OpenAI-style error body.
    Http(u16),
    /// Answer with this HTTP status and no body at all.
    HttpEmpty(u16),
    /// Close the connection without any response (the client sees a reset or an early close).
    Reset,
    /// Never send the response head (a server that accepts and hangs).
    StallHead,
    /// Half-way through, send one SSE line (or whole body) far larger than any real chunk.
    Oversized,
    /// Drop the connection half-way through the stream.
    Cut,
    /// Send an event that is not JSON half-way through the stream.
    Malformed,
    /// Send an `{"error": ...}` event half-way through the stream, then `[DONE]`.
    ErrorEvent,
    /// Stop sending half-way through the stream and never finish.
    Stall,
    /// End the response body cleanly half-way through the stream (no finish_reason, no [DONE]).
    Truncate,
}

impl Fault {
    /// The name `--fault` takes (and `/strobe/truth` counts by).
    pub fn name(&self) -> String {
        match self {
            Fault::Http(c) => format!("http-{c}"),
            Fault::HttpEmpty(c) => format!("http-{c}-empty"),
            Fault::Reset => "reset".into(),
            Fault::StallHead => "stall-head".into(),
            Fault::Oversized => "oversized".into(),
            Fault::Cut => "cut".into(),
            Fault::Malformed => "malformed".into(),
            Fault::ErrorEvent => "error-event".into(),
            Fault::Stall => "stall".into(),
            Fault::Truncate => "truncate".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown fault `{0}`: expected http-CODE (e.g. http-500), http-CODE-empty, reset, stall-head, cut, truncate, malformed, oversized, error-event or stall"
)]
pub struct FaultParseError(pub String);

impl FromStr for Fault {
    type Err = FaultParseError;
    fn from_str(s: &str) -> Result<Fault, FaultParseError> {
        Ok(match s.trim() {
            "cut" => Fault::Cut,
            "malformed" => Fault::Malformed,
            "error-event" => Fault::ErrorEvent,
            "stall" => Fault::Stall,
            "truncate" => Fault::Truncate,
            "reset" => Fault::Reset,
            "stall-head" => Fault::StallHead,
            "oversized" => Fault::Oversized,
            other => {
                let code = other.strip_prefix("http-").unwrap_or("");
                let (code, empty) = match code.strip_suffix("-empty") {
                    Some(c) => (c, true),
                    None => (code, false),
                };
                match code.parse::<u16>() {
                    Ok(code) if (400..600).contains(&code) && empty => Fault::HttpEmpty(code),
                    Ok(code) if (400..600).contains(&code) => Fault::Http(code),
                    _ => return Err(FaultParseError(s.to_owned())),
                }
            }
        })
    }
}

/// How the target behaves.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Model name served (and listed by `/v1/models`).
    pub model: String,
    /// Time from receiving a request to its first token.
    pub ttft: Duration,
    /// Time between consecutive tokens.
    pub itl: Duration,
    /// Each delay is moved by a uniform amount in `[-jitter, +jitter]` (never below zero).
    pub jitter: Duration,
    /// Output length for every request; `None` follows the request's `max_tokens`.
    pub output_len: Option<u32>,
    /// Output length when a request names none.
    pub default_max_tokens: u32,
    /// Faults to inject at random, each with its probability.
    pub faults: Vec<(Fault, f64)>,
    /// Seed for jitter and fault draws.
    pub seed: u64,
    /// When set, requests must carry `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// End streams with `data: [DONE]` (vLLM and OpenAI do; Hugging Face's `transformers serve`
    /// does not).
    pub send_done: bool,
    /// Context length: listed by `/v1/models` and enforced (prompt + max_tokens), as vLLM does.
    pub max_model_len: u32,
    /// Prompt tokens each image adds to `usage.prompt_tokens`.
    pub image_tokens: u32,
    /// Load-dependent timing, for tests and demos whose latency must grow with load.
    pub load: LoadModel,
    /// Serve HTTPS with this certificate (see [`tls_config`]).
    pub tls: Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Read requests at most this many bytes per second (a slow reader: the client's writes
    /// block once the socket buffers fill).
    pub read_rate: Option<u64>,
    /// Refuse body fields beyond the OpenAI API's (HTTP 422, as strict servers do), e.g. vLLM's
    /// `ignore_eos`.
    pub strict: bool,
    /// Time every completion by a simulated continuous-batching engine on one shared step clock
    /// instead of `ttft`/`itl`/`load` (see the `strobe-sim` crate).
    pub sim: Option<strobe_sim::EngineConfig>,
    /// Count prompts with the model's tokenizer instead of by words: `usage.prompt_tokens`,
    /// `/tokenize`, the context-length check and, with `sim`, the engine's prompt length and the
    /// prefix cache's blocks (token ids, as a real engine hashes them).
    pub tokenizer: Option<ModelTokenizer>,
}

/// A model's tokenizer, as the server needs it. This crate knows no tokenizer file format; the
/// binary implements it over `strobe-workload`'s Hugging Face tokenizer.
pub trait PromptTokenizer: Send + Sync {
    /// Where it comes from, for banners and logs (e.g. `hf:PATH`).
    fn describe(&self) -> String;
    /// The token ids of a completions prompt, with the special tokens the tokenizer adds (as
    /// vLLM counts `usage.prompt_tokens`).
    fn prompt_ids(&self, text: &str) -> Result<Vec<u32>, String>;
    /// The token ids of the prompt the model's chat template builds from `messages` (the
    /// request's JSON array), with the generation prompt. An error when there is no template.
    fn chat_ids(&self, messages: &serde_json::Value) -> Result<Vec<u32>, String>;
}

/// A shared [`PromptTokenizer`] (cloned with the configuration; printed by its description).
#[derive(Clone)]
pub struct ModelTokenizer(pub std::sync::Arc<dyn PromptTokenizer>);

impl std::fmt::Debug for ModelTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelTokenizer({})", self.0.describe())
    }
}

/// A TLS configuration from a PEM certificate chain and a PEM private key.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<std::sync::Arc<tokio_rustls::rustls::ServerConfig>, String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no PEM certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(std::sync::Arc::new(config))
}

/// A simple model of an engine under load: a cap on requests served at once (the rest queue, in
/// arrival order, and their wait is part of their TTFT), token gaps that widen with every other
/// stream served (as decode steps slow with batch size) and a prefill cost per prompt token.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadModel {
    pub max_running: Option<u32>,
    /// Added to each token gap per other stream being served.
    pub itl_per_stream: Duration,
    /// Added to the time to first token per prompt token.
    pub prefill_per_token: Duration,
}

impl LoadModel {
    pub fn is_none(&self) -> bool {
        *self == LoadModel::default()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            model: "strobe-sim".into(),
            ttft: Duration::from_millis(50),
            itl: Duration::from_millis(10),
            jitter: Duration::ZERO,
            output_len: None,
            default_max_tokens: 16,
            faults: vec![],
            seed: 0,
            api_key: None,
            send_done: true,
            max_model_len: 8192,
            image_tokens: 0,
            load: LoadModel::default(),
            tls: None,
            read_rate: None,
            strict: false,
            sim: None,
            tokenizer: None,
        }
    }
}

impl ServerConfig {
    /// True when responses can be written at once, pre-rendered.
    pub fn is_instant(&self) -> bool {
        self.ttft.is_zero()
            && self.itl.is_zero()
            && self.jitter.is_zero()
            && self.load.is_none()
            && self.sim.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse() {
        assert_eq!("http-503".parse::<Fault>().unwrap(), Fault::Http(503));
        assert_eq!("cut".parse::<Fault>().unwrap(), Fault::Cut);
        assert_eq!("stall".parse::<Fault>().unwrap(), Fault::Stall);
        assert!("http-200".parse::<Fault>().is_err());
        for name in [
            "http-429-empty",
            "reset",
            "stall-head",
            "oversized",
            "truncate",
        ] {
            assert_eq!(name.parse::<Fault>().unwrap().name(), name);
        }
        assert_eq!(
            "http-502-empty".parse::<Fault>().unwrap(),
            Fault::HttpEmpty(502)
        );
        assert!("boom"
            .parse::<Fault>()
            .unwrap_err()
            .to_string()
            .contains("expected http-CODE"));
    }
}
