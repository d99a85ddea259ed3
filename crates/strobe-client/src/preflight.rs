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
    let mut body = Vec::new();
    wire.read_body(head.body, &clock, |d, _| {
        body.extend_from_slice(d);
        if body.len() > 16 * 1024 * 1024 {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok((head.status, body, wire.kernel_stamps, wire.tls_version()))
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

/// `POST path` with a JSON body on a fresh connection: status and body (up to 16 MiB).
pub async fn post_json(
    base: &BaseUrl,
    addr: SocketAddr,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let mut req = format!("POST {}{} HTTP/1.1\r\n", base.prefix, path).into_bytes();
    for (name, value) in headers {
        req.extend_from_slice(name.as_str().as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    // `connection: close` lets the server close first, so many short calls leave no client ports
    // in TIME_WAIT.
    req.extend_from_slice(
        format!(
            "connection: close\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    req.extend_from_slice(body);
    let (status, answer, _) = exchange(base, addr, &req, false).await?;
    Ok((status, answer))
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
