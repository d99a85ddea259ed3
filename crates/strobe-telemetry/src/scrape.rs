//! Polling the server's Prometheus endpoint during a run.

use http::HeaderMap;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use strobe_client::BaseUrl;
use strobe_core::RunClock;
use strobe_report::{Gpu, GpuDevice, ServerMetrics};
use tokio::sync::watch;

use crate::mapping::{delta, read, Reading};
use crate::prometheus::parse;

/// Where and how often to scrape.
#[derive(Clone, Debug)]
pub struct ScrapeConfig {
    pub base: BaseUrl,
    pub addr: SocketAddr,
    pub headers: HeaderMap,
    /// Path below the base URL, normally `/metrics`.
    pub path: String,
    pub interval: Duration,
}

/// A running scraper.
pub struct Scraper {
    stop: watch::Sender<Option<u64>>,
    task: tokio::task::JoinHandle<(ServerMetrics, Option<Gpu>)>,
}

/// How long the final scrape may wait for the server to count the run's last requests.
const SETTLE: Duration = Duration::from_secs(3);

impl Scraper {
    /// Starts scraping now (the first scrape is the baseline for counters and histograms).
    pub fn start(config: ScrapeConfig, clock: RunClock) -> Scraper {
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(run(config, clock, stop_rx));
        Scraper { stop, task }
    }

    /// Takes a final scrape and returns the summary. With `expect_finished`, the final scrape is
    /// repeated (up to 3 s) until the server's TTFT or E2E histogram has counted that many new
    /// requests, since engines update their metrics a moment after a response ends.
    pub async fn finish(self, expect_finished: Option<u64>) -> (ServerMetrics, Option<Gpu>) {
        let _ = self.stop.send(Some(expect_finished.unwrap_or(0)));
        match self.task.await {
            Ok(done) => done,
            // A panicked scraper must not pass for a server that exports nothing.
            Err(e) => (
                ServerMetrics {
                    note: Some(format!(
                        "the metrics scraper failed: {e}; no server metrics for this run"
                    )),
                    ..ServerMetrics::default()
                },
                None,
            ),
        }
    }
}

async fn scrape_once(c: &ScrapeConfig) -> Result<Reading, String> {
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        strobe_client::get(&c.base, c.addr, &c.path, &c.headers),
    )
    .await;
    match got {
        Err(_) => Err("no answer within 5 s".into()),
        Ok(Err(e)) => Err(e),
        Ok(Ok((status, _, _))) if status != 200 => Err(format!("HTTP {status}")),
        Ok(Ok((_, body, _))) => Ok(read(&parse(&String::from_utf8_lossy(&body)))),
    }
}

async fn run(
    c: ScrapeConfig,
    clock: RunClock,
    mut stop: watch::Receiver<Option<u64>>,
) -> (ServerMetrics, Option<Gpu>) {
    let mut m = ServerMetrics {
        url: c.base.url_of(&c.path),
        engine: "unknown".into(),
        interval_s: c.interval.as_secs_f64(),
        ..ServerMetrics::default()
    };
    let mut first: Option<Reading> = None;
    let mut last: Option<Reading> = None;
    let mut gpus: BTreeMap<String, GpuDevice> = BTreeMap::new();
    let mut tick = tokio::time::interval(c.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let expect = loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break stop.borrow().unwrap_or(0),
            _ = tick.tick() => {}
        }
        let t = clock.now_ns() as f64 / 1e9;
        match scrape_once(&c).await {
            Ok(r) => {
                m.scrapes += 1;
                record(&mut m, &mut gpus, &r, t);
                first.get_or_insert_with(|| r.clone());
                last = Some(r);
            }
            Err(e) => {
                m.failed_scrapes += 1;
                if m.scrapes == 0 && m.failed_scrapes == 1 {
                    m.note = Some(format!("{}: {e}", m.url));
                }
            }
        }
    };
    // Final scrape, repeated until the server has counted the run's requests (or SETTLE passes).
    let settle_until = tokio::time::Instant::now() + SETTLE;
    loop {
        let t = clock.now_ns() as f64 / 1e9;
        if let Ok(r) = scrape_once(&c).await {
            m.scrapes += 1;
            record(&mut m, &mut gpus, &r, t);
            first.get_or_insert_with(|| r.clone());
            last = Some(r);
        } else {
            m.failed_scrapes += 1;
        }
        let counted = match (&first, &last) {
            (Some(f), Some(l)) => ["e2e", "ttft"].iter().find_map(|k| {
                l.histograms
                    .get(k)
                    .map(|h| h.count - f.histograms.get(k).map_or(0.0, |b| b.count))
            }),
            _ => None,
        };
        let done = counted.is_none_or(|n| n >= expect as f64);
        if done || tokio::time::Instant::now() >= settle_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if let (Some(f), Some(l)) = (&first, &last) {
        for (k, after) in &l.counters {
            m.counters.insert(
                (*k).to_owned(),
                after - f.counters.get(k).copied().unwrap_or(0.0),
            );
        }
        for (k, after) in &l.histograms {
            m.histograms
                .insert((*k).to_owned(), delta(f.histograms.get(k), after));
        }
        if let (Some(h), Some(q)) = (
            m.counters.get("prefix_cache_hits"),
            m.counters.get("prefix_cache_queries"),
        ) {
            if *q > 0.0 {
                m.prefix_cache_hit_rate = Some(h / q);
            }
        }
        m.engine = l.engines.first().copied().unwrap_or("unknown").to_owned();
        if l.engines.is_empty() && m.note.is_none() {
            m.note = Some("no metric names of vLLM, SGLang or TGI were found".into());
        }
    } else if m.note.is_none() {
        m.note = Some("no scrape succeeded".into());
    }
    let gpu = (!gpus.is_empty()).then(|| Gpu {
        source: "server_metrics".into(),
        note: None,
        devices: gpus.into_values().collect(),
    });
    (m, gpu)
}

fn record(m: &mut ServerMetrics, gpus: &mut BTreeMap<String, GpuDevice>, r: &Reading, t: f64) {
    for (k, v) in &r.gauges {
        m.gauges.entry((*k).to_owned()).or_default().push(t, *v);
    }
    for (label, [used, free, util, power]) in &r.dcgm {
        let d = gpus.entry(label.clone()).or_insert_with(|| GpuDevice {
            index: label.parse().unwrap_or(0),
            name: format!("gpu {label} (DCGM)"),
            ..GpuDevice::default()
        });
        const MIB: f64 = 1024.0 * 1024.0;
        if let Some(u) = used {
            d.memory_used_bytes.push(t, u * MIB);
            if let Some(f) = free {
                d.memory_total_bytes = ((u + f) * MIB) as u64;
            }
        }
        if let Some(u) = util {
            d.utilization_percent.push(t, *u);
        }
        if let Some(p) = power {
            d.power_watts.push(t, *p);
        }
    }
}
