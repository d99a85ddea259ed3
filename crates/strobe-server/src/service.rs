//! Routing, request parsing and the accept loop.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{Delays, EngineTokens, Plan, TokenStream};
use crate::config::{Fault, ModelTokenizer, ServerConfig};
use crate::stamped::{LastArrival, StampedStream};
use crate::truth::{EngineTruth, Truth};

/// A response body: either whole or a timed stream.
pub enum SimBody {
    Whole(Full<Bytes>),
    Stream(Box<TokenStream>),
    /// Injected faults of whole responses: these bytes, a pause (so that they are on the wire),
    /// then the connection breaks.
    Broken(Option<Bytes>, Pin<Box<tokio::time::Sleep>>),
    /// These bytes, then nothing ever again.
    Stalled(Option<Bytes>),
}

/// Marks a response that must not be sent: the connection is closed instead (fault `reset`).
#[derive(Clone, Copy)]
struct ResetMarker;

impl Body for SimBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            SimBody::Whole(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            SimBody::Stream(s) => Pin::new(s.as_mut()).poll_frame(cx),
            SimBody::Broken(b, pause) => match b.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => match pause.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(std::io::Error::other("injected fault: body cut"))))
                    }
                },
            },
            SimBody::Stalled(b) => match b.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SimBody::Whole(b) => b.is_end_stream(),
            SimBody::Stream(s) => s.is_end_stream(),
            SimBody::Broken(..) | SimBody::Stalled(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Whole(b) => b.size_hint(),
            SimBody::Stream(s) => s.size_hint(),
            SimBody::Broken(..) | SimBody::Stalled(_) => SizeHint::default(),
        }
    }
}

/// What a pre-rendered zero-delay stream depends on: (chat, tokens, prompt tokens, usage).
type RenderKey = (bool, u32, u32, bool);

struct State {
    config: ServerConfig,
    /// Origin of per-connection arrival stamps.
    epoch: tokio::time::Instant,
    model_json: Arc<str>,
    truth: Arc<Truth>,
    counter: AtomicU64,
    /// Pre-rendered zero-delay streams.
    rendered: Mutex<HashMap<RenderKey, Bytes>>,
    /// Running slots, with a `max_running` cap (a fair, first-come queue).
    slots: Option<Arc<tokio::sync::Semaphore>>,
    /// The simulated engine's clock, with `--sim`.
    engine: Option<Arc<strobe_sim::RealTime>>,
}

/// A running target: its address, its truth and a way to stop it.
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub truth: Arc<Truth>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// Stops accepting and closes connections.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Listen backlog: a closed loop of thousands opens its connections at once, and the usual 128
/// would drop SYNs (each costing a one-second retransmission) and distort the first requests.
const BACKLOG: u32 = 4096;

/// Binds a listener with a backlog deep enough for thousands of simultaneous connects.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `config` on `listener` in a background task.
pub fn serve(listener: TcpListener, config: ServerConfig) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let truth = Arc::new(Truth::default());
    let slots = config
        .load
        .max_running
        .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1) as usize)));
    let engine = match &config.sim {
        Some(sim) => Some(Arc::new(
            strobe_sim::RealTime::start(sim.clone()).map_err(std::io::Error::other)?,
        )),
        None => None,
    };
    let state = Arc::new(State {
        engine,
        epoch: tokio::time::Instant::now(),
        model_json: serde_json::to_string(&config.model)
            .unwrap_or_default()
            .into(),
        config,
        truth: Arc::clone(&truth),
        counter: AtomicU64::new(0),
        rendered: Mutex::new(HashMap::new()),
        slots,
    });
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, state, stop_rx));
    Ok(ServerHandle {
        addr,
        truth,
        stop,
        task,
    })
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                state.truth.record_connection();
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let mut stop = stop.clone();
                connections.spawn(async move {
                    let arrival = LastArrival::new(state.epoch);
                    // Arrivals are stamped below TLS: a request's instant is when the last bytes
                    // of its last record reached the machine.
                    let stream = StampedStream::new(stream, arrival.clone(), state.config.read_rate);
                    match state.config.tls.clone() {
                        None => serve_connection(stream, state, arrival, stop).await,
                        Some(tls) => {
                            let accepted = tokio::select! {
                                a = tokio_rustls::TlsAcceptor::from(tls).accept(stream) => a,
                                _ = stop.changed() => return,
                            };
                            if let Ok(tls_stream) = accepted {
                                serve_connection(tls_stream, state, arrival, stop).await;
                            }
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn serve_connection<S>(
    io: S,
    state: Arc<State>,
    arrival: LastArrival,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        // HTTP/1.1 without pipelining: the latest bytes read completed this request.
        let received = arrival.get().unwrap_or_else(tokio::time::Instant::now);
        handle(Arc::clone(&state), req, received)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {}
    }
}

fn json_response(status: StatusCode, body: String) -> Response<SimBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(SimBody::Whole(Full::new(Bytes::from(body))))
        .expect("static response parts are valid")
}

fn error_response(status: StatusCode, message: &str) -> Response<SimBody> {
    let body = serde_json::json!({
        "object": "error",
        "message": message,
        "type": status.canonical_reason().unwrap_or("error"),
        "code": status.as_u16(),
    });
    json_response(status, body.to_string())
}

#[derive(Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    prompt: Option<Value>,
    messages: Option<Vec<Message>>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<Value>,
}

impl Message {
    fn images(&self) -> Result<u32, String> {
        self.content.as_ref().map_or(Ok(0), count_images)
    }
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Fields of the OpenAI completions and chat APIs; a strict server refuses any other.
const OPENAI_FIELDS: &[&str] = &[
    "model",
    "prompt",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "echo",
    "best_of",
    "suffix",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
];

/// The first top-level body field the OpenAI API does not have.
fn unknown_field(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.as_object()?
        .keys()
        .find(|k| !OPENAI_FIELDS.contains(&k.as_str()))
        .cloned()
}

/// `POST /tokenize` (vLLM's shape): `prompt` or `messages` → `count`, `max_model_len` and token
/// ids: the model's tokenizer's, with one; else one per word (the built-in target's word rule,
/// with no chat template).
fn tokenize(state: &State, bytes: &[u8]) -> Response<SimBody> {
    let v: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            return error_response(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}"))
        }
    };
    let tokenizer = state
        .config
        .tokenizer
        .as_ref()
        .filter(|_| v.get("prompt").is_some() || v.get("messages").is_some());
    if let Some(t) = tokenizer {
        let chat = v.get("prompt").is_none();
        return match tokenizer_ids(t, &v, chat) {
            Ok(ids) => json_response(
                StatusCode::OK,
                serde_json::json!({
                    "count": ids.len(),
                    "max_model_len": state.config.max_model_len,
                    "tokens": ids,
                })
                .to_string(),
            ),
            Err(e) => error_response(StatusCode::BAD_REQUEST, &e),
        };
    }
    let count = if let Some(p) = v.get("prompt") {
        count_words(p)
    } else if let Some(Value::Array(ms)) = v.get("messages") {
        ms.iter()
            .filter_map(|m| m.get("content"))
            .map(count_words)
            .sum()
    } else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "`prompt` or `messages` is required",
        );
    };
    json_response(
        StatusCode::OK,
        serde_json::json!({
            "count": count,
            "max_model_len": state.config.max_model_len,
            "tokens": (0..count).collect::<Vec<u32>>(),
        })
        .to_string(),
    )
}

/// Counts image parts of a message content, checking each image URL: `data:image/...;base64,`
/// with valid base64, or an http(s) URL.
fn count_images(v: &Value) -> Result<u32, String> {
    let Value::Array(parts) = v else {
        return Ok(0);
    };
    let mut n = 0;
    for p in parts {
        if p.get("type").and_then(Value::as_str) != Some("image_url") {
            continue;
        }
        let url = p
            .get("image_url")
            .and_then(|u| u.get("url"))
            .and_then(Value::as_str)
            .ok_or("an image_url part needs {\"image_url\": {\"url\": ...}}")?;
        if let Some(rest) = url.strip_prefix("data:") {
            let (meta, data) = rest
                .split_once(',')
                .ok_or("a data URL needs a `,` before its data")?;
            if !meta.starts_with("image/") || !meta.ends_with(";base64") {
                return Err(format!(
                    "unsupported data URL `data:{meta}`; expected data:image/...;base64"
                ));
            }
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|e| format!("the image's base64 is invalid: {e}"))?;
            if bytes.len() < 8 {
                return Err("the image is empty".into());
            }
        } else if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err("image URLs must be data: or http(s):".into());
        }
        n += 1;
    }
    Ok(n)
}

/// A request's prompt as token ids of the model's tokenizer: a completions prompt's strings one
/// after another, or what the chat template builds from `messages`.
fn tokenizer_ids(t: &ModelTokenizer, body: &Value, chat: bool) -> Result<Vec<u32>, String> {
    if chat {
        match body.get("messages") {
            Some(ms @ Value::Array(_)) => t.0.chat_ids(ms),
            _ => Err("`messages` is required".into()),
        }
    } else {
        let mut ids = Vec::new();
        match body.get("prompt") {
            Some(Value::String(p)) => ids = t.0.prompt_ids(p)?,
            Some(Value::Array(parts)) if parts.iter().all(Value::is_string) => {
                for p in parts.iter().filter_map(Value::as_str) {
                    ids.extend(t.0.prompt_ids(p)?);
                }
            }
            Some(_) => return Err("with a tokenizer, `prompt` must be a string or strings".into()),
            None => return Err("`prompt` is required".into()),
        }
        Ok(ids)
    }
}

/// Counts whitespace-separated words of the text parts: the target's stand-in for prompt tokens.
/// The words of a prompt or message content, in order (the simulated engine's tokens).
fn push_words<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.extend(s.split_whitespace()),
        Value::Array(items) => items.iter().for_each(|i| push_words(i, out)),
        Value::Object(o) => {
            if let Some(t) = o.get("text") {
                push_words(t, out)
            }
        }
        _ => {}
    }
}

fn count_words(v: &Value) -> u32 {
    match v {
        Value::String(s) => s.split_whitespace().count() as u32,
        Value::Array(items) => items.iter().map(count_words).sum(),
        Value::Object(o) => o.get("text").map(count_words).unwrap_or(0),
        _ => 0,
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    received: tokio::time::Instant,
) -> Result<Response<SimBody>, std::io::Error> {
    let path = req.uri().path().to_owned();
    if let Some(key) = &state.config.api_key {
        let ok = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.strip_prefix("Bearer ").is_some_and(|k| k == key));
        if !ok && path.starts_with("/v1/") {
            return Ok(error_response(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API key",
            ));
        }
    }
    let forced_fault = req
        .headers()
        .get("x-strobe-fault")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.parse::<Fault>());
    // strobe's pre-run body check: served like any request, left out of the truth and metrics.
    let probe = req.headers().contains_key("x-strobe-probe");
    let method = req.method().clone();
    Ok(match (method, path.as_str()) {
        (Method::GET, "/health") => json_response(StatusCode::OK, "{}".into()),
        (Method::GET, "/v1/models") => json_response(
            StatusCode::OK,
            format!(
                "{{\"object\":\"list\",\"data\":[{{\"id\":{},\"object\":\"model\",\"created\":0,\"owned_by\":\"strobe\",\"max_model_len\":{}}}]}}",
                state.model_json, state.config.max_model_len
            ),
        ),
        (Method::GET, "/strobe/truth") => {
            let mut summary = state.truth.summary();
            summary.engine = state.engine.as_ref().map(|e| EngineTruth::of(e));
            json_response(StatusCode::OK, serde_json::to_string(&summary).unwrap_or_default())
        }
        (Method::GET, "/metrics") => {
            let text = match &state.engine {
                None => state.truth.prometheus(&state.config.model, None),
                Some(e) => {
                    let snap = e.snapshot();
                    let mut text = state.truth.prometheus(&state.config.model, Some((snap.running, snap.waiting)));
                    sim_metrics(&snap, &state.config.model, &mut text);
                    text
                }
            };
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/plain; version=0.0.4")
                .body(SimBody::Whole(Full::new(Bytes::from(text))))
                .expect("valid response")
        }
        (Method::POST, "/tokenize") => {
            let bytes = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return Ok(error_response(StatusCode::BAD_REQUEST, "could not read the request body")),
            };
            tokenize(&state, &bytes)
        }
        (Method::POST, "/reset_prefix_cache") => {
            state.truth.record_prefix_cache_reset();
            json_response(StatusCode::OK, "{}".into())
        }
        (Method::DELETE, "/strobe/truth") => {
            state.truth.reset();
            json_response(StatusCode::OK, "{}".into())
        }
        (Method::POST, "/v1/completions") | (Method::POST, "/v1/chat/completions") => {
            let chat = path == "/v1/chat/completions";
            let bytes = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return Ok(error_response(StatusCode::BAD_REQUEST, "could not read the request body")),
            };
            let fault = match forced_fault {
                Some(Ok(f)) => Some(f),
                Some(Err(e)) => return Ok(error_response(StatusCode::BAD_REQUEST, &e.to_string())),
                None => None,
            };
            let response = completion(&state, chat, &bytes, fault, received, probe).await;
            if response.extensions().get::<ResetMarker>().is_some() {
                // An error from the service makes hyper drop the connection, unanswered.
                return Err(std::io::Error::other("injected fault: reset"));
            }
            response
        }
        (_, "/v1/completions" | "/v1/chat/completions" | "/v1/models" | "/health") => {
            error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error_response(StatusCode::NOT_FOUND, &format!("no route for {path}")),
    })
}

async fn completion(
    state: &State,
    chat: bool,
    bytes: &[u8],
    forced_fault: Option<Fault>,
    received: tokio::time::Instant,
    probe: bool,
) -> Response<SimBody> {
    let truth = if probe {
        Arc::new(Truth::default())
    } else {
        Arc::clone(&state.truth)
    };
    let request: CompletionRequest = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => {
            return error_response(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}"))
        }
    };
    let config = &state.config;
    if config.strict {
        if let Some(field) = unknown_field(bytes) {
            // The shape FastAPI/pydantic servers answer with (transformers serve, many gateways).
            let body = serde_json::json!({"detail": [{
                "type": "extra_forbidden",
                "loc": ["body", field],
                "msg": "Extra inputs are not permitted",
            }]});
            return json_response(StatusCode::UNPROCESSABLE_ENTITY, body.to_string());
        }
    }
    match request.model.as_deref() {
        Some(m) if m == config.model => {}
        Some(m) => {
            return error_response(
                StatusCode::NOT_FOUND,
                &format!("The model `{m}` does not exist."),
            )
        }
        None => return error_response(StatusCode::BAD_REQUEST, "`model` is required"),
    }
    let prompt_tokens = if chat {
        match &request.messages {
            Some(ms) if !ms.is_empty() => ms
                .iter()
                .filter_map(|m| m.content.as_ref())
                .map(count_words)
                .sum(),
            _ => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "`messages` is required and must not be empty",
                )
            }
        }
    } else {
        match &request.prompt {
            Some(p) => count_words(p),
            None => return error_response(StatusCode::BAD_REQUEST, "`prompt` is required"),
        }
    };
    // With the model's tokenizer, its ids are the prompt: counted, and hashed into the prefix
    // cache's blocks.
    let ids = match &config.tokenizer {
        Some(t) => match serde_json::from_slice::<Value>(bytes)
            .map_err(|e| e.to_string())
            .and_then(|body| tokenizer_ids(t, &body, chat))
        {
            Ok(ids) => Some(ids),
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot tokenize the prompt: {e}"),
                )
            }
        },
        None => None,
    };
    let prompt_tokens = ids.as_ref().map_or(prompt_tokens, |ids| ids.len() as u32);
    let images = match &request.messages {
        Some(ms) if chat => match ms.iter().map(Message::images).sum::<Result<u32, String>>() {
            Ok(n) => n,
            Err(e) => return error_response(StatusCode::BAD_REQUEST, &e),
        },
        _ => 0,
    };
    let prompt_tokens = prompt_tokens + images * config.image_tokens;
    let asked = request
        .max_completion_tokens
        .or(request.max_tokens)
        .unwrap_or(config.default_max_tokens);
    if prompt_tokens as u64 + asked as u64 > config.max_model_len as u64 {
        return error_response(
            StatusCode::BAD_REQUEST,
            &format!(
                "This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the messages, {} in the completion).",
                config.max_model_len,
                prompt_tokens as u64 + asked as u64,
                prompt_tokens,
                asked
            ),
        );
    }
    truth.record_accepted(prompt_tokens, images);
    let n = state.counter.fetch_add(1, Ordering::Relaxed);
    let mut rng =
        rand::rngs::SmallRng::seed_from_u64(config.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let fault = forced_fault.or_else(|| {
        config
            .faults
            .iter()
            .find_map(|&(f, p)| rng.random_bool(p.clamp(0.0, 1.0)).then_some(f))
    });
    // Faults that only streams can show are left out of whole responses (and of the count).
    let fault = fault.filter(|f| request.stream || !matches!(f, Fault::Oversized));
    if let Some(f) = fault {
        truth.record_fault(&f.name());
    }
    match fault {
        Some(Fault::Http(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error_response(status, "injected fault");
        }
        Some(Fault::HttpEmpty(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Response::builder()
                .status(status)
                .body(SimBody::Whole(Full::new(Bytes::new())))
                .expect("valid response");
        }
        Some(Fault::Reset) => {
            let mut r = error_response(StatusCode::INTERNAL_SERVER_ERROR, "reset");
            r.extensions_mut().insert(ResetMarker);
            return r;
        }
        Some(Fault::StallHead) => {
            tokio::time::sleep(std::time::Duration::from_secs(86_400 * 365)).await;
        }
        _ => {}
    }
    let tokens = config
        .output_len
        .or(request.max_completion_tokens)
        .or(request.max_tokens)
        .unwrap_or(config.default_max_tokens)
        .max(1);
    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let plan = Plan {
        chat,
        model_json: Arc::clone(&state.model_json),
        tokens,
        prompt_tokens,
        include_usage,
        fault,
        send_done: config.send_done,
    };

    if let Some(engine) = &state.engine {
        if let Err(e) = engine.fits(prompt_tokens, tokens) {
            return error_response(StatusCode::BAD_REQUEST, &e);
        }
        // What the prompt's blocks hold, for the engine's prefix cache: its token ids under the
        // model's tokenizer; else its words, in order, the messages' one after another.
        let prefix = if !engine.config().enable_prefix_caching {
            std::sync::Arc::from([])
        } else if let Some(ids) = &ids {
            strobe_sim::engine::block_hashes_of_ids(ids, engine.config().block_size).into()
        } else {
            let mut words = Vec::new();
            if chat {
                for m in request.messages.iter().flatten() {
                    if let Some(c) = m.content.as_ref() {
                        push_words(c, &mut words);
                    }
                }
            } else if let Some(p) = &request.prompt {
                push_words(p, &mut words);
            }
            strobe_sim::engine::block_hashes(words, engine.config().block_size).into()
        };
        let mut feed = EngineTokens::submit(engine, prompt_tokens, tokens, prefix, received);
        if request.stream {
            let delays = Delays::of(config, rng);
            return Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(SimBody::Stream(Box::new(
                    TokenStream::new(
                        plan,
                        delays,
                        received,
                        received,
                        std::time::Duration::ZERO,
                        truth,
                        None,
                    )
                    .paced_by(feed),
                )))
                .expect("valid response");
        }
        truth.stream_started();
        for _ in 0..tokens {
            if feed.rx.recv().await.is_none() {
                truth.stream_ended();
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the simulated engine dropped the request",
                );
            }
        }
        feed.done = true;
        // The engine's time after a request's last token (detokenising, freeing it).
        let finish = engine.config().overheads.per_request_finish;
        if finish > 0.0 {
            tokio::time::sleep(std::time::Duration::from_secs_f64(finish)).await;
        }
        truth.stream_ended();
        truth.record_whole(received.elapsed());
        return whole_response(plan.render_whole(), fault);
    }

    // With a running cap, wait (first come, first served) for a slot; the wait is part of TTFT.
    let slot = match &state.slots {
        Some(s) => {
            state.truth.waiting(1);
            let permit = Arc::clone(s).acquire_owned().await.ok();
            state.truth.waiting(-1);
            permit
        }
        None => None,
    };
    let start = if slot.is_some() {
        tokio::time::Instant::now()
    } else {
        received
    };
    let prefill = config.load.prefill_per_token * prompt_tokens;
    if !request.stream {
        // The whole answer once the last token would have been generated.
        let body = plan.render_whole();
        let others = state.truth.running().max(0) as u32;
        let gap = config.itl + config.load.itl_per_stream * others;
        let delay = config.ttft + prefill + gap * (tokens - 1);
        truth.stream_started();
        if !delay.is_zero() {
            tokio::time::sleep_until(start + delay).await;
        }
        truth.stream_ended();
        drop(slot);
        truth.record_whole(received.elapsed());
        return whole_response(body, fault);
    }

    let builder = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache");
    if config.is_instant() && fault.is_none() {
        let key = (chat, tokens, prompt_tokens, include_usage);
        let cached = state
            .rendered
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned());
        let body = cached.unwrap_or_else(|| {
            let b = plan.render_stream();
            if let Ok(mut m) = state.rendered.lock() {
                if m.len() < 4096 {
                    m.insert(key, b.clone());
                }
            }
            b
        });
        return builder
            .body(SimBody::Whole(Full::new(body)))
            .expect("valid response");
    }
    let delays = Delays::of(config, rng);
    builder
        .body(SimBody::Stream(Box::new(TokenStream::new(
            plan, delays, received, start, prefill, truth, slot,
        ))))
        .expect("valid response")
}

/// The simulated engine's own series, in vLLM's names where vLLM has one.
fn sim_metrics(snap: &strobe_sim::Snapshot, model: &str, out: &mut String) {
    use std::fmt::Write;
    let label = format!("{{model_name=\"{model}\"}}");
    let mut gauge = |name: &str, kind: &str, v: f64| {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{label} {v}");
    };
    gauge("vllm:kv_cache_usage_perc", "gauge", snap.kv_usage);
    gauge("vllm:gpu_cache_usage_perc", "gauge", snap.kv_usage);
    gauge(
        "vllm:num_preemptions_total",
        "counter",
        snap.preemptions as f64,
    );
    gauge(
        "vllm:prompt_tokens_total",
        "counter",
        snap.prompt_tokens as f64,
    );
    gauge(
        "vllm:generation_tokens_total",
        "counter",
        snap.generation_tokens as f64,
    );
    gauge(
        "vllm:prefix_cache_queries_total",
        "counter",
        snap.prefix_queries as f64,
    );
    gauge(
        "vllm:prefix_cache_hits_total",
        "counter",
        snap.prefix_hits as f64,
    );
    gauge("strobe:sim_steps_total", "counter", snap.steps as f64);
    gauge("strobe:sim_kv_cache_blocks", "gauge", snap.kv_blocks as f64);
    gauge("strobe:sim_busy_seconds_total", "counter", snap.busy_s);
    // How late the clock handed each step's tokens over, against its plan.
    let lag = &snap.lag;
    let name = "strobe:sim_step_lag_seconds";
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut seen = 0;
    for (i, b) in strobe_sim::realtime::LAG_BOUNDS_US.iter().enumerate() {
        seen += lag.buckets.get(i).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\",model_name=\"{model}\"}} {seen}",
            *b as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\",model_name=\"{model}\"}} {}",
        lag.steps
    );
    let _ = writeln!(out, "{name}_sum{label} {}", lag.sum_ns as f64 / 1e9);
    let _ = writeln!(out, "{name}_count{label} {}", lag.steps);
}

/// A whole (non-streamed) answer, broken as `fault` says.
fn whole_response(body: Bytes, fault: Option<Fault>) -> Response<SimBody> {
    let half = body.slice(..body.len() / 2);
    let faulty = |b: SimBody| {
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(b)
            .expect("valid response")
    };
    match fault {
        Some(Fault::Cut) => faulty(SimBody::Broken(
            Some(half),
            Box::pin(tokio::time::sleep(std::time::Duration::from_millis(20))),
        )),
        Some(Fault::Stall) => faulty(SimBody::Stalled(Some(half))),
        Some(Fault::Truncate) => faulty(SimBody::Whole(Full::new(half))),
        Some(Fault::Malformed) => {
            faulty(SimBody::Whole(Full::new(Bytes::from_static(b"{\"choices\":[{\"text\":\"oops\"}"))))
        }
        Some(Fault::ErrorEvent) => json_response(
            StatusCode::OK,
            "{\"error\":{\"object\":\"error\",\"message\":\"injected fault: engine error\",\"type\":\"InternalServerError\",\"code\":500}}".into(),
        ),
        _ => json_response(StatusCode::OK, String::from_utf8_lossy(&body).into_owned()),
    }
}
