//! Starting and finishing the samplers that run beside the load (server metrics, GPUs).

use http::HeaderMap;
use std::net::SocketAddr;
use strobe_client::BaseUrl;
use strobe_core::RunClock;
use strobe_report::{Gpu, ServerMetrics};
use strobe_telemetry::gpu::GpuSampler;
use strobe_telemetry::scrape::{ScrapeConfig, Scraper};

use crate::error::ExperimentError;
use crate::target::{MetricsSource, TelemetrySpec};

/// Headers for a metrics endpoint: the target's, with the Host of the endpoint, and — when the
/// endpoint is another server — without credentials (they are never sent across hosts).
fn metrics_headers(target: &HeaderMap, base: &BaseUrl, metrics: &BaseUrl) -> HeaderMap {
    let mut h = target.clone();
    if !base.same_origin(metrics) {
        let secret: Vec<_> = h
            .iter()
            .filter(|(_, v)| v.is_sensitive())
            .map(|(k, _)| k.clone())
            .collect();
        for k in secret {
            h.remove(k);
        }
    }
    if let Ok(v) = http::HeaderValue::from_str(&metrics.host_header) {
        h.insert(http::header::HOST, v);
    }
    h
}

pub struct Telemetry {
    scraper: Option<Scraper>,
    gpu: Option<GpuSampler>,
}

impl Telemetry {
    pub async fn start(
        spec: &TelemetrySpec,
        tls: &strobe_client::TlsOptions,
        base: &BaseUrl,
        addr: SocketAddr,
        headers: &HeaderMap,
        clock: RunClock,
    ) -> Result<Telemetry, ExperimentError> {
        let bad = |u: &str, e: &dyn std::fmt::Display| ExperimentError::MetricsUrl {
            flag: "--metrics-url",
            url: u.to_owned(),
            reason: e.to_string(),
        };
        let scraper = match &spec.server_metrics {
            MetricsSource::Off => None,
            source => {
                let (base, addr, path, headers) = match source {
                    MetricsSource::Url(u) => {
                        let b = BaseUrl::parse(u)
                            .and_then(|b| b.with_tls(tls))
                            .map_err(|e| bad(u, &e))?;
                        let a = b.resolve().await.map_err(|e| bad(u, &e))?;
                        let path = if b.prefix.is_empty() {
                            "/metrics".to_owned()
                        } else {
                            String::new()
                        };
                        let h = metrics_headers(headers, base, &b);
                        (b, a, path, h)
                    }
                    _ => (base.clone(), addr, "/metrics".to_owned(), headers.clone()),
                };
                let config = ScrapeConfig {
                    base,
                    addr,
                    headers,
                    path,
                    interval: spec.interval,
                };
                Some(Scraper::start(config, clock))
            }
        };
        let gpu = spec.gpu.then(|| GpuSampler::start(spec.interval, clock));
        Ok(Telemetry { scraper, gpu })
    }

    /// Stops sampling. `finished` is how many requests the server should have counted (the final
    /// scrape waits briefly for its histograms to catch up).
    pub async fn finish(self, finished: u64) -> (Option<ServerMetrics>, Gpu) {
        let (metrics, remote_gpu) = match self.scraper {
            Some(s) => {
                let (m, g) = s.finish(Some(finished)).await;
                (Some(m), g)
            }
            None => (None, None),
        };
        let local = match self.gpu {
            Some(g) => tokio::task::spawn_blocking(move || g.finish())
                .await
                .unwrap_or_else(|e| Gpu {
                    source: "none".into(),
                    note: Some(format!("GPU sampling failed: {e}")),
                    devices: vec![],
                }),
            None => Gpu {
                source: "none".into(),
                note: Some("not sampled (--no-gpu)".into()),
                devices: vec![],
            },
        };
        // Local NVML first; else what the engine's /metrics exported (DCGM); else say why none.
        let gpu = match (local.source.as_str(), remote_gpu) {
            ("nvml", _) => local,
            (_, Some(remote)) => remote,
            _ => local,
        };
        (metrics, gpu)
    }
}
