//! The live progress line (stderr, terminals only). It only reads the load's atomic counters.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use strobe_core::RunClock;
use strobe_load::Progress;

const INTERVAL: Duration = Duration::from_millis(500);

/// `planned` is the number of requests the run will send, when a request count bounds it.
pub fn spawn(
    progress: Arc<Progress>,
    clock: RunClock,
    planned: Option<u64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_done = 0u64;
        let mut last_tokens = 0u64;
        let mut tick = tokio::time::interval(INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let done = progress.completed.load(Ordering::Relaxed);
            let tokens = progress.output_tokens.load(Ordering::Relaxed);
            let secs = INTERVAL.as_secs_f64();
            let line = format!(
                "\r[{:>7.1}s] done {done}{} ({} failed) | in flight {} | {:.1} req/s | {:.0} tok/s   ",
                clock.now_ns() as f64 / 1e9,
                planned.map(|n| format!("/{n}")).unwrap_or_default(),
                progress.failed.load(Ordering::Relaxed),
                progress.in_flight.load(Ordering::Relaxed),
                (done - last_done) as f64 / secs,
                (tokens - last_tokens) as f64 / secs,
            );
            last_done = done;
            last_tokens = tokens;
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(line.as_bytes());
            let _ = err.flush();
        }
    })
}

/// Erases the progress line.
pub fn clear() {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(b"\r\x1b[2K");
    let _ = err.flush();
}
