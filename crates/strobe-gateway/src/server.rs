//! The gateway's HTTP front: the OpenAI Batch API over the store, the interactive proxy, the
//! policy loop, `/metrics` and the web page.
//!
//! Interactive requests (`/v1/chat/completions`, `/v1/completions`, `/v1/models`) go to the
//! upstreams round-robin over HTTP/1 (hyper's client; TLS by rustls for `https://` upstreams),
//! on connections kept open between requests, their bodies streamed back frame by frame as they
//! arrive; the proxy notes each one's time to first byte,
//! time per later frame and latency for the policy. The gateway's own key (`--api-key`) is
//! checked and never forwarded; the upstream's (`--upstream-api-key`) is added instead.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use strobe_client::sse::SseDecoder;
use strobe_experiment::Shutdown;
use tokio::sync::watch;

use crate::policy::{EngineLoad, Observed, Policy, PolicyConfig};
use crate::store::{Batch, NewBatch, Status, Store};

pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// What `strobe gateway` is given.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Base URLs (`http://host:port`), one batch worker each.
    pub upstreams: Vec<String>,
    /// Keys that may use the gateway; empty: anyone (one owner, `default`).
    pub api_keys: Vec<strobe_core::Secret>,
    pub upstream_api_key: Option<strobe_core::Secret>,
    /// How `https://` upstreams' certificates are checked.
    pub upstream_tls: strobe_client::TlsOptions,
    pub limits: strobe_batch::Limits,
    pub policy: PolicyConfig,
    /// Names this gateway's leases; stable across restarts so a restarted gateway resumes its
    /// batches at once instead of waiting for its old lease to lapse.
    pub worker_id: String,
    /// Attempts per batch line (retryable failures only).
    pub max_attempts: u32,
    /// Added to every batch request's body as `priority` (vLLM with
    /// `--scheduling-policy priority`: larger is later).
    pub batch_priority: Option<i64>,
    pub quiet: bool,
}

/// A running batch, for the page and `/metrics`.
#[derive(Clone, Debug)]
pub struct Running {
    pub id: String,
    pub since: Instant,
    /// Lines with a result when this run of it began.
    pub done_at_start: u64,
}

/// One upstream: its address, its policy and the batch on it.
pub struct UpstreamState {
    pub index: usize,
    pub upstream: Upstream,
    pub policy: Mutex<Policy>,
    pub engine: Mutex<EngineLoad>,
    pub steer_tx: watch::Sender<u32>,
    pub steer: strobe_load::Steer,
    pub running: Mutex<Option<Running>>,
}

impl UpstreamState {
    pub fn started(&self, b: &Batch, done: u64) {
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(Running {
            id: b.id.clone(),
            since: Instant::now(),
            done_at_start: done,
        });
    }

    pub fn finished(&self) {
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn target_spec(&self, c: &GatewayConfig) -> strobe_experiment::TargetSpec {
        let mut spec = strobe_experiment::TargetSpec::built_in();
        spec.url = Some(self.upstream.url.clone());
        spec.api_key = c.upstream_api_key.clone();
        spec.tls = c.upstream_tls.clone();
        spec.telemetry.server_metrics = strobe_experiment::MetricsSource::Off;
        spec.first_byte_timeout = None;
        spec.idle_timeout = Some(Duration::from_secs(120));
        spec
    }

    fn observe(&self, o: Observed) {
        self.policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(o);
    }
}

/// Idle connections kept per upstream for the proxy and the `/metrics` reads.
const IDLE_CONNECTIONS: usize = 64;
/// An idle connection is used again only this soon: engines close idle ones after a few seconds
/// (vLLM's server after 5 s), and a request written as the close crosses it would be lost.
const IDLE_FOR: Duration = Duration::from_secs(2);

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An upstream's address, how to reach it (TLS for `https://`) and its idle connections.
pub struct Upstream {
    /// As given, without a trailing `/` or `/v1`.
    pub url: String,
    authority: String,
    /// `host:port`, the port filled in.
    addr: String,
    /// Path before `/v1` (`http://h/proxy` → `/proxy`).
    prefix: String,
    tls: Option<strobe_client::TlsClient>,
    /// Connections whose last response was read to its end, ready for another request, and
    /// since when.
    idle: Arc<Mutex<Vec<(Sender, Instant)>>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &self.url)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Upstream {
    /// `tls` says how an `https://` upstream's certificate is checked.
    pub fn parse(url: &str, tls: &strobe_client::TlsOptions) -> Result<Upstream, String> {
        let u = url.trim_end_matches('/');
        let (scheme, rest) = if let Some(r) = u.strip_prefix("http://") {
            ("http", r)
        } else if let Some(r) = u.strip_prefix("https://") {
            ("https", r)
        } else {
            return Err(format!(
                "--upstream {u}: give a URL like http://127.0.0.1:8000 or https://engine.example:443"
            ));
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!(
                "--upstream {u}: give host:port (credentials go in --upstream-api-key)"
            ));
        }
        // `[::1]:8000`, `host:8000`, `host`: the host and the port.
        let (host, port) = match authority.strip_prefix('[') {
            Some(r) => match r.split_once(']') {
                Some((h, "")) => (&authority[..h.len() + 2], None),
                Some((h, p)) if p.starts_with(':') => (&authority[..h.len() + 2], Some(&p[1..])),
                _ => return Err(format!("--upstream {u}: `{authority}` is not host:port")),
            },
            None => match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("--upstream {u}: `{p}` is not a port number"))?,
            ),
            None => None,
        };
        let port = port.unwrap_or(if scheme == "https" { 443 } else { 80 });
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let tls = match scheme {
            "https" => Some(
                strobe_client::TlsClient::new(bare_host, tls)
                    .map_err(|e| format!("--upstream {u}: {e}"))?,
            ),
            _ => None,
        };
        let prefix = prefix.strip_suffix("/v1").unwrap_or(prefix).to_owned();
        Ok(Upstream {
            url: format!("{scheme}://{authority}{prefix}"),
            authority: authority.to_owned(),
            addr: format!("{host}:{port}"),
            prefix,
            tls,
            idle: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// A new connection: TCP, then TLS for `https://`, then HTTP/1.
    async fn connect(&self) -> Result<Sender, String> {
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| format!("upstream {}: {e}", self.url))?;
        let _ = tcp.set_nodelay(true);
        let fail = |e: &dyn std::fmt::Display| format!("upstream {}: {e}", self.url);
        match &self.tls {
            None => handshake(tcp).await.map_err(|e| fail(&e)),
            Some(tls) => {
                let stream = tokio_rustls::TlsConnector::from(tls.config())
                    .connect(tls.server_name(), tcp)
                    .await
                    .map_err(|e| fail(&format!("TLS: {e}")))?;
                handshake(stream).await.map_err(|e| fail(&e))
            }
        }
    }

    /// An idle connection that is still open, if there is one.
    fn take_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((s, since)) = idle.pop() {
            if since.elapsed() < IDLE_FOR && s.is_ready() && !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// Sends `req` on an idle connection or a new one. A reused connection the upstream closed
    /// before the request was written is replaced by a new one and the request sent there (never
    /// a request that may have reached the engine). The connection goes back to the idle list
    /// once its response has been read to the end (a client that hangs up mid-stream closes it
    /// instead).
    async fn send(&self, req: &Request<Bytes>) -> Result<Response<Incoming>, String> {
        let build = || {
            let mut b = Request::builder()
                .method(req.method().clone())
                .uri(req.uri().clone());
            if let Some(h) = b.headers_mut() {
                *h = req.headers().clone();
            }
            b.body(Full::new(req.body().clone()))
                .expect("a request that was valid once")
        };
        let (mut send, reused) = match self.take_idle() {
            Some(s) => (s, true),
            None => (self.connect().await?, false),
        };
        let resp = match send.send_request(build()).await {
            Ok(r) => r,
            Err(e) if reused && e.is_canceled() => {
                send = self.connect().await?;
                send.send_request(build())
                    .await
                    .map_err(|e| format!("upstream {}: {e}", self.url))?
            }
            Err(e) => return Err(format!("upstream {}: {e}", self.url)),
        };
        let idle = Arc::clone(&self.idle);
        tokio::spawn(async move {
            if send.ready().await.is_ok() {
                let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.retain(|(_, since)| since.elapsed() < IDLE_FOR);
                if idle.len() < IDLE_CONNECTIONS {
                    idle.push((send, Instant::now()));
                }
            }
        });
        Ok(resp)
    }
}

/// HTTP/1 over `io`, its connection driven in the background.
async fn handshake<S>(io: S) -> hyper::Result<Sender>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// The whole gateway.
pub struct Gateway {
    pub config: GatewayConfig,
    pub store: Arc<dyn Store>,
    pub upstreams: Vec<Arc<UpstreamState>>,
    next: AtomicUsize,
    owners: Vec<(String, String)>,
    pub started: Instant,
    /// The batches this gateway runs now, which its idle upstreams may help with.
    pub(crate) shareable: crate::worker::Shareable,
}

/// The owner a key stands for: a hash, so the store never holds a key.
pub fn owner_of(key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("key-{h:016x}")
}

impl Gateway {
    pub fn new(config: GatewayConfig, store: Arc<dyn Store>) -> Result<Arc<Gateway>, String> {
        if config.upstreams.is_empty() {
            return Err(
                "give at least one --upstream URL (the engine, e.g. http://127.0.0.1:8000)".into(),
            );
        }
        let mut upstreams = Vec::new();
        for (index, u) in config.upstreams.iter().enumerate() {
            let policy = Policy::new(config.policy.clone());
            let (steer_tx, steer) = strobe_load::Steer::new(policy.cap);
            upstreams.push(Arc::new(UpstreamState {
                index,
                upstream: Upstream::parse(u, &config.upstream_tls)?,
                policy: Mutex::new(policy),
                engine: Mutex::new(EngineLoad::default()),
                steer_tx,
                steer,
                running: Mutex::new(None),
            }));
        }
        let owners = config
            .api_keys
            .iter()
            .map(|k| (k.expose().to_owned(), owner_of(k.expose())))
            .collect();
        Ok(Arc::new(Gateway {
            config,
            store,
            upstreams,
            next: AtomicUsize::new(0),
            owners,
            started: Instant::now(),
            shareable: Default::default(),
        }))
    }

    pub fn log(&self, m: &str) {
        if !self.config.quiet {
            eprintln!("strobe gateway: {m}");
        }
    }

    /// The caller's owner id, or the response refusing it.
    #[allow(clippy::result_large_err)]
    fn owner(&self, req: &Request<Incoming>) -> Result<String, Response<Body>> {
        if self.owners.is_empty() {
            return Ok("default".into());
        }
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match given.and_then(|g| self.owners.iter().find(|(k, _)| k == g)) {
            Some((_, owner)) => Ok(owner.clone()),
            None => Err(error(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                None,
                "missing or wrong API key for this gateway: send `Authorization: Bearer <key>` with one of the gateway's --api-key values (the engine's key is the gateway's business)",
            )),
        }
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(v.to_string()))
        .expect("valid response")
}

/// OpenAI's error object.
pub fn error(status: StatusCode, code: &str, param: Option<&str>, message: &str) -> Response<Body> {
    let kind = if status == StatusCode::UNAUTHORIZED {
        "authentication_error"
    } else if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    json_response(
        status,
        &json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
    )
}

fn store_error(e: impl std::fmt::Display) -> Response<Body> {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "store_error",
        None,
        &format!("the gateway's store failed: {e}"),
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::StoreError> + Send + 'static,
) -> Result<T, Response<Body>> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(store_error),
        Err(e) => Err(store_error(e)),
    }
}

/// Handles one request.
pub async fn handle(
    gw: Arc<Gateway>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let r = match (&method, segments.as_slice()) {
        (&Method::GET, [""]) => Ok(crate::page::render(&gw).await),
        (&Method::GET, ["metrics"]) => Ok(metrics(&gw).await),
        (&Method::GET, ["health"]) => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        (_, ["v1", "chat", "completions"]) | (_, ["v1", "completions"]) | (_, ["v1", "models", ..]) => {
            match gw.owner(&req) {
                Ok(_) => Ok(proxy(&gw, req).await),
                Err(r) => Ok(r),
            }
        }
        (_, ["v1", "files", ..]) | (_, ["v1", "batches", ..]) => match gw.owner(&req) {
            Ok(owner) => Ok(batch_api(&gw, req, &owner, &segments).await),
            Err(r) => Ok(r),
        },
        _ => Ok(error(
            StatusCode::NOT_FOUND,
            "not_found",
            None,
            &format!("{method} {path}: the gateway serves /v1/files, /v1/batches, /v1/chat/completions, /v1/completions, /v1/models, /metrics and / (the batches page)"),
        )),
    };
    r
}

async fn batch_api(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    owner: &str,
    segments: &[&str],
) -> Response<Body> {
    let method = req.method().clone();
    let r = match (&method, &segments[1..]) {
        (&Method::POST, ["files"]) => upload(gw, req, owner).await,
        (&Method::GET, ["files", id]) => {
            let (store, o, i) = (Arc::clone(&gw.store), owner.to_owned(), id.to_string());
            match blocking(move || store.file(&o, &i)).await {
                Ok(Some(f)) => Ok(json_response(StatusCode::OK, &f.to_json())),
                Ok(None) => Err(no_such("file", id)),
                Err(r) => Err(r),
            }
        }
        (&Method::GET, ["files", id, "content"]) => {
            let (store, o, i) = (Arc::clone(&gw.store), owner.to_owned(), id.to_string());
            match blocking(move || store.file_content(&o, &i)).await {
                Ok(Some(c)) => Ok(Response::builder()
                    .header(header::CONTENT_TYPE, "application/jsonl")
                    .body(full(c))
                    .expect("valid response")),
                Ok(None) => Err(no_such("file", id)),
                Err(r) => Err(r),
            }
        }
        (&Method::POST, ["batches"]) => create(gw, req, owner).await,
        (&Method::GET, ["batches"]) => list(gw, &req, owner).await,
        (&Method::GET, ["batches", id]) => {
            let (store, o, i) = (Arc::clone(&gw.store), owner.to_owned(), id.to_string());
            match blocking(move || store.batch(&o, &i)).await {
                Ok(Some(b)) => Ok(json_response(StatusCode::OK, &b.to_json())),
                Ok(None) => Err(no_such("batch", id)),
                Err(r) => Err(r),
            }
        }
        (&Method::POST, ["batches", id, "cancel"]) => {
            let (store, o, i) = (Arc::clone(&gw.store), owner.to_owned(), id.to_string());
            match blocking(move || store.cancel(&o, &i)).await {
                Ok(Some(b)) => Ok(json_response(StatusCode::OK, &b.to_json())),
                Ok(None) => Err(no_such("batch", id)),
                Err(r) => Err(r),
            }
        }
        _ => Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            None,
            &format!(
                "{method} /{}: not part of the Batch API (POST /v1/files, GET /v1/files/ID[/content], POST /v1/batches, GET /v1/batches[/ID], POST /v1/batches/ID/cancel)",
                segments.join("/")
            ),
        )),
    };
    r.unwrap_or_else(|e| e)
}

fn no_such(what: &str, id: &str) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        None,
        &format!("no {what} `{id}` for this API key"),
    )
}

fn bad(param: &str, message: &str) -> Response<Body> {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        Some(param),
        message,
    )
}

/// `POST /v1/files`: a multipart upload of a batch input file, checked line by line.
async fn upload(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    owner: &str,
) -> Result<Response<Body>, Response<Body>> {
    let limits = gw.config.limits;
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| {
            bad(
                "file",
                "send the file as multipart/form-data with fields `purpose` (batch) and `file`",
            )
        })?;
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limits.max_bytes + 64 * 1024 {
            return Err(too_large(limits.max_bytes));
        }
    }
    let body =
        Limited::new(req.into_body(), limits.max_bytes as usize + 64 * 1024).into_data_stream();
    let mut form = multer::Multipart::new(body, boundary);
    let (mut purpose, mut file): (Option<String>, Option<(String, Vec<u8>)>) = (None, None);
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e, limits.max_bytes)),
        };
        match field.name() {
            Some("purpose") => {
                purpose = Some(
                    field
                        .text()
                        .await
                        .map_err(|e| multipart_error(e, limits.max_bytes))?,
                )
            }
            Some("file") => {
                let name = field.file_name().unwrap_or("upload.jsonl").to_owned();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| multipart_error(e, limits.max_bytes))?;
                file = Some((name, bytes.to_vec()));
            }
            _ => {}
        }
    }
    let purpose = purpose.ok_or_else(|| {
        bad(
            "purpose",
            "the form has no `purpose` field: send purpose=batch",
        )
    })?;
    if purpose != "batch" {
        return Err(bad(
            "purpose",
            &format!(
                "purpose `{purpose}`: this gateway takes batch input files only (purpose=batch)"
            ),
        ));
    }
    let (name, bytes) = file.ok_or_else(|| bad("file", "the form has no `file` field"))?;
    if bytes.len() as u64 > limits.max_bytes {
        return Err(too_large(limits.max_bytes));
    }
    let path = std::path::PathBuf::from(&name);
    let lines = strobe_batch::input::parse(&path, &bytes, limits)
        .map_err(|e| bad("file", &e.to_string()))?;
    if lines.is_empty() {
        return Err(bad("file", &format!("{name}: no requests in the file")));
    }
    let (store, o) = (Arc::clone(&gw.store), owner.to_owned());
    let f = blocking(move || store.put_file(&o, "batch", &name, &bytes)).await?;
    Ok(json_response(StatusCode::OK, &f.to_json()))
}

fn too_large(max: u64) -> Response<Body> {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        Some("file"),
        &format!("the file is larger than this gateway's limit of {max} bytes (--max-input-bytes); split it"),
    )
}

fn multipart_error(e: multer::Error, max: u64) -> Response<Body> {
    let text = e.to_string();
    if text.contains("length limit") || text.contains("size limit") {
        return too_large(max);
    }
    bad(
        "file",
        &format!("the multipart form could not be read: {text}"),
    )
}

/// `POST /v1/batches`.
async fn create(
    gw: &Arc<Gateway>,
    req: Request<Incoming>,
    owner: &str,
) -> Result<Response<Body>, Response<Body>> {
    let body = Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| bad("body", &format!("cannot read the request body: {e}")))?
        .to_bytes();
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| bad("body", &format!("the body is not JSON: {e}")))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let input = field("input_file_id").ok_or_else(|| {
        bad(
            "input_file_id",
            "give input_file_id, the id POST /v1/files returned",
        )
    })?;
    let endpoint = field("endpoint")
        .ok_or_else(|| bad("endpoint", "give endpoint, e.g. /v1/chat/completions"))?;
    if !strobe_batch::input::ENDPOINTS.contains(&endpoint.as_str()) {
        return Err(bad(
            "endpoint",
            &format!(
                "endpoint `{endpoint}`: use one of {}",
                strobe_batch::input::ENDPOINTS.join(", ")
            ),
        ));
    }
    let window = field("completion_window").unwrap_or_else(|| "24h".into());
    let window_s = humantime::parse_duration(&window)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            bad(
                "completion_window",
                &format!("completion_window `{window}`: give a duration such as 24h"),
            )
        })?
        .as_secs() as i64;
    let metadata = v.get("metadata").filter(|m| !m.is_null()).cloned();
    if let Some(m) = &metadata {
        if !m.is_object() {
            return Err(bad("metadata", "metadata must be an object of strings"));
        }
    }
    let (store, o, i) = (Arc::clone(&gw.store), owner.to_owned(), input.clone());
    let content = blocking(move || store.file_content(&o, &i))
        .await?
        .ok_or_else(|| {
            bad(
                "input_file_id",
                &format!("no file `{input}` for this API key"),
            )
        })?;
    let path = std::path::PathBuf::from(&input);
    let lines = strobe_batch::input::parse(&path, &content, gw.config.limits)
        .map_err(|e| bad("input_file_id", &e.to_string()))?;
    if let Some(l) = lines.iter().find(|l| l.url != endpoint) {
        return Err(bad(
            "endpoint",
            &format!("{input}:{}: the line's url is {} but the batch's endpoint is {endpoint}; every line must use the batch's endpoint", l.line, l.url),
        ));
    }
    let new = NewBatch {
        owner: owner.to_owned(),
        input_file_id: input,
        endpoint,
        completion_window: window,
        window_s,
        metadata,
        total: lines.len() as u64,
    };
    let store = Arc::clone(&gw.store);
    let b = blocking(move || store.create_batch(&new)).await?;
    gw.log(&format!("batch {} created: {} requests", b.id, b.total));
    Ok(json_response(StatusCode::OK, &b.to_json()))
}

/// `GET /v1/batches?after=&limit=`.
async fn list(
    gw: &Arc<Gateway>,
    req: &Request<Incoming>,
    owner: &str,
) -> Result<Response<Body>, Response<Body>> {
    let mut after = None;
    let mut limit = 20usize;
    for pair in req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "after" => after = Some(v.to_owned()),
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        bad(
                            "limit",
                            &format!("limit `{v}`: give a number from 1 to 100"),
                        )
                    })?
            }
            _ => {}
        }
    }
    let (store, o) = (Arc::clone(&gw.store), owner.to_owned());
    let (page, more) = blocking(move || store.list_batches(&o, after.as_deref(), limit)).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": page.iter().map(Batch::to_json).collect::<Vec<_>>(),
            "first_id": page.first().map(|b| b.id.clone()),
            "last_id": page.last().map(|b| b.id.clone()),
            "has_more": more,
        }),
    ))
}

/// Streams an upstream body back untouched, noting when its first and last tokens passed.
struct Timed {
    inner: Incoming,
    received: Instant,
    /// A stream's events, decoded as strobe's client decodes them, so that the TTFT the policy
    /// protects is the one strobe measures: the first event with content, not the first byte
    /// (an engine may send a role-only chunk at once; `transformers serve` does).
    sse: Option<SseDecoder>,
    /// The first content event (or, for a whole response, the first byte).
    first: Option<Instant>,
    last: Option<Instant>,
    /// Content events (or, for a whole response, data frames).
    tokens: u32,
    up: Option<Arc<UpstreamState>>,
}

impl Timed {
    fn content(&mut self, now: Instant) {
        if self.first.is_none() {
            self.first = Some(now);
            if let Some(up) = &self.up {
                up.observe(Observed {
                    at: now,
                    ttft: Some(now - self.received),
                    tpot: None,
                    latency: None,
                });
            }
        }
        self.last = Some(now);
        self.tokens += 1;
    }

    fn data(&mut self, d: &[u8]) {
        let now = Instant::now();
        let Some(sse) = &mut self.sse else {
            self.content(now);
            return;
        };
        let mut content = 0u32;
        let _ = sse.feed(d, |event| {
            if strobe_client::chunk::parse_chunk(event).is_ok_and(|c| c.has_content) {
                content += 1;
            }
            ControlFlow::Continue(())
        });
        for _ in 0..content {
            self.content(now);
        }
    }

    fn report(&mut self) {
        let (Some(up), Some(first), Some(last)) = (self.up.take(), self.first, self.last) else {
            return;
        };
        let now = Instant::now();
        let tpot = (self.tokens > 1 && last > first).then(|| (last - first) / (self.tokens - 1));
        up.observe(Observed {
            at: now,
            ttft: None,
            tpot,
            latency: Some(now - self.received),
        });
    }
}

impl http_body::Body for Timed {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if this.up.is_some() {
                    if let Some(d) = f.data_ref().filter(|d| !d.is_empty()) {
                        this.data(d);
                    }
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(None) => {
                this.report();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.up = None;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
];

async fn proxy(gw: &Arc<Gateway>, req: Request<Incoming>) -> Response<Body> {
    let received = Instant::now();
    let n = gw.upstreams.len();
    let up = Arc::clone(&gw.upstreams[gw.next.fetch_add(1, Ordering::Relaxed) % n]);
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, 64 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad("body", &format!("cannot read the request body: {e}")),
    };
    let path_q = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut b = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path_q}", up.upstream.prefix));
    for (k, v) in &parts.headers {
        let name = k.as_str();
        if HOP_BY_HOP.contains(&name)
            || name == "host"
            || name == "authorization"
            || name == "content-length"
        {
            continue;
        }
        b = b.header(k, v);
    }
    b = b.header(header::HOST, up.upstream.authority.as_str());
    if let Some(k) = &gw.config.upstream_api_key {
        b = b.header(header::AUTHORIZATION, format!("Bearer {}", k.expose()));
    }
    let measured = parts.method == Method::POST;
    let upstream_req = b.body(body).expect("valid request");
    match up.upstream.send(&upstream_req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            for h in HOP_BY_HOP {
                parts.headers.remove(*h);
            }
            let ok = parts.status.is_success();
            let stream = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            let timed = Timed {
                inner: body,
                received,
                sse: stream.then(SseDecoder::new),
                first: None,
                last: None,
                tokens: 0,
                up: (measured && ok).then_some(up),
            };
            Response::from_parts(parts, timed.boxed())
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, "upstream_unreachable", None, &e),
    }
}

/// Reads an upstream's `/metrics` (any engine strobe knows), for the policy.
async fn engine_load(gw: &Gateway, up: &UpstreamState) -> EngineLoad {
    let mut b = Request::builder()
        .uri(format!("{}/metrics", up.upstream.prefix))
        .header(header::HOST, up.upstream.authority.as_str());
    if let Some(k) = &gw.config.upstream_api_key {
        b = b.header(header::AUTHORIZATION, format!("Bearer {}", k.expose()));
    }
    let Ok(resp) = tokio::time::timeout(
        Duration::from_secs(2),
        up.upstream
            .send(&b.body(Bytes::new()).expect("valid request")),
    )
    .await
    else {
        return EngineLoad::default();
    };
    let Ok(resp) = resp else {
        return EngineLoad::default();
    };
    if !resp.status().is_success() {
        return EngineLoad::default();
    }
    let Ok(Ok(body)) =
        tokio::time::timeout(Duration::from_secs(2), resp.into_body().collect()).await
    else {
        return EngineLoad::default();
    };
    let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    let reading = strobe_telemetry::mapping::read(&strobe_telemetry::prometheus::parse(&text));
    EngineLoad {
        waiting: reading.gauges.get("waiting_requests").copied(),
        kv_cache: reading.gauges.get("kv_cache_usage").copied(),
    }
}

/// Moves each upstream's cap once per interval until `stop`.
pub async fn policy_loop(gw: Arc<Gateway>, stop: Arc<Shutdown>) {
    let interval = gw.config.policy.interval;
    while !stop.is_requested() {
        tokio::time::sleep(interval).await;
        for up in &gw.upstreams {
            let load = engine_load(&gw, up).await;
            *up.engine.lock().unwrap_or_else(|p| p.into_inner()) = load;
            let cap = up
                .policy
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .step(Instant::now(), load);
            up.steer_tx.send_if_modified(|c| {
                let changed = *c != cap;
                *c = cap;
                changed
            });
        }
    }
}

/// What the page and `/metrics` show of one live batch.
pub struct LiveBatch {
    pub batch: Batch,
    /// The upstreams sending its lines now (the one that claimed it first).
    pub upstreams: Vec<usize>,
    /// Lines per second since this run of it began.
    pub lines_per_s: Option<f64>,
    pub eta_s: Option<f64>,
}

pub async fn live(gw: &Arc<Gateway>) -> Result<Vec<LiveBatch>, String> {
    let store = Arc::clone(&gw.store);
    let batches = match tokio::task::spawn_blocking(move || store.live_batches()).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(e.to_string()),
    };
    Ok(batches
        .into_iter()
        .map(|b| {
            let mut on: Vec<(usize, Running)> = gw
                .upstreams
                .iter()
                .filter_map(|u| {
                    let r = u
                        .running
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone()?;
                    (r.id == b.id).then_some((u.index, r))
                })
                .collect();
            on.sort_by_key(|(_, r)| r.since);
            // The rate since the first upstream began this run of it: every helper's lines count.
            let rate = on.first().and_then(|(_, r)| {
                let done = (b.completed + b.failed).saturating_sub(r.done_at_start);
                let secs = r.since.elapsed().as_secs_f64();
                (secs > 1.0 && done > 0).then(|| done as f64 / secs)
            });
            let upstreams = on.into_iter().map(|(i, _)| i).collect();
            let left = b.total.saturating_sub(b.completed + b.failed);
            LiveBatch {
                eta_s: rate.map(|r| left as f64 / r),
                lines_per_s: rate,
                upstreams,
                batch: b,
            }
        })
        .collect())
}

async fn metrics(gw: &Arc<Gateway>) -> Response<Body> {
    use std::fmt::Write;
    let mut out = String::new();
    let live = live(gw).await.unwrap_or_default();
    let _ = writeln!(out, "# HELP strobe_gateway_batch_concurrency The batch requests one upstream may have in flight now (the policy's cap).");
    let _ = writeln!(out, "# TYPE strobe_gateway_batch_concurrency gauge");
    for up in &gw.upstreams {
        let p = up.policy.lock().unwrap_or_else(|p| p.into_inner());
        let u = &up.upstream.url;
        let _ = writeln!(
            out,
            "strobe_gateway_batch_concurrency{{upstream=\"{u}\"}} {}",
            p.cap
        );
        let _ = writeln!(
            out,
            "strobe_gateway_batch_concurrency_max{{upstream=\"{u}\"}} {}",
            p.config.max
        );
        let reason = p.reason.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(
            out,
            "strobe_gateway_policy_info{{upstream=\"{u}\",adaptive=\"{}\",reason=\"{reason}\"}} 1",
            p.config.adaptive
        );
        let _ = writeln!(
            out,
            "strobe_gateway_policy_decreases_total{{upstream=\"{u}\"}} {}",
            p.decreases
        );
        let _ = writeln!(
            out,
            "strobe_gateway_policy_increases_total{{upstream=\"{u}\"}} {}",
            p.increases
        );
        drop(p);
        let seen = up
            .policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .interactive(Instant::now());
        let _ = writeln!(
            out,
            "strobe_gateway_interactive_requests_in_window{{upstream=\"{u}\"}} {}",
            seen.requests
        );
        for (name, v) in [
            ("ttft", seen.ttft_p95),
            ("tpot", seen.tpot_p95),
            ("latency", seen.latency_p95),
        ] {
            if let Some(v) = v {
                let _ = writeln!(
                    out,
                    "strobe_gateway_interactive_{name}_p95_seconds{{upstream=\"{u}\"}} {v}"
                );
            }
        }
        let e = *up.engine.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = e.waiting {
            let _ = writeln!(
                out,
                "strobe_gateway_upstream_waiting_requests{{upstream=\"{u}\"}} {w}"
            );
        }
        if let Some(k) = e.kv_cache {
            let _ = writeln!(
                out,
                "strobe_gateway_upstream_kv_cache_usage{{upstream=\"{u}\"}} {k}"
            );
        }
    }
    let _ = writeln!(out, "# TYPE strobe_gateway_live_batches gauge");
    for s in Status::ALL.iter().filter(|s| s.is_live()) {
        let n = live.iter().filter(|b| b.batch.status == *s).count();
        let _ = writeln!(
            out,
            "strobe_gateway_live_batches{{status=\"{}\"}} {n}",
            s.as_str()
        );
    }
    let left: u64 = live
        .iter()
        .map(|b| {
            b.batch
                .total
                .saturating_sub(b.batch.completed + b.batch.failed)
        })
        .sum();
    let _ = writeln!(out, "strobe_gateway_batch_lines_pending {left}");
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(full(out))
        .expect("valid response")
}

/// Serves until `stop`: the HTTP front, one batch worker per upstream and the policy loop.
pub async fn serve(gw: Arc<Gateway>, listener: tokio::net::TcpListener, stop: Arc<Shutdown>) {
    let mut tasks = tokio::task::JoinSet::new();
    for up in &gw.upstreams {
        tasks.spawn(crate::worker::run(
            Arc::clone(&gw),
            Arc::clone(up),
            Arc::clone(&stop),
        ));
    }
    tasks.spawn(policy_loop(Arc::clone(&gw), Arc::clone(&stop)));
    let mut signal = stop.signal();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = signal.wait() => break,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let gw = Arc::clone(&gw);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(Arc::clone(&gw), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .await;
        });
    }
    while tasks.join_next().await.is_some() {}
}
