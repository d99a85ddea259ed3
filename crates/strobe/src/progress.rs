//! What the terminal shows: the experiment's messages and warnings on stderr, a live progress line
//! (terminals only; it only reads the load's atomic counters), and each run's summary on stdout.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;
use strobe_experiment::{LiveRun, Observer, Shutdown, Stage};
use strobe_report::{ExperimentSummary, Report};

const INTERVAL: Duration = Duration::from_millis(500);

/// What the terminal side of a command does.
#[derive(Clone, Copy, Debug)]
pub struct Interactivity {
    /// Live progress line on stderr.
    pub progress: bool,
    /// Print summaries to stdout.
    pub print_summary: bool,
}

impl Interactivity {
    /// Progress only on a terminal.
    pub fn from_env() -> Interactivity {
        Interactivity {
            progress: std::io::stderr().is_terminal(),
            print_summary: true,
        }
    }

    /// Silent: for tests that drive commands in-process.
    pub fn silent() -> Interactivity {
        Interactivity {
            progress: false,
            print_summary: false,
        }
    }
}

/// The console observer.
pub struct Console {
    pub quiet: bool,
    pub ui: Interactivity,
    /// Print run summaries on stderr (stdout carries an `--export FORMAT=-`).
    pub summary_to_stderr: bool,
    /// `--tui`: what the dashboard needs, and the one showing.
    tui: Option<(Shutdown, String, crate::tui::Log)>,
    dashboard: Option<crate::tui::Dashboard>,
    line: Option<tokio::task::JoinHandle<()>>,
}

impl Console {
    pub fn new(quiet: bool, ui: Interactivity) -> Console {
        Console {
            quiet,
            ui,
            summary_to_stderr: false,
            tui: None,
            dashboard: None,
            line: None,
        }
    }

    /// Shows a live dashboard instead of the progress line (on a terminal).
    pub fn enable_tui(&mut self, shutdown: Shutdown, title: String) {
        self.tui = Some((shutdown, title, Default::default()));
    }

    fn end_dashboard(&mut self) {
        if let Some(d) = self.dashboard.take() {
            d.end();
        }
    }

    /// A summary, on stdout (or stderr when stdout carries an export).
    fn show(&self, text: &str) {
        if self.summary_to_stderr {
            eprint!("{text}");
        } else {
            print!("{text}");
            let _ = std::io::stdout().flush();
        }
    }

    fn say(&self, text: &str) {
        if let (Some(_), Some((_, _, log))) = (&self.dashboard, &self.tui) {
            if let Ok(mut l) = log.lock() {
                l.push_back(text.to_owned());
                if l.len() > 50 {
                    l.pop_front();
                }
            }
            return;
        }
        if !self.quiet && (self.ui.print_summary || self.ui.progress) {
            eprintln!("{text}");
        }
    }

    fn stop_line(&mut self) {
        if let Some(t) = self.line.take() {
            t.abort();
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(b"\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop_line();
        self.end_dashboard();
    }
}

impl Observer for Console {
    fn stage(&mut self, stage: &Stage) {
        match stage {
            Stage::LaunchingEngine { pid, command, log } => self.say(&format!(
                "launching the engine (pid {pid}, log {}): {command}",
                log.display()
            )),
            Stage::EngineWaiting { status } => {
                self.say(&format!("  waiting for the engine: {status}"))
            }
            Stage::EngineReady { after_s } => {
                self.say(&format!("the engine serves after {after_s:.1} s"))
            }
            // A search decides its probes as it goes: no total.
            Stage::Run {
                index,
                of: 0,
                label: Some(label),
            } => self.say(&format!("--- {label} (probe {}) ---", index + 1)),
            Stage::Run {
                index,
                of,
                label: Some(label),
            } => self.say(&format!("--- {label} ({} of {of}) ---", index + 1)),
            _ => {}
        }
    }

    fn message(&mut self, text: &str) {
        self.say(text);
    }

    fn warning(&mut self, text: &str) {
        if self.dashboard.is_some() {
            self.say(&format!("warning: {text}"));
            return;
        }
        if !self.quiet {
            eprintln!("warning: {text}");
        }
    }

    fn run_started(&mut self, live: &LiveRun) {
        if let Some((shutdown, title, log)) = &self.tui {
            if std::io::stderr().is_terminal() {
                match crate::tui::Dashboard::start(live, shutdown.clone(), log.clone(), title.clone()) {
                    Ok(d) => {
                        self.dashboard = Some(d);
                        return;
                    }
                    Err(e) => eprintln!("warning: --tui: cannot take over the terminal ({e}); showing progress lines"),
                }
            } else {
                eprintln!("warning: --tui needs a terminal on stderr; showing no dashboard");
            }
        }
        if !self.ui.progress || self.quiet {
            return;
        }
        let (total, clock, planned) = (live.total.clone(), live.clock, live.planned);
        self.line = Some(tokio::spawn(async move {
            let (mut last_done, mut last_tokens) = (0u64, 0u64);
            let mut tick = tokio::time::interval(INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let done = total.completed.load(Ordering::Relaxed);
                let tokens = total.output_tokens.load(Ordering::Relaxed);
                let secs = INTERVAL.as_secs_f64();
                let elapsed = clock.now_ns() as f64 / 1e9;
                let retries = total.retries.load(Ordering::Relaxed);
                let line = format!(
                    "\r[{:>7.1}s] done {done}{} ({} failed{}) | in flight {} | {:.1} req/s | {:.0} tok/s{}   ",
                    elapsed,
                    planned.map(|n| format!("/{n}")).unwrap_or_default(),
                    total.failed.load(Ordering::Relaxed),
                    if retries > 0 { format!(", {retries} retries") } else { String::new() },
                    total.in_flight.load(Ordering::Relaxed),
                    (done - last_done) as f64 / secs,
                    (tokens - last_tokens) as f64 / secs,
                    planned.and_then(|n| eta(n, done, elapsed)).map(|e| format!(" | ETA {e}")).unwrap_or_default(),
                );
                (last_done, last_tokens) = (done, tokens);
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(line.as_bytes());
                let _ = err.flush();
            }
        }));
    }

    fn run_finished(&mut self, report: &Report, files: &[PathBuf]) {
        self.stop_line();
        self.end_dashboard();
        if self.ui.print_summary && !self.quiet {
            self.show(&strobe_report::console::render(report));
        }
        if !files.is_empty() {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            self.say(&format!("written: {}", names.join(", ")));
        }
    }

    fn experiment_finished(&mut self, summary: &ExperimentSummary, file: Option<&PathBuf>) {
        if self.ui.print_summary && !self.quiet {
            self.show(&strobe_report::console::render_experiment(summary));
        }
        if let Some(f) = file {
            self.say(&format!("summary written to {}", f.display()));
        }
    }
}

/// Time left for `planned` requests at the average rate so far ("1m05s"); `None` before the
/// first completion.
fn eta(planned: u64, done: u64, elapsed_s: f64) -> Option<String> {
    if done == 0 || done >= planned || elapsed_s <= 0.0 {
        return None;
    }
    let left = ((planned - done) as f64 * elapsed_s / done as f64).round() as u64;
    Some(match left {
        0..=59 => format!("{left}s"),
        60..=3599 => format!("{}m{:02}s", left / 60, left % 60),
        _ => format!("{}h{:02}m", left / 3600, left % 3600 / 60),
    })
}

#[cfg(test)]
mod tests {
    use super::eta;

    #[test]
    fn eta_follows_the_average_rate() {
        assert_eq!(eta(100, 0, 5.0), None);
        assert_eq!(eta(100, 100, 5.0), None);
        assert_eq!(eta(100, 50, 10.0).as_deref(), Some("10s"));
        assert_eq!(eta(1000, 10, 10.0).as_deref(), Some("16m30s"));
        assert_eq!(eta(100_000, 10, 10.0).as_deref(), Some("27h46m"));
    }
}
