//! Over-saturation: an open loop offering more than the server serves. Requests outstanding (due
//! by the schedule but not yet answered) then grow without bound, and every latency figure of the
//! run measures the length of a queue that depends only on how long the run lasted. GuideLLM found
//! over half of 4,506 real benchmark runs invalid this way; strobe watches every open-loop run for
//! it, reports it, and stops a capacity-search probe as soon as it is certain.
//!
//! The rule ([`Detector`]): sampled every [`INTERVAL`], outstanding = due − completed. Over the
//! second half of the run so far, growth g = Δoutstanding / Δt. In a stable queue the count
//! fluctuates around its mean m with a spread of about √m (Poisson), so a difference of two
//! samples has a spread of about √(2m). The run is over-saturated when, at three checks in a row:
//! the count grew by more than 4√(2m) + 3 requests and at more than 10% of the offered rate, the
//! three quarters of the window rose in order, *and* the server was answering from the window's
//! start, at a rate no longer rising (the last quarter's at most 1.15× the third's, plus noise)
//! and below 90% of the offered rate. The last three keep a healthy server with long latencies
//! from being flagged while its queue fills: before its first answers are due it is not
//! answering, and while its latency distribution fills in its answer rate is still rising.

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

/// The pure rule, fed (seconds since start, outstanding, completed) samples.
#[derive(Debug)]
pub struct Detector {
    offered_per_s: f64,
    /// (t, outstanding, completed)
    samples: Vec<(f64, f64, f64)>,
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

    /// The sample at time `t` (the latest at or before it).
    fn at(&self, t: f64) -> (f64, f64, f64) {
        let i = self.samples.partition_point(|(s, _, _)| *s <= t);
        self.samples[i.saturating_sub(1)]
    }

    /// Adds a sample; returns true once over-saturation is certain.
    pub fn observe(&mut self, t: f64, outstanding: f64, completed: f64) -> bool {
        self.samples.push((t, outstanding, completed));
        if self.detected_at.is_some() {
            return true;
        }
        if t < MIN_WATCH.as_secs_f64() {
            return false;
        }
        let (mid, q3) = (t / 2.0, t * 0.75);
        let ((t_a, a, done_a), (t_b, b, done_b)) = (self.at(mid), self.at(q3));
        let (c, done_c) = (outstanding, completed);
        let dt = t - t_a;
        if dt <= 0.0 || t - t_b <= 0.0 || t_b - t_a <= 0.0 {
            return false;
        }
        self.growth = (c - a) / dt;
        // The window's mean level, for the noise bound.
        let from = self.samples.partition_point(|(s, _, _)| *s < mid);
        let window = &self.samples[from..];
        let mean = window.iter().map(|(_, v, _)| v).sum::<f64>() / window.len().max(1) as f64;
        let noise = 4.0 * (2.0 * mean.max(1.0)).sqrt() + 3.0;
        let grew = c - a > noise && self.growth > 0.1 * self.offered_per_s && a < b && b < c;
        // The server answers, steadily, and slower than requests come. A healthy server whose
        // queue is still filling (its first answers not yet due, or arriving ever faster as the
        // latency distribution fills in) fails one of these: it is not yet answering, or its
        // answer rate is still rising.
        let (rate_1, rate_2) = (
            (done_b - done_a) / (t_b - t_a),
            (done_c - done_b) / (t - t_b),
        );
        let n_2 = done_c - done_b;
        let answering = done_a > 0.0 && rate_1 > 0.0;
        let steady = rate_2 <= 1.15 * rate_1 + 2.0 * n_2.max(1.0).sqrt() / (t - t_b);
        let short = rate_2 < 0.9 * self.offered_per_s;
        self.streak = if grew && answering && steady && short {
            self.streak + 1
        } else {
            0
        };
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
        if d.observe(t, in_flight + held_back, completed) {
            if let Some(f) = stop.take() {
                f();
            }
        }
    }
    // The detector's clock starts at the first sample that saw a request sent; the report counts
    // from the run's start.
    let mut result = d.result(stopping);
    result.at_s = result.at_s.map(|t| t + started.unwrap_or(0.0));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stable queue's count: m ± noise (deterministic pseudo-noise).
    /// Deterministic pseudo-noise in [-0.5, 0.5).
    fn wobble(k: usize, phase: f64) -> f64 {
        ((k as f64 * 12.9898 + phase).sin() * 43_758.545)
            .fract()
            .abs()
            - 0.5
    }

    /// Drives a detector with arrivals at `rate` and completions `done(t)`; returns when it fired.
    fn drive(rate: f64, secs: f64, done: impl Fn(f64) -> f64) -> (Option<f64>, Detector) {
        let mut d = Detector::new(rate);
        let mut fired = None;
        for k in 0..(secs / 0.25) as usize {
            let t = k as f64 * 0.25;
            // Poisson-like spreads: ±√n on arrivals and on answers.
            let sent = (rate * t + 2.0 * wobble(k, 0.0) * (rate * t).sqrt()).max(0.0);
            let answered = done(t);
            let c = (answered + 2.0 * wobble(k, 7.7) * answered.sqrt()).clamp(0.0, sent);
            if d.observe(t, sent - c, c) && fired.is_none() {
                fired = Some(t);
            }
        }
        (fired, d)
    }

    #[test]
    fn a_growing_queue_is_detected() {
        // 100 req/s offered, 60 served (after 0.2 s latency): outstanding grows by 40/s.
        let (fired, d) = drive(100.0, 60.0, |t| 60.0 * (t - 0.2).max(0.0));
        let at = fired.expect("over-saturation detected");
        assert!(at < 5.0, "detected at {at} s");
        assert!(
            (d.result(true).growth_per_s - 40.0).abs() < 10.0,
            "{:?}",
            d.result(true)
        );
    }

    #[test]
    fn healthy_servers_are_never_flagged_even_while_their_queue_fills() {
        // Served in full after a fixed latency: 0.1 s, 8 s (20 req/s: 160 outstanding once full)
        // and 30 s (5 req/s).
        for (rate, latency) in [
            (100.0, 0.1),
            (20.0, 8.0),
            (30.0, 6.5),
            (10.0, 15.0),
            (5.0, 30.0),
        ] {
            let (fired, _) = drive(rate, 90.0, |t| rate * (t - latency).max(0.0));
            assert_eq!(fired, None, "{rate}/s at {latency} s latency");
        }
        // Latencies spread uniformly over 2-10 s: answers ramp up for 8 s, then keep pace.
        let rate = 20.0;
        let done = |t: f64| {
            // ∫ rate · F(t − s) ds with F uniform on [2, 10].
            let x = (t - 2.0).clamp(0.0, 8.0);
            rate * (x * x / 16.0 + (t - 10.0).max(0.0))
        };
        let (fired, _) = drive(rate, 90.0, done);
        assert_eq!(fired, None);
        // A burst that fills a queue to a plateau, then keeps pace.
        let (fired, _) = drive(
            100.0,
            60.0,
            |t| if t < 2.0 { 0.0 } else { 100.0 * (t - 2.0) },
        );
        assert_eq!(fired, None);
    }
}
