//! `--tui`: a full-screen live view of the running benchmark (ratatui). It only reads the run's
//! atomic counters and live histograms; `q` or Ctrl-C asks the run to stop as a signal would
//! (drain, then cancel on a second press), and every output is still written. When a run ends the
//! terminal is restored and the usual summary is printed.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::layout::{Constraint, Direction, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Chart, Dataset, Gauge, GraphType, Paragraph, Row, Table,
};
use ratatui::Terminal;
use strobe_experiment::{LiveRun, Shutdown};
use strobe_load::{LiveHistogram, Progress};

const FRAME: Duration = Duration::from_millis(250);
/// Seconds of history the charts keep.
const HISTORY: usize = 240;
const COLORS: [Color; 6] = [
    Color::Cyan,
    Color::Yellow,
    Color::Magenta,
    Color::Green,
    Color::LightRed,
    Color::LightBlue,
];

/// Messages shown in the dashboard while it is up (they would tear the screen otherwise).
pub type Log = Arc<Mutex<VecDeque<String>>>;

struct ClassView {
    name: String,
    progress: Arc<Progress>,
    /// (seconds, output tokens/s, in flight) once a second.
    history: VecDeque<(f64, f64, f64)>,
    last: (f64, u64, u64),
    /// Histograms one window ago, for windowed percentiles.
    ttft_then: Vec<u64>,
    e2e_then: Vec<u64>,
    rate: (f64, f64),
}

/// The running dashboard: a drawing task and a key-reading thread.
pub struct Dashboard {
    stop: Arc<std::sync::atomic::AtomicBool>,
    draw: Option<std::thread::JoinHandle<()>>,
}

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stderr(),
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
}

impl Dashboard {
    /// Takes over the terminal (stderr) until [`Dashboard::end`].
    pub fn start(
        live: &LiveRun,
        shutdown: Shutdown,
        log: Log,
        title: String,
    ) -> std::io::Result<Dashboard> {
        enable_raw_mode()?;
        execute!(std::io::stderr(), EnterAlternateScreen)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let classes: Vec<ClassView> = live
            .classes
            .iter()
            .map(|(name, p)| ClassView {
                name: name.clone(),
                progress: p.clone(),
                history: VecDeque::new(),
                last: (0.0, 0, 0),
                ttft_then: vec![0; strobe_load::LIVE_BUCKETS],
                e2e_then: vec![0; strobe_load::LIVE_BUCKETS],
                rate: (0.0, 0.0),
            })
            .collect();
        let (clock, planned, total) = (live.clock, live.planned, live.total.clone());
        let run_label = match (&live.label, live.of) {
            (Some(l), 0) => format!("{l} (probe {})", live.index + 1),
            (Some(l), of) => format!("{l} ({} of {of})", live.index + 1),
            (None, _) => String::new(),
        };
        let s = stop.clone();
        let draw = std::thread::spawn(move || {
            let backend = ratatui::backend::CrosstermBackend::new(std::io::stderr());
            let Ok(mut term) = Terminal::new(backend) else {
                return;
            };
            let _ = term.clear();
            let mut classes = classes;
            let started = Instant::now();
            let mut last_sample = Instant::now() - Duration::from_secs(1);
            let mut stopping = 0;
            while !s.load(Ordering::Relaxed) {
                if event::poll(FRAME).unwrap_or(false) {
                    if let Ok(Event::Key(k)) = event::read() {
                        let ctrl_c = k.code == KeyCode::Char('c')
                            && k.modifiers.contains(KeyModifiers::CONTROL);
                        if k.kind == KeyEventKind::Press && (k.code == KeyCode::Char('q') || ctrl_c)
                        {
                            shutdown.request();
                            stopping += 1;
                        }
                    }
                }
                let now_s = clock.now_ns() as f64 / 1e9;
                if last_sample.elapsed() >= Duration::from_secs(1) {
                    last_sample = Instant::now();
                    for c in &mut classes {
                        let tokens = c.progress.output_tokens.load(Ordering::Relaxed);
                        let done = c.progress.completed.load(Ordering::Relaxed);
                        let dt = (now_s - c.last.0).max(1e-3);
                        c.rate = (
                            (done - c.last.2) as f64 / dt,
                            (tokens - c.last.1) as f64 / dt,
                        );
                        c.last = (now_s, tokens, done);
                        c.history.push_back((
                            now_s,
                            c.rate.1,
                            c.progress.in_flight.load(Ordering::Relaxed) as f64,
                        ));
                        if c.history.len() > HISTORY {
                            c.history.pop_front();
                        }
                    }
                }
                let _ = term.draw(|f| {
                    frame(
                        f,
                        &mut classes,
                        &total,
                        planned,
                        now_s,
                        started,
                        &run_label,
                        &title,
                        &log,
                        stopping,
                    )
                });
            }
        });
        Ok(Dashboard {
            stop,
            draw: Some(draw),
        })
    }

    /// Stops drawing and gives the terminal back.
    pub fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.draw.take() {
            let _ = t.join();
        }
        restore();
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.finish();
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| {
        if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    })
}

fn windowed(now: &[u64], then: &[u64]) -> Vec<u64> {
    now.iter()
        .zip(then)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn frame(
    f: &mut ratatui::Frame,
    classes: &mut [ClassView],
    total: &Progress,
    planned: Option<u64>,
    now_s: f64,
    started: Instant,
    run_label: &str,
    title: &str,
    log: &Log,
    stopping: u32,
) {
    let area = f.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(3),
            Constraint::Length(3 + classes.len() as u16),
            Constraint::Min(8),
            Constraint::Length(6),
        ])
        .split(area);
    let done = total.completed.load(Ordering::Relaxed);
    let failed = total.failed.load(Ordering::Relaxed);
    let ratio = planned.map_or(0.0, |n| (done as f64 / n.max(1) as f64).min(1.0));
    let label = format!(
        "{done}{} done · {failed} failed · {} in flight · {:.0} s",
        planned.map(|n| format!(" of {n}")).unwrap_or_default(),
        total.in_flight.load(Ordering::Relaxed),
        now_s
    );
    let header = format!(" strobe · {title} {run_label} ");
    f.render_widget(
        Gauge::default()
            .block(Block::default().borders(Borders::ALL).title(header))
            .gauge_style(Style::default().fg(Color::Cyan))
            .ratio(if planned.is_some() {
                ratio
            } else {
                (started.elapsed().as_secs_f64() % 10.0) / 10.0
            })
            .label(label),
        rows[0],
    );
    // Per-class table: totals and the last ~5 s window's percentiles.
    let mut table_rows = vec![];
    for c in classes.iter_mut() {
        let p = &c.progress;
        let (ttft, e2e) = (p.ttft.snapshot(), p.e2e.snapshot());
        let (wt, we) = (windowed(&ttft, &c.ttft_then), windowed(&e2e, &c.e2e_then));
        if wt.iter().sum::<u64>() > 200 || (now_s as u64).is_multiple_of(5) {
            c.ttft_then = ttft.clone();
            c.e2e_then = e2e.clone();
        }
        let q = |h: &[u64], x: f64| ms(LiveHistogram::quantile_ms(h, x));
        table_rows.push(Row::new(vec![
            c.name.clone(),
            p.sent.load(Ordering::Relaxed).to_string(),
            p.completed.load(Ordering::Relaxed).to_string(),
            p.failed.load(Ordering::Relaxed).to_string(),
            p.in_flight.load(Ordering::Relaxed).to_string(),
            format!("{:.1}", c.rate.0),
            format!("{:.0}", c.rate.1),
            q(&ttft, 0.5),
            q(&ttft, 0.99),
            q(&wt, 0.99),
            q(&e2e, 0.5),
            q(&e2e, 0.99),
            q(&we, 0.99),
        ]));
    }
    let widths = [Constraint::Length(14)]
        .into_iter()
        .chain(std::iter::repeat_n(Constraint::Length(9), 12));
    f.render_widget(
        Table::new(table_rows, widths)
            .header(
                Row::new(vec![
                    "class", "sent", "done", "failed", "flight", "req/s", "tok/s", "TTFT p50",
                    "TTFT p99", "p99 now", "E2E p50", "E2E p99", "p99 now",
                ])
                .style(Style::default().add_modifier(Modifier::BOLD)),
            )
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" classes (latency in ms; live, to 9%: the report is exact) "),
            ),
        rows[1],
    );
    let charts = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(rows[2]);
    type Points = Vec<(f64, f64)>;
    let series: Vec<(Points, Points)> = classes
        .iter()
        .map(|c| {
            (
                c.history.iter().map(|h| (h.0, h.1)).collect(),
                c.history.iter().map(|h| (h.0, h.2)).collect(),
            )
        })
        .collect();
    let x0 = classes
        .iter()
        .filter_map(|c| c.history.front().map(|h| h.0))
        .fold(f64::INFINITY, f64::min);
    let x0 = if x0.is_finite() { x0 } else { 0.0 };
    let x1 = now_s.max(x0 + 1.0);
    for (k, (title, pick)) in [(" output tokens/s ", 0usize), (" requests in flight ", 1)]
        .into_iter()
        .enumerate()
    {
        let data: Vec<&Vec<(f64, f64)>> = series
            .iter()
            .map(|s| if pick == 0 { &s.0 } else { &s.1 })
            .collect();
        let top = data
            .iter()
            .flat_map(|d| d.iter().map(|p| p.1))
            .fold(1.0f64, f64::max)
            * 1.1;
        let sets: Vec<Dataset> = data
            .iter()
            .zip(classes.iter())
            .enumerate()
            .map(|(i, (d, c))| {
                Dataset::default()
                    .name(c.name.clone())
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(Style::default().fg(COLORS[i % COLORS.len()]))
                    .data(d)
            })
            .collect();
        f.render_widget(
            Chart::new(sets)
                .block(Block::default().borders(Borders::ALL).title(title))
                .x_axis(Axis::default().bounds([x0, x1]).labels(vec![
                    Span::raw(format!("{x0:.0}s")),
                    Span::raw(format!("{x1:.0}s")),
                ]))
                .y_axis(
                    Axis::default()
                        .bounds([0.0, top])
                        .labels(vec![Span::raw("0"), Span::raw(format!("{top:.0}"))]),
                ),
            charts[k],
        );
    }
    let bottom = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(40), Constraint::Percentage(60)])
        .split(rows[3]);
    let errors: Vec<Line> = match total.errors.lock() {
        Ok(e) if !e.is_empty() => e
            .iter()
            .map(|(k, n)| Line::from(format!("{k}: {n}")))
            .collect(),
        _ => vec![Line::from("none")],
    };
    f.render_widget(
        Paragraph::new(errors).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" errors by kind "),
        ),
        bottom[0],
    );
    let mut lines: Vec<Line> = log
        .lock()
        .map(|l| {
            l.iter()
                .rev()
                .take(3)
                .rev()
                .map(|s| Line::from(s.clone()))
                .collect()
        })
        .unwrap_or_default();
    lines.push(Line::from(Span::styled(
        match stopping {
            0 => "q or Ctrl-C: stop (in-flight requests finish; again to cancel them). Outputs are written either way.".to_owned(),
            1 => "stopping: no new requests; waiting for in-flight ones (q again to cancel them)".to_owned(),
            _ => "cancelling in-flight requests".to_owned(),
        },
        Style::default().fg(Color::Gray),
    )));
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" messages ")),
        bottom[1],
    );
}
