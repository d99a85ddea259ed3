//! One run on a prepared session: its classes on the schedule core, records aggregated as they
//! arrive, telemetry beside it, and its report.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use strobe_client::Target;
use strobe_core::{redact_text, Api, ClassId, RunClock};
use strobe_load::{process_cpu_seconds, ClassPlan, Limits, Progress, RunPlan, Schedule};
use strobe_metrics::{ClassSets, RequestSlo};
use strobe_report::{ClassInput, LoadInfo, Report, ReportInputs, RequestInfo, TargetInfo, TlsInfo};
use strobe_workload::Variation;

use crate::error::ExperimentError;
use crate::experiment::{ClassSpec, Experiment, PreparedWorkloads, RequestOptions, RunSpec};
use crate::observer::{LiveRun, Observer};
use crate::records::{self, RecordsFile};
use crate::shutdown::Shutdown;
use crate::target::Session;
use crate::telemetry::Telemetry;

/// The load settings as the report records them.
pub(crate) fn load_info(c: &ClassSpec, request_timeout_s: f64) -> LoadInfo {
    let mut info = LoadInfo {
        schedule: c.schedule.name().into(),
        requests: c.requests,
        duration_s: c.duration.map(|d| d.as_secs_f64()),
        until_class: c.until.clone(),
        start_after_s: c.start_after.as_secs_f64(),
        warmup_requests: c.warmup.requests,
        warmup_duration_s: c.warmup.duration.as_secs_f64(),
        seed: c.seed,
        request_timeout_s,
        ..LoadInfo::default()
    };
    match c.schedule {
        Schedule::Closed { concurrency } => info.concurrency = Some(concurrency),
        Schedule::Open {
            rate,
            arrival,
            max_concurrency,
        } => {
            info.rate_per_s = Some(rate);
            info.max_concurrency = max_concurrency;
            let (name, shape) = match arrival {
                strobe_load::Arrival::Poisson => ("poisson", None),
                strobe_load::Arrival::Constant => ("constant", None),
                strobe_load::Arrival::Gamma { shape } => ("gamma", Some(shape)),
            };
            info.arrival = Some(name.into());
            info.burstiness = shape;
        }
        Schedule::Offline { max_concurrency } => info.max_concurrency = max_concurrency,
        Schedule::Lockstep {
            batch_size,
            batches,
        } => {
            info.batch_size = Some(batch_size);
            info.num_batches = Some(batches);
        }
    }
    info
}

fn api_name(api: Api) -> &'static str {
    match api {
        Api::Completions => "completions",
        Api::Chat => "chat",
    }
}

/// Body fields as the report shows them: values of secret-looking fields redacted, at any depth.
fn shown_body(
    body: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    fn redact(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => serde_json::Value::Object(shown_body(m)),
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(redact).collect()),
            other => other.clone(),
        }
    }
    body.iter()
        .map(|(k, v)| {
            let v = if strobe_core::is_secret_name(k) {
                serde_json::Value::String("***".into())
            } else {
                redact(v)
            };
            (k.clone(), v)
        })
        .collect()
}

/// Where a class's requests go and what they carry.
pub(crate) fn target_for(session: &Session, request: &RequestOptions) -> Arc<Target> {
    Arc::new(Target {
        base: session.base.clone(),
        addr: session.addr,
        api: request.api,
        model: session.info.model.clone(),
        stream: request.stream,
        headers: session.headers.clone(),
        extra_body: request.extra_body.clone(),
        request_timeout: session.spec.request_timeout,
        first_byte_timeout: session.spec.first_byte_timeout,
        idle_timeout: session.spec.idle_timeout,
        kernel_timestamps: session.spec.kernel_timestamps,
        sockets: Default::default(),
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_one(
    session: &Session,
    exp: &Experiment,
    index: usize,
    run: &RunSpec,
    prepared: &PreparedWorkloads,
    shutdown: &Shutdown,
    observer: &mut dyn Observer,
    records_file: Option<RecordsFile>,
) -> Result<Report, ExperimentError> {
    let spec = &session.spec;
    let id_of = |name: &str| {
        run.classes
            .iter()
            .position(|c| c.name == name)
            .map(|i| ClassId(i as u16))
    };
    let mut plans = Vec::with_capacity(run.classes.len());
    for (k, c) in run.classes.iter().enumerate() {
        let target = target_for(session, &c.request);
        let workload = match &c.batch {
            Some(job) => job.0.workload(&session.info.model),
            None => prepared[&(c.workload, c.request.api)]
                .workload
                .vary(Variation {
                    content_seed: c.content_seed,
                    sessions: Some(c.concurrency()),
                }),
        };
        plans.push(ClassPlan {
            id: ClassId(k as u16),
            name: c.name.clone(),
            target,
            workload,
            schedule: c.schedule,
            limits: Limits {
                requests: c.requests,
                duration: c.duration,
                until_class: c.until.as_deref().and_then(id_of),
            },
            warmup: c.warmup,
            start_after: c.start_after,
            seed: c.seed,
            progress: Arc::new(Progress::default()),
            retry: c.retry,
            abort: c.abort,
            steer: c.steer.clone(),
        });
    }
    let plan = RunPlan {
        classes: plans,
        drain_timeout: exp.drain_timeout,
        abort_after_failures: exp.abort_after_failures,
        progress: Arc::new(Progress::default()),
    };
    plan.validate()?;
    let sets = ClassSets::new(
        run.classes
            .iter()
            .enumerate()
            .map(|(k, c)| (ClassId(k as u16), RequestSlo::from_targets(&c.slo))),
    );
    let (tx, rx) = strobe_load::records_channel();
    let jobs = run
        .classes
        .iter()
        .enumerate()
        .filter_map(|(k, c)| Some((ClassId(k as u16), Arc::clone(&c.batch.as_ref()?.0))))
        .collect();
    let collector = records::spawn(rx, records_file, sets, jobs)
        .map_err(|e| ExperimentError::Internal(format!("cannot start the records thread: {e}")))?;

    let clock = RunClock::starting_now();
    let targets: Vec<Arc<Target>> = plan.classes.iter().map(|c| Arc::clone(&c.target)).collect();
    let telemetry = Telemetry::start(
        &spec.telemetry,
        &spec.tls,
        &session.base,
        session.addr,
        &session.headers,
        clock,
    )
    .await?;
    let planned = run
        .classes
        .iter()
        .map(|c| c.planned())
        .try_fold(0u64, |a, n| n.map(|n| a + n));
    observer.run_started(&LiveRun {
        label: exp.is_multi().then(|| run.label.clone()),
        index,
        of: exp.runs.len(),
        clock,
        total: Arc::clone(&plan.progress),
        planned,
        classes: plan
            .classes
            .iter()
            .map(|c| (c.name.clone(), Arc::clone(&c.progress)))
            .collect(),
    });
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let cpu_before = process_cpu_seconds();
    let wall_before = Instant::now();
    let progress: Vec<Arc<Progress>> = plan
        .classes
        .iter()
        .map(|c| Arc::clone(&c.progress))
        .collect();
    let total = Arc::clone(&plan.progress);
    // This run's own stop: the process-wide shutdown drains (then cancels) it, and so may the
    // over-saturation watch.
    let (stopper, stop_signal) = strobe_load::Stopper::new();
    let forward = {
        let stopper = stopper.clone();
        let shutdown = shutdown.clone();
        // It mirrors the shutdown's state (drain, then cancel), whatever the watch asked first.
        tokio::spawn(async move {
            shutdown.wait().await;
            if stopper.state() == strobe_load::StopState::Running {
                stopper.request_stop();
            }
            while shutdown.state() != strobe_load::StopState::Cancel {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            while stopper.state() != strobe_load::StopState::Cancel {
                stopper.request_stop();
            }
        })
    };
    // The watch follows a run of one open-loop class.
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let watch = match (run.classes.as_slice(), plan.classes.first()) {
        (
            [ClassSpec {
                schedule:
                    Schedule::Open {
                        rate,
                        max_concurrency,
                        ..
                    },
                ..
            }],
            Some(c),
        ) => {
            let stop: Option<Box<dyn FnOnce() + Send>> = exp.stop_when_saturated.then(|| {
                let stopper = stopper.clone();
                // Drain, unless the user already stopped the run.
                Box::new(move || {
                    if stopper.state() == strobe_load::StopState::Running {
                        stopper.request_stop()
                    }
                }) as Box<dyn FnOnce() + Send>
            });
            Some(tokio::spawn(crate::saturation::watch_run(
                Arc::clone(&c.progress),
                clock,
                *rate,
                max_concurrency.is_some(),
                stop,
                done_rx,
            )))
        }
        _ => None,
    };
    let result = strobe_load::run(plan, clock, tx, stop_signal).await;
    forward.abort();
    let _ = done_tx.send(true);
    let saturation = match watch {
        Some(w) => w.await.ok(),
        None => None,
    };
    let wall_seconds = wall_before.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu_before;
    let finished = total.completed.load(Ordering::Relaxed) - total.failed.load(Ordering::Relaxed);
    let (server_metrics, gpu) = telemetry.finish(finished).await;
    let collected = tokio::task::spawn_blocking(move || collector.join())
        .await
        .map_err(|e| ExperimentError::Internal(format!("records thread: {e}")))?
        .map_err(|_| ExperimentError::Internal("the records thread panicked".into()))?;
    let mut result = result?;
    // Stopped by the watch, not by the user: a finished (short) run, said so.
    if saturation.as_ref().is_some_and(|s| s.stopped_early) && !shutdown.is_requested() {
        result.interrupted = false;
        for c in &mut result.classes {
            if c.stop_reason == strobe_load::StopReason::Interrupted {
                c.stop_reason = strobe_load::StopReason::OverSaturated;
            }
        }
    }

    // Messages quoted from the server may echo a secret back.
    let secrets = session.secrets();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let (kernel_sockets, user_sockets) = targets
        .iter()
        .map(|t| t.sockets.get())
        .fold((0, 0), |(a, b), (k, u)| (a + k, b + u));
    let error_examples = collected
        .error_examples
        .iter()
        .map(|(k, v)| (k.clone(), redact_text(v, &secrets)))
        .collect();
    let several = run.classes.len() > 1;
    let mut warnings = Vec::new();
    let classes = run
        .classes
        .iter()
        .zip(&result.classes)
        .zip(&progress)
        .map(|((c, r), p)| {
            let built = &prepared[&(c.workload, c.request.api)];
            let mut workload = built.info.clone();
            workload.content_seed = c.content_seed;
            for w in &built.warnings {
                warnings.push(if several {
                    format!("class `{}`: {w}", c.name)
                } else {
                    w.clone()
                });
            }
            ClassInput {
                name: c.name.clone(),
                id: r.id.0,
                request: RequestInfo {
                    api: api_name(c.request.api).into(),
                    endpoint: session.base.url_of(c.request.api.path()),
                    streaming: c.request.stream,
                    extra_body: shown_body(&c.request.extra_body),
                },
                workload,
                load: load_info(c, spec.request_timeout.as_secs_f64()),
                stop_reason: r.stop_reason.to_string(),
                unsent: r.unsent,
                peak_in_flight: p.peak_in_flight.load(Ordering::Relaxed),
                slo: c.slo.clone(),
            }
        })
        .collect();
    let inputs = ReportInputs {
        started_at,
        experiment: (exp.kind != "run").then(|| exp.kind.clone()),
        label: exp.is_multi().then(|| run.label.clone()),
        target: TargetInfo {
            base_url: session.base.display.clone(),
            model: session.info.model.clone(),
            built_in: session.is_built_in(),
            extra_header_names: spec.headers.iter().map(|(n, _)| n.clone()).collect(),
            tls: session.base.tls.as_ref().map(|t| TlsInfo {
                version: session.info.tls_version.clone(),
                insecure: t.options.insecure,
                ca_cert: t.options.ca_cert.as_ref().map(|p| p.display().to_string()),
            }),
        },
        classes,
        stop_reason: result.stop_reason(),
        interrupted: result.interrupted,
        aborted: result.aborted,
        peak_in_flight: total.peak_in_flight.load(Ordering::Relaxed),
        error_examples,
        cpu_seconds,
        wall_seconds,
        cpu_cores_available: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        connections: result.connections() as u64,
        includes_built_in_target: session.is_built_in(),
        // What the sockets really did, not what was asked for.
        receive_timestamps: match (kernel_sockets, user_sockets) {
            (0, 0) if spec.kernel_timestamps && session.info.kernel_timestamps => "kernel",
            (0, _) => "user",
            (_, 0) => "kernel",
            _ => "mixed",
        }
        .into(),
        sockets_kernel_timestamps: kernel_sockets,
        sockets_user_timestamps: user_sockets,
        backpressure_waits: result.backpressure.waits,
        backpressure_s: result.backpressure.wait_s,
        price: exp.price,
    };
    let mut report = Report::build(&collected.sets, inputs);
    report.run.saturation = saturation;
    if let Some(s) = report.run.saturation.as_ref().filter(|s| s.detected) {
        report.client.warnings.push(format!(
            "over-saturated: requests outstanding grew by {:.1}/s at {:.1} requests/s offered (detected at {:.1} s){}: the server cannot keep up, and latency figures measure a queue that grows with the run's length",
            s.growth_per_s,
            s.offered_per_s,
            s.at_s.unwrap_or(0.0),
            if s.stopped_early { ", run stopped" } else { "" }
        ));
    }
    report.server_metrics = server_metrics;
    report.gpu = gpu;
    report.engine = session.engine.clone();
    report.client.warnings.extend(warnings);
    if session
        .base
        .tls
        .as_ref()
        .is_some_and(|t| t.options.insecure)
    {
        report.client.warnings.push(
            "the server's TLS certificate was not checked (--insecure): anyone on the path could have answered".into(),
        );
    }
    if let Some(e) = collected.records_error {
        report
            .client
            .warnings
            .push(format!("writing --records stopped: {e}"));
    }
    Ok(report)
}
