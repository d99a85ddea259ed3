//! Validated run settings: every flag checked, every default resolved, before the first request.

use anyhow::{bail, Context};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;
use strobe_core::Api;
use strobe_load::{Arrival, LoadMode, LoadPlan};

use crate::cli::{ApiArg, ArrivalArg, RunArgs, TimestampsArg};

/// Default measured requests when neither --requests nor --duration is given.
pub const DEFAULT_REQUESTS: u64 = 100;
/// Default concurrency when neither --concurrency nor --rate is given.
pub const DEFAULT_CONCURRENCY: u32 = 10;
/// Abort when every one of the first this-many requests failed.
pub const ABORT_AFTER_FAILURES: u64 = 20;

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub url: Option<String>,
    pub model: Option<String>,
    pub api: Api,
    pub stream: bool,
    /// Never printed or written (Debug shows it redacted).
    pub api_key: Option<Secret>,
    pub headers: Vec<String>,
    pub extra_body: Map<String, Value>,
    pub request_timeout: Duration,
    /// Date arrivals by kernel receive timestamps where available.
    pub kernel_timestamps: bool,
    pub plan: LoadPlan,
    pub input_len: u32,
    pub output_len: u32,
    pub output: Option<PathBuf>,
    pub records: Option<PathBuf>,
    pub quiet: bool,
    pub launch: Option<String>,
    pub launch_timeout: Duration,
    pub launch_log: Option<PathBuf>,
    /// `None` with --no-server-metrics; else the endpoint (None inside = the server's /metrics).
    pub server_metrics: Option<Option<String>>,
    pub gpu: bool,
    pub telemetry_interval: Duration,
}

/// A secret string whose Debug form is redacted.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl RunSettings {
    pub fn from_args(a: RunArgs) -> anyhow::Result<RunSettings> {
        let mode = match (a.concurrency, a.rate) {
            (Some(_), Some(_)) => bail!("--concurrency (closed loop) and --rate (open loop) exclude each other; use --rate with --max-concurrency to cap an open loop"),
            (Some(0), None) => bail!("--concurrency must be at least 1"),
            (Some(c), None) => {
                if a.max_concurrency.is_some() {
                    bail!("--max-concurrency goes with --rate; with --concurrency the concurrency is already fixed");
                }
                LoadMode::Concurrency(c)
            }
            (None, Some(rate)) => {
                if !(rate.is_finite() && rate > 0.0) {
                    bail!("--rate must be a positive number of requests per second, got {rate}");
                }
                let arrival = match (a.arrival, a.burstiness) {
                    (ArrivalArg::Poisson, None) => Arrival::Poisson,
                    (ArrivalArg::Constant, None) => Arrival::Constant,
                    (ArrivalArg::Gamma, None) => Arrival::Gamma { shape: 1.0 },
                    (ArrivalArg::Gamma | ArrivalArg::Poisson, Some(shape)) => {
                        if !(shape.is_finite() && shape > 0.0) {
                            bail!("--burstiness must be positive, got {shape}");
                        }
                        Arrival::Gamma { shape }
                    }
                    (ArrivalArg::Constant, Some(_)) => bail!("--burstiness goes with gamma arrivals, not --arrival constant"),
                };
                if a.max_concurrency == Some(0) {
                    bail!("--max-concurrency must be at least 1");
                }
                LoadMode::Rate { rate, arrival, max_concurrency: a.max_concurrency }
            }
            (None, None) => {
                if a.max_concurrency.is_some() || a.burstiness.is_some() {
                    bail!("--max-concurrency and --burstiness go with --rate");
                }
                LoadMode::Concurrency(DEFAULT_CONCURRENCY)
            }
        };
        let requests = match (a.requests, a.duration) {
            (Some(0), _) => bail!("--requests must be at least 1"),
            (None, None) => Some(DEFAULT_REQUESTS),
            (r, _) => r,
        };
        if a.duration.is_some_and(|d| d.is_zero()) {
            bail!("--duration must be longer than zero");
        }
        if a.timeout.is_zero() {
            bail!("--timeout must be longer than zero");
        }
        if a.output_len == 0 {
            bail!("--output-len must be at least 1");
        }

        let mut extra_body = Map::new();
        if !a.no_ignore_eos {
            extra_body.insert("ignore_eos".into(), Value::Bool(true));
        }
        if let Some(body) = &a.body {
            let v: Value = serde_json::from_str(body)
                .with_context(|| format!("--body is not valid JSON: {body}"))?;
            let Value::Object(map) = v else {
                bail!("--body must be a JSON object, e.g. '{{\"temperature\":0}}'");
            };
            extra_body.extend(map);
        }

        let api_key = match &a.api_key_file {
            Some(path) => {
                let key = std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "--api-key-file {}: cannot read the key file",
                        path.display()
                    )
                })?;
                let key = key.trim().to_owned();
                if key.is_empty() {
                    bail!("--api-key-file {}: the file is empty", path.display());
                }
                Some(Secret(key))
            }
            None => std::env::var(&a.api_key_env)
                .ok()
                .filter(|k| !k.trim().is_empty())
                .map(|k| Secret(k.trim().to_owned())),
        };

        if let Some(path) = &a.output {
            check_writable(path, "--output")?;
        }
        if let Some(path) = &a.records {
            check_writable(path, "--records")?;
        }
        if let Some(path) = &a.launch_log {
            check_writable(path, "--launch-log")?;
        }
        if a.launch.as_deref().is_some_and(|c| c.trim().is_empty()) {
            bail!("--launch needs a command, e.g. --launch \"vllm serve MODEL --port 8000\"");
        }
        if a.telemetry_interval < Duration::from_millis(10) {
            bail!("--telemetry-interval must be at least 10ms");
        }
        if a.no_server_metrics && a.metrics_url.is_some() {
            bail!("--metrics-url and --no-server-metrics exclude each other");
        }

        Ok(RunSettings {
            url: a.url,
            model: a.model,
            api: match a.api {
                ApiArg::Completions => Api::Completions,
                ApiArg::Chat => Api::Chat,
            },
            stream: !a.no_stream,
            api_key,
            headers: a.headers,
            extra_body,
            request_timeout: a.timeout,
            kernel_timestamps: a.timestamps == TimestampsArg::Kernel,
            plan: LoadPlan {
                mode,
                requests,
                duration: a.duration,
                warmup_requests: a.warmup_requests,
                warmup_duration: a.warmup_duration,
                seed: a.seed,
                drain_timeout: a.drain_timeout,
                abort_after_failures: ABORT_AFTER_FAILURES,
            },
            input_len: a.input_len,
            output_len: a.output_len,
            output: a.output,
            records: a.records,
            quiet: a.quiet,
            launch: a.launch,
            launch_timeout: a.launch_timeout,
            launch_log: a.launch_log,
            server_metrics: (!a.no_server_metrics).then_some(a.metrics_url),
            gpu: !a.no_gpu,
            telemetry_interval: a.telemetry_interval,
        })
    }
}

/// Fails early, naming the flag, when an output path's folder does not exist.
fn check_writable(path: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        bail!(
            "{flag} {}: folder {} does not exist",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        bail!("{flag} {}: is a folder; give a file name", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn settings(args: &[&str]) -> anyhow::Result<RunSettings> {
        let mut all = vec!["strobe", "run"];
        all.extend_from_slice(args);
        let Command::Run(a) = Cli::try_parse_from(all)?.command else {
            unreachable!()
        };
        RunSettings::from_args(*a)
    }

    #[test]
    fn defaults_are_a_closed_loop_of_ten_for_a_hundred_requests() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.plan.mode, LoadMode::Concurrency(10));
        assert_eq!(s.plan.requests, Some(100));
        assert_eq!(s.extra_body.get("ignore_eos"), Some(&Value::Bool(true)));
    }

    #[test]
    fn conflicting_and_bad_flags_are_refused_with_the_flag_named() {
        for (args, needle) in [
            (vec!["-c", "4", "-r", "2"], "--concurrency"),
            (
                vec!["-c", "4", "--max-concurrency", "2"],
                "--max-concurrency",
            ),
            (vec!["-r", "0"], "--rate"),
            (
                vec!["-r", "2", "--arrival", "constant", "--burstiness", "2"],
                "--burstiness",
            ),
            (vec!["--body", "[1]"], "--body"),
            (vec!["--body", "{oops"], "--body"),
            (
                vec!["--api-key-file", "/nonexistent/key"],
                "--api-key-file /nonexistent/key",
            ),
            (vec!["--output", "/nonexistent/dir/r.json"], "--output"),
            (vec!["-n", "0"], "--requests"),
        ] {
            let e = format!("{:#}", settings(&args).unwrap_err());
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn burstiness_implies_gamma_and_body_overrides() {
        let s = settings(&[
            "-r",
            "5",
            "--burstiness",
            "0.5",
            "--body",
            r#"{"ignore_eos":false,"temperature":0}"#,
        ])
        .unwrap();
        assert!(
            matches!(s.plan.mode, LoadMode::Rate { arrival: Arrival::Gamma { shape }, .. } if shape == 0.5)
        );
        assert_eq!(s.extra_body["ignore_eos"], Value::Bool(false));
        assert_eq!(s.extra_body["temperature"], Value::from(0));
    }

    #[test]
    fn api_key_debug_is_redacted() {
        let dir = std::env::temp_dir().join(format!("strobe-key-{}", std::process::id()));
        std::fs::write(&dir, "sk-very-secret\n").unwrap();
        let s = settings(&["--api-key-file", dir.to_str().unwrap()]).unwrap();
        assert_eq!(s.api_key.as_ref().unwrap().0, "sk-very-secret");
        assert!(!format!("{s:?}").contains("sk-very-secret"));
        let _ = std::fs::remove_file(dir);
    }
}
