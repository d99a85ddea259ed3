//! Where requests go and what every request carries: base URL, API, model, headers, body fields.

use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::HeaderMap;
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use strobe_core::{Api, Prompt, RequestSpec, Secret};

use crate::tls::{TlsClient, TlsOptions};

/// A problem with the target settings, found before any request is sent.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("invalid URL `{url}`: {reason}; expected something like http://127.0.0.1:8000")]
    BadUrl { url: String, reason: String },
    #[error("cannot resolve host of `{url}`: {source}")]
    Resolve { url: String, source: std::io::Error },
    #[error("invalid header `{header}`: {reason}; expected `-H 'Name: value'`")]
    BadHeader { header: String, reason: String },
    #[error("the API key holds characters not allowed in an HTTP header")]
    BadApiKey,
    #[error("--ca-cert {path}: {reason}")]
    CaCert { path: String, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
}

/// The parsed base URL.
#[derive(Clone, Debug)]
pub struct BaseUrl {
    /// As the user gave it, minus any trailing `/v1` and `/`, and minus any `user:password@`.
    pub display: String,
    pub host_header: String,
    /// Path prefix before `/v1` (usually empty).
    pub prefix: String,
    pub host: String,
    pub port: u16,
    /// For `https://`: how connections are made (default trust until [`BaseUrl::with_tls`]).
    pub tls: Option<Arc<TlsClient>>,
    /// `user:password@` of the URL, sent as Basic auth (never shown).
    pub userinfo: Option<(String, Secret)>,
}

impl BaseUrl {
    /// Parses `http://host[:port][/prefix][/v1]`. A trailing `/v1` is accepted and dropped, since
    /// users copy either form from their server's docs.
    pub fn parse(url: &str) -> Result<BaseUrl, TargetError> {
        let bad = |reason: &str| TargetError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("the scheme must be http:// or https://")),
        };
        let raw_host = uri.host().ok_or_else(|| bad("no host"))?;
        let host = raw_host.trim_matches(['[', ']']).to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let mut prefix = uri.path().trim_end_matches('/').to_owned();
        if let Some(p) = prefix.strip_suffix("/v1") {
            prefix = p.to_owned();
        }
        // The authority without `user:password@`: that never goes into a Host header or a report.
        let authority = uri
            .authority()
            .map(|a| a.as_str().rsplit('@').next().unwrap_or("").to_owned())
            .unwrap_or_default();
        let userinfo = uri
            .authority()
            .and_then(|a| a.as_str().rsplit_once('@'))
            .map(|(info, _)| match info.split_once(':') {
                Some((user, pass)) => (user.to_owned(), Secret::new(pass)),
                None => (info.to_owned(), Secret::new("")),
            });
        let tls = if https {
            Some(Arc::new(TlsClient::new(&host, &TlsOptions::default())?))
        } else {
            None
        };
        Ok(BaseUrl {
            display: format!(
                "{}://{authority}{prefix}",
                if https { "https" } else { "http" }
            ),
            host_header: authority,
            prefix,
            host,
            port,
            tls,
            userinfo,
        })
    }

    /// The same URL with TLS checked as `options` say (a CA file, or `--insecure`). Plain
    /// `http://` URLs are refused those options, since they would mean nothing.
    pub fn with_tls(mut self, options: &TlsOptions) -> Result<BaseUrl, TargetError> {
        if *options == TlsOptions::default() {
            return Ok(self);
        }
        if self.tls.is_none() {
            return Err(TargetError::Tls(format!(
                "--ca-cert and --insecure go with https:// URLs; {} is plain HTTP",
                self.display
            )));
        }
        self.tls = Some(Arc::new(TlsClient::new(&self.host, options)?));
        Ok(self)
    }

    /// Whether `other` is the same server (scheme, host and port): credentials go to it only.
    pub fn same_origin(&self, other: &BaseUrl) -> bool {
        self.tls.is_some() == other.tls.is_some()
            && self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
    }

    pub async fn resolve(&self) -> Result<SocketAddr, TargetError> {
        let mut addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|source| TargetError::Resolve {
                url: self.display.clone(),
                source,
            })?;
        addrs.next().ok_or_else(|| TargetError::Resolve {
            url: self.display.clone(),
            source: std::io::Error::other("no address found"),
        })
    }

    /// Full URL of a path, for messages.
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{}", self.display, path)
    }
}

/// Everything constant across the requests of a run.
#[derive(Debug)]
pub struct Target {
    pub base: BaseUrl,
    pub addr: SocketAddr,
    pub api: Api,
    pub model: String,
    pub stream: bool,
    /// Headers sent with every request (auth included; never printed).
    pub headers: HeaderMap,
    /// Extra top-level JSON body fields; they override strobe's own fields of the same name.
    pub extra_body: Map<String, Value>,
    pub request_timeout: std::time::Duration,
    /// No response head within this time after the request starts (connect included) fails
    /// the request as `first_byte_timeout`.
    pub first_byte_timeout: Option<std::time::Duration>,
    /// Nothing received for this long in the middle of a response body fails it as
    /// `idle_timeout`.
    pub idle_timeout: Option<std::time::Duration>,
    /// Date received bytes by the kernel's receive timestamp (see `strobe-sockstamp`) instead of
    /// the moment the reading task ran.
    pub kernel_timestamps: bool,
    /// How the sockets opened for this target were dated.
    pub sockets: SocketStamps,
}

/// Sockets opened, by how their reads are dated: the report says what was really used.
#[derive(Debug, Default)]
pub struct SocketStamps {
    pub kernel: std::sync::atomic::AtomicU64,
    pub user: std::sync::atomic::AtomicU64,
}

impl SocketStamps {
    pub fn get(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.kernel.load(Relaxed), self.user.load(Relaxed))
    }
}

/// Builds the shared header map: host, content type, auth and the user's extra headers.
pub fn build_headers(
    base: &BaseUrl,
    api_key: Option<&str>,
    extra: &[(String, String)],
) -> Result<HeaderMap, TargetError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        HOST,
        HeaderValue::from_str(&base.host_header).map_err(|_| TargetError::BadUrl {
            url: base.display.clone(),
            reason: "host is not a valid header value".into(),
        })?,
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(key) = api_key {
        let mut v =
            HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| TargetError::BadApiKey)?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    } else if let Some((user, pass)) = &base.userinfo {
        use base64::Engine;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", pass.expose()));
        let mut v =
            HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| TargetError::BadApiKey)?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
    for (name, value) in extra {
        let bad = |reason: &str| TargetError::BadHeader {
            header: name.clone(),
            reason: reason.into(),
        };
        let name =
            HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| bad(&e.to_string()))?;
        let mut value = HeaderValue::from_str(value.trim()).map_err(|e| bad(&e.to_string()))?;
        if strobe_core::is_secret_name(name.as_str()) {
            value.set_sensitive(true);
        }
        headers.append(name, value);
    }
    Ok(headers)
}

impl Target {
    /// Opens a connection (TLS for `https://`), counting how its reads will be dated.
    pub async fn connect(&self) -> std::io::Result<crate::http1::Http1> {
        let wire = crate::http1::Http1::connect(
            self.addr,
            self.kernel_timestamps,
            self.base.tls.as_deref(),
        )
        .await?;
        let counter = if wire.kernel_stamps {
            &self.sockets.kernel
        } else {
            &self.sockets.user
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(wire)
    }

    /// The whole HTTP/1.1 request for `spec`: request line, headers, body.
    pub fn request_bytes(&self, spec: &RequestSpec) -> Vec<u8> {
        self.request_bytes_with(spec, &[])
    }

    /// [`Target::request_bytes`] with extra headers.
    pub fn request_bytes_with(&self, spec: &RequestSpec, extra: &[(&str, &str)]) -> Vec<u8> {
        let body = self.body(spec);
        let mut out = Vec::with_capacity(body.len() + 512);
        out.extend_from_slice(b"POST ");
        out.extend_from_slice(self.base.prefix.as_bytes());
        let path = match &spec.prompt {
            Prompt::Raw(r) => r.path.as_str(),
            _ => self.api.path(),
        };
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in extra {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// A bodiless GET request for `path` (below the base URL's prefix).
    pub fn get_bytes(base: &BaseUrl, headers: &HeaderMap, path: &str) -> Vec<u8> {
        let mut out = format!("GET {}{} HTTP/1.1\r\n", base.prefix, path).into_bytes();
        for (name, value) in headers {
            if name == CONTENT_TYPE {
                continue;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The JSON body for one request.
    pub fn body(&self, spec: &RequestSpec) -> Vec<u8> {
        if let Prompt::Raw(r) = &spec.prompt {
            return r.body.as_bytes().to_vec();
        }
        let mut body = Map::with_capacity(8 + self.extra_body.len());
        body.insert("model".into(), Value::String(self.model.clone()));
        match (self.api, &spec.prompt) {
            (Api::Completions, Prompt::Text(t)) => {
                body.insert("prompt".into(), Value::String(t.clone()));
            }
            (Api::Completions, Prompt::Messages(m)) => {
                // A conversation sent to completions: its turns joined as plain text.
                let text = m
                    .iter()
                    .map(|m| m.content.joined_text())
                    .collect::<Vec<_>>()
                    .join("\n");
                body.insert("prompt".into(), Value::String(text));
            }
            (Api::Chat, Prompt::Text(t)) => {
                body.insert(
                    "messages".into(),
                    serde_json::json!([{ "role": "user", "content": t }]),
                );
            }
            (Api::Chat, Prompt::Messages(m)) => {
                body.insert(
                    "messages".into(),
                    serde_json::to_value(m).unwrap_or_default(),
                );
            }
            (_, Prompt::Raw(_)) => unreachable!("returned above"),
        }
        body.insert("max_tokens".into(), Value::from(spec.max_tokens));
        body.insert("stream".into(), Value::Bool(self.stream));
        if self.stream {
            body.insert(
                "stream_options".into(),
                serde_json::json!({ "include_usage": true }),
            );
        }
        for (k, v) in &self.extra_body {
            body.insert(k.clone(), v.clone());
        }
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_forms() {
        let b = BaseUrl::parse("http://127.0.0.1:8000/v1/").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.prefix.as_str()),
            ("127.0.0.1", 8000, "")
        );
        assert_eq!(b.url_of("/v1/models"), "http://127.0.0.1:8000/v1/models");
        let b = BaseUrl::parse("http://localhost/gw").unwrap();
        assert_eq!((b.port, b.prefix.as_str()), (80, "/gw"));
        let b = BaseUrl::parse("https://api.example.com/v1").unwrap();
        assert_eq!((b.port, b.tls.is_some()), (443, true));
        assert_eq!(b.display, "https://api.example.com");
        let b = BaseUrl::parse("http://bob:hunter2@10.0.0.1:8000").unwrap();
        assert_eq!(
            (b.display.as_str(), b.host_header.as_str()),
            ("http://10.0.0.1:8000", "10.0.0.1:8000")
        );
        let h = build_headers(&b, None, &[]).unwrap();
        // bob:hunter2, as Basic auth, never in the Host header.
        assert_eq!(h[AUTHORIZATION], "Basic Ym9iOmh1bnRlcjI=");
        assert!(!format!("{b:?}").contains("hunter2"));
        assert!(BaseUrl::parse("http://x")
            .unwrap()
            .with_tls(&TlsOptions {
                insecure: true,
                ..Default::default()
            })
            .is_err());
        assert!(BaseUrl::parse("ftp://x").is_err());
        assert!(BaseUrl::parse("not a url").is_err());
    }

    #[test]
    fn headers_are_validated_and_auth_is_sensitive() {
        let b = BaseUrl::parse("http://h:1").unwrap();
        let h = build_headers(
            &b,
            Some("sk-secret"),
            &[("X-A".into(), "1".into()), ("X-Api-Key".into(), "k".into())],
        )
        .unwrap();
        assert!(h[AUTHORIZATION].is_sensitive() && h["x-api-key"].is_sensitive());
        assert_eq!(h["x-a"], "1");
        let e = build_headers(&b, None, &[("bad name".into(), "v".into())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad name"), "{e}");
    }
}
