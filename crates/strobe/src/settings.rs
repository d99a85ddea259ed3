//! From raw flags to typed settings: every flag checked, every default resolved, before anything
//! starts. Class settings go through `strobe_experiment::draft`, the same checks a scenario file
//! gets; what is left here is reading flags into it.

use anyhow::{bail, Context};
use serde_json::{Map, Value};
use std::path::Path;
use strobe_core::{Api, Secret};
use strobe_experiment::draft::{ArrivalKind, ClassDraft, DraftError, ScheduleKind, WorkloadDraft};
use strobe_experiment::interference::{Conditions, Interference};
use strobe_experiment::levels::{self, LevelRequests};
use strobe_experiment::scenario::Scenario;
use strobe_experiment::{
    Experiment, ExperimentOptions, LaunchSpec, MetricsSource, Outputs, TargetSpec, TelemetrySpec,
    TokenizerChoice,
};
use strobe_metrics::GpuPrice;
use strobe_workload::picture::ImageFormat;
use strobe_workload::{profiles, DatasetFormat, DatasetSpec, LengthSpec};

use crate::cli::{
    ApiArg, ArrivalArg, BatchArgs, ConditionArg, DatasetArgs, DatasetFormatArg, ImageFormatArg,
    InterferenceArgs, LoadArgs, OutputArgs, RunArgs, SearchArgs, SearchVariableArg, SweepArgs,
    TargetArgs, TimestampsArg, WorkloadArgs,
};
use strobe_experiment::grid::{self, EngineAxis};
use strobe_experiment::presets;
use strobe_experiment::search::{Precision, Search, SearchSpec, Variable};
use strobe_experiment::sweep;

/// A class that aborts when every one of its first this-many requests failed.
pub const ABORT_AFTER_FAILURES: u64 = 20;

/// The work of a command.
#[derive(Debug)]
pub enum Work {
    /// Runs decided in advance (a run, levels, conditions, a sweep).
    Experiment(Experiment),
    /// A capacity search: probes decided as it goes.
    Search(Box<Search>, ExperimentOptions),
    /// The experiment once per engine-flag combination.
    Grid {
        axes: Vec<EngineAxis>,
        gpus: u32,
        experiment: Experiment,
    },
}

/// What a command will do, fully typed.
#[derive(Debug)]
pub struct Plan {
    pub target: TargetSpec,
    pub work: Work,
    pub quiet: bool,
    /// A run with more failures than this fraction of its measured requests exits 1.
    pub max_error_rate: f64,
    /// A run that misses an SLO exits 1.
    pub fail_on_slo: bool,
    /// Formats to write to standard output once everything has run (`--export FORMAT=-`).
    pub stdout_exports: Vec<String>,
    /// The live dashboard (`--tui`).
    pub tui: bool,
}

fn stdout_exports(o: &OutputArgs) -> Vec<String> {
    o.exports
        .iter()
        .filter(|e| e.path.is_none())
        .map(|e| e.format.clone())
        .collect()
}

impl Plan {
    /// What the dashboard calls the work.
    pub fn title(&self) -> String {
        match &self.work {
            Work::Experiment(e) if e.kind == "run" => "run".into(),
            Work::Experiment(e) | Work::Grid { experiment: e, .. } => e.title.clone(),
            Work::Search(..) => "capacity search".into(),
        }
    }

    /// The experiment of a plan of runs decided in advance (or of each engine of a grid).
    pub fn experiment(&self) -> Option<&Experiment> {
        match &self.work {
            Work::Experiment(e) | Work::Grid { experiment: e, .. } => Some(e),
            Work::Search(..) => None,
        }
    }

    fn of(target: TargetSpec, experiment: Experiment, o: &OutputArgs) -> anyhow::Result<Plan> {
        Ok(Plan {
            target,
            work: Work::Experiment(experiment),
            quiet: o.quiet,
            max_error_rate: max_error_rate(o)?,
            fail_on_slo: o.fail_on_slo,
            stdout_exports: stdout_exports(o),
            tui: o.tui,
        })
    }
}

pub(crate) fn draft_error(e: DraftError) -> anyhow::Error {
    anyhow::anyhow!("{} {}", e.flag(), e.message)
}

fn length(flag: &str, s: &str) -> anyhow::Result<LengthSpec> {
    LengthSpec::parse(s).map_err(|e| anyhow::anyhow!("{flag} {e}"))
}

fn api(a: ApiArg) -> Api {
    match a {
        ApiArg::Completions => Api::Completions,
        ApiArg::Chat => Api::Chat,
    }
}

fn body(s: Option<&str>) -> anyhow::Result<Map<String, Value>> {
    let Some(s) = s else {
        return Ok(Map::new());
    };
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => bail!("--body must be a JSON object, e.g. '{{\"temperature\":0}}'"),
        Err(e) => bail!("--body is not valid JSON ({e}): {s}"),
    }
}

fn tokenizer(s: Option<&str>) -> anyhow::Result<TokenizerChoice> {
    Ok(match s {
        None => TokenizerChoice::Auto,
        Some("words") => TokenizerChoice::Words,
        Some("server") => TokenizerChoice::Server,
        Some(p) => {
            if !Path::new(p).exists() {
                bail!("--tokenizer {p}: no such file or folder (give a tokenizer.json, a model folder, `server` or `words`)");
            }
            TokenizerChoice::File(p.into())
        }
    })
}

/// The data-set flags as a spec for `path`.
pub fn dataset_spec(path: &Path, a: &DatasetArgs) -> DatasetSpec {
    DatasetSpec {
        path: path.to_owned(),
        format: a.dataset_format.map(|f| match f {
            DatasetFormatArg::Sharegpt => DatasetFormat::ShareGpt,
            DatasetFormatArg::Jsonl => DatasetFormat::Jsonl,
            DatasetFormatArg::OpenaiBatch => DatasetFormat::OpenAiBatch,
            DatasetFormatArg::Text => DatasetFormat::Text,
        }),
        skip_invalid: a.skip_invalid,
        min_input: a.min_input_len,
        max_input: a.max_input_len,
        min_output: a.min_output_len,
        max_total: a.max_total_len,
        no_filter: a.no_filter,
        keep_order: a.no_shuffle,
    }
}

/// Fails early, naming the flag, when an output path cannot be a file.
fn check_writable(path: &Path, flag: &str) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
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

/// The server and how to reach and watch it. `output` places the default engine log.
pub fn target(a: &TargetArgs, output: Option<&Path>) -> anyhow::Result<TargetSpec> {
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
            Some(Secret::new(key))
        }
        None => std::env::var(&a.api_key_env)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(|k| Secret::new(k.trim())),
    };
    let headers = a
        .headers
        .iter()
        .map(|h| match h.split_once(':') {
            Some((n, v)) if !n.trim().is_empty() => Ok((n.trim().to_owned(), v.trim().to_owned())),
            _ => bail!(
                "--header `{}`: expected `Name: value`",
                h.split(':').next().unwrap_or("")
            ),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if a.timeout.is_zero() {
        bail!("--timeout must be longer than zero");
    }
    if let Some(p) = &a.ca_cert {
        if !p.is_file() {
            bail!("--ca-cert {}: no such file (give the PEM file of the CA that signed the server's certificate)", p.display());
        }
    }
    if a.insecure && a.ca_cert.is_some() {
        bail!(
            "--insecure and --ca-cert exclude each other: --insecure checks no certificate at all"
        );
    }
    if a.telemetry_interval < std::time::Duration::from_millis(10) {
        bail!("--telemetry-interval must be at least 10ms");
    }
    let server_metrics = match (a.no_server_metrics, &a.metrics_url) {
        (true, Some(_)) => bail!("--metrics-url and --no-server-metrics exclude each other"),
        (true, None) => MetricsSource::Off,
        (false, Some(u)) => MetricsSource::Url(u.clone()),
        (false, None) => MetricsSource::Server,
    };
    let launch = match &a.launch {
        Some(c) if c.trim().is_empty() => {
            bail!("--launch needs a command, e.g. --launch \"vllm serve MODEL --port 8000\"")
        }
        Some(c) => {
            let log = a.launch_log.clone().unwrap_or_else(|| match output {
                Some(o) => o.with_extension("engine.log"),
                None => {
                    std::env::temp_dir().join(format!("strobe-engine-{}.log", std::process::id()))
                }
            });
            check_writable(&log, "--launch-log")?;
            Some(LaunchSpec {
                command: c.clone(),
                timeout: a.launch_timeout,
                log,
            })
        }
        None => None,
    };
    Ok(TargetSpec {
        url: a.url.clone(),
        model: a.model.clone(),
        api_key,
        headers,
        request_timeout: a.timeout,
        first_byte_timeout: a.first_byte_timeout,
        idle_timeout: (!a.idle_timeout.is_zero()).then_some(a.idle_timeout),
        kernel_timestamps: a.timestamps == TimestampsArg::Kernel,
        tls: strobe_client::TlsOptions {
            ca_cert: a.ca_cert.clone(),
            insecure: a.insecure,
        },
        launch,
        telemetry: TelemetrySpec {
            server_metrics,
            gpu: !a.no_gpu,
            interval: a.telemetry_interval,
        },
        built_in: match sim(&a.sim)? {
            Some(engine) => {
                if a.url.is_some() || a.launch.is_some() {
                    bail!("--sim simulates the target in-process: leave out --url and --launch");
                }
                strobe_server::ServerConfig {
                    model: engine.model.name.to_owned(),
                    sim: Some(engine),
                    ..strobe_server::ServerConfig::default()
                }
            }
            None => strobe_server::ServerConfig::default(),
        },
    })
}

/// The model's tokenizer for the built-in target (`strobe serve --tokenizer`, or `strobe run
/// --sim … --tokenizer FILE`), its errors naming `flag`.
pub fn model_tokenizer(path: &str, flag: &str) -> anyhow::Result<strobe_server::ModelTokenizer> {
    strobe_experiment::model_tokenizer(Path::new(path)).with_context(|| format!("{flag} {path}"))
}

/// A named set of the simulated engine's overheads.
pub(crate) fn overheads(name: &str, flag: &str) -> anyhow::Result<strobe_sim::Overheads> {
    strobe_sim::Overheads::profile(name).ok_or_else(|| {
        anyhow::anyhow!(
            "{flag} {name}: no such set; the sets are {}",
            strobe_sim::Overheads::PROFILES.join(", ")
        )
    })
}

/// The simulated engine `--sim` asks for, with its scheduler settings.
pub fn sim(a: &crate::cli::SimArgs) -> anyhow::Result<Option<strobe_sim::EngineConfig>> {
    let Some(spec) = &a.sim else {
        return Ok(None);
    };
    let mut c =
        strobe_sim::EngineConfig::from_arg(spec).map_err(|e| anyhow::anyhow!("--sim {e}"))?;
    if let Some(n) = a.sim_max_num_seqs {
        c.max_num_seqs = n;
    }
    if let Some(n) = a.sim_max_num_batched_tokens {
        c.max_num_batched_tokens = n;
    }
    if let Some(name) = &a.sim_overheads {
        c.overheads = overheads(name, "--sim-overheads")?;
    }
    if a.sim_no_chunked_prefill {
        c.enable_chunked_prefill = false;
    }
    if let Some(u) = a.sim_gpu_memory_utilization {
        if !(u > 0.0 && u <= 1.0) {
            bail!("--sim-gpu-memory-utilization must be a fraction above 0 and at most 1, got {u}");
        }
        c.gpu_memory_utilization = u;
    }
    c.validate()
        .map_err(|e| anyhow::anyhow!("--sim {spec}: {e} (check the --sim-* flags)"))?;
    Ok(Some(c))
}

/// Outputs, cost and drain.
fn max_error_rate(o: &OutputArgs) -> anyhow::Result<f64> {
    if !(0.0..=1.0).contains(&o.max_error_rate) {
        bail!(
            "--max-error-rate must be a fraction from 0 to 1, got {}",
            o.max_error_rate
        );
    }
    Ok(o.max_error_rate)
}

pub fn options(o: &OutputArgs) -> anyhow::Result<ExperimentOptions> {
    for (p, flag) in [(&o.output, "--output"), (&o.records, "--records")] {
        if let Some(p) = p {
            check_writable(p, flag)?;
        }
    }
    let price = match o.gpu_price {
        Some(p) if !(p.is_finite() && p > 0.0) => {
            bail!("--gpu-price must be a positive number of USD per GPU-hour, got {p}")
        }
        Some(p) => {
            if o.gpus == 0 {
                bail!("--gpus must be at least 1");
            }
            Some(GpuPrice {
                usd_per_gpu_hour: p,
                gpus: o.gpus,
            })
        }
        None => None,
    };
    Ok(ExperimentOptions {
        drain_timeout: o.drain_timeout,
        abort_after_failures: ABORT_AFTER_FAILURES,
        price,
        outputs: Outputs {
            report: o.output.clone(),
            records: o.records.clone(),
            exports: o
                .exports
                .iter()
                .filter_map(|e| {
                    Some(strobe_experiment::Export {
                        format: e.format.clone(),
                        path: e.path.clone()?,
                    })
                })
                .collect(),
        },
        reset_prefix_cache: false,
        restart: false,
    })
}

fn workload(w: &WorkloadArgs) -> anyhow::Result<WorkloadDraft> {
    Ok(WorkloadDraft {
        input_len: w
            .input_len
            .as_deref()
            .map(|s| length("--input-len", s))
            .transpose()?,
        output_len: w
            .output_len
            .as_deref()
            .map(|s| length("--output-len", s))
            .transpose()?,
        tokenizer: tokenizer(w.tokenizer.as_deref())?,
        dataset: w.dataset.as_deref().map(|p| dataset_spec(p, &w.data)),
        shared_prefix: w.shared_prefix,
        prefix_groups: w.prefix_groups,
        turns: w.turns,
        sessions: w.sessions,
        images: w.images,
        image_size: w
            .image_size
            .as_deref()
            .map(strobe_workload::images::parse_size)
            .transpose()
            .map_err(|e| anyhow::anyhow!(e))?,
        image_format: w.image_format.map(|f| match f {
            ImageFormatArg::Png => ImageFormat::Png,
            ImageFormatArg::Jpeg => ImageFormat::Jpeg,
        }),
        image_files: w.image_files.clone(),
    })
}

pub(crate) fn class(l: &LoadArgs, w: &WorkloadArgs) -> anyhow::Result<ClassDraft> {
    let mut d = ClassDraft::new("default");
    d.schedule = if l.offline {
        Some(ScheduleKind::Offline)
    } else {
        None
    };
    d.concurrency = l.concurrency;
    d.rate = l.rate;
    d.arrival = Some(match l.arrival {
        ArrivalArg::Poisson => ArrivalKind::Poisson,
        ArrivalArg::Constant => ArrivalKind::Constant,
        ArrivalArg::Gamma => ArrivalKind::Gamma,
    });
    d.burstiness = l.burstiness;
    d.max_concurrency = l.max_concurrency;
    d.batch_size = l.batch_size;
    d.batches = l.num_batches;
    d.requests = l.requests;
    d.duration = l.duration;
    d.warmup_requests = l.warmup_requests;
    d.warmup = l.warmup_duration;
    d.seed = l.seed;
    d.api = w.api.map(api);
    d.stream = !w.no_stream;
    d.ignore_eos = !w.no_ignore_eos;
    d.body = body(w.body.as_deref())?;
    if let Some(s) = &l.slo {
        d.slo = strobe_metrics::slo::parse(s).map_err(|e| anyhow::anyhow!("--slo {e}"))?;
    }
    d.workload = workload(w)?;
    if let Some(name) = &w.profile {
        let p = profiles::find(name).map_err(|e| anyhow::anyhow!("--profile: {e}"))?;
        d.apply_profile(p);
    }
    Ok(d)
}

/// `strobe sim plan`'s requests: `samples` drawn from the workload flags, as a closed loop of one
/// user would send them (512 prompt and 128 output tokens when nothing else says).
pub(crate) fn sim_plan_draft(
    w: &WorkloadArgs,
    seed: u64,
    samples: u32,
) -> anyhow::Result<ClassDraft> {
    let mut d = ClassDraft::new("default");
    d.concurrency = Some(1);
    d.requests = Some(u64::from(samples));
    d.seed = seed;
    d.api = w.api.map(api);
    d.stream = !w.no_stream;
    d.ignore_eos = !w.no_ignore_eos;
    d.workload = workload(w)?;
    if let Some(name) = &w.profile {
        let p = profiles::find(name).map_err(|e| anyhow::anyhow!("--profile: {e}"))?;
        d.apply_profile(p);
    }
    if w.dataset.is_none() && w.profile.is_none() {
        let fixed = |n: u32| strobe_workload::LengthSpec::parse(&n.to_string()).ok();
        d.workload.input_len = d.workload.input_len.take().or_else(|| fixed(512));
        d.workload.output_len = d.workload.output_len.take().or_else(|| fixed(128));
    }
    Ok(d)
}

/// `strobe run`: one class from the flags (one run, or one per level of a profile), or the
/// classes of a scenario file.
pub fn run(a: RunArgs) -> anyhow::Result<Plan> {
    let options = options(&a.output)?;
    let mut target = target(&a.target, a.output.output.as_deref())?;
    // A simulated engine counts prompts as the real one would: by the run's tokenizer file.
    if target.built_in.sim.is_some() {
        if let Some(p) = a.workload.tokenizer.as_deref() {
            if !matches!(p, "words" | "server") {
                target.built_in.tokenizer = Some(model_tokenizer(p, "--tokenizer")?);
            }
        }
    }
    let quiet = a.output.quiet;
    if let Some(path) = &a.scenario {
        let l = &a.load;
        let w = &a.workload;
        let given = [
            ("--concurrency", l.concurrency.is_some()),
            ("--rate", l.rate.is_some()),
            ("--offline", l.offline),
            ("--batch-size", l.batch_size.is_some()),
            ("--requests", l.requests.is_some()),
            ("--duration", l.duration.is_some()),
            ("--slo", l.slo.is_some()),
            ("--profile", w.profile.is_some()),
            ("--api", w.api.is_some()),
            ("--input-len", w.input_len.is_some()),
            ("--output-len", w.output_len.is_some()),
            ("--dataset", w.dataset.is_some()),
            ("--body", w.body.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
            bail!(
                "{flag} does not go with --scenario: set it in {} (docs/scenarios.md)",
                path.display()
            );
        }
        let s = Scenario::load(path)?;
        let classes = s.resolve()?;
        let title = s
            .title
            .clone()
            .unwrap_or_else(|| format!("scenario {}", path.display()));
        let _ = quiet;
        return Plan::of(
            target,
            Experiment::single("scenario", &title, classes, options),
            &a.output,
        );
    }
    let draft = class(&a.load, &a.workload)?;
    let (class, workload) = draft.resolve(0).map_err(draft_error)?;
    let profile = draft.profile;
    let levels = profile
        .filter(|p| p.concurrency.len() > 1)
        .filter(|_| {
            let l = &a.load;
            l.concurrency.is_none() && l.rate.is_none() && !l.offline && l.batch_size.is_none()
        })
        .map(|p| p.concurrency);
    let experiment = match (levels, profile) {
        (Some(levels), Some(p)) => {
            let requests = if a.load.requests.is_none() && a.load.duration.is_none() {
                LevelRequests::PerLevel(p)
            } else {
                LevelRequests::AsGiven
            };
            levels::experiment(p.name, class, workload, levels, requests, options)
        }
        _ => Experiment::single("run", "run", vec![(class, workload)], options),
    };
    let _ = quiet;
    Plan::of(target, experiment, &a.output)
}

/// `strobe interference`: the batch and interactive classes from flags or a scenario file.
/// `strobe batch`: one class whose requests are the batch's pending lines, retried as the flags
/// say, results to the batch's store.
pub fn batch(a: BatchArgs) -> anyhow::Result<(Option<Plan>, strobe_batch::JobHandle)> {
    let limits = strobe_batch::Limits {
        max_lines: a.max_input_lines as usize,
        ..Default::default()
    };
    let lines = strobe_batch::input::read(&a.input, limits)?;
    let errors = a
        .errors
        .clone()
        .unwrap_or_else(|| strobe_batch::errors_path_for(&a.output));
    if errors == a.output || a.output == a.input || errors == a.input {
        bail!("--output, --errors and the input must be three different files");
    }
    let (store, recovered) = strobe_batch::FileStore::open(&a.output, &errors)?;
    if recovered.repaired_bytes > 0 {
        eprintln!(
            "warning: a half-written last line ({} bytes) was cut off {} or {}: that line was never complete, and is sent again",
            recovered.repaired_bytes,
            a.output.display(),
            errors.display()
        );
    }
    let job = strobe_batch::JobHandle(std::sync::Arc::new(strobe_batch::BatchJob::new(
        lines,
        Box::new(store),
        recovered,
    )));
    if a.max_attempts == 0 {
        bail!("--max-attempts must be at least 1");
    }
    if job.0.pending() == 0 {
        return Ok((None, job));
    }
    let output = OutputArgs {
        output: a.report.clone(),
        exports: a.exports.clone(),
        records: a.records.clone(),
        quiet: a.quiet,
        tui: false,
        gpu_price: None,
        gpus: 1,
        drain_timeout: a.drain_timeout,
        // A failed line is a result (in the error file), not a failed benchmark.
        max_error_rate: 1.0,
        fail_on_slo: false,
    };
    let options = options(&output)?;
    let target = target(&a.target, a.report.as_deref())?;
    let mut draft = ClassDraft::new("batch");
    draft.schedule = Some(strobe_experiment::draft::ScheduleKind::Offline);
    draft.max_concurrency = a.concurrency;
    draft.requests = Some(job.0.pending());
    draft.batch = Some(job.clone());
    draft.retry = strobe_load::Retry {
        max_attempts: a.max_attempts,
        backoff: a.retry_backoff,
        max_backoff: a.max_backoff,
    };
    draft.abort = strobe_load::AbortRules {
        unreachable_for: (!a.abort_unreachable.is_zero()).then_some(a.abort_unreachable),
        max_failures: a.max_failures,
    };
    draft.ignore_eos = false;
    let (class, workload) = draft.resolve(0).map_err(draft_error)?;
    let title = format!("batch {}", a.input.display());
    let plan = Plan::of(
        target,
        Experiment::single("batch", &title, vec![(class, workload)], options),
        &output,
    )?;
    Ok((Some(plan), job))
}

pub fn interference(a: InterferenceArgs) -> anyhow::Result<Plan> {
    let options = options(&a.output)?;
    let target = target(&a.target, a.output.output.as_deref())?;
    let (batch, interactive) = match &a.scenario {
        Some(path) => {
            let s = Scenario::load(path)?;
            let pick = |name: &str| -> anyhow::Result<_> {
                let i = s
                    .classes
                    .iter()
                    .position(|c| c.name == name)
                    .with_context(|| format!("{}: the interference experiment needs a class named `{name}` (and one named `{}`)", path.display(), if name == "batch" { "interactive" } else { "batch" }))?;
                Ok(s.classes[i].resolve(i).map_err(|e| s.located(i, &e))?)
            };
            (pick("batch")?, pick("interactive")?)
        }
        None => {
            let common = |name: &str| -> anyhow::Result<ClassDraft> {
                let mut d = ClassDraft::new(name);
                d.api = Some(api(a.api));
                d.seed = a.seed;
                d.ignore_eos = !a.no_ignore_eos;
                d.body = body(a.body.as_deref())?;
                d.workload.tokenizer = tokenizer(a.tokenizer.as_deref())?;
                Ok(d)
            };
            let mut b = common("batch")?;
            match a.batch_concurrency {
                Some(c) => b.concurrency = Some(c),
                None => {
                    b.schedule = Some(ScheduleKind::Offline);
                    b.max_concurrency = a.batch_max_concurrency;
                }
            }
            b.requests = Some(a.batch_requests);
            match &a.batch_dataset {
                Some(p) => b.workload.dataset = Some(DatasetSpec::at(p)),
                None => {
                    b.workload.input_len = Some(length("--batch-input-len", &a.batch_input_len)?)
                }
            }
            b.workload.output_len = a
                .batch_output_len
                .as_deref()
                .map(|s| length("--batch-output-len", s))
                .transpose()?;
            let mut u = common("interactive")?;
            u.duration = Some(a.user_duration);
            u.workload.input_len = Some(length("--input-len", &a.input_len)?);
            u.workload.output_len = Some(length("--output-len", &a.output_len)?);
            if let Some(s) = &a.slo {
                u.slo = strobe_metrics::slo::parse(s).map_err(|e| anyhow::anyhow!("--slo {e}"))?;
            }
            let b = b
                .resolve(0)
                .map_err(|e| anyhow::anyhow!("batch: {}", draft_error(e)))?;
            let u = u.resolve(1).map_err(draft_error)?;
            (b, u)
        }
    };
    // A scenario's interactive class may fix its own isolated duration.
    let duration = interactive.0.duration.unwrap_or(a.user_duration);
    let conditions = Conditions {
        batch_only: a.conditions.contains(&ConditionArg::Batch),
        isolated: a.conditions.contains(&ConditionArg::Isolated),
        mixed: a.conditions.contains(&ConditionArg::Mixed),
    };
    let experiment = strobe_experiment::interference::experiment(
        Interference {
            batch,
            interactive,
            users: a.users,
            duration,
            conditions,
        },
        options,
    )?;
    Plan::of(target, experiment, &a.output)
}

/// The scenario's class drafts, or the one class of the flags, for a sweep or a search.
fn base_classes(a: &RunArgs) -> anyhow::Result<Vec<ClassDraft>> {
    match &a.scenario {
        Some(path) => Ok(Scenario::load(path)?.classes),
        None => Ok(vec![class(&a.load, &a.workload)?]),
    }
}

/// `strobe sweep`: the points of the axes (or of a preset), once, or once per engine.
pub fn sweep(a: SweepArgs) -> anyhow::Result<Plan> {
    let mut options = options(&a.run.output)?;
    options.reset_prefix_cache = a.reset_prefix_cache;
    options.restart = a.restart;
    let target = target(&a.run.target, a.run.output.output.as_deref())?;
    let given = a
        .axes
        .iter()
        .map(|s| sweep::parse_axis(s).map_err(|e| anyhow::anyhow!("--sweep {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let preset = a
        .preset
        .as_deref()
        .map(presets::find)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--preset: {e}"))?;
    let counts_given = a.run.load.requests.is_some() || a.run.load.duration.is_some();
    let experiment = presets::sweep_experiment(
        preset,
        base_classes(&a.run)?,
        given,
        a.same_prompts,
        counts_given,
        options,
    )?;
    let mut plan = Plan::of(target, experiment, &a.run.output)?;
    if !a.engine_grid.is_empty() {
        if plan.target.launch.is_none() {
            bail!("--engine-grid restarts the engine for each combination: give --launch \"vllm serve MODEL ...\" too");
        }
        let axes = a
            .engine_grid
            .iter()
            .map(|s| grid::parse_engine_axis(s).map_err(|e| anyhow::anyhow!(e)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let Work::Experiment(experiment) = plan.work else {
            unreachable!()
        };
        plan.work = Work::Grid {
            axes,
            gpus: a.run.output.gpus,
            experiment,
        };
    }
    Ok(plan)
}

/// `strobe search`: probes of one class, judged by its SLOs.
pub fn search(a: SearchArgs) -> anyhow::Result<Plan> {
    let options = options(&a.run.output)?;
    let target = target(&a.run.target, a.run.output.output.as_deref())?;
    let l = &a.run.load;
    if a.run.scenario.is_some() {
        bail!("strobe search probes one class: give its settings as flags, not --scenario");
    }
    if l.requests.is_some() {
        bail!("--requests: a search probe lasts --duration (default 20s), not a request count");
    }
    let variable = match a.search {
        SearchVariableArg::Rate => Variable::Rate,
        SearchVariableArg::Concurrency => Variable::Concurrency,
    };
    match variable {
        Variable::Rate if l.concurrency.is_some() || l.offline || l.batch_size.is_some() => {
            bail!("--search rate varies an open loop's --rate: drop --concurrency, --offline and --batch-size (cap it with --max-concurrency)")
        }
        Variable::Concurrency if l.rate.is_some() || l.offline || l.batch_size.is_some() => {
            bail!("--search concurrency varies a closed loop: drop --rate, --offline and --batch-size")
        }
        _ => {}
    }
    let mut base = class(l, &a.run.workload)?;
    if base.slo.is_empty() {
        bail!("strobe search needs --slo: the targets every probe is judged by, e.g. --slo ttft_p99=500ms,tpot_p99=50ms");
    }
    if a.run.workload.no_stream {
        if let Some(t) = base.slo.iter().find(|t| {
            use strobe_metrics::slo::SloMetric;
            matches!(t.metric, SloMetric::Ttft | SloMetric::Tpot | SloMetric::Itl)
        }) {
            bail!(
                "--slo {}: whole responses (--no-stream) have no TTFT, TPOT or ITL; judge them by e2e or queue_delay",
                t.name()
            );
        }
    }
    base.duration = None;
    let (min_default, precision_default) = match variable {
        Variable::Rate => (0.1, Precision::Relative(0.05)),
        Variable::Concurrency => (1.0, Precision::Absolute(1.0)),
    };
    let precision = match a.precision.as_deref() {
        None => precision_default,
        Some(p) => {
            let (num, pct) = match p.trim().strip_suffix('%') {
                Some(n) => (n, true),
                None => (p.trim(), false),
            };
            let v: f64 = num
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--precision `{p}`: give a percentage (5%) or a positive width (1)"
                    )
                })?;
            if pct {
                Precision::Relative(v / 100.0)
            } else {
                Precision::Absolute(v)
            }
        }
    };
    if a.max_probes < 2 {
        bail!("--max-probes must be at least 2");
    }
    let spec = SearchSpec {
        variable,
        start: a.search_start.unwrap_or(1.0),
        min: a.search_min.unwrap_or(min_default),
        max: a.search_max.unwrap_or(10_000.0),
        precision,
        max_probes: a.max_probes,
        reprobes: a.reprobes,
    };
    Ok(Plan {
        target,
        work: Work::Search(
            Box::new(Search {
                spec,
                base,
                probe_duration: l.duration.unwrap_or(std::time::Duration::from_secs(20)),
            }),
            options,
        ),
        quiet: a.run.output.quiet,
        max_error_rate: max_error_rate(&a.run.output)?,
        fail_on_slo: a.run.output.fail_on_slo,
        stdout_exports: stdout_exports(&a.run.output),
        tui: a.run.output.tui,
    })
}
