//! The check before the first measured request: is the server there, does it accept our key, and
//! does it serve the model?

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use std::ops::ControlFlow;
use strobe_core::RunClock;

use crate::http1::Http1;
use crate::target::Target;
use std::net::SocketAddr;
use std::time::Duration;

use crate::target::BaseUrl;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("cannot reach {url}: {reason}. Is the server running and listening there?")]
    Unreachable { url: String, reason: String },
    #[error("{url} refused the credentials (HTTP {status}). Set the API key with --api-key-env NAME or --api-key-file PATH")]
    Auth { url: String, status: u16 },
    #[error("{url} answered HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error("model `{model}` is not served by {url}; it serves: {available}. Pass one of those with --model")]
    WrongModel {
        model: String,
        url: String,
        available: String,
    },
    #[error("{url} lists no models; pass --model NAME")]
    NoModels { url: String },
    #[error("{url} has no model list ({detail}); pass --model NAME")]
    NoModelList { url: String, detail: String },
}

/// What the check learnt.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The model to use: the one asked for, or the first listed.
    pub model: String,
    /// Every model the server lists (empty when it has no `/v1/models`).
    pub models: Vec<String>,
    /// A note for the user (e.g. the model list was unavailable).
    pub warning: Option<String>,
    /// The kernel agreed to stamp received data on this machine's sockets.
    pub kernel_timestamps: bool,
    /// The model's context length, when the server lists it (vLLM's `max_model_len`).
    pub max_model_len: Option<u32>,
    /// The TLS version the check negotiated (`https://` only).
    pub tls_version: Option<String>,
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
    #[serde(default)]
    max_model_len: Option<u32>,
}

/// Sends one whole request on a fresh connection: status, body (up to 16 MiB), and whether the
/// kernel stamps this machine's sockets.
async fn exchange(
    base: &BaseUrl,
    addr: SocketAddr,
    request: &[u8],
    kernel_stamps: bool,
) -> Result<(u16, Vec<u8>, bool), String> {
    exchange_tls(base, addr, request, kernel_stamps)
        .await
        .map(|(s, b, k, _)| (s, b, k))
}

/// [`exchange`], also returning the negotiated TLS version.
async fn exchange_tls(
    base: &BaseUrl,
    addr: SocketAddr,
    request: &[u8],
    kernel_stamps: bool,
) -> Result<(u16, Vec<u8>, bool, Option<String>), String> {
    let clock = RunClock::starting_now();
    let mut wire = Http1::connect(addr, kernel_stamps, base.tls.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    wire.write_all(request).await.map_err(|e| e.to_string())?;
    let head = wire.read_head(&clock).await.map_err(|e| e.to_string())?;
    let (body, _) = read_capped(&mut wire, &head, &clock)
        .await
        .map_err(|e| e.to_string())?;
    Ok((head.status, body, wire.kernel_stamps, wire.tls_version()))
}

/// The body of the response whose head was just read, up to 16 MiB (a longer one is cut there
/// and its end is [`BodyEnd::Stopped`](crate::http1::BodyEnd)).
async fn read_capped(
    wire: &mut Http1,
    head: &crate::http1::Head,
    clock: &RunClock,
) -> Result<(Vec<u8>, crate::http1::BodyEnd), crate::http1::WireError> {
    let mut body = Vec::new();
    let end = wire
        .read_body(head.body, clock, |d, _| {
            body.extend_from_slice(d);
            if body.len() > 16 * 1024 * 1024 {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })
        .await?;
    Ok((body, end))
}

/// `GET path` (below the base URL's prefix) on a fresh connection: status, body (up to 16 MiB),
/// and whether the kernel stamps this machine's sockets.
pub async fn get(
    base: &BaseUrl,
    addr: SocketAddr,
    path: &str,
    headers: &HeaderMap,
) -> Result<(u16, Vec<u8>, bool), String> {
    exchange(base, addr, &Target::get_bytes(base, headers, path), true).await
}

/// The bytes of `POST path` with a JSON body; `close` asks the server to close after it.
fn post_bytes(
    base: &BaseUrl,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut req = format!("POST {}{} HTTP/1.1\r\n", base.prefix, path).into_bytes();
    for (name, value) in headers {
        req.extend_from_slice(name.as_str().as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    if close {
        req.extend_from_slice(b"connection: close\r\n");
    }
    req.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);
    req
}

/// `POST path` with a JSON body on a fresh connection: status and body (up to 16 MiB).
pub async fn post_json(
    base: &BaseUrl,
    addr: SocketAddr,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    // `connection: close` lets the server close first, so many short calls leave no client ports
    // in TIME_WAIT.
    let req = post_bytes(base, path, headers, body, true);
    let (status, answer, _) = exchange(base, addr, &req, false).await?;
    Ok((status, answer))
}

/// Many small JSON calls to one server over connections kept open between them (for
/// `--tokenize server`, which makes one call per prompt: a fresh connection each cost a
/// handshake and left the server hundreds of sockets to close). Idle connections are kept up
/// to `keep`; one the server closed while idle is replaced and the call sent again (callers
/// send idempotent requests only).
pub struct JsonCalls {
    base: BaseUrl,
    addr: SocketAddr,
    keep: usize,
    idle: std::sync::Mutex<Vec<Http1>>,
    opened: std::sync::atomic::AtomicU64,
}

impl JsonCalls {
    pub fn new(base: BaseUrl, addr: SocketAddr, keep: usize) -> JsonCalls {
        JsonCalls {
            base,
            addr,
            keep,
            idle: std::sync::Mutex::new(Vec::new()),
            opened: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Connections opened so far.
    pub fn opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `POST path` with a JSON body: status and body (up to 16 MiB).
    pub async fn post(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), String> {
        let request = post_bytes(&self.base, path, headers, body, false);
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(wire) = pooled {
            match self.exchange_on(wire, &request).await {
                Ok(answer) => return Ok(answer),
                // Closed while idle: nothing reached the server's handler, send it again.
                Err((false, _)) => {}
                Err((true, e)) => return Err(e),
            }
        }
        let wire = Http1::connect(self.addr, false, self.base.tls.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.exchange_on(wire, &request).await.map_err(|(_, e)| e)
    }

    /// One exchange on `wire`, which goes back to the pool when it can be reused. An error says
    /// whether any of the response had arrived.
    async fn exchange_on(
        &self,
        mut wire: Http1,
        request: &[u8],
    ) -> Result<(u16, Vec<u8>), (bool, String)> {
        let clock = RunClock::starting_now();
        wire.write_all(request)
            .await
            .map_err(|e| (false, e.to_string()))?;
        let head = match wire.read_head(&clock).await {
            Ok(h) => h,
            Err(e @ crate::http1::WireError::Malformed(_)) => return Err((true, e.to_string())),
            // Closed or reset before a whole head: nothing usable came back.
            Err(e) => return Err((false, e.to_string())),
        };
        let (body, end) = read_capped(&mut wire, &head, &clock)
            .await
            .map_err(|e| (true, e.to_string()))?;
        if end == crate::http1::BodyEnd::Complete && wire.reusable {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.keep {
                idle.push(wire);
            }
        }
        Ok((head.status, body))
    }
}

/// What a server said to one small request with a run's exact body fields.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyProbe {
    Accepted,
    /// A 4xx: every request of the run would get it. `field` is the body field the answer names,
    /// when it names one strobe (or `--body`) added.
    Refused {
        status: u16,
        message: String,
        field: Option<String>,
    },
    /// No verdict (5xx, timeout, connection trouble): the run goes on and will show it.
    Inconclusive(String),
}

/// Sends one request shaped like every request of `target` (its API, streaming and extra body
/// fields), with a two-word prompt and `max_tokens: 1`, and says whether the server accepts it.
pub async fn probe_body(target: &Target, timeout: Duration) -> BodyProbe {
    let spec = strobe_core::RequestSpec {
        index: 0,
        class: strobe_core::ClassId(0),
        prompt: strobe_core::Prompt::Text("Hello there".into()),
        input_tokens: None,
        max_tokens: 1,
        warmup: true,
    };
    // Marked, so that a server can leave it out of what it counts (strobe's own target does).
    let request = target.request_bytes_with(&spec, &[("x-strobe-probe", "body")]);
    let answer = tokio::time::timeout(
        timeout,
        exchange(&target.base, target.addr, &request, false),
    )
    .await;
    let (status, body) = match answer {
        Err(_) => return BodyProbe::Inconclusive(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => return BodyProbe::Inconclusive(e),
        Ok(Ok((status, body, _))) => (status, body),
    };
    if (200..300).contains(&status) {
        return BodyProbe::Accepted;
    }
    let message = String::from_utf8_lossy(&body[..body.len().min(600)])
        .trim()
        .to_owned();
    // 408 and 429 say "not now", not "never": no verdict on the body.
    if !(400..500).contains(&status) || status == 408 || status == 429 {
        return BodyProbe::Inconclusive(format!("HTTP {status}: {message}"));
    }
    // Fields strobe or --body added to the standard request, the best-known first.
    let mut added: Vec<String> = Vec::new();
    if target.extra_body.contains_key("ignore_eos") {
        added.push("ignore_eos".into());
    }
    if target.stream {
        added.push("stream_options".into());
    }
    added.extend(
        target
            .extra_body
            .keys()
            .filter(|k| *k != "ignore_eos")
            .cloned(),
    );
    let field = added.into_iter().find(|f| message.contains(f.as_str()));
    BodyProbe::Refused {
        status,
        message,
        field,
    }
}

/// Asks `GET /v1/models` (10 s bound) and checks the answer against `model`.
pub async fn preflight(
    base: &BaseUrl,
    addr: SocketAddr,
    headers: &HeaderMap,
    model: Option<&str>,
) -> Result<ServerInfo, PreflightError> {
    let path = "/v1/models";
    let url = base.url_of("/v1/models");
    let request = Target::get_bytes(base, headers, path);
    let (status, body, kernel_timestamps, tls_version) = tokio::time::timeout(
        Duration::from_secs(10),
        exchange_tls(base, addr, &request, true),
    )
    .await
    .map_err(|_| PreflightError::Unreachable {
        url: url.clone(),
        reason: "no answer within 10 s".into(),
    })?
    .map_err(|reason| PreflightError::Unreachable {
        url: url.clone(),
        reason,
    })?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(PreflightError::Auth {
            url,
            status: status.as_u16(),
        });
    }
    if !status.is_success() {
        if let Some(m) = model {
            if status == StatusCode::NOT_FOUND {
                return Ok(ServerInfo {
                    model: m.to_owned(),
                    models: vec![],
                    warning: Some(format!(
                        "{url} answered 404; going on with --model {m} unchecked"
                    )),
                    kernel_timestamps,
                    max_model_len: None,
                    tls_version,
                });
            }
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_owned();
        return Err(PreflightError::Http {
            url,
            status: status.as_u16(),
            body: text,
        });
    }
    let list: ModelList =
        serde_json::from_slice(&body).map_err(|e| PreflightError::NoModelList {
            url: url.clone(),
            detail: format!("answer is not an OpenAI model list: {e}"),
        })?;
    let context_of = |m: &str| {
        list.data
            .iter()
            .find(|e| e.id == m)
            .and_then(|e| e.max_model_len)
    };
    let models: Vec<String> = list.data.iter().map(|m| m.id.clone()).collect();
    match model {
        Some(m) if models.iter().any(|x| x == m) => Ok(ServerInfo {
            model: m.to_owned(),
            max_model_len: context_of(m),
            models,
            warning: None,
            kernel_timestamps,
            tls_version: tls_version.clone(),
        }),
        Some(m) => Err(PreflightError::WrongModel {
            model: m.to_owned(),
            url,
            available: models.join(", "),
        }),
        None => match models.first() {
            Some(first) => Ok(ServerInfo {
                model: first.clone(),
                max_model_len: context_of(first),
                models,
                warning: None,
                kernel_timestamps,
                tls_version,
            }),
            None => Err(PreflightError::NoModels { url }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads one request (head and `content-length` body) from `s`; false at end of stream.
    async fn read_request(s: &mut tokio::net::TcpStream) -> bool {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..at]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if got.len() >= at + 4 + len {
                    return true;
                }
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[tokio::test]
    async fn json_calls_reuse_a_connection_and_replace_one_the_server_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Connection 1 answers two requests and then drops, without saying it would; the
        // next connection answers whatever comes.
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                n += 1;
                let first = n == 1;
                tokio::spawn(async move {
                    let mut answered = 0;
                    while read_request(&mut s).await {
                        let body = format!("{{\"count\":{answered}}}");
                        let head =
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                        s.write_all(head.as_bytes()).await.unwrap();
                        s.write_all(body.as_bytes()).await.unwrap();
                        answered += 1;
                        if first && answered == 2 {
                            return;
                        }
                    }
                });
            }
        });
        let base = BaseUrl::parse(&format!("http://{addr}")).unwrap();
        let calls = JsonCalls::new(base, addr, 4);
        let h = HeaderMap::new();
        let mut counts = Vec::new();
        for _ in 0..5 {
            let (status, body) = calls.post("/tokenize", &h, b"{}").await.unwrap();
            assert_eq!(status, 200);
            counts.push(String::from_utf8(body).unwrap());
        }
        // Two on the first connection, then (after one attempt finds it closed) three on the
        // second.
        assert_eq!(
            counts,
            [
                "{\"count\":0}",
                "{\"count\":1}",
                "{\"count\":0}",
                "{\"count\":1}",
                "{\"count\":2}"
            ]
        );
        assert_eq!(calls.opened(), 2);
    }
}
