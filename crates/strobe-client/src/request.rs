//! Sending one request and turning what comes back into a [`RequestRecord`].

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::ops::ControlFlow;
use std::sync::Arc;
use strobe_core::{ErrorKind, Outcome, RequestRecord, RequestSpec, RunClock, TokenSource};
use tokio::net::TcpStream;

use crate::chunk::{parse_chunk, Usage};
use crate::sse::SseDecoder;
use crate::target::Target;

/// Largest error body kept for a failure message.
const ERROR_BODY_LIMIT: usize = 2048;
/// How long to wait for the end of the body once `[DONE]` has arrived.
const DRAIN_AFTER_DONE: std::time::Duration = std::time::Duration::from_secs(1);

/// One keep-alive HTTP/1.1 connection, owned by one worker (no sharing, no locks).
pub struct Connection {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// Opens a TCP connection with Nagle off and hands it to hyper.
pub async fn open(target: &Target) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

impl Connection {
    pub fn new(target: Arc<Target>) -> Connection {
        Connection {
            target,
            sender: None,
        }
    }

    /// Opens the connection ahead of the first request (so connect time stays out of the run).
    pub async fn warm(&mut self) -> std::io::Result<()> {
        if self.sender.is_none() {
            self.sender = Some(open(&self.target).await?);
        }
        Ok(())
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends `spec` and fills `record` as the response arrives. `record` is updated in place so that
    /// whoever cancels this future still holds the partial timings.
    pub async fn execute(
        &mut self,
        spec: &RequestSpec,
        clock: &RunClock,
        record: &mut RequestRecord,
    ) {
        let timeout = self.target.request_timeout;
        match tokio::time::timeout(timeout, self.execute_inner(spec, clock, record)).await {
            Ok(outcome) => {
                if !outcome.is_success() {
                    // A failed response may leave the connection mid-message: start afresh.
                    self.sender = None;
                }
                record.outcome = outcome;
            }
            Err(_) => {
                self.sender = None;
                record.outcome = Outcome::Failed {
                    kind: ErrorKind::Timeout,
                    message: format!("no complete response within {timeout:?}"),
                };
            }
        }
        if record.end_ns == 0 {
            record.end_ns = clock.now_ns();
        }
        self.finish_counts(spec, record);
    }

    /// Drops the connection (after a cancelled request its state is unknown).
    pub fn reset(&mut self) {
        self.sender = None;
    }

    fn finish_counts(&self, spec: &RequestSpec, record: &mut RequestRecord) {
        if record.output_tokens.is_none() && self.target.stream && record.content_chunks() > 0 {
            record.output_tokens = Some(record.content_chunks() as u32);
            record.output_tokens_source = Some(TokenSource::Chunks);
        }
        if record.input_tokens.is_none() {
            if let Some(n) = spec.input_tokens {
                record.input_tokens = Some(n);
                record.input_tokens_source = Some(TokenSource::Workload);
            }
        }
    }

    async fn execute_inner(
        &mut self,
        spec: &RequestSpec,
        clock: &RunClock,
        record: &mut RequestRecord,
    ) -> Outcome {
        let target = Arc::clone(&self.target);
        let body = Bytes::from(target.body(spec));
        let path = format!("{}{}", self.target.base.prefix, self.target.api.path());
        // One retry when a reused keep-alive connection turns out closed before any response.
        let mut attempts = 0;
        let response = loop {
            attempts += 1;
            let reused = self.sender.is_some();
            let sender = match self.ready_sender().await {
                Ok(s) => s,
                Err(e) => {
                    record.sent_ns = clock.now_ns();
                    return failed(
                        ErrorKind::Connect,
                        format!("cannot connect to {}: {e}", target.base.display),
                    );
                }
            };
            let mut req = http::Request::builder()
                .method(http::Method::POST)
                .uri(path.as_str());
            if let Some(h) = req.headers_mut() {
                h.clone_from(&target.headers);
            }
            let req = match req.body(Full::new(body.clone())) {
                Ok(r) => r,
                Err(e) => return failed(ErrorKind::Connect, format!("cannot build request: {e}")),
            };
            record.sent_ns = clock.now_ns();
            match sender.send_request(req).await {
                Ok(resp) => break resp,
                Err(e) if reused && attempts == 1 && (e.is_canceled() || e.is_closed()) => {
                    self.sender = None;
                    continue;
                }
                Err(e) => {
                    self.sender = None;
                    return failed(
                        ErrorKind::Connect,
                        format!("request failed before a response: {e}"),
                    );
                }
            }
        };

        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let mut text = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    text.extend_from_slice(
                        &d[..d
                            .len()
                            .min(ERROR_BODY_LIMIT - text.len().min(ERROR_BODY_LIMIT))],
                    );
                }
            }
            return failed(
                ErrorKind::HttpStatus(status.as_u16()),
                format!("HTTP {status}: {}", String::from_utf8_lossy(&text).trim()),
            );
        }

        if !self.target.stream {
            return self.read_whole(body, clock, record).await;
        }

        let mut decoder = SseDecoder::new();
        let mut state = StreamState::default();
        let sent = record.sent_ns;
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    let Some(data) = frame.data_ref() else {
                        continue;
                    };
                    let now = clock.now_ns();
                    let flow =
                        decoder.feed(data, |event| state.on_event(event, now - sent, record));
                    if flow.is_break() {
                        break;
                    }
                }
                Some(Err(e)) => {
                    return failed(
                        ErrorKind::StreamCut,
                        format!(
                            "stream broke after {} content chunks: {e}",
                            record.content_chunks()
                        ),
                    );
                }
                None => {
                    let now = clock.now_ns();
                    let _ = decoder.finish(|event| state.on_event(event, now - sent, record));
                    break;
                }
            }
        }
        record.end_ns = clock.now_ns();
        if let Some(outcome) = state.failure.take() {
            return outcome;
        }
        if state.done {
            // Read the rest (the chunked terminator) so the connection stays reusable; a server
            // that keeps the body open after [DONE] costs a reconnect, not a failure.
            let drained = tokio::time::timeout(DRAIN_AFTER_DONE, async {
                while let Some(frame) = body.frame().await {
                    if frame.is_err() {
                        return false;
                    }
                }
                true
            })
            .await;
            if !matches!(drained, Ok(true)) {
                self.sender = None;
            }
        }
        if !state.done {
            return failed(
                ErrorKind::StreamCut,
                format!(
                    "stream ended without [DONE] after {} content chunks",
                    record.content_chunks()
                ),
            );
        }
        if record.first_token_ns.is_none() {
            return failed(
                ErrorKind::EmptyResponse,
                "the stream held no generated text".into(),
            );
        }
        Outcome::Success
    }

    async fn ready_sender(&mut self) -> std::io::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = Some(open(&self.target).await?);
        }
        let sender = self.sender.as_mut().expect("set above");
        if sender.ready().await.is_err() {
            self.sender = Some(open(&self.target).await?);
            let fresh = self.sender.as_mut().expect("set above");
            fresh.ready().await.map_err(std::io::Error::other)?;
            return Ok(fresh);
        }
        Ok(self.sender.as_mut().expect("set above"))
    }

    async fn read_whole(
        &mut self,
        body: hyper::body::Incoming,
        clock: &RunClock,
        record: &mut RequestRecord,
    ) -> Outcome {
        let bytes = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return failed(ErrorKind::StreamCut, format!("response body broke: {e}")),
        };
        record.end_ns = clock.now_ns();
        match parse_chunk(&bytes) {
            Err(e) => failed(
                ErrorKind::Malformed,
                format!("response is not the expected JSON: {e}"),
            ),
            Ok(info) => {
                if let Some(err) = info.error {
                    return failed(ErrorKind::ServerError, err);
                }
                apply_usage(info.usage, record);
                if !info.has_content {
                    return failed(
                        ErrorKind::EmptyResponse,
                        "the response held no generated text".into(),
                    );
                }
                Outcome::Success
            }
        }
    }
}

fn failed(kind: ErrorKind, message: String) -> Outcome {
    Outcome::Failed { kind, message }
}

fn apply_usage(usage: Option<Usage>, record: &mut RequestRecord) {
    let Some(u) = usage else { return };
    if let Some(n) = u.completion_tokens {
        record.output_tokens = Some(n);
        record.output_tokens_source = Some(TokenSource::Usage);
    }
    if let Some(n) = u.prompt_tokens {
        record.input_tokens = Some(n);
        record.input_tokens_source = Some(TokenSource::Usage);
    }
}

#[derive(Default)]
struct StreamState {
    done: bool,
    failure: Option<Outcome>,
}

impl StreamState {
    #[inline]
    fn on_event(
        &mut self,
        data: &[u8],
        since_sent_ns: u64,
        record: &mut RequestRecord,
    ) -> ControlFlow<()> {
        if data == b"[DONE]" {
            self.done = true;
            return ControlFlow::Break(());
        }
        match parse_chunk(data) {
            Ok(info) => {
                if let Some(err) = info.error {
                    self.failure = Some(failed(ErrorKind::ServerError, err));
                    return ControlFlow::Break(());
                }
                if info.has_content {
                    if record.first_token_ns.is_none() {
                        record.first_token_ns = Some(record.sent_ns + since_sent_ns);
                    }
                    record.chunk_arrivals_ns.since_sent_ns.push(since_sent_ns);
                }
                apply_usage(info.usage, record);
                ControlFlow::Continue(())
            }
            Err(e) => {
                let shown = String::from_utf8_lossy(&data[..data.len().min(120)]).into_owned();
                self.failure = Some(failed(
                    ErrorKind::Malformed,
                    format!("bad stream event ({e}): {shown}"),
                ));
                ControlFlow::Break(())
            }
        }
    }
}
