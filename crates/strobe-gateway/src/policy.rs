//! The batch policy: how many batch requests one upstream may have in flight, moved so that
//! interactive users stay fast.
//!
//! Additive increase, multiplicative decrease (AIMD), once per interval, from what the gateway
//! sees itself and what the engine says:
//!
//! - the interactive requests it proxied in the last window: TTFT p95 and TPOT p95 against the
//!   SLOs given (`--interactive-ttft-p95`, `--interactive-tpot-p95`);
//! - the engine's `/metrics`: requests waiting (an interactive request that arrives now would
//!   queue behind them) and KV-cache use (near full, the engine preempts).
//!
//! Any signal over its limit cuts the cap to 70% (TCP CUBIC's factor; down to the minimum, 0
//! pausing the batch); all within limits add one (up to the maximum). With no interactive
//! traffic in the window the latency signals are silent and the batch grows to what the
//! engine's queue allows: there is no one to protect.
//!
//! A cut is judged on evidence it could have changed. After one, the latency signals count only
//! requests first seen after it, and the engine's signals wait two intervals (its queue drains at
//! its own pace): the window still holds the slow requests that caused the cut, and cutting
//! again on them collapsed the batch to its minimum in an earlier version (on CPU vLLM it kept
//! 0.29 of its batch-only throughput where a cap held near the limit kept far more). While the
//! only evidence of trouble is older than the last cut, the cap holds, until enough requests
//! seen since the cut ([`RECOVER_AFTER`]) are all within limits: then it grows again, judged on
//! those alone (waiting for the window to forget the old ones held the cap well below what the
//! users could bear on a GPU engine). Likewise, with users in
//! the window, the cap grows only after a user's request has reported since its last move (on
//! CPU vLLM requests report seconds apart, and growing every interval overshot by several steps
//! before the first report came). The decision and its reason are kept for `/metrics` and the
//! web page.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The policy's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// Off: the batch runs at `max` all the time (the seed 000 "naive batch" condition).
    pub adaptive: bool,
    pub min: u32,
    pub max: u32,
    /// Cap at the start.
    pub initial: u32,
    pub ttft_p95: Option<Duration>,
    pub tpot_p95: Option<Duration>,
    /// Engine requests waiting above this decrease the cap.
    pub max_waiting: f64,
    /// Engine KV-cache use (0–1) above this decreases the cap.
    pub max_kv_cache: f64,
    /// How often the cap moves.
    pub interval: Duration,
    /// Interactive requests older than this are forgotten.
    pub window: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            adaptive: true,
            min: 1,
            max: 64,
            initial: 4,
            ttft_p95: Some(Duration::from_millis(500)),
            tpot_p95: None,
            max_waiting: 0.0,
            max_kv_cache: 0.9,
            interval: Duration::from_secs(1),
            window: Duration::from_secs(10),
        }
    }
}

/// What the proxy saw of one interactive request: its TTFT as soon as the first byte passed (so
/// the policy reacts within one TTFT, not one whole response), then its time per later chunk and
/// latency when it ended.
#[derive(Clone, Copy, Debug)]
pub struct Observed {
    pub at: Instant,
    pub ttft: Option<Duration>,
    /// Mean time per later chunk of a stream; `None` for a whole response or a single chunk.
    pub tpot: Option<Duration>,
    pub latency: Option<Duration>,
}

/// What the engine's `/metrics` said last.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EngineLoad {
    pub waiting: Option<f64>,
    pub kv_cache: Option<f64>,
}

/// The window's interactive latency, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Interactive {
    pub requests: usize,
    pub ttft_p95: Option<f64>,
    pub tpot_p95: Option<f64>,
    pub latency_p95: Option<f64>,
}

/// The policy's state: the cap and why it is what it is.
#[derive(Debug)]
pub struct Policy {
    pub config: PolicyConfig,
    pub cap: u32,
    pub reason: String,
    pub decreases: u64,
    pub increases: u64,
    seen: VecDeque<Observed>,
    last_cut: Option<Instant>,
    last_move: Option<Instant>,
}

/// A cut keeps this share of the cap.
const CUT: f64 = 0.7;

/// Interactive requests seen since a cut, all within limits, after which the cap grows again
/// although the window still holds the slow requests from before the cut.
const RECOVER_AFTER: usize = 8;

fn p95(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    // Nearest rank.
    let rank = ((0.95 * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Policy {
        let cap = if config.adaptive {
            config.initial.clamp(config.min, config.max)
        } else {
            config.max
        };
        let reason = if config.adaptive {
            "starting".to_owned()
        } else {
            "adaptive policy off: the batch runs at its maximum".to_owned()
        };
        Policy {
            config,
            cap,
            reason,
            decreases: 0,
            increases: 0,
            seen: VecDeque::new(),
            last_cut: None,
            last_move: None,
        }
    }

    pub fn observe(&mut self, o: Observed) {
        self.seen.push_back(o);
    }

    fn forget(&mut self, now: Instant) {
        while let Some(o) = self.seen.front() {
            if now.duration_since(o.at) > self.config.window {
                self.seen.pop_front();
            } else {
                break;
            }
        }
    }

    /// The interactive latency of the window ending `now`.
    pub fn interactive(&mut self, now: Instant) -> Interactive {
        self.forget(now);
        self.interactive_since(None)
    }

    /// The interactive latency of the requests seen after `since` (all in the window if `None`).
    fn interactive_since(&self, since: Option<Instant>) -> Interactive {
        let fresh = |o: &&Observed| since.is_none_or(|t| o.at > t);
        let of = |f: fn(&Observed) -> Option<Duration>| {
            p95(self
                .seen
                .iter()
                .filter(fresh)
                .filter_map(|o| f(o).map(|d| d.as_secs_f64()))
                .collect())
        };
        Interactive {
            requests: self
                .seen
                .iter()
                .filter(fresh)
                .filter(|o| o.ttft.is_some())
                .count(),
            ttft_p95: of(|o| o.ttft),
            tpot_p95: of(|o| o.tpot),
            latency_p95: of(|o| o.latency),
        }
    }

    /// Moves the cap once; returns it.
    pub fn step(&mut self, now: Instant, engine: EngineLoad) -> u32 {
        if !self.config.adaptive {
            return self.cap;
        }
        let window = self.interactive(now);
        let fresh = self.interactive_since(self.last_cut);
        let engine_settled = self
            .last_cut
            .is_none_or(|t| now.duration_since(t) >= 2 * self.config.interval);
        // Over on any evidence in the window (no increase), and over on evidence a cut could
        // have changed (a cut).
        let over = self.over(&window, engine);
        if over.is_empty() {
            // With users to protect, one step up per piece of evidence that the last move was
            // harmless: on a slow engine a user's request reports seconds apart, and growing once
            // per interval meanwhile overshot by several steps before the first report came.
            if window.requests > 0 && self.unseen_since_move() {
                self.reason = format!(
                    "{} interactive requests in the window, within limits; waiting for one after the last move",
                    window.requests
                );
                return self.cap;
            }
            self.grow(now);
            self.reason = if window.requests == 0 {
                "no interactive traffic in the window; the engine's queue is within its limit"
                    .to_owned()
            } else {
                format!(
                    "{} interactive requests in the window, all signals within their limits",
                    window.requests
                )
            };
            return self.cap;
        }
        let cut_on = self.over(
            &fresh,
            if engine_settled {
                engine
            } else {
                EngineLoad::default()
            },
        );
        if cut_on.is_empty() && fresh.requests >= RECOVER_AFTER && engine_settled {
            // Enough requests since the last cut, all within limits: the cut worked, and the
            // window's older slow requests say nothing about the cap now. Grow again, one step
            // per fresh report, rather than waiting a whole window for them to be forgotten (on
            // a GPU engine that wait held the cap a third below what the users could bear).
            if !self.unseen_since_move() {
                self.grow(now);
            }
            self.reason = format!(
                "recovering after a cut: {} interactive requests since it, within limits",
                fresh.requests
            );
        } else if cut_on.is_empty() {
            self.reason = format!("holding after a cut: {}", over.join("; "));
        } else {
            let cut = ((f64::from(self.cap) * CUT).floor() as u32).max(self.config.min);
            if cut < self.cap {
                self.decreases += 1;
            }
            self.cap = cut;
            self.last_cut = Some(now);
            self.last_move = Some(now);
            self.reason = cut_on.join("; ");
        }
        self.cap
    }

    /// Whether no interactive request has reported since the cap last moved.
    fn unseen_since_move(&self) -> bool {
        self.last_move
            .is_some_and(|t| !self.seen.iter().any(|o| o.at > t))
    }

    /// One step up, to the maximum.
    fn grow(&mut self, now: Instant) {
        if self.cap < self.config.max {
            self.cap += 1;
            self.increases += 1;
            self.last_move = Some(now);
        }
    }

    /// The signals over their limits, in words.
    fn over(&self, seen: &Interactive, engine: EngineLoad) -> Vec<String> {
        let c = &self.config;
        let mut over = Vec::new();
        if let (Some(limit), Some(v)) = (c.ttft_p95, seen.ttft_p95) {
            if v > limit.as_secs_f64() {
                over.push(format!(
                    "interactive TTFT p95 {:.0} ms over {:.0} ms",
                    v * 1e3,
                    limit.as_secs_f64() * 1e3
                ));
            }
        }
        if let (Some(limit), Some(v)) = (c.tpot_p95, seen.tpot_p95) {
            if v > limit.as_secs_f64() {
                over.push(format!(
                    "interactive TPOT p95 {:.1} ms over {:.1} ms",
                    v * 1e3,
                    limit.as_secs_f64() * 1e3
                ));
            }
        }
        if let Some(w) = engine.waiting {
            if w > c.max_waiting {
                over.push(format!(
                    "{w:.0} requests waiting in the engine (limit {:.0})",
                    c.max_waiting
                ));
            }
        }
        if let Some(kv) = engine.kv_cache {
            if kv > c.max_kv_cache {
                over.push(format!(
                    "KV cache {:.0}% full (limit {:.0}%)",
                    kv * 100.0,
                    c.max_kv_cache * 100.0
                ));
            }
        }
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(p: &mut Policy, now: Instant, ttft_ms: u64, n: usize) {
        for _ in 0..n {
            p.observe(Observed {
                at: now,
                ttft: Some(Duration::from_millis(ttft_ms)),
                tpot: None,
                latency: None,
            });
            p.observe(Observed {
                at: now,
                ttft: None,
                tpot: Some(Duration::from_millis(20)),
                latency: Some(Duration::from_millis(ttft_ms + 200)),
            });
        }
    }

    #[test]
    fn slow_interactive_requests_cut_the_cap_and_quiet_ones_add_one() {
        let mut p = Policy::new(PolicyConfig {
            initial: 16,
            ..PolicyConfig::default()
        });
        let t0 = Instant::now();
        seen(&mut p, t0, 900, 20);
        assert_eq!(p.step(t0, EngineLoad::default()), 11, "16 × 0.7");
        assert!(
            p.reason.contains("TTFT p95 900 ms over 500 ms"),
            "{}",
            p.reason
        );
        // The same slow requests again: they came before the cut, so the cap holds.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(p.step(t1, EngineLoad::default()), 11);
        assert!(p.reason.starts_with("holding after a cut"), "{}", p.reason);
        // Slow requests seen after the cut cut again.
        seen(&mut p, t1, 900, 5);
        let t2 = t1 + Duration::from_millis(500);
        assert_eq!(p.step(t2, EngineLoad::default()), 7);
        // Past the window the slow requests are forgotten; fast ones let the cap grow, one step
        // per report after the last move.
        let t3 = t2 + Duration::from_secs(11);
        seen(&mut p, t3, 100, 20);
        assert_eq!(p.step(t3, EngineLoad::default()), 8);
        assert!(p.reason.contains("20 interactive requests"), "{}", p.reason);
        assert_eq!(
            p.step(t3, EngineLoad::default()),
            8,
            "no report since the step up"
        );
        assert!(
            p.reason.contains("waiting for one after the last move"),
            "{}",
            p.reason
        );
        let t4 = t3 + Duration::from_millis(500);
        seen(&mut p, t4, 100, 1);
        assert_eq!(p.step(t4, EngineLoad::default()), 9);
    }

    #[test]
    fn enough_fast_requests_after_a_cut_grow_it_before_the_window_forgets_the_slow_ones() {
        let mut p = Policy::new(PolicyConfig {
            initial: 20,
            ..PolicyConfig::default()
        });
        let t0 = Instant::now();
        seen(&mut p, t0, 900, 20);
        assert_eq!(p.step(t0, EngineLoad::default()), 14);
        // A few fast requests since the cut: not yet enough to judge it by.
        let t1 = t0 + Duration::from_secs(2);
        seen(&mut p, t1, 100, RECOVER_AFTER - 1);
        assert_eq!(p.step(t1, EngineLoad::default()), 14);
        assert!(p.reason.starts_with("holding after a cut"), "{}", p.reason);
        // Enough: the cap grows although the window still holds the slow ones.
        let t2 = t1 + Duration::from_secs(1);
        seen(&mut p, t2, 100, 1);
        assert_eq!(p.step(t2, EngineLoad::default()), 15);
        assert!(
            p.reason.starts_with("recovering after a cut"),
            "{}",
            p.reason
        );
        // One step per fresh report, and slow ones since the cut cut again.
        assert_eq!(p.step(t2, EngineLoad::default()), 15);
        let t3 = t2 + Duration::from_secs(1);
        seen(&mut p, t3, 100, 1);
        assert_eq!(p.step(t3, EngineLoad::default()), 16);
        let t4 = t3 + Duration::from_secs(1);
        seen(&mut p, t4, 900, 3);
        assert_eq!(p.step(t4, EngineLoad::default()), 11, "16 × 0.7");
    }

    #[test]
    fn the_engine_queue_and_kv_cache_decrease_it_and_the_floor_holds() {
        let mut p = Policy::new(PolicyConfig {
            initial: 3,
            min: 1,
            ..PolicyConfig::default()
        });
        let now = Instant::now();
        let busy = EngineLoad {
            waiting: Some(5.0),
            kv_cache: Some(0.95),
        };
        assert_eq!(p.step(now, busy), 2);
        assert!(p.reason.contains("5 requests waiting"), "{}", p.reason);
        assert!(p.reason.contains("KV cache 95% full"), "{}", p.reason);
        // The engine's queue gets two intervals to drain before it cuts again.
        let later = now + Duration::from_secs(1);
        assert_eq!(p.step(later, busy), 2);
        assert!(p.reason.starts_with("holding after a cut"), "{}", p.reason);
        let t = now + Duration::from_secs(2);
        assert_eq!(p.step(t, busy), 1);
        let t = t + Duration::from_secs(2);
        assert_eq!(p.step(t, busy), 1, "never below the minimum");
        let idle = EngineLoad {
            waiting: Some(0.0),
            kv_cache: Some(0.1),
        };
        assert_eq!(p.step(t, idle), 2);
        assert!(p.reason.contains("no interactive traffic"), "{}", p.reason);
    }

    #[test]
    fn off_it_stays_at_the_maximum() {
        let mut p = Policy::new(PolicyConfig {
            adaptive: false,
            max: 32,
            ..PolicyConfig::default()
        });
        let now = Instant::now();
        seen(&mut p, now, 5000, 10);
        assert_eq!(p.step(now, EngineLoad::default()), 32);
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p95(v), Some(95.0));
        assert_eq!(p95(vec![3.0]), Some(3.0));
        assert_eq!(p95(vec![]), None);
    }
}
