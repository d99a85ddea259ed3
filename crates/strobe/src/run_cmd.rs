//! `strobe run`: wires settings → preflight → load → records → metrics → report → outputs.

use anyhow::Context;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use strobe_client::{build_headers, preflight, BaseUrl, Target};
use strobe_core::{Api, Outcome, RequestRecord, RunClock};
use strobe_load::{process_cpu_seconds, Arrival, LoadMode, Progress, Stopper};
use strobe_metrics::MetricSet;
use strobe_report::{LoadInfo, Report, ReportInputs, TargetInfo};
use strobe_server::{ServerConfig, ServerHandle};
use tokio::sync::mpsc;

use crate::exit;
use crate::progress;
use crate::settings::RunSettings;
use crate::telemetry::Telemetry;

/// What the terminal side of a run does.
#[derive(Clone, Copy, Debug)]
pub struct Interactivity {
    /// Live progress line on stderr.
    pub progress: bool,
    /// Print the summary to stdout at the end.
    pub print_summary: bool,
    /// Install the Ctrl-C handler.
    pub handle_ctrl_c: bool,
}

impl Interactivity {
    /// Progress only on a terminal; summary unless --quiet (applied by the caller).
    pub fn from_env() -> Interactivity {
        Interactivity {
            progress: std::io::stderr().is_terminal(),
            print_summary: true,
            handle_ctrl_c: true,
        }
    }

    /// Silent and without signal handling: for tests that drive runs in-process.
    pub fn silent() -> Interactivity {
        Interactivity {
            progress: false,
            print_summary: false,
            handle_ctrl_c: false,
        }
    }
}

/// The result of a run.
pub struct RunOutcome {
    pub exit_code: i32,
    pub report: Report,
}

/// Aggregates records as they arrive and appends them to the records file.
struct Collector {
    metrics: MetricSet,
    error_examples: BTreeMap<String, String>,
    records_error: Option<String>,
}

fn collect(
    mut rx: mpsc::UnboundedReceiver<RequestRecord>,
    mut file: Option<std::io::BufWriter<std::fs::File>>,
) -> Collector {
    let mut c = Collector {
        metrics: MetricSet::default(),
        error_examples: BTreeMap::new(),
        records_error: None,
    };
    let write = |file: &mut Option<std::io::BufWriter<std::fs::File>>,
                 r: &RequestRecord,
                 err: &mut Option<String>| {
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.write_all(&strobe_report::records::line(r)) {
                *err = Some(e.to_string());
                *file = None;
            }
        }
    };
    while let Some(record) = rx.blocking_recv() {
        let mut next = Some(record);
        while let Some(r) = next {
            c.metrics.add(&r);
            if let Outcome::Failed { kind, message } = &r.outcome {
                c.error_examples
                    .entry(kind.label())
                    .or_insert_with(|| message.clone());
            }
            write(&mut file, &r, &mut c.records_error);
            next = rx.try_recv().ok();
        }
        // Nothing waiting: put what we have on disk, so records survive a crash.
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.flush() {
                c.records_error = Some(e.to_string());
                file = None;
            }
        }
    }
    c
}

async fn start_built_in() -> anyhow::Result<(ServerHandle, ServerConfig)> {
    let config = ServerConfig::default();
    let listener = strobe_server::bind(([127, 0, 0, 1], 0).into())
        .context("cannot start the built-in target on 127.0.0.1")?;
    let handle = strobe_server::serve(listener, config.clone())
        .context("cannot start the built-in target")?;
    Ok((handle, config))
}

/// Runs the settings: once, or once per concurrency level of a profile (each level with its own
/// summary, report and records file, suffixed `.cN`).
pub async fn execute_run(settings: RunSettings, ui: Interactivity) -> anyhow::Result<RunOutcome> {
    if settings.levels.is_empty() {
        return execute_single(settings, ui).await;
    }
    if settings.launch.is_some() {
        anyhow::bail!("a profile with several concurrency levels and --launch: pick one level with --concurrency");
    }
    let mut last = None;
    let mut rows = Vec::new();
    for (level, &c) in settings.levels.iter().enumerate() {
        let mut s = settings.clone();
        s.levels.clear();
        // Level k uses seed + k: its prompts differ from the earlier levels', which the server may
        // still hold in its prefix cache.
        s.plan.seed = settings.plan.seed.wrapping_add(level as u64);
        s.plan.mode = LoadMode::Concurrency(c);
        if settings.requests_per_level {
            if let Some(p) = settings.profile {
                s.plan.requests = Some(p.requests_for(c));
            }
        }
        s.output = settings.output.as_deref().map(|p| level_path(p, c));
        s.records = settings.records.as_deref().map(|p| level_path(p, c));
        if !settings.quiet {
            eprintln!("--- concurrency {c} ---");
        }
        let outcome = execute_single(s, ui).await?;
        let r = &outcome.report.results;
        rows.push(format!(
            "{c:>11} {:>9} {:>11.2} {:>13.1} {:>14.2} {:>14.2}",
            r.requests.successful,
            r.throughput.requests_per_s,
            r.throughput.output_tokens_per_s,
            r.latency.ttft_ms.mean,
            r.latency.tpot_ms.mean,
        ));
        let stop = outcome.exit_code != exit::OK;
        last = Some(outcome);
        if stop {
            break;
        }
    }
    if ui.print_summary && !settings.quiet {
        println!(
            "\nprofile {}: one run per concurrency level",
            settings.profile.map_or("", |p| p.name)
        );
        println!(
            "concurrency successful       req/s  output tok/s  mean TTFT (ms)  mean TPOT (ms)"
        );
        for r in rows {
            println!("{r}");
        }
    }
    last.ok_or_else(|| anyhow::anyhow!("no concurrency level to run"))
}

/// `out.json` → `out.c4.json`.
fn level_path(p: &std::path::Path, c: u32) -> std::path::PathBuf {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match p.extension() {
        Some(ext) => format!("{stem}.c{c}.{}", ext.to_string_lossy()),
        None => format!("{stem}.c{c}"),
    };
    p.with_file_name(name)
}

async fn execute_single(settings: RunSettings, ui: Interactivity) -> anyhow::Result<RunOutcome> {
    if let Some(command) = settings.launch.clone() {
        return crate::launch::run_launched(&settings, &command, ui).await;
    }
    let quiet = settings.quiet;
    let (built_in, url) = match &settings.url {
        Some(u) => (None, u.clone()),
        None => {
            let (handle, config) = start_built_in().await?;
            let url = format!("http://{}", handle.addr);
            if !quiet {
                eprintln!(
                    "no --url given: benchmarking the built-in target (strobe serve) at {url}: TTFT {:?}, {:?} between tokens",
                    config.ttft, config.itl
                );
            }
            (Some(handle), url)
        }
    };
    let result = run_against(&settings, &url, built_in.is_some(), ui, None).await;
    if let Some(h) = built_in {
        h.shutdown().await;
    }
    result
}

pub(crate) async fn run_against(
    settings: &RunSettings,
    url: &str,
    built_in: bool,
    ui: Interactivity,
    engine: Option<strobe_report::Engine>,
) -> anyhow::Result<RunOutcome> {
    let quiet = settings.quiet;
    let (base, addr, headers) = resolve_target(settings, url).await?;
    let info = preflight(&base, addr, &headers, settings.model.as_deref()).await?;
    let target_headers = headers.clone();
    if let (Some(w), false) = (&info.warning, quiet) {
        eprintln!("warning: {w}");
    }

    let records_file = match &settings.records {
        Some(p) => Some(std::io::BufWriter::with_capacity(
            256 * 1024,
            std::fs::File::create(p)
                .with_context(|| format!("--records {}: cannot create the file", p.display()))?,
        )),
        None => None,
    };
    let output_path = settings.output.clone();
    if let Some(p) = &output_path {
        // Create it now so that a bad path fails before the run, not after it.
        std::fs::File::create(p)
            .with_context(|| format!("--output {}: cannot create the file", p.display()))?;
    }

    let target = Arc::new(Target {
        base: base.clone(),
        addr,
        api: settings.api,
        model: info.model.clone(),
        stream: settings.stream,
        headers,
        extra_body: settings.extra_body.clone(),
        request_timeout: settings.request_timeout,
        kernel_timestamps: settings.kernel_timestamps,
    });
    let built = build_workload(settings, &base, addr, &target_headers, &info, built_in).await?;
    if !quiet {
        for w in &built.warnings {
            eprintln!("warning: {w}");
        }
    }
    let workload = built.workload;

    let (tx, rx) = mpsc::unbounded_channel();
    let collector = std::thread::Builder::new()
        .name("strobe-records".into())
        .spawn(move || collect(rx, records_file))
        .context("cannot start the records thread")?;

    let progress = Arc::new(Progress::default());
    let (stopper, stop_signal) = Stopper::new();
    let ctrl_c = ui.handle_ctrl_c.then(|| {
        let stopper = stopper.clone();
        let drain = settings.plan.drain_timeout;
        tokio::spawn(async move {
            let mut presses = 0;
            while tokio::signal::ctrl_c().await.is_ok() {
                presses += 1;
                if presses == 1 {
                    eprintln!("\nstopping: no new requests; in-flight ones get {drain:?} to finish (Ctrl-C again cancels them)");
                } else {
                    eprintln!("\ncancelling in-flight requests");
                }
                stopper.request_stop();
            }
        })
    });
    let clock = RunClock::starting_now();
    let telemetry = Telemetry::start(settings, &base, addr, &target_headers, clock).await?;
    let progress_task = (ui.progress && !quiet).then(|| {
        progress::spawn(
            Arc::clone(&progress),
            clock,
            settings
                .plan
                .requests
                .map(|n| n + settings.plan.warmup_requests),
        )
    });
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();

    let cpu_before = process_cpu_seconds();
    let wall_before = Instant::now();
    let result = strobe_load::run(
        settings.plan.clone(),
        target,
        workload,
        clock,
        tx,
        Arc::clone(&progress),
        stop_signal,
    )
    .await?;
    let wall_seconds = wall_before.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu_before;

    if let Some(t) = ctrl_c {
        t.abort();
    }
    let finished =
        progress.completed.load(Ordering::Relaxed) - progress.failed.load(Ordering::Relaxed);
    let (server_metrics, gpu) = telemetry.finish(finished).await;
    if let Some(t) = progress_task {
        t.abort();
        progress::clear();
    }
    let collected = tokio::task::spawn_blocking(move || collector.join())
        .await
        .context("records thread")?
        .map_err(|_| anyhow::anyhow!("the records thread panicked"))?;

    let load = load_info(settings);
    let inputs = ReportInputs {
        started_at,
        target: TargetInfo {
            base_url: base.display.clone(),
            api: match settings.api {
                Api::Completions => "completions",
                Api::Chat => "chat",
            }
            .into(),
            endpoint: base.url_of(settings.api.path()),
            model: info.model.clone(),
            streaming: settings.stream,
            built_in,
            extra_header_names: settings
                .headers
                .iter()
                .filter_map(|h| h.split_once(':').map(|(n, _)| n.trim().to_owned()))
                .collect(),
            extra_body: settings.extra_body.clone(),
        },
        workload: built.info,
        load,
        stop_reason: result.stop_reason.clone(),
        interrupted: result.interrupted,
        aborted: result.aborted,
        peak_in_flight: progress.peak_in_flight.load(Ordering::Relaxed),
        error_examples: collected.error_examples,
        cpu_seconds,
        wall_seconds,
        cpu_cores_available: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        connections: result.workers as u64,
        includes_built_in_target: built_in,
        receive_timestamps: if settings.kernel_timestamps && info.kernel_timestamps {
            "kernel"
        } else {
            "user"
        }
        .into(),
    };
    let mut report = Report::build(&collected.metrics, inputs);
    report.server_metrics = server_metrics;
    report.gpu = gpu;
    report.engine = engine;
    report.client.warnings.extend(built.warnings);
    if let Some(e) = collected.records_error {
        report
            .client
            .warnings
            .push(format!("writing --records stopped: {e}"));
    }

    if ui.print_summary && !quiet {
        print!("{}", strobe_report::console::render(&report));
    }
    if let Some(p) = &output_path {
        std::fs::write(p, strobe_report::json::render(&report))
            .with_context(|| format!("--output {}: cannot write the report", p.display()))?;
        if !quiet {
            eprintln!("report written to {}", p.display());
        }
    }
    let exit_code = if result.interrupted {
        exit::INTERRUPTED
    } else if result.aborted {
        eprintln!("error: {}; see the errors above", result.stop_reason);
        exit::ERROR
    } else {
        exit::OK
    };
    Ok(RunOutcome { exit_code, report })
}

/// Builds the workload once the server is known: probes /tokenize when it may be used, and
/// counts on a blocking thread.
async fn build_workload(
    settings: &RunSettings,
    base: &BaseUrl,
    addr: std::net::SocketAddr,
    headers: &http::HeaderMap,
    info: &strobe_client::ServerInfo,
    built_in: bool,
) -> anyhow::Result<crate::workload::Built> {
    let choice = settings.workload.tokenizer.as_deref();
    let probe = choice == Some("server") || (choice.is_none() && !built_in);
    let server_tokenizer = if probe {
        Some(
            crate::server_tokenizer::ServerTokenizer::probe(base, addr, headers, &info.model).await,
        )
    } else {
        None
    };
    let plan = &settings.plan;
    let ctx = crate::workload::BuildContext {
        api: settings.api,
        seed: plan.seed,
        built_in,
        server_tokenizer,
        max_model_len: info.max_model_len,
        // Known only when neither a duration nor a timed warm-up decides the count.
        needed: match (plan.duration, plan.warmup_duration.is_zero()) {
            (None, true) => plan.requests.map(|n| n + plan.warmup_requests),
            _ => None,
        },
        concurrency: match plan.mode {
            LoadMode::Concurrency(c) => c,
            LoadMode::Rate {
                max_concurrency, ..
            // An open loop without a cap: follow-up turns are spaced 64 requests apart.
            } => max_concurrency.unwrap_or(64),
        },
        profile: settings.profile.map(|p| p.name.to_owned()),
    };
    let ws = settings.workload.clone();
    tokio::task::spawn_blocking(move || crate::workload::build(&ws, ctx))
        .await
        .context("workload thread")?
}

/// The target's parsed URL, address and request headers (API key and --header values).
pub(crate) async fn resolve_target(
    settings: &RunSettings,
    url: &str,
) -> anyhow::Result<(BaseUrl, std::net::SocketAddr, http::HeaderMap)> {
    let base = BaseUrl::parse(url).context("--url")?;
    let addr = base.resolve().await?;
    let headers = build_headers(
        &base,
        settings.api_key.as_ref().map(|s| s.0.as_str()),
        &settings.headers,
    )?;
    Ok((base, addr, headers))
}

/// The load settings as the report records them.
fn load_info(settings: &RunSettings) -> LoadInfo {
    let plan = &settings.plan;
    let mut info = LoadInfo {
        mode: "concurrency".into(),
        concurrency: None,
        rate_per_s: None,
        arrival: None,
        burstiness: None,
        max_concurrency: None,
        requests: plan.requests,
        duration_s: plan.duration.map(|d| d.as_secs_f64()),
        warmup_requests: plan.warmup_requests,
        warmup_duration_s: plan.warmup_duration.as_secs_f64(),
        seed: plan.seed,
        request_timeout_s: settings.request_timeout.as_secs_f64(),
    };
    match plan.mode {
        LoadMode::Concurrency(c) => info.concurrency = Some(c),
        LoadMode::Rate {
            rate,
            arrival,
            max_concurrency,
        } => {
            info.mode = "rate".into();
            info.rate_per_s = Some(rate);
            info.max_concurrency = max_concurrency;
            let (name, shape) = match arrival {
                Arrival::Poisson => ("poisson", None),
                Arrival::Constant => ("constant", None),
                Arrival::Gamma { shape } => ("gamma", Some(shape)),
            };
            info.arrival = Some(name.into());
            info.burstiness = shape;
        }
    }
    info
}
