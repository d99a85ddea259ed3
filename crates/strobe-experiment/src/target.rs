//! Preparing a target once: the built-in target or a URL, or an engine strobe launches; the
//! pre-run check; what telemetry samples. A [`Session`] then serves any number of runs and is
//! closed at the end (the built-in target stopped, a launched engine's whole process group
//! stopped — also on error and on every stop signal).

use http::HeaderMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use strobe_client::{build_headers, preflight, BaseUrl, ServerInfo, TlsOptions};
use strobe_core::{redact_command, Secret};
use strobe_report::Engine;
use strobe_server::{ServerConfig, ServerHandle};
use strobe_telemetry::launch::{self, LaunchError, Launched};

use crate::error::ExperimentError;
use crate::observer::{Observer, Stage};
use crate::shutdown::Shutdown;

/// Where the server's Prometheus metrics come from.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricsSource {
    Off,
    /// The server's own `/metrics`.
    Server,
    Url(String),
}

/// What is sampled beside each run.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetrySpec {
    pub server_metrics: MetricsSource,
    /// Sample local GPUs through NVML.
    pub gpu: bool,
    pub interval: Duration,
}

/// An engine to start before the runs and stop after them.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchSpec {
    /// A shell command line.
    pub command: String,
    pub timeout: Duration,
    pub log: PathBuf,
}

/// The server to benchmark and how to talk to it.
#[derive(Clone, Debug)]
pub struct TargetSpec {
    /// Base URL; `None` (and no launch): the built-in target, in-process.
    pub url: Option<String>,
    pub model: Option<String>,
    pub api_key: Option<Secret>,
    /// Extra headers (name, value) for every request.
    pub headers: Vec<(String, String)>,
    pub request_timeout: Duration,
    /// No response head this long after a request starts: `first_byte_timeout`.
    pub first_byte_timeout: Option<Duration>,
    /// Nothing received this long in the middle of a response: `idle_timeout`.
    pub idle_timeout: Option<Duration>,
    pub kernel_timestamps: bool,
    /// How an `https://` server's certificate is checked.
    pub tls: TlsOptions,
    pub launch: Option<LaunchSpec>,
    pub telemetry: TelemetrySpec,
    /// The built-in target's behaviour when it is the target.
    pub built_in: ServerConfig,
}

impl TargetSpec {
    /// The built-in target with its defaults, no telemetry beyond its /metrics.
    pub fn built_in() -> TargetSpec {
        TargetSpec {
            url: None,
            model: None,
            api_key: None,
            headers: vec![],
            request_timeout: Duration::from_secs(600),
            first_byte_timeout: None,
            idle_timeout: Some(Duration::from_secs(120)),
            kernel_timestamps: true,
            tls: TlsOptions::default(),
            launch: None,
            telemetry: TelemetrySpec {
                server_metrics: MetricsSource::Server,
                gpu: false,
                interval: Duration::from_secs(1),
            },
            built_in: ServerConfig::default(),
        }
    }
}

/// A prepared target.
pub struct Session {
    pub spec: TargetSpec,
    pub base: BaseUrl,
    pub addr: SocketAddr,
    /// Headers every request carries (auth included; never printed).
    pub headers: HeaderMap,
    pub info: ServerInfo,
    pub engine: Option<Engine>,
    built_in: Option<ServerHandle>,
    launched: Option<Launched>,
}

async fn stop_engine(engine: Launched) {
    let mut engine = engine;
    let _ = tokio::task::spawn_blocking(move || engine.stop()).await;
}

impl Session {
    /// Starts what must be started and checks the server, stopping at once on a stop request.
    pub async fn open(
        spec: TargetSpec,
        shutdown: &Shutdown,
        observer: &mut dyn Observer,
    ) -> Result<Session, ExperimentError> {
        let mut built_in = None;
        let mut launched = None;
        let mut engine = None;
        let mut model_warning = None;
        let url = match (&spec.url, &spec.launch) {
            (Some(u), _) => u.clone(),
            (None, Some(_)) => "http://127.0.0.1:8000".to_owned(),
            (None, None) => {
                let listener = strobe_server::bind(([127, 0, 0, 1], 0).into())
                    .map_err(ExperimentError::BuiltIn)?;
                let handle = strobe_server::serve(listener, spec.built_in.clone())
                    .map_err(ExperimentError::BuiltIn)?;
                let url = format!("http://{}", handle.addr);
                observer.message(&match &spec.built_in.sim {
                    Some(e) => format!(
                        "no --url given: benchmarking a simulated engine at {url}: {} (strobe serve --sim; simulated timing, not a measurement of real hardware)",
                        e.describe()
                    ),
                    None => format!(
                        "no --url given: benchmarking the built-in target (strobe serve) at {url}: TTFT {:?}, {:?} between tokens",
                        spec.built_in.ttft, spec.built_in.itl
                    ),
                });
                built_in = Some(handle);
                url
            }
        };
        let base = BaseUrl::parse(&url)?.with_tls(&spec.tls)?;
        let addr = base.resolve().await?;
        let headers = build_headers(
            &base,
            spec.api_key.as_ref().map(Secret::expose),
            &spec.headers,
        )?;
        if let Some(l) = &spec.launch {
            let mut e = Launched::spawn(&l.command, &l.log)?;
            let command = redact_command(&l.command);
            observer.stage(&Stage::LaunchingEngine {
                pid: e.pid(),
                command: command.clone(),
                log: l.log.clone(),
            });
            let ready = {
                let mut status = |s: &str| {
                    observer.stage(&Stage::EngineWaiting {
                        status: s.to_owned(),
                    })
                };
                tokio::select! {
                    r = e.wait_ready(&base, addr, &headers, l.timeout, spec.model.as_deref(), &mut status) => r,
                    _ = shutdown.wait() => Err(LaunchError::Interrupted),
                }
            };
            let ready = match ready {
                Ok(r) => r,
                Err(err) => {
                    stop_engine(e).await;
                    return Err(match err {
                        LaunchError::Interrupted => ExperimentError::Interrupted {
                            stage: "the engine started",
                        },
                        other => other.into(),
                    });
                }
            };
            observer.stage(&Stage::EngineReady {
                after_s: ready.after.as_secs_f64(),
            });
            model_warning = ready.warning;
            engine = Some(Engine {
                params: launch::params(&l.command),
                command,
                version: launch::version(&base, addr, &headers).await,
                log_path: l.log.display().to_string(),
                ready_after_s: ready.after.as_secs_f64(),
            });
            launched = Some(e);
        }
        let mut session = Session {
            spec,
            base,
            addr,
            headers,
            info: ServerInfo {
                model: String::new(),
                models: vec![],
                warning: None,
                kernel_timestamps: false,
                max_model_len: None,
                tls_version: None,
            },
            engine,
            built_in,
            launched,
        };
        observer.stage(&Stage::Preflight {
            url: session.base.url_of("/v1/models"),
        });
        let checked = tokio::select! {
            r = preflight(&session.base, session.addr, &session.headers, session.spec.model.as_deref()) => Some(r),
            _ = shutdown.wait() => None,
        };
        let info = match checked {
            Some(Ok(info)) => info,
            Some(Err(e)) => {
                session.close().await;
                return Err(e.into());
            }
            None => {
                session.close().await;
                return Err(ExperimentError::Interrupted {
                    stage: "checking the server",
                });
            }
        };
        for w in model_warning.iter().chain(info.warning.iter()) {
            observer.warning(w);
        }
        session.info = info;
        Ok(session)
    }

    /// Every secret this session knows: the API key, the URL's password, the values of
    /// secret-looking headers and of the engine command's secret flags. Messages quoted from the
    /// server or the engine are scrubbed of them.
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(k) = &self.spec.api_key {
            out.push(k.expose().to_owned());
        }
        if let Some((_, p)) = &self.base.userinfo {
            out.push(p.expose().to_owned());
        }
        for (n, v) in &self.spec.headers {
            if strobe_core::is_secret_name(n) {
                out.push(v.clone());
                if let Some((_, token)) = v.split_once(' ') {
                    out.push(token.to_owned());
                }
            }
        }
        if let Some(l) = &self.spec.launch {
            out.extend(strobe_core::command_secrets(&l.command));
        }
        out.retain(|s| s.len() >= 4);
        out
    }

    pub fn is_built_in(&self) -> bool {
        self.built_in.is_some()
    }

    /// Stops the built-in target and a launched engine (its whole process group).
    pub async fn close(mut self) {
        if let Some(h) = self.built_in.take() {
            h.shutdown().await;
        }
        if let Some(e) = self.launched.take() {
            stop_engine(e).await;
        }
    }

    /// Whether an engine was launched (and is stopped by [`Session::close`]).
    pub fn launched(&self) -> bool {
        self.launched.is_some()
    }
}
