//! What happened: one [`RequestRecord`] per request, the contract every statistic derives from.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use crate::{ClassId, OffsetNs};

/// Where a token count came from, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The server's `usage` object.
    Usage,
    /// One tokenizer pass over the whole text.
    Tokenizer,
    /// The number of content chunks (one token per chunk assumed).
    Chunks,
    /// The workload's own count (input side only).
    Workload,
}

/// Why a request failed. A failure is a data point, never a reason to abort a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The connection could not be opened (refused, unreachable, TLS handshake failed).
    Connect,
    /// An open connection was reset or closed before a response head arrived.
    Reset,
    /// The server answered with a non-2xx status.
    HttpStatus(u16),
    /// The stream ended (or the connection dropped) before it was complete.
    StreamCut,
    /// The stream carried something that is not valid SSE or JSON.
    Malformed,
    /// The server sent an `error` object inside the stream or body.
    ServerError,
    /// No complete answer within the request timeout.
    Timeout,
    /// No response head within the first-byte timeout (a server that accepts and stalls, or
    /// reads the request too slowly).
    FirstByteTimeout,
    /// Nothing arrived for longer than the idle timeout in the middle of a response.
    IdleTimeout,
    /// One SSE event or a whole response body was larger than the client accepts.
    Oversized,
    /// The response completed but held no generated content.
    EmptyResponse,
}

impl ErrorKind {
    /// Stable label used as a key in reports: `connect`, `http_503`, `stream_cut`, ...
    pub fn label(&self) -> String {
        match self {
            ErrorKind::Connect => "connect".into(),
            ErrorKind::Reset => "reset".into(),
            ErrorKind::FirstByteTimeout => "first_byte_timeout".into(),
            ErrorKind::IdleTimeout => "idle_timeout".into(),
            ErrorKind::Oversized => "oversized".into(),
            ErrorKind::HttpStatus(code) => format!("http_{code}"),
            ErrorKind::StreamCut => "stream_cut".into(),
            ErrorKind::Malformed => "malformed".into(),
            ErrorKind::ServerError => "server_error".into(),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::EmptyResponse => "empty_response".into(),
        }
    }

    /// Inverse of [`ErrorKind::label`].
    pub fn from_label(label: &str) -> Option<ErrorKind> {
        Some(match label {
            "connect" => ErrorKind::Connect,
            "reset" => ErrorKind::Reset,
            "first_byte_timeout" => ErrorKind::FirstByteTimeout,
            "idle_timeout" => ErrorKind::IdleTimeout,
            "oversized" => ErrorKind::Oversized,
            "stream_cut" => ErrorKind::StreamCut,
            "malformed" => ErrorKind::Malformed,
            "server_error" => ErrorKind::ServerError,
            "timeout" => ErrorKind::Timeout,
            "empty_response" => ErrorKind::EmptyResponse,
            other => ErrorKind::HttpStatus(other.strip_prefix("http_")?.parse().ok()?),
        })
    }
}

impl ErrorKind {
    /// Whether the same request may succeed if sent again: no connection, no or a cut answer,
    /// a timeout, or HTTP 408, 409, 429 and 5xx. Other 4xx answers, malformed or oversized
    /// responses and error objects would fail the same way again.
    pub fn retryable(&self) -> bool {
        match self {
            ErrorKind::Connect
            | ErrorKind::Reset
            | ErrorKind::StreamCut
            | ErrorKind::Timeout
            | ErrorKind::FirstByteTimeout
            | ErrorKind::IdleTimeout => true,
            ErrorKind::HttpStatus(code) => matches!(code, 408 | 409 | 429) || *code >= 500,
            ErrorKind::Malformed
            | ErrorKind::Oversized
            | ErrorKind::ServerError
            | ErrorKind::EmptyResponse => false,
        }
    }

    /// No answer came from the server at all (it cannot be reached).
    pub fn unreachable(&self) -> bool {
        matches!(
            self,
            ErrorKind::Connect | ErrorKind::Reset | ErrorKind::FirstByteTimeout
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let label = String::deserialize(d)?;
        ErrorKind::from_label(&label)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error kind `{label}`")))
    }
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failed {
        kind: ErrorKind,
        message: String,
    },
    /// Stopped by strobe itself (Ctrl-C past the drain bound); not a server failure.
    Cancelled,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }
}

/// One request as it happened on the wire. All instants are offsets in nanoseconds from the run
/// start, taken from one monotonic clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub index: u64,
    pub class: ClassId,
    pub warmup: bool,
    /// When the schedule wanted the request sent.
    pub intended_ns: OffsetNs,
    /// When the request started going onto an open connection.
    pub sent_ns: OffsetNs,
    /// Arrival of the first chunk carrying non-empty generated text (or reasoning).
    pub first_token_ns: Option<OffsetNs>,
    /// When the response was complete (or the request ended in failure).
    pub end_ns: OffsetNs,
    /// Arrival of every content chunk, the first one included. Serialised compactly as
    /// `chunk_gaps_ns`: the first element is the offset from `sent_ns`, the rest are the gaps
    /// between consecutive chunks.
    #[serde(
        rename = "chunk_gaps_ns",
        serialize_with = "ser_chunk_gaps",
        deserialize_with = "de_chunk_gaps",
        default
    )]
    pub chunk_arrivals_ns: ChunkArrivals,
    pub input_tokens: Option<u32>,
    pub input_tokens_source: Option<TokenSource>,
    pub output_tokens: Option<u32>,
    pub output_tokens_source: Option<TokenSource>,
    /// The input length the workload meant to send (exact under its tokenizer), to compare with
    /// the server's `usage.prompt_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_input_tokens: Option<u32>,
    /// The lockstep batch the request belonged to (lockstep schedules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    /// Times the request was sent: above 1 when failed attempts were retried (the timings are
    /// the last attempt's).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub attempts: u32,
    pub outcome: Outcome,
    /// The response itself, kept for requests that ask for it (batch lines); never serialised
    /// into records.
    #[serde(skip)]
    pub capture: Option<Box<Captured>>,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n <= 1
}

/// A response kept whole, for a batch's output file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    /// HTTP status; `None` when no response head arrived.
    pub status: Option<u16>,
    /// The server's `x-request-id`, when it sent one.
    pub request_id: Option<String>,
    /// The response body (success or error), as received.
    pub body: Vec<u8>,
    /// Seconds the server asked to wait before a retry (`Retry-After`).
    pub retry_after_ms: Option<u64>,
    /// The request stopped while it still had retries left (a stop or an abort came): it has no
    /// final result, and a resumed batch sends it again.
    pub unfinished: bool,
}

/// Absolute arrival offsets of content chunks. A newtype so that (de)serialisation can refer to
/// `sent_ns`, which the field-level helpers cannot see; see [`RequestRecord::chunk_arrivals_ns`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkArrivals {
    /// Offsets relative to `sent_ns` (kept relative so the newtype is self-contained).
    pub since_sent_ns: Vec<u64>,
}

fn ser_chunk_gaps<S: Serializer>(c: &ChunkArrivals, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(c.since_sent_ns.len()))?;
    let mut prev = 0;
    for &t in &c.since_sent_ns {
        seq.serialize_element(&(t.saturating_sub(prev)))?;
        prev = t;
    }
    seq.end()
}

fn de_chunk_gaps<'de, D: Deserializer<'de>>(d: D) -> Result<ChunkArrivals, D::Error> {
    let gaps = Vec::<u64>::deserialize(d)?;
    let mut acc = 0u64;
    let since_sent_ns = gaps
        .into_iter()
        .map(|g| {
            acc += g;
            acc
        })
        .collect();
    Ok(ChunkArrivals { since_sent_ns })
}

impl RequestRecord {
    /// Time to first token in ns (`first_token − sent`).
    pub fn ttft_ns(&self) -> Option<u64> {
        self.first_token_ns.map(|f| f.saturating_sub(self.sent_ns))
    }

    /// End-to-end latency in ns (`end − sent`).
    pub fn e2e_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.sent_ns)
    }

    /// Client-side lateness in ns (`sent − intended`).
    pub fn queue_delay_ns(&self) -> u64 {
        self.sent_ns.saturating_sub(self.intended_ns)
    }

    /// Time per output token excluding the first, in ns: `(E2E − TTFT) / (output_tokens − 1)`,
    /// defined for requests with at least two output tokens.
    pub fn tpot_ns(&self) -> Option<f64> {
        let ttft = self.ttft_ns()?;
        let n = self.output_tokens?;
        if n < 2 {
            return None;
        }
        Some(self.e2e_ns().saturating_sub(ttft) as f64 / (n - 1) as f64)
    }

    /// Gaps between consecutive content chunks, in ns.
    pub fn inter_chunk_gaps_ns(&self) -> impl Iterator<Item = u64> + '_ {
        self.chunk_arrivals_ns
            .since_sent_ns
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]))
    }

    /// Checks what the formulas rely on, for records read from a file: `sent ≤ first token ≤
    /// end`, chunk arrivals in order and within the request, a first chunk that is the first
    /// token. The error says which rule broke, with the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.end_ns < self.sent_ns {
            return Err(format!(
                "end_ns {} is before sent_ns {}",
                self.end_ns, self.sent_ns
            ));
        }
        if let Some(f) = self.first_token_ns {
            if f < self.sent_ns || f > self.end_ns {
                return Err(format!(
                    "first_token_ns {f} is outside sent_ns..end_ns ({}..{})",
                    self.sent_ns, self.end_ns
                ));
            }
        }
        let arrivals = &self.chunk_arrivals_ns.since_sent_ns;
        if let Some(&last) = arrivals.last() {
            if self
                .sent_ns
                .checked_add(last)
                .is_none_or(|t| t > self.end_ns)
            {
                return Err(format!(
                    "chunk_gaps_ns end {last} ns after sent_ns, past end_ns",
                ));
            }
        }
        if let (Some(&first), Some(f)) = (arrivals.first(), self.first_token_ns) {
            if self.sent_ns + first != f {
                return Err(format!(
                    "the first chunk (sent_ns + {first}) is not first_token_ns {f}"
                ));
            }
        }
        if self.output_tokens == Some(0) && self.first_token_ns.is_some() {
            return Err("output_tokens is 0 but a first token arrived".into());
        }
        Ok(())
    }

    /// Number of content chunks received.
    pub fn content_chunks(&self) -> usize {
        self.chunk_arrivals_ns.since_sent_ns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RequestRecord {
        RequestRecord {
            index: 3,
            class: ClassId(0),
            warmup: false,
            intended_ns: 1_000,
            sent_ns: 2_000,
            first_token_ns: Some(52_000),
            end_ns: 92_000,
            chunk_arrivals_ns: ChunkArrivals {
                since_sent_ns: vec![50_000, 60_000, 70_000, 80_000, 90_000],
            },
            input_tokens: Some(10),
            input_tokens_source: Some(TokenSource::Usage),
            output_tokens: Some(5),
            output_tokens_source: Some(TokenSource::Usage),
            expected_input_tokens: None,
            batch: None,
            attempts: 1,
            outcome: Outcome::Success,
            capture: None,
        }
    }

    #[test]
    fn formulas_follow_the_definitions() {
        let r = record();
        assert_eq!(r.ttft_ns(), Some(50_000));
        assert_eq!(r.e2e_ns(), 90_000);
        assert_eq!(r.queue_delay_ns(), 1_000);
        // (90_000 - 50_000) / (5 - 1)
        assert_eq!(r.tpot_ns(), Some(10_000.0));
        assert_eq!(r.inter_chunk_gaps_ns().collect::<Vec<_>>(), vec![10_000; 4]);
    }

    #[test]
    fn validation_names_the_broken_rule() {
        assert_eq!(record().validate(), Ok(()));
        let mut r = record();
        r.first_token_ns = Some(100_000); // after end: TPOT would underflow
        assert!(r.validate().unwrap_err().contains("first_token_ns"));
        let mut r = record();
        r.end_ns = 1_000;
        assert!(r.validate().unwrap_err().contains("before sent_ns"));
        let mut r = record();
        r.chunk_arrivals_ns.since_sent_ns.push(1_000_000);
        assert!(r.validate().unwrap_err().contains("past end_ns"));
        let mut r = record();
        r.chunk_arrivals_ns.since_sent_ns[0] = 49_000;
        assert!(r.validate().unwrap_err().contains("not first_token_ns"));
    }

    #[test]
    fn attempts_are_written_only_when_retried() {
        let mut r = record();
        assert!(!serde_json::to_string(&r).unwrap().contains("attempts"));
        r.attempts = 3;
        let json = serde_json::to_string(&r).unwrap();
        let back: RequestRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.attempts, 3);
    }

    #[test]
    fn tpot_needs_two_tokens() {
        let mut r = record();
        r.output_tokens = Some(1);
        assert_eq!(r.tpot_ns(), None);
    }

    #[test]
    fn record_round_trips_through_json_with_compact_chunks() {
        let r = record();
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(r#""chunk_gaps_ns":[50000,10000,10000,10000,10000]"#),
            "{json}"
        );
        let back: RequestRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn error_kind_labels_round_trip() {
        for k in [
            ErrorKind::Connect,
            ErrorKind::HttpStatus(503),
            ErrorKind::StreamCut,
            ErrorKind::Malformed,
            ErrorKind::ServerError,
            ErrorKind::Timeout,
            ErrorKind::EmptyResponse,
            ErrorKind::Reset,
            ErrorKind::FirstByteTimeout,
            ErrorKind::IdleTimeout,
            ErrorKind::Oversized,
        ] {
            assert_eq!(ErrorKind::from_label(&k.label()), Some(k));
        }
        assert_eq!(ErrorKind::from_label("http_x"), None);
    }
}
