//! Sending one request and turning what comes back into a [`RequestRecord`].

use std::ops::ControlFlow;
use std::sync::Arc;
use strobe_core::{
    Captured, ErrorKind, Outcome, Prompt, RequestRecord, RequestSpec, RunClock, TokenSource,
};

use crate::chunk::{parse_chunk, Usage};
use crate::http1::{BodyEnd, Http1, WireError};
use crate::sse::SseDecoder;
use crate::target::Target;

/// Largest error body kept for a failure message.
const ERROR_BODY_LIMIT: usize = 2048;
/// Largest error body kept whole for a batch line's error file.
const CAPTURED_ERROR_LIMIT: usize = 1024 * 1024;
/// Largest whole (non-streamed) response body accepted.
pub const MAX_WHOLE_BODY: usize = 256 * 1024 * 1024;
/// How long to wait for the end of the body once `[DONE]` has arrived.
const DRAIN_AFTER_DONE: std::time::Duration = std::time::Duration::from_secs(1);

/// One keep-alive connection, owned by one worker (no sharing, no locks).
pub struct Connection {
    target: Arc<Target>,
    wire: Option<Http1>,
    /// Whole-body buffer for non-streamed responses, reused.
    whole: Vec<u8>,
    /// `Retry-After` of the last response, when it had one.
    retry_after_ms: Option<u64>,
}

impl Connection {
    pub fn new(target: Arc<Target>) -> Connection {
        Connection {
            target,
            wire: None,
            whole: Vec::new(),
            retry_after_ms: None,
        }
    }

    /// The `Retry-After` the last response asked for, in milliseconds.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.retry_after_ms
    }

    /// Opens the connection ahead of the first request (so connect time stays out of the run).
    pub async fn warm(&mut self) -> std::io::Result<()> {
        if self.wire.is_none() {
            self.wire = Some(self.target.connect().await?);
        }
        Ok(())
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Drops the connection (after a cancelled request its state is unknown).
    pub fn reset(&mut self) {
        self.wire = None;
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
        match tokio::time::timeout(timeout, self.exchange(spec, clock, record)).await {
            Ok(outcome) => record.outcome = outcome,
            Err(_) => {
                record.outcome = Outcome::Failed {
                    kind: ErrorKind::Timeout,
                    message: format!("no complete response within {timeout:?}"),
                };
            }
        }
        if record.end_ns == 0 {
            record.end_ns = clock.now_ns();
        }
        if !self.wire.as_ref().is_some_and(|w| w.reusable) || !record.outcome.is_success() {
            // Unknown state after a failure or timeout: start the next request on a fresh connection.
            self.wire = None;
        }
        self.finish_counts(spec, record);
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

    /// Sends the request (retrying once when a reused keep-alive connection turns out closed) and
    /// returns the connection with the response head read.
    async fn send(
        &mut self,
        request: &[u8],
        clock: &RunClock,
        record: &mut RequestRecord,
    ) -> Result<(&mut Http1, crate::http1::Head), Outcome> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let reused = self.wire.as_ref().is_some_and(|w| w.served > 0);
            if self.wire.is_none() {
                match self.target.connect().await {
                    Ok(w) => self.wire = Some(w),
                    Err(e) => {
                        record.sent_ns = clock.now_ns();
                        return Err(failed(
                            ErrorKind::Connect,
                            format!("cannot connect to {}: {e}", self.target.base.display),
                        ));
                    }
                }
            }
            let wire = self.wire.as_mut().expect("connected above");
            record.sent_ns = clock.now_ns();
            let result = match wire.write_all(request).await {
                Ok(()) => wire.read_head(clock).await,
                Err(e) => Err(WireError::Io(e)),
            };
            match result {
                Ok(head) => {
                    let wire = self.wire.as_mut().expect("connected above");
                    return Ok((wire, head));
                }
                Err(WireError::Malformed(m)) => {
                    return Err(failed(ErrorKind::Malformed, m));
                }
                Err(e) => {
                    self.wire = None;
                    // A keep-alive connection the server closed while idle: not the server failing
                    // this request, so try once more on a fresh connection.
                    if reused && attempt == 1 {
                        continue;
                    }
                    return Err(failed(
                        ErrorKind::Reset,
                        format!(
                            "the connection to {} broke before a response: {e}",
                            self.target.base.display
                        ),
                    ));
                }
            }
        }
    }

    async fn exchange(
        &mut self,
        spec: &RequestSpec,
        clock: &RunClock,
        record: &mut RequestRecord,
    ) -> Outcome {
        let request = self.target.request_bytes(spec);
        let raw = matches!(spec.prompt, Prompt::Raw(_));
        let stream = self.target.stream && !raw;
        let mut whole = std::mem::take(&mut self.whole);
        whole.clear();
        if let Some(w) = self.wire.as_mut() {
            w.unwatch();
        }
        let idle = self.target.idle_timeout;
        let mut retry_after_ms = None;
        let sent = match self.target.first_byte_timeout {
            None => self.send(&request, clock, record).await,
            Some(limit) => {
                match tokio::time::timeout(limit, self.send(&request, clock, record)).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.wire = None;
                        Err(failed(
                            ErrorKind::FirstByteTimeout,
                            format!("no response head within {limit:?} (the first-byte timeout)"),
                        ))
                    }
                }
            }
        };
        let outcome = match sent {
            Err(outcome) => {
                if raw {
                    record.capture = Some(Box::default());
                }
                outcome
            }
            Ok((wire, head)) => {
                wire.watch_idle(idle, clock);
                retry_after_ms = head.retry_after_ms;
                if !(200..300).contains(&head.status) {
                    let limit = if raw {
                        CAPTURED_ERROR_LIMIT
                    } else {
                        ERROR_BODY_LIMIT
                    };
                    let end = wire
                        .read_body(head.body, clock, |d, _| {
                            let room = limit.saturating_sub(whole.len());
                            whole.extend_from_slice(&d[..d.len().min(room)]);
                            ControlFlow::Continue(())
                        })
                        .await;
                    if end.is_err() {
                        wire.reusable = false;
                    }
                    let text = String::from_utf8_lossy(&whole[..whole.len().min(ERROR_BODY_LIMIT)]);
                    let text = text.trim();
                    let message = if text.is_empty() {
                        format!("HTTP {} (no body)", head.status)
                    } else {
                        format!("HTTP {}: {text}", head.status)
                    };
                    if raw {
                        record.capture = Some(Box::new(Captured {
                            status: Some(head.status),
                            request_id: head.request_id.clone(),
                            body: whole.clone(),
                            retry_after_ms: head.retry_after_ms,
                            unfinished: false,
                        }));
                    }
                    failed(ErrorKind::HttpStatus(head.status), message)
                } else if stream {
                    read_stream(wire, head.body, clock, record).await
                } else {
                    let outcome = read_whole(wire, head.body, clock, record, &mut whole, raw).await;
                    if raw {
                        record.capture = Some(Box::new(Captured {
                            status: Some(head.status),
                            request_id: head.request_id.clone(),
                            body: whole.clone(),
                            retry_after_ms: head.retry_after_ms,
                            unfinished: false,
                        }));
                    }
                    outcome
                }
            }
        };
        self.whole = whole;
        self.retry_after_ms = retry_after_ms;
        outcome
    }
}

/// The failure for a body that broke off: the idle timeout, or a cut.
fn broken(e: &WireError, what: String) -> Outcome {
    match e {
        WireError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            failed(ErrorKind::IdleTimeout, format!("{what}: {e}"))
        }
        WireError::Malformed(_) => failed(ErrorKind::Malformed, format!("{what}: {e}")),
        _ => failed(ErrorKind::StreamCut, format!("{what}: {e}")),
    }
}

async fn read_stream(
    wire: &mut Http1,
    kind: crate::http1::BodyKind,
    clock: &RunClock,
    record: &mut RequestRecord,
) -> Outcome {
    let mut decoder = SseDecoder::new();
    let mut state = StreamState::default();
    let sent = record.sent_ns;
    let end = wire
        .read_body(kind, clock, |data, now| {
            decoder.feed(data, |event| {
                state.on_event(event, now.saturating_sub(sent), record)
            })
        })
        .await;
    match end {
        Err(e) => {
            record.end_ns = clock.now_ns();
            if let Some(outcome) = state.failure.take() {
                return outcome;
            }
            if state.done {
                // [DONE] arrived, then the connection broke: the answer is complete.
                wire.reusable = false;
                return Outcome::Success;
            }
            return broken(
                &e,
                format!(
                    "stream broke after {} content chunks",
                    record.content_chunks()
                ),
            );
        }
        Ok(BodyEnd::Complete) => {
            let last = wire.last_read_ns();
            let _ =
                decoder.finish(|event| state.on_event(event, last.saturating_sub(sent), record));
            record.end_ns = state.done_ns.map_or(last, |d| sent + d);
        }
        Ok(BodyEnd::Stopped) => {
            record.end_ns = state.done_ns.map_or_else(|| clock.now_ns(), |d| sent + d);
            if decoder.oversized() {
                wire.reusable = false;
                return failed(
                    ErrorKind::Oversized,
                    format!(
                        "a stream event or line longer than {} MiB",
                        crate::sse::MAX_EVENT >> 20
                    ),
                );
            }
            if state.done && state.failure.is_none() {
                // Read the rest (the chunked terminator) so the connection stays reusable; a server
                // that holds the body open after [DONE] costs a reconnect, not a failure.
                let drained = tokio::time::timeout(
                    DRAIN_AFTER_DONE,
                    wire.read_body(kind, clock, |_, _| ControlFlow::Continue(())),
                )
                .await;
                if !matches!(drained, Ok(Ok(BodyEnd::Complete))) {
                    wire.reusable = false;
                }
            } else {
                wire.reusable = false;
            }
        }
    }
    if let Some(outcome) = state.failure.take() {
        return outcome;
    }
    // Some servers (Hugging Face's `transformers serve`) end a complete stream without
    // `data: [DONE]`: a body that ended cleanly after a `finish_reason` is complete too.
    if !state.done && !state.finished {
        return failed(
            ErrorKind::StreamCut,
            format!(
                "stream ended without [DONE] or a finish_reason after {} content chunks",
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

async fn read_whole(
    wire: &mut Http1,
    kind: crate::http1::BodyKind,
    clock: &RunClock,
    record: &mut RequestRecord,
    whole: &mut Vec<u8>,
    raw: bool,
) -> Outcome {
    let end = wire
        .read_body(kind, clock, |d, _| {
            if whole.len() + d.len() > MAX_WHOLE_BODY {
                return ControlFlow::Break(());
            }
            whole.extend_from_slice(d);
            ControlFlow::Continue(())
        })
        .await;
    record.end_ns = wire.last_read_ns();
    match end {
        Err(e) => return broken(&e, "response body broke".into()),
        Ok(BodyEnd::Stopped) => {
            wire.reusable = false;
            return failed(
                ErrorKind::Oversized,
                format!("a response body longer than {} MiB", MAX_WHOLE_BODY >> 20),
            );
        }
        Ok(BodyEnd::Complete) => {}
    }
    match parse_chunk(whole) {
        Err(e) => failed(
            ErrorKind::Malformed,
            format!("response is not the expected JSON: {e}"),
        ),
        Ok(info) => {
            if let Some(err) = info.error {
                return failed(ErrorKind::ServerError, err);
            }
            apply_usage(info.usage, record);
            // A batch line's answer is its body, whatever it holds (embeddings have no text).
            if !info.has_content && !raw {
                return failed(
                    ErrorKind::EmptyResponse,
                    "the response held no generated text".into(),
                );
            }
            Outcome::Success
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
    /// A chunk carried a `finish_reason`.
    finished: bool,
    /// Offset from `sent` at which `[DONE]` arrived.
    done_ns: Option<u64>,
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
            self.done_ns = Some(since_sent_ns);
            return ControlFlow::Break(());
        }
        match parse_chunk(data) {
            Ok(info) => {
                if let Some(err) = info.error {
                    self.failure = Some(failed(ErrorKind::ServerError, err));
                    return ControlFlow::Break(());
                }
                if info.finished {
                    self.finished = true;
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
