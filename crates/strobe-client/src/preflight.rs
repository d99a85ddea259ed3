//! The check before the first measured request: is the server there, does it accept our key, and
//! does it serve the model?

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
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
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

async fn get(
    addr: SocketAddr,
    path: &str,
    headers: &HeaderMap,
) -> Result<(StatusCode, Bytes), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = http::Request::get(path);
    if let Some(h) = req.headers_mut() {
        h.clone_from(headers);
        h.remove(http::header::CONTENT_TYPE);
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// Asks `GET /v1/models` (10 s bound) and checks the answer against `model`.
pub async fn preflight(
    base: &BaseUrl,
    addr: SocketAddr,
    headers: &HeaderMap,
    model: Option<&str>,
) -> Result<ServerInfo, PreflightError> {
    let path = format!("{}/v1/models", base.prefix);
    let url = base.url_of("/v1/models");
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), get(addr, &path, headers))
        .await
        .map_err(|_| PreflightError::Unreachable {
            url: url.clone(),
            reason: "no answer within 10 s".into(),
        })?
        .map_err(|reason| PreflightError::Unreachable {
            url: url.clone(),
            reason,
        })?;
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
    let models: Vec<String> = list.data.into_iter().map(|m| m.id).collect();
    match model {
        Some(m) if models.iter().any(|x| x == m) => Ok(ServerInfo {
            model: m.to_owned(),
            models,
            warning: None,
        }),
        Some(m) => Err(PreflightError::WrongModel {
            model: m.to_owned(),
            url,
            available: models.join(", "),
        }),
        None => match models.first() {
            Some(first) => Ok(ServerInfo {
                model: first.clone(),
                models,
                warning: None,
            }),
            None => Err(PreflightError::NoModels { url }),
        },
    }
}
