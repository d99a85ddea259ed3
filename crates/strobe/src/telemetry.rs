//! Starting and finishing the samplers that run beside the load (server metrics, GPUs).

use anyhow::Context;
use http::HeaderMap;
use std::net::SocketAddr;
use strobe_client::BaseUrl;
use strobe_core::RunClock;
use strobe_report::{Gpu, ServerMetrics};
use strobe_telemetry::gpu::GpuSampler;
use strobe_telemetry::scrape::{ScrapeConfig, Scraper};

use crate::settings::RunSettings;

pub struct Telemetry {
    scraper: Option<Scraper>,
    gpu: Option<GpuSampler>,
}

impl Telemetry {
    pub async fn start(
        settings: &RunSettings,
        base: &BaseUrl,
        addr: SocketAddr,
        headers: &HeaderMap,
        clock: RunClock,
    ) -> anyhow::Result<Telemetry> {
        let scraper = match &settings.server_metrics {
            None => None,
            Some(url) => {
                let (base, addr, path) = match url {
                    None => (base.clone(), addr, "/metrics".to_owned()),
                    Some(u) => {
                        let b = BaseUrl::parse(u).with_context(|| format!("--metrics-url {u}"))?;
                        let a = b
                            .resolve()
                            .await
                            .with_context(|| format!("--metrics-url {u}"))?;
                        let path = if b.prefix.is_empty() {
                            "/metrics".to_owned()
                        } else {
                            String::new()
                        };
                        (b, a, path)
                    }
                };
                let config = ScrapeConfig {
                    base,
                    addr,
                    headers: headers.clone(),
                    path,
                    interval: settings.telemetry_interval,
                };
                Some(Scraper::start(config, clock))
            }
        };
        let gpu = settings
            .gpu
            .then(|| GpuSampler::start(settings.telemetry_interval, clock));
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
                .unwrap_or_default(),
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
