//! An experiment: an ordered list of runs on one prepared target, each with one or more classes,
//! sharing workloads built once. Each run's report is written as the run ends and the summary is
//! rewritten after every run; a stop request ends the current run (drained, written) and skips the
//! rest.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use strobe_core::Api;
use strobe_load::{Schedule, Warmup};
use strobe_metrics::{GpuPrice, SloTarget};
use strobe_report::{Comparison, ExperimentSummary, PointSummary, Report, WorkloadInfo};
use strobe_workload::Workload;

use crate::error::ExperimentError;
use crate::observer::{Observer, Stage};
use crate::outputs::{OutputManager, Outputs};
use crate::server_tokenizer::ServerTokenizer;
use crate::shutdown::Shutdown;
use crate::target::Session;
use crate::workloads::{self, BuildContext, WorkloadSpec};

/// What each request of a class carries besides its prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestOptions {
    pub api: Api,
    pub stream: bool,
    /// Extra top-level JSON body fields (they override strobe's own).
    pub extra_body: Map<String, Value>,
}

/// One class of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassSpec {
    pub name: String,
    pub request: RequestOptions,
    /// Index into [`Experiment::workloads`].
    pub workload: usize,
    pub schedule: Schedule,
    pub requests: Option<u64>,
    pub duration: Option<Duration>,
    /// Stop sending when the class of this name (in the same run) finishes.
    pub until: Option<String>,
    pub warmup: Warmup,
    pub start_after: Duration,
    /// Seeds the arrivals and the lengths.
    pub seed: u64,
    /// Seeds the text: runs of one experiment differ in it, so no run resends another's prompts.
    pub content_seed: u64,
    pub slo: Vec<SloTarget>,
    /// How failed requests are retried (batch classes retry; benchmarks by default do not).
    pub retry: strobe_load::Retry,
    /// Abort rules beyond the run's own.
    pub abort: strobe_load::AbortRules,
    /// A batch class: its requests are the batch's pending lines, its results go to the batch's
    /// store.
    pub batch: Option<strobe_batch::JobHandle>,
    /// A cap on requests in flight moved while the class runs (the gateway's batch policy).
    pub steer: Option<strobe_load::Steer>,
}

impl ClassSpec {
    /// Requests this class sends in one run (measured + warm-up), when counts decide it.
    pub fn planned(&self) -> Option<u64> {
        if self.duration.is_some() || self.until.is_some() || !self.warmup.duration.is_zero() {
            return None;
        }
        match self.schedule {
            Schedule::Lockstep {
                batch_size,
                batches,
            } => Some((batches + self.warmup.requests) * batch_size as u64),
            _ => self.requests.map(|n| n + self.warmup.requests),
        }
    }

    /// The class's concurrency (multi-turn workloads interleave this many conversations).
    pub fn concurrency(&self) -> u32 {
        match self.schedule {
            Schedule::Closed { concurrency } => concurrency,
            Schedule::Lockstep { batch_size, .. } => batch_size,
            Schedule::Open {
                max_concurrency, ..
            }
            | Schedule::Offline { max_concurrency } => {
                // An open loop without a cap: follow-up turns are spaced 64 requests apart.
                max_concurrency.unwrap_or(64)
            }
        }
    }
}

/// One run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    /// The run's name in file names and tables (`c4`, `mixed-c10`).
    pub label: String,
    /// What sets it apart, for the summary.
    pub parameters: BTreeMap<String, Value>,
    pub classes: Vec<ClassSpec>,
}

/// Which figures a comparison sets side by side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CompareKind {
    /// E2E and TTFT statistics and request rate.
    Latency,
    /// Token throughput and duration.
    Throughput,
}

/// A class of one run against the same class of a baseline run.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparisonSpec {
    pub label: String,
    pub class: String,
    pub baseline: String,
    pub kind: CompareKind,
}

/// What every kind of experiment is given besides its runs.
#[derive(Clone, Debug)]
pub struct ExperimentOptions {
    pub drain_timeout: Duration,
    pub abort_after_failures: u64,
    pub price: Option<GpuPrice>,
    pub outputs: Outputs,
    /// Ask the server to empty its prefix cache before each run (sweeps).
    pub reset_prefix_cache: bool,
    /// Run every run again even when the outputs hold an interrupted attempt at this experiment.
    pub restart: bool,
}

impl Experiment {
    /// An experiment of `runs` over `workloads`, with what every kind is given.
    pub fn new(
        kind: &str,
        title: &str,
        workloads: Vec<WorkloadSpec>,
        runs: Vec<RunSpec>,
        options: ExperimentOptions,
    ) -> Experiment {
        Experiment {
            kind: kind.into(),
            title: title.into(),
            workloads,
            runs,
            comparisons: vec![],
            drain_timeout: options.drain_timeout,
            abort_after_failures: options.abort_after_failures,
            price: options.price,
            outputs: options.outputs,
            reset_prefix_cache: options.reset_prefix_cache,
            restart: options.restart,
            stop_when_saturated: false,
        }
    }

    /// A single run of `classes` (their workloads in order).
    pub fn single(
        kind: &str,
        title: &str,
        classes: Vec<(ClassSpec, WorkloadSpec)>,
        options: ExperimentOptions,
    ) -> Experiment {
        let (classes, workloads): (Vec<ClassSpec>, Vec<WorkloadSpec>) = classes
            .into_iter()
            .enumerate()
            .map(|(k, (mut c, w))| {
                c.workload = k;
                (c, w)
            })
            .unzip();
        Experiment::new(
            kind,
            title,
            workloads,
            vec![RunSpec {
                label: "run".into(),
                parameters: BTreeMap::new(),
                classes,
            }],
            options,
        )
    }
}

/// Everything an experiment is.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// `run`, `levels`, `interference` or `scenario`.
    pub kind: String,
    pub title: String,
    pub workloads: Vec<WorkloadSpec>,
    pub runs: Vec<RunSpec>,
    pub comparisons: Vec<ComparisonSpec>,
    pub drain_timeout: Duration,
    /// A class aborts when every one of its first this-many requests failed (0: never).
    pub abort_after_failures: u64,
    pub price: Option<GpuPrice>,
    pub outputs: Outputs,
    /// Ask the server to empty its prefix cache before each run.
    pub reset_prefix_cache: bool,
    /// Ignore an interrupted earlier attempt in the outputs: run everything again.
    pub restart: bool,
    /// Stop a run of one open-loop class as soon as it is over-saturated (capacity-search
    /// probes); other runs are only watched and reported.
    pub stop_when_saturated: bool,
}

impl Experiment {
    /// What identifies this experiment on a target across processes: its kind, workloads, runs,
    /// price and prefix-cache resets, and the target as given (URL without userinfo, model, the
    /// engine command with its secrets redacted); not its outputs. A re-run resumes an
    /// interrupted attempt only when this matches.
    pub fn fingerprint_for(&self, target: &crate::target::TargetSpec) -> String {
        let url = target
            .url
            .as_deref()
            .map(|u| match (u.find("://"), u.rfind('@')) {
                (Some(i), Some(j)) if j > i => format!("{}{}", &u[..i + 3], &u[j + 1..]),
                _ => u.to_owned(),
            });
        let launch = target.launch.as_ref().map(|l| {
            let secrets = strobe_core::command_secrets(&l.command);
            let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
            strobe_core::redact_text(&l.command, &secrets)
        });
        let text = format!(
            "{}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{:?}",
            self.kind,
            self.workloads,
            self.runs,
            self.price,
            self.reset_prefix_cache,
            url,
            target.model,
            launch
        );
        // FNV-1a, 64 bits: stable across Rust versions, unlike the std hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// More than one run: outputs are a summary plus one report per run.
    pub fn is_multi(&self) -> bool {
        // A search's probes are decided as it goes: it always writes a summary.
        self.runs.len() > 1 || self.kind == "search"
    }

    /// Checks class names, `until` references and workload indices.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        if self.runs.is_empty() {
            return Err(ExperimentError::Invalid(
                "the experiment has no runs".into(),
            ));
        }
        let mut labels = std::collections::HashSet::new();
        for r in &self.runs {
            if !labels.insert(&r.label) {
                return Err(ExperimentError::Invalid(format!(
                    "two runs are called `{}`",
                    r.label
                )));
            }
            let mut names = std::collections::HashSet::new();
            for c in &r.classes {
                if !names.insert(&c.name) {
                    return Err(ExperimentError::Invalid(format!(
                        "two classes are called `{}`",
                        c.name
                    )));
                }
                if c.workload >= self.workloads.len() {
                    return Err(ExperimentError::Internal(format!(
                        "class `{}` names no workload",
                        c.name
                    )));
                }
            }
            for c in &r.classes {
                if let Some(u) = &c.until {
                    if u == &c.name || !names.contains(u) {
                        return Err(ExperimentError::Invalid(format!(
                            "class `{}`: until = `{u}` must name another class of the run (they are: {})",
                            c.name,
                            r.classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// How an experiment ended.
pub struct Outcome {
    pub reports: Vec<Report>,
    pub summary: ExperimentSummary,
    /// A stop request ended it early.
    pub interrupted: bool,
    /// A class's abort rule ended it early.
    pub aborted: bool,
}

/// A workload built for one API, with what building it warned about.
pub(crate) struct Prepared {
    pub workload: Arc<dyn Workload>,
    pub info: WorkloadInfo,
    pub warnings: Vec<String>,
}

pub(crate) type PreparedWorkloads = HashMap<(usize, Api), Prepared>;

/// Builds every (workload, API) pair the runs use, once.
pub(crate) async fn prepare_workloads(
    session: &Session,
    exp: &Experiment,
    shutdown: &Shutdown,
    observer: &mut dyn Observer,
) -> Result<PreparedWorkloads, ExperimentError> {
    let mut uses: Vec<((usize, Api), Vec<&ClassSpec>)> = Vec::new();
    for c in exp.runs.iter().flat_map(|r| &r.classes) {
        let key = (c.workload, c.request.api);
        match uses.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(c),
            None => uses.push((key, vec![c])),
        }
    }
    let built_in = session.is_built_in();
    let probe = exp
        .workloads
        .iter()
        .any(|w| workloads::wants_server_tokenizer(w, built_in));
    let server_tokenizer = if probe {
        Some(
            ServerTokenizer::probe(
                &session.base,
                session.addr,
                &session.headers,
                &session.info.model,
            )
            .await,
        )
    } else {
        None
    };
    let mut prepared = HashMap::new();
    for ((w, api), classes) in uses {
        if shutdown.is_requested() {
            return Err(ExperimentError::Interrupted {
                stage: "building workloads",
            });
        }
        let needed = classes
            .iter()
            .map(|c| c.planned())
            .try_fold(0u64, |acc, n| n.map(|n| acc + n));
        let ctx = BuildContext {
            api,
            seed: classes[0].seed,
            built_in,
            server_tokenizer: server_tokenizer.clone(),
            max_model_len: session.info.max_model_len,
            needed,
            concurrency: classes.iter().map(|c| c.concurrency()).max().unwrap_or(1),
        };
        let spec = exp.workloads[w].clone();
        let task = tokio::task::spawn_blocking(move || workloads::build(&spec, ctx));
        let built = tokio::select! {
            r = task => r.map_err(|e| ExperimentError::Internal(format!("workload thread: {e}")))?,
            _ = shutdown.wait() => return Err(ExperimentError::Interrupted { stage: "building workloads" }),
        };
        let built = built.map_err(|source| ExperimentError::Workload {
            class: classes[0].name.clone(),
            source,
        })?;
        for warning in &built.warnings {
            observer.warning(warning);
        }
        prepared.insert(
            (w, api),
            Prepared {
                workload: built.workload,
                info: built.info,
                warnings: built.warnings,
            },
        );
    }
    Ok(prepared)
}

/// Sends one small request per distinct request shape before anything is measured, so that a
/// server refusing a field strobe adds (`ignore_eos`) says so at once, with the fix, instead of
/// failing every request of the run.
pub(crate) async fn probe_bodies(
    session: &Session,
    exp: &Experiment,
    shutdown: &Shutdown,
    observer: &mut dyn Observer,
) -> Result<(), ExperimentError> {
    let mut shapes: Vec<&RequestOptions> = Vec::new();
    for c in exp.runs.iter().flat_map(|r| &r.classes) {
        if !shapes.contains(&&c.request) {
            shapes.push(&c.request);
        }
    }
    for shape in shapes {
        let target = crate::run::target_for(session, shape);
        // No longer than a request's own timeouts allow (a stalled probe only costs a warning).
        let timeout = [
            Some(session.spec.request_timeout),
            Some(Duration::from_secs(120)),
            session.spec.first_byte_timeout,
            session.spec.idle_timeout,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::from_secs(120));
        let probe = tokio::select! {
            p = strobe_client::probe_body(&target, timeout) => p,
            _ = shutdown.wait() => return Err(ExperimentError::Interrupted { stage: "checking the request body" }),
        };
        match probe {
            strobe_client::BodyProbe::Accepted => {}
            strobe_client::BodyProbe::Inconclusive(why) => observer.warning(&format!(
                "the pre-run request to {} got no verdict ({why}); going on",
                session.base.url_of(shape.api.path())
            )),
            strobe_client::BodyProbe::Refused {
                status,
                message,
                field,
            } => {
                let secrets = session.secrets();
                let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
                let fix = field.as_deref().map(|f| match f {
                    "ignore_eos" => "the server does not accept `ignore_eos`, which strobe sends so that outputs have exactly --output-len tokens: pass --no-ignore-eos (output lengths are then not guaranteed: the report's output token counts say what was generated; where the engine supports it, --body '{\"min_tokens\": N}' keeps them)".to_owned(),
                    "stream_options" => "the server does not accept `stream_options` (strobe asks for the usage chunk with it): pass --no-stream to benchmark whole responses, or use a server that accepts it".to_owned(),
                    other => format!("the server does not accept the body field `{other}` (from --body): remove it"),
                });
                return Err(ExperimentError::BodyRefused {
                    url: session.base.url_of(shape.api.path()),
                    status,
                    message: strobe_core::redact_text(&message, &secrets),
                    fix,
                });
            }
        }
    }
    Ok(())
}

/// Runs the experiment on a prepared session.
pub async fn run(
    session: &Session,
    exp: &Experiment,
    shutdown: &Shutdown,
    observer: &mut dyn Observer,
) -> Result<Outcome, ExperimentError> {
    exp.validate()?;
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut summary = ExperimentSummary::new(&exp.kind, &exp.title, &started_at, exp.runs.len());
    let fingerprint = exp.fingerprint_for(&session.spec);
    summary.fingerprint = Some(fingerprint.clone());
    let labels: Vec<String> = exp.runs.iter().map(|r| r.label.clone()).collect();
    let earlier = if exp.is_multi() && !exp.restart {
        crate::outputs::earlier_runs(&exp.outputs, &labels, &fingerprint)
    } else {
        crate::outputs::Earlier {
            reports: vec![],
            note: None,
        }
    };
    if let Some(note) = &earlier.note {
        observer.message(note);
    }
    let mut done: HashMap<usize, Report> = earlier.reports.into_iter().collect();
    if !done.is_empty() {
        observer.message(&format!(
            "resuming: {} of {} runs were finished by an earlier attempt and are kept; running the other {} (--restart runs them all again)",
            done.len(),
            exp.runs.len(),
            exp.runs.len() - done.len()
        ));
    }
    let outputs = OutputManager::create(
        exp.outputs.clone(),
        labels,
        exp.is_multi(),
        &summary,
        !done.is_empty(),
    )?;
    observer.stage(&Stage::BuildingWorkloads);
    if shutdown.is_requested() {
        return Err(ExperimentError::Interrupted {
            stage: "building workloads",
        });
    }
    let prepared = prepare_workloads(session, exp, shutdown, observer).await?;
    probe_bodies(session, exp, shutdown, observer).await?;

    let mut reports = Vec::new();
    let (mut interrupted, mut aborted) = (false, false);
    for (i, run) in exp.runs.iter().enumerate() {
        if shutdown.is_requested() {
            interrupted = true;
            break;
        }
        let resumed = done.remove(&i);
        // A point resumed from an earlier invocation was shown then; a fresh one is shown now,
        // whether or not it wrote files.
        let fresh = resumed.is_none();
        let (report, files) = match resumed {
            Some(report) => {
                summary.resumed.push(run.label.clone());
                (report, vec![])
            }
            None => {
                observer.stage(&Stage::Run {
                    index: i,
                    of: exp.runs.len(),
                    label: exp.is_multi().then(|| run.label.clone()),
                });
                if shutdown.is_requested() {
                    interrupted = true;
                    break;
                }
                if exp.reset_prefix_cache {
                    reset_prefix_cache(session, shutdown, observer).await?;
                }
                let records = outputs.begin_run(i)?;
                let report = crate::run::run_one(
                    session, exp, i, run, &prepared, shutdown, observer, records,
                )
                .await?;
                let files = outputs.write_run(i, &report)?;
                (report, files)
            }
        };
        summary
            .target
            .get_or_insert_with(|| report.run.target.clone());
        summary.points.push(PointSummary::of(
            &run.label,
            run.parameters.clone(),
            &report,
            outputs.report_path(i).map(|p| p.display().to_string()),
        ));
        summary.comparisons = compare(&exp.comparisons, &summary);
        interrupted |= report.run.interrupted;
        aborted |= report.run.aborted;
        summary.interrupted = interrupted || aborted;
        reports.push(report);
        outputs.write_summary(&summary, &reports)?;
        if fresh {
            if let Some(report) = reports.last() {
                observer.run_finished(report, &files);
            }
        }
        if interrupted || aborted {
            break;
        }
    }
    summary.interrupted = interrupted || aborted || reports.len() < exp.runs.len();
    outputs.write_summary(&summary, &reports)?;
    if exp.is_multi() {
        observer.experiment_finished(&summary, outputs.summary_path());
    }
    observer.stage(&Stage::Finished);
    Ok(Outcome {
        reports,
        summary,
        interrupted,
        aborted,
    })
}

/// Asks the server to empty its prefix cache (vLLM: `POST /reset_prefix_cache`, which it serves
/// with `VLLM_SERVER_DEV_MODE=1`; SGLang: `POST /flush_cache`), so a run does not reuse the
/// previous run's cached prompts. A server with neither endpoint stops the experiment: the
/// user asked for clean runs and would otherwise not get them.
async fn reset_prefix_cache(
    session: &Session,
    shutdown: &Shutdown,
    observer: &mut dyn Observer,
) -> Result<(), ExperimentError> {
    let mut answers = vec![];
    for path in ["/reset_prefix_cache", "/flush_cache"] {
        let url = session.base.url_of(path);
        let post =
            strobe_client::post_json(&session.base, session.addr, path, &session.headers, b"");
        let status = tokio::select! {
            s = tokio::time::timeout(Duration::from_secs(30), post) => match s {
                Ok(r) => r.map(|(status, _)| status),
                Err(_) => Err("no answer in 30 s".into()),
            },
            _ = shutdown.wait() => return Err(ExperimentError::Interrupted { stage: "resetting the prefix cache" }),
        };
        match status {
            Ok(s) if (200..300).contains(&s) => {
                observer.message(&format!("prefix cache emptied ({url})"));
                return Ok(());
            }
            Ok(s) => answers.push(format!("{url}: HTTP {s}")),
            Err(e) => answers.push(format!("{url}: {e}")),
        }
    }
    Err(ExperimentError::Invalid(format!(
        "--reset-prefix-cache: the server empties no prefix cache ({}); vLLM serves /reset_prefix_cache only with VLLM_SERVER_DEV_MODE=1 in its environment",
        answers.join("; ")
    )))
}

/// The comparisons whose two runs have both finished.
fn compare(specs: &[ComparisonSpec], s: &ExperimentSummary) -> Vec<Comparison> {
    specs
        .iter()
        .filter_map(|c| {
            let cur = s.point(&c.label)?.class(&c.class)?;
            let base = s.point(&c.baseline)?.class(&c.class)?;
            Some(match c.kind {
                CompareKind::Latency => Comparison::latency(&c.label, cur, &c.baseline, base),
                CompareKind::Throughput => Comparison::throughput(&c.label, cur, &c.baseline, base),
            })
        })
        .collect()
}
