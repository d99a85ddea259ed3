//! What the target actually did, per completed stream: the ground truth a client is checked against.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Mutex;
use std::time::Duration;

/// Server-side timings of completed streams (updated once per stream, not per token).
pub struct Truth {
    inner: Mutex<Inner>,
}

struct Inner {
    ttft: Stat,
    tpot: Stat,
    streams: u64,
}

struct Stat {
    hist: Histogram<u64>,
    sum_ns: f64,
    count: u64,
}

impl Stat {
    fn new() -> Stat {
        Stat {
            hist: Histogram::new(3).expect("3 significant digits is valid"),
            sum_ns: 0.0,
            count: 0,
        }
    }
    fn record(&mut self, ns: u64) {
        if self.hist.record(ns.max(1)).is_err() {
            self.hist.saturating_record(ns.max(1));
        }
        self.sum_ns += ns as f64;
        self.count += 1;
    }
    fn summary(&self) -> TruthStat {
        let ms = |v: u64| v as f64 / 1e6;
        if self.count == 0 {
            return TruthStat::default();
        }
        TruthStat {
            count: self.count,
            mean_ms: self.sum_ns / self.count as f64 / 1e6,
            min_ms: ms(self.hist.min()),
            p50_ms: ms(self.hist.value_at_quantile(0.5)),
            p99_ms: ms(self.hist.value_at_quantile(0.99)),
            max_ms: ms(self.hist.max()),
        }
    }
}

/// Summary of one server-side timing.
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct TruthStat {
    pub count: u64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// `GET /strobe/truth`: TTFT is from the request being received (headers and body read) to the
/// first token handed to the connection; TPOT is (last − first token) / (tokens − 1).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct TruthSummary {
    pub completed_streams: u64,
    pub ttft: TruthStat,
    pub tpot: TruthStat,
}

impl Default for Truth {
    fn default() -> Self {
        Truth {
            inner: Mutex::new(Inner {
                ttft: Stat::new(),
                tpot: Stat::new(),
                streams: 0,
            }),
        }
    }
}

impl Truth {
    pub fn record_stream(&self, ttft: Duration, first_to_last: Duration, tokens: u32) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.streams += 1;
        g.ttft.record(ttft.as_nanos() as u64);
        if tokens >= 2 {
            g.tpot
                .record(first_to_last.as_nanos() as u64 / (tokens as u64 - 1));
        }
    }

    pub fn summary(&self) -> TruthSummary {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        TruthSummary {
            completed_streams: g.streams,
            ttft: g.ttft.summary(),
            tpot: g.tpot.summary(),
        }
    }

    pub fn reset(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *g = Inner {
            ttft: Stat::new(),
            tpot: Stat::new(),
            streams: 0,
        };
    }
}
