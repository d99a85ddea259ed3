//! Response bodies: pre-rendered whole responses and timed token streams.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

use crate::config::Fault;
use crate::truth::Truth;

/// Words the target "generates", one per token.
const WORDS: &[&str] = &[
    " the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog", " and", " runs",
    " far", " away", " into", " green", " hills",
];

/// What one response looks like, decided from the request.
#[derive(Clone, Debug)]
pub struct Plan {
    pub chat: bool,
    /// JSON-escaped model name, quotes included.
    pub model_json: Arc<str>,
    pub tokens: u32,
    pub prompt_tokens: u32,
    pub include_usage: bool,
    pub fault: Option<Fault>,
    /// End the stream with `data: [DONE]` (as vLLM and OpenAI do; some servers do not).
    pub send_done: bool,
}

impl Plan {
    fn fault_at(&self) -> u32 {
        self.tokens / 2
    }

    fn push_token_event(&self, out: &mut Vec<u8>, k: u32) {
        let word = WORDS[k as usize % WORDS.len()];
        let finish = if k + 1 == self.tokens {
            "\"length\""
        } else {
            "null"
        };
        let model = &*self.model_json;
        if self.chat {
            out.extend_from_slice(b"data: {\"id\":\"chatcmpl-strobe\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":");
            out.extend_from_slice(model.as_bytes());
            out.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"");
            out.extend_from_slice(word.as_bytes());
            out.extend_from_slice(b"\"},\"logprobs\":null,\"finish_reason\":");
        } else {
            out.extend_from_slice(b"data: {\"id\":\"cmpl-strobe\",\"object\":\"text_completion\",\"created\":0,\"model\":");
            out.extend_from_slice(model.as_bytes());
            out.extend_from_slice(b",\"choices\":[{\"index\":0,\"text\":\"");
            out.extend_from_slice(word.as_bytes());
            out.extend_from_slice(b"\",\"logprobs\":null,\"finish_reason\":");
        }
        out.extend_from_slice(finish.as_bytes());
        out.extend_from_slice(b"}]}\n\n");
    }

    /// The role-only first chunk chat servers send before any content.
    fn push_role_event(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: {\"id\":\"chatcmpl-strobe\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":");
        out.extend_from_slice(self.model_json.as_bytes());
        out.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    }

    fn push_tail(&self, out: &mut Vec<u8>) {
        if self.include_usage {
            let object = if self.chat {
                "chat.completion.chunk"
            } else {
                "text_completion"
            };
            out.extend_from_slice(
                format!(
                    "data: {{\"id\":\"strobe\",\"object\":\"{object}\",\"created\":0,\"model\":{},\"choices\":[],\"usage\":{{\"prompt_tokens\":{},\"total_tokens\":{},\"completion_tokens\":{}}}}}\n\n",
                    self.model_json,
                    self.prompt_tokens,
                    self.prompt_tokens + self.tokens,
                    self.tokens
                )
                .as_bytes(),
            );
        }
        if self.send_done {
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
    }

    /// The whole stream in one buffer (zero-delay mode).
    pub fn render_stream(&self) -> Bytes {
        let mut out = Vec::with_capacity(200 * (self.tokens as usize + 2));
        if self.chat {
            self.push_role_event(&mut out);
        }
        for k in 0..self.tokens {
            self.push_token_event(&mut out, k);
        }
        self.push_tail(&mut out);
        Bytes::from(out)
    }

    /// A non-streamed response body.
    pub fn render_whole(&self) -> Bytes {
        let text: String = (0..self.tokens)
            .map(|k| WORDS[k as usize % WORDS.len()])
            .collect();
        let text = serde_json::to_string(&text).unwrap_or_default();
        let (object, choice) = if self.chat {
            ("chat.completion", format!("{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{text}}},\"finish_reason\":\"length\"}}"))
        } else {
            (
                "text_completion",
                format!("{{\"index\":0,\"text\":{text},\"finish_reason\":\"length\"}}"),
            )
        };
        Bytes::from(format!(
            "{{\"id\":\"strobe\",\"object\":\"{object}\",\"created\":0,\"model\":{},\"choices\":[{choice}],\"usage\":{{\"prompt_tokens\":{},\"total_tokens\":{},\"completion_tokens\":{}}}}}",
            self.model_json,
            self.prompt_tokens,
            self.prompt_tokens + self.tokens,
            self.tokens
        ))
    }
}

/// Delay source with jitter, seeded per request.
pub struct Delays {
    pub ttft: Duration,
    pub itl: Duration,
    pub jitter: Duration,
    /// Added to each gap per other stream being served.
    pub itl_per_stream: Duration,
    pub rng: rand::rngs::SmallRng,
}

impl Delays {
    /// The target's configured delays, jittered from `rng`.
    pub fn of(config: &crate::config::ServerConfig, rng: rand::rngs::SmallRng) -> Delays {
        Delays {
            ttft: config.ttft,
            itl: config.itl,
            jitter: config.jitter,
            itl_per_stream: config.load.itl_per_stream,
            rng,
        }
    }

    fn jittered(&mut self, base: Duration) -> Duration {
        use rand::Rng;
        if self.jitter.is_zero() {
            return base;
        }
        let j = self.jitter.as_nanos() as i64;
        let shift = self.rng.random_range(-j..=j);
        Duration::from_nanos((base.as_nanos() as i64 + shift).max(0) as u64)
    }
}

/// The tokens of one request as a simulated engine makes them: one message per token, sent by
/// the engine's clock at the end of the step that made it. Dropped before its last token (the
/// client went away), it aborts the request in the engine.
pub struct EngineTokens {
    pub rx: tokio::sync::mpsc::UnboundedReceiver<()>,
    pub id: u64,
    pub engine: Arc<strobe_sim::RealTime>,
    pub done: bool,
}

impl EngineTokens {
    /// Submits a request to `engine` and returns its token feed.
    pub fn submit(
        engine: &Arc<strobe_sim::RealTime>,
        prompt: u32,
        output: u32,
        prefix: Arc<[u64]>,
        received: Instant,
    ) -> EngineTokens {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let id = engine.submit(
            prompt,
            output,
            prefix,
            received.into_std(),
            Box::new(move || tx.send(()).is_ok()),
        );
        EngineTokens {
            rx,
            id,
            engine: Arc::clone(engine),
            done: false,
        }
    }
}

impl Drop for EngineTokens {
    fn drop(&mut self) {
        if !self.done {
            self.engine.abort(self.id);
        }
    }
}

enum Phase {
    Role,
    Token(u32),
    /// The last token is out; the response ends when `sleep` fires (a simulated engine's time
    /// after a request's last token).
    Tail,
    Done,
}

/// A timed stream: each token is released when its deadline passes, and the instant hyper takes
/// the first and last token is recorded as the truth.
pub struct TokenStream {
    plan: Plan,
    delays: Delays,
    phase: Phase,
    sleep: Pin<Box<Sleep>>,
    received: Instant,
    first_sent: Option<Instant>,
    truth: Arc<Truth>,
    buf: Vec<u8>,
    /// A cut waits one short timer first, so hyper flushes the head and the tokens before it (a
    /// cut before anything left the socket would look like a keep-alive close, not a cut).
    cut_armed: bool,
    /// The running slot this stream holds (with a `max_running` cap), freed when it ends.
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// With a simulated engine, its tokens pace the stream instead of the delays.
    engine: Option<EngineTokens>,
    /// A fault has taken over the pacing with `sleep` (a cut's pause, a stall).
    timer_gate: bool,
}

impl TokenStream {
    /// A stream admitted at `start` (after any queueing); `first` is added to its time to first
    /// token (prefill), and its truth counts from `received`.
    pub fn new(
        plan: Plan,
        mut delays: Delays,
        received: Instant,
        start: Instant,
        prefill: Duration,
        truth: Arc<Truth>,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> TokenStream {
        truth.stream_started();
        let first = delays.jittered(delays.ttft) + prefill;
        TokenStream {
            phase: if plan.chat {
                Phase::Role
            } else {
                Phase::Token(0)
            },
            sleep: Box::pin(tokio::time::sleep_until(start + first)),
            plan,
            delays,
            received,
            first_sent: None,
            truth,
            buf: Vec::with_capacity(512),
            cut_armed: false,
            _slot: slot,
            engine: None,
            timer_gate: false,
        }
    }

    /// Paces the stream by a simulated engine's tokens instead of its delays.
    pub fn paced_by(mut self, feed: EngineTokens) -> TokenStream {
        self.engine = Some(feed);
        self
    }

    fn frame(&mut self) -> Frame<Bytes> {
        Frame::data(Bytes::copy_from_slice(&self.buf))
    }
}

impl Drop for TokenStream {
    fn drop(&mut self) {
        self.truth.stream_ended();
    }
}

impl Body for TokenStream {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        this.buf.clear();
        match this.phase {
            Phase::Done => Poll::Ready(None),
            Phase::Tail => {
                if this.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.plan.push_tail(&mut this.buf);
                this.phase = Phase::Done;
                Poll::Ready(Some(Ok(this.frame())))
            }
            Phase::Role => {
                // Sent at once, like engines that announce the role before prefill ends.
                this.plan.push_role_event(&mut this.buf);
                this.phase = Phase::Token(0);
                Poll::Ready(Some(Ok(this.frame())))
            }
            Phase::Token(k) => {
                match (&mut this.engine, this.timer_gate) {
                    (Some(e), false) => match e.rx.poll_recv(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(())) => {
                            if k + 1 >= this.plan.tokens {
                                e.done = true;
                            }
                        }
                        Poll::Ready(None) => {
                            this.phase = Phase::Done;
                            return Poll::Ready(Some(Err(std::io::Error::other(
                                "the simulated engine dropped the request",
                            ))));
                        }
                    },
                    _ => {
                        if this.sleep.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                }
                if this.plan.fault.is_some() && k == this.plan.fault_at() {
                    match this.plan.fault {
                        Some(Fault::Cut) => {
                            if !this.cut_armed {
                                this.cut_armed = true;
                                this.timer_gate = true;
                                this.sleep
                                    .as_mut()
                                    .reset(Instant::now() + Duration::from_millis(20));
                                let _ = this.sleep.as_mut().poll(cx);
                                return Poll::Pending;
                            }
                            this.phase = Phase::Done;
                            return Poll::Ready(Some(Err(std::io::Error::other(
                                "injected fault: stream cut",
                            ))));
                        }
                        Some(Fault::Truncate) => {
                            // A clean end of the body, with neither finish_reason nor [DONE].
                            this.phase = Phase::Done;
                            return Poll::Ready(None);
                        }
                        Some(Fault::Stall) => {
                            // Never wakes: the client's timeout is what ends this stream.
                            this.timer_gate = true;
                            this.sleep
                                .as_mut()
                                .reset(Instant::now() + Duration::from_secs(86_400 * 365));
                            let _ = this.sleep.as_mut().poll(cx);
                            return Poll::Pending;
                        }
                        Some(Fault::Malformed) => {
                            this.buf
                                .extend_from_slice(b"data: {\"choices\":[{\"text\":\"oops\"\n\n");
                            this.phase = Phase::Done;
                            return Poll::Ready(Some(Ok(this.frame())));
                        }
                        Some(Fault::ErrorEvent) => {
                            this.buf.extend_from_slice(b"data: {\"error\":{\"object\":\"error\",\"message\":\"injected fault: engine error\",\"type\":\"InternalServerError\",\"code\":500}}\n\ndata: [DONE]\n\n");
                            this.phase = Phase::Done;
                            return Poll::Ready(Some(Ok(this.frame())));
                        }
                        Some(Fault::Oversized) => {
                            // One line of 5 MiB that never ends: past any client's event limit.
                            this.buf
                                .extend_from_slice(b"data: {\"choices\":[{\"text\":\"");
                            this.buf.resize(this.buf.len() + 5 * 1024 * 1024, b'x');
                            this.phase = Phase::Done;
                            return Poll::Ready(Some(Ok(this.frame())));
                        }
                        _ => {}
                    }
                }
                let now = Instant::now();
                if k == 0 {
                    this.first_sent = Some(now);
                }
                this.plan.push_token_event(&mut this.buf, k);
                if k + 1 >= this.plan.tokens {
                    let finish = this.engine.as_ref().map_or(Duration::ZERO, |e| {
                        Duration::from_secs_f64(e.engine.config().overheads.per_request_finish)
                    });
                    if finish.is_zero() {
                        this.plan.push_tail(&mut this.buf);
                        this.phase = Phase::Done;
                    } else {
                        this.phase = Phase::Tail;
                        this.timer_gate = true;
                        this.sleep.as_mut().reset(now + finish);
                    }
                    let first = this.first_sent.unwrap_or(now);
                    this.truth
                        .record_stream(first - this.received, now - first, this.plan.tokens);
                } else if this.engine.is_some() {
                    this.phase = Phase::Token(k + 1);
                } else {
                    this.phase = Phase::Token(k + 1);
                    // Deadlines follow the previous *deadline*, not the wake-up, so timer lateness
                    // does not accumulate over the stream.
                    let others = (this.truth.running() - 1).max(0) as u32;
                    let gap =
                        this.delays.jittered(this.delays.itl) + this.delays.itl_per_stream * others;
                    let next = this.sleep.deadline() + gap;
                    this.sleep.as_mut().reset(next);
                }
                Poll::Ready(Some(Ok(this.frame())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
