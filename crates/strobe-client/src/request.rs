//! Sending one request and turning what comes back into a [`RequestRecord`].

use std::ops::ControlFlow;
use std::sync::Arc;
use strobe_core::{ErrorKind, Outcome, RequestRecord, RequestSpec, RunClock, TokenSource};

use crate::chunk::{parse_chunk, Usage};
use crate::http1::{BodyEnd, Http1, WireError};
use crate::sse::SseDecoder;
use crate::target::Target;

/// Largest error body kept for a failure message.
const ERROR_BODY_LIMIT: usize = 2048;
/// How long to wait for the end of the body once `[DONE]` has arrived.
const DRAIN_AFTER_DONE: std::time::Duration = std::time::Duration::from_secs(1);

/// One keep-alive connection, owned by one worker (no sharing, no locks).
pub struct Connection {
    target: Arc<Target>,
    wire: Option<Http1>,
    /// Whole-body buffer for non-streamed responses, reused.
    whole: Vec<u8>,
}

impl Connection {
    pub fn new(target: Arc<Target>) -> Connection {
        Connection {
            target,
            wire: None,
            whole: Vec::new(),
        }
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
                        ErrorKind::Connect,
                        format!("no response from {}: {e}", self.target.base.display),
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
        let stream = self.target.stream;
        let mut whole = std::mem::take(&mut self.whole);
        whole.clear();
        let outcome = match self.send(&request, clock, record).await {
            Err(outcome) => outcome,
            Ok((wire, head)) => {
                if !(200..300).contains(&head.status) {
                    let end = wire
                        .read_body(head.body, clock, |d, _| {
                            let room = ERROR_BODY_LIMIT.saturating_sub(whole.len());
                            whole.extend_from_slice(&d[..d.len().min(room)]);
                            ControlFlow::Continue(())
                        })
                        .await;
                    if end.is_err() {
                        wire.reusable = false;
                    }
                    failed(
                        ErrorKind::HttpStatus(head.status),
                        format!(
                            "HTTP {}: {}",
                            head.status,
                            String::from_utf8_lossy(&whole).trim()
                        ),
                    )
                } else if stream {
                    read_stream(wire, head.body, clock, record).await
                } else {
                    read_whole(wire, head.body, clock, record, &mut whole).await
                }
            }
        };
        self.whole = whole;
        outcome
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
            return failed(
                ErrorKind::StreamCut,
                format!(
                    "stream broke after {} content chunks: {e}",
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
) -> Outcome {
    let end = wire
        .read_body(kind, clock, |d, _| {
            whole.extend_from_slice(d);
            ControlFlow::Continue(())
        })
        .await;
    record.end_ns = wire.last_read_ns();
    if let Err(e) = end {
        return failed(ErrorKind::StreamCut, format!("response body broke: {e}"));
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
