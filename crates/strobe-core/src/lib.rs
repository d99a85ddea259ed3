//! Plain data shared by every stretch of a strobe run.
//!
//! This crate owns the *contract* between the stretches: what a request to send looks like
//! ([`RequestSpec`]) and what happened to it ([`RequestRecord`]). Every statistic strobe reports is
//! derived from records, so a saved JSONL of records can be re-analysed without re-running.
//!
//! It does no I/O and knows nothing about HTTP, timing sources or output formats.

mod record;
mod secret;
mod spec;
pub mod units;

pub use record::{Captured, ChunkArrivals, ErrorKind, Outcome, RequestRecord, TokenSource};
pub use secret::{command_secrets, is_secret_name, redact_command, redact_text, Secret};
pub use spec::{
    Api, ChatMessage, ClassId, ContentPart, ImageUrl, MessageContent, Prompt, RawRequest,
    RequestSpec,
};

/// Nanoseconds since the run's start instant (one monotonic clock for the whole run).
pub type OffsetNs = u64;

/// Converts nanoseconds to milliseconds as `f64`, the unit every report field named `*_ms` uses.
pub fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The run's one monotonic clock: every record offset is measured from `start`.
#[derive(Clone, Copy, Debug)]
pub struct RunClock {
    start: std::time::Instant,
}

impl RunClock {
    pub fn starting_now() -> RunClock {
        RunClock {
            start: std::time::Instant::now(),
        }
    }

    pub fn start(&self) -> std::time::Instant {
        self.start
    }

    /// Nanoseconds since the run start.
    #[inline]
    pub fn now_ns(&self) -> OffsetNs {
        self.start.elapsed().as_nanos() as u64
    }

    /// Nanoseconds from the run start to `t` (0 if `t` is earlier).
    pub fn offset_of(&self, t: std::time::Instant) -> OffsetNs {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    pub fn instant_at(&self, offset: OffsetNs) -> std::time::Instant {
        self.start + std::time::Duration::from_nanos(offset)
    }
}
