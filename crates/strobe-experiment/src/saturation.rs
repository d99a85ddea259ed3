//! Over-saturation: an open loop offering more than the server serves. Requests outstanding (due
//! by the schedule but not yet answered) then grow without bound, and every latency figure of the
//! run measures the length of a queue that depends only on how long the run lasted. GuideLLM found
//! over half of 4,506 real benchmark runs invalid this way; strobe watches every open-loop run for
//! it, reports it, and stops a capacity-search probe as soon as it is certain.
//!
//! The rule ([`Detector`]): sampled every [`INTERVAL`], outstanding = due − completed. Over the
//! second half of the run so far, growth g = Δoutstanding / Δt. In a stable queue the count
//! fluctuates around its mean m with a spread of about √m (Poisson), so a difference of two
//! samples has a spread of about √(2m). The run is over-saturated when, at three checks in a row,
//! the count grew by more than 4√(2m) + 3 requests *and* at more than 10% of the offered rate,
//! and the three quarters of the window rose in order. A healthy server passes it at any duration:
//! its growth is noise around zero.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use strobe_core::RunClock;
use strobe_load::Progress;
use strobe_report::Saturation;
use tokio::sync::watch;

/// How often the watch samples.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// The watch decides nothing before this much of the run.
pub const MIN_WATCH: Duration = Duration::from_secs(3);
/// Consecutive checks that must agree.
const AGREEING: u32 = 3;

/// The pure rule, fed (seconds since start, outstanding) samples.
#[derive(Debug)]
pub struct Detector {
    offered_per_s: f64,
    samples: Vec<(f64, f64)>,
    streak: u32,
    detected_at: Option<f64>,
    growth: f64,
}

impl Detector {
    pub fn new(offered_per_s: f64) -> Detector {
        Detector {
            offered_per_s,
            samples: vec![],
            streak: 0,
            detected_at: None,
            growth: 0.0,
        }
    }

    /// The value at time `t` (the latest sample at or before it).
    fn at(&self, t: f64) -> f64 {
        let i = self.samples.partition_point(|(s, _)| *s <= t);
        self.samples[i.saturating_sub(1)].1
    }

    /// Adds a sample; returns true once over-saturation is certain.
    pub fn observe(&mut self, t: f64, outstanding: f64) -> bool {
        self.samples.push((t, outstanding));
        if self.detected_at.is_some() {
            return true;
        }
        if t < MIN_WATCH.as_secs_f64() {
            return false;
        }
        let (mid, q3) = (t / 2.0, t * 0.75);
        let (a, b, c) = (self.at(mid), self.at(q3), outstanding);
        let dt = t - mid;
        self.growth = (c - a) / dt;
        // The window's mean level, for the noise bound.
        let from = self.samples.partition_point(|(s, _)| *s < mid);
        let window = &self.samples[from..];
        let mean = window.iter().map(|(_, v)| v).sum::<f64>() / window.len().max(1) as f64;
        let noise = 4.0 * (2.0 * mean.max(1.0)).sqrt() + 3.0;
        let grew = c - a > noise && self.growth > 0.1 * self.offered_per_s && a < b && b < c;
        self.streak = if grew { self.streak + 1 } else { 0 };
        if self.streak >= AGREEING {
            self.detected_at = Some(t);
        }
        self.detected_at.is_some()
    }

    pub fn result(&self, stopped_early: bool) -> Saturation {
        Saturation {
            detected: self.detected_at.is_some(),
            stopped_early: stopped_early && self.detected_at.is_some(),
            at_s: self.detected_at,
            offered_per_s: self.offered_per_s,
            growth_per_s: self.growth,
            outstanding: self.samples.last().map_or(0, |s| s.1.max(0.0) as u64),
        }
    }
}

/// Watches a run's counters until `done` turns true. With `stop_on_detect`, it calls `stop` the
/// moment over-saturation is certain. `capped` is the open loop's concurrency cap, if any: the
/// requests held back by it are outstanding too (due, not sent), counted from the rate.
pub async fn watch_run(
    progress: Arc<Progress>,
    clock: RunClock,
    offered_per_s: f64,
    capped: bool,
    stop_on_detect: Option<Box<dyn FnOnce() + Send>>,
    mut done: watch::Receiver<bool>,
) -> Saturation {
    let mut d = Detector::new(offered_per_s);
    let mut stop = stop_on_detect;
    let stopping = stop.is_some();
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut started: Option<f64> = None;
    // Sending ends before the drain: the watch ends with it (a draining queue is not a verdict).
    let mut last_sent = (0.0, 0.0);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = done.changed() => break,
        }
        if *done.borrow() {
            break;
        }
        let sent = progress.sent.load(Ordering::Relaxed) as f64;
        if sent == 0.0 {
            continue;
        }
        let now = clock.now_ns() as f64 / 1e9;
        if sent > last_sent.0 {
            last_sent = (sent, now);
        } else if now - last_sent.1 > 1.0 {
            continue;
        }
        let t0 = *started.get_or_insert(now);
        let t = now - t0;
        let completed = progress.completed.load(Ordering::Relaxed) as f64;
        let in_flight = sent - completed;
        let held_back = if capped {
            (offered_per_s * t - sent).max(0.0)
        } else {
            0.0
        };
        if d.observe(t, in_flight + held_back) {
            if let Some(f) = stop.take() {
                f();
            }
        }
    }
    d.result(stopping)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stable queue's count: m ± noise (deterministic pseudo-noise).
    fn noisy(m: f64, k: usize) -> f64 {
        let x = ((k as f64 * 12.9898).sin() * 43_758.545).fract();
        (m + (x - 0.5) * 4.0 * m.sqrt()).max(0.0)
    }

    #[test]
    fn a_growing_queue_is_detected_and_a_stable_one_never() {
        // 100 req/s offered, 60 served: outstanding grows by 40/s.
        let mut d = Detector::new(100.0);
        let mut fired = None;
        for k in 0..240 {
            let t = k as f64 * 0.25;
            if d.observe(t, noisy(20.0 + 40.0 * t, k)) && fired.is_none() {
                fired = Some(t);
            }
        }
        let at = fired.expect("over-saturation detected");
        assert!(at < 5.0, "detected at {at} s");
        // Growth at detection, within the pseudo-noise (±2√m per sample, m ≈ 150).
        assert!(
            (d.result(true).growth_per_s - 40.0).abs() < 25.0,
            "{:?}",
            d.result(true)
        );
        // The same rate served in full: 50 outstanding on average, for a minute.
        let mut d = Detector::new(100.0);
        for k in 0..240 {
            assert!(
                !d.observe(k as f64 * 0.25, noisy(50.0, k)),
                "fired at sample {k}"
            );
        }
        assert!(!d.result(false).detected);
        // A queue filling to a plateau (a burst, then steady) is not over-saturation.
        let mut d = Detector::new(100.0);
        for k in 0..240 {
            let t = k as f64 * 0.25;
            let v = noisy(20.0 + 30.0 * t.min(2.0), k);
            assert!(!d.observe(t, v), "fired at {t} s");
        }
    }
}
