//! The report's data model (schema `strobe.report.v4`; `docs/report.md` has the migration notes
//! from v1).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strobe_metrics::{cost, ClassSets, Cost, GpuPrice, MetricSet, SloReport, SloTarget, Summary};

/// Identifies this layout; bumped on any incompatible change.
pub const SCHEMA_ID: &str = "strobe.report.v4";

/// The result of one run: one or more classes of requests at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Report {
    /// Always [`SCHEMA_ID`].
    pub schema: String,
    pub tool: Tool,
    pub run: RunInfo,
    /// Every class together (the merge of the classes' statistics).
    pub results: Results,
    /// Each class on its own, in the order they were declared.
    pub classes: Vec<ClassReport>,
    /// What the run's GPU time cost, when a price was given.
    pub cost: Option<Cost>,
    pub client: ClientInfo,
    /// What the server's /metrics said (absent with --no-server-metrics).
    pub server_metrics: Option<crate::ServerMetrics>,
    pub gpu: crate::Gpu,
    /// The engine strobe launched, if it did.
    pub engine: Option<crate::Engine>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

/// What was run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RunInfo {
    /// Wall-clock start, RFC 3339 UTC.
    pub started_at: String,
    /// The experiment this run belongs to (`levels`, `interference`, `scenario`), if any.
    pub experiment: Option<String>,
    /// This run's name within its experiment (`c4`, `mixed-c10`), if any.
    pub label: Option<String>,
    pub target: TargetInfo,
    /// Why sending stopped.
    pub stop_reason: String,
    /// Stopped by the user (Ctrl-C, SIGTERM): the report is partial.
    pub interrupted: bool,
    /// Stopped by a class's abort rule (all its early requests failed).
    pub aborted: bool,
    /// Over-saturation watch of an open loop: requests outstanding (due, not yet answered)
    /// growing without bound means the server cannot keep up with the offered rate.
    #[serde(default)]
    pub saturation: Option<Saturation>,
}

/// What the over-saturation watch saw during a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Saturation {
    /// Outstanding requests grew without bound: the offered load exceeds what the server serves.
    pub detected: bool,
    /// The run was stopped when it was detected (a capacity-search probe), so its figures cover
    /// only the time before.
    pub stopped_early: bool,
    /// Seconds from the run's start when it was detected.
    pub at_s: Option<f64>,
    /// Requests per second offered (the schedule's rate).
    pub offered_per_s: f64,
    /// Outstanding requests' growth per second over the second half of the run so far (at
    /// detection, or at the end).
    pub growth_per_s: f64,
    /// Outstanding requests at the end of the watch.
    pub outstanding: u64,
}

/// The server the run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TargetInfo {
    pub base_url: String,
    pub model: String,
    /// The built-in `strobe serve` target, started in-process.
    pub built_in: bool,
    /// Names of extra headers sent (values are not recorded: they may hold secrets).
    pub extra_header_names: Vec<String>,
    /// For `https://` targets: how TLS was used.
    pub tls: Option<TlsInfo>,
}

/// TLS as the run used it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TlsInfo {
    /// Negotiated by the pre-run check (`TLSv1_3`).
    pub version: Option<String>,
    /// The certificate was not checked (`--insecure`).
    pub insecure: bool,
    /// Trust came from this CA file (`--ca-cert`) instead of the platform's roots.
    pub ca_cert: Option<String>,
}

/// What each request of a class looked like on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RequestInfo {
    /// `completions` or `chat`.
    pub api: String,
    pub endpoint: String,
    pub streaming: bool,
    /// Extra JSON body fields sent with every request (secret-looking values redacted).
    pub extra_body: serde_json::Map<String, serde_json::Value>,
}

/// When a class's requests were sent, as resolved from the settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct LoadInfo {
    /// `closed`, `open`, `offline` or `lockstep`.
    pub schedule: String,
    pub concurrency: Option<u32>,
    pub rate_per_s: Option<f64>,
    /// `poisson`, `constant` or `gamma`.
    pub arrival: Option<String>,
    pub burstiness: Option<f64>,
    pub max_concurrency: Option<u32>,
    /// Lockstep: requests per batch, and measured batches.
    pub batch_size: Option<u32>,
    pub num_batches: Option<u64>,
    pub requests: Option<u64>,
    pub duration_s: Option<f64>,
    /// The class stopped sending when this other class finished.
    pub until_class: Option<String>,
    pub start_after_s: f64,
    pub warmup_requests: u64,
    pub warmup_duration_s: f64,
    pub seed: u64,
    pub request_timeout_s: f64,
}

/// One class of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ClassReport {
    pub name: String,
    /// The `class` field of this class's records.
    pub id: u16,
    pub request: RequestInfo,
    pub workload: WorkloadInfo,
    pub load: LoadInfo,
    pub stop_reason: String,
    pub results: Results,
    /// SLO targets and their outcome, when the class has SLOs.
    pub slo: Option<SloReport>,
    /// This class's share of the run's cost (by time in flight), when a price was given.
    pub cost: Option<Cost>,
    /// Lossless statistics, for exact merging and re-analysis.
    pub state: MetricSet,
}

/// Measured results. Warm-up requests are excluded from everything but `requests.warmup`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Results {
    /// The measured window: first measured send to last measured completion.
    pub duration_s: f64,
    pub requests: RequestCounts,
    pub tokens: TokenTotals,
    pub throughput: Throughput,
    pub concurrency: Concurrency,
    pub latency: Latency,
    /// Output tokens per content chunk, per request.
    pub tokens_per_chunk: Summary,
    pub output_tokens_per_request: Summary,
    pub input_tokens_per_request: Summary,
    /// The server's input counts (`usage.prompt_tokens`) against the lengths the workload meant
    /// to send; absent when nothing could be compared.
    pub input_length_check: Option<InputLengthCheck>,
    /// Lockstep batches (absent for other schedules).
    pub batches: Option<BatchResults>,
}

/// Lockstep batch figures (seed 001).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct BatchResults {
    /// Measured batches with at least one successful member.
    pub count: u64,
    /// Batch latency: each batch's slowest member's E2E.
    pub latency_ms: Summary,
    /// Each batch's slowest member's TTFT (when every member had started generating).
    pub prefill_ms: Summary,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct InputLengthCheck {
    /// Successful measured requests with both counts.
    pub compared: u64,
    /// Of those, how many the server counted exactly as intended.
    pub exact: u64,
    /// Mean, least and greatest of (server − intended), in tokens.
    pub mean_diff: f64,
    pub min_diff: i64,
    pub max_diff: i64,
}

/// What was sent: the workload as resolved.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct WorkloadInfo {
    /// One-line description.
    pub description: String,
    /// `synthetic` or `dataset`.
    pub kind: String,
    /// The profile the defaults came from, if any.
    pub profile: Option<String>,
    /// How tokens were counted: `hf:PATH`, `server:URL`, `words ...`, or `none`.
    pub tokenizer: String,
    /// Input lengths are exact under that tokenizer (false: approximate).
    pub exact_input_lengths: bool,
    /// Input and output length distributions, as `--input-len`/`--output-len` specs.
    pub input_len: String,
    pub output_len: String,
    /// Tokens the chat template adds around one user message, when known.
    pub chat_template_tokens: Option<u32>,
    pub shared_prefix_tokens: u32,
    pub prefix_groups: u32,
    pub turns: u32,
    pub images_per_request: u32,
    /// Where images came from (`generated 512x512 image/jpeg`, `3 image file(s)`).
    pub images: Option<String>,
    pub dataset: Option<DatasetInfo>,
    /// The seed prompts were drawn with (lengths always follow the run's `--seed`).
    pub content_seed: u64,
}

/// What loading the data set did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DatasetInfo {
    pub path: String,
    pub format: String,
    /// Records read from the file.
    pub records: u64,
    /// Records counted and filtered (fewer than `records` when only the needed number was drawn).
    pub examined: u64,
    pub kept: u64,
    /// Records dropped, by reason.
    pub dropped: BTreeMap<String, u64>,
    pub malformed_skipped: u64,
    /// Set when the file was cut short and its complete records were used.
    pub truncated: Option<String>,
    /// Shuffled with Python's `random` under the run's seed (vLLM's order).
    pub shuffled: bool,
    /// The filter rules applied.
    pub filters: BTreeMap<String, Option<u32>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RequestCounts {
    /// Measured requests that ended (successful + failed + cancelled).
    pub measured: u64,
    pub successful: u64,
    pub failed: u64,
    /// Cancelled by strobe at shutdown (not server failures).
    pub cancelled: u64,
    pub warmup: u64,
    /// Due by the schedule (their intended time came before the duration ended or the run was
    /// stopped) but never sent, because the concurrency cap held them back.
    pub unsent: u64,
    /// Failures by kind (`http_503`, `stream_cut`, `timeout`, ...).
    pub errors: Vec<ErrorCount>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ErrorCount {
    pub kind: String,
    pub count: u64,
    /// The first message seen of this kind.
    pub example: String,
}

/// Token totals of successful measured requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TokenTotals {
    pub input: u64,
    pub output: u64,
    /// Successful requests by the source of their output count: `usage`, `tokenizer`, `chunks`.
    pub output_count_sources: BTreeMap<String, u64>,
    pub content_chunks: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Throughput {
    pub requests_per_s: f64,
    pub input_tokens_per_s: f64,
    pub output_tokens_per_s: f64,
    pub total_tokens_per_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Concurrency {
    /// What was asked for (closed-loop concurrency, or the cap of an open or offline schedule, or
    /// the lockstep batch size); summed over classes for the run.
    pub requested: Option<u32>,
    /// Time-averaged requests in flight over the measured window.
    pub achieved_mean: f64,
    /// Most requests in flight at once (warm-up included).
    pub peak_in_flight: u64,
    /// Time-averaged requests waiting to be sent (intended but not sent yet).
    pub queued_mean: f64,
}

/// Latency distributions in milliseconds; definitions in docs/metrics.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Latency {
    pub ttft_ms: Summary,
    pub tpot_ms: Summary,
    pub itl_ms: Summary,
    pub e2e_ms: Summary,
    pub queue_delay_ms: Summary,
}

/// What the client says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ClientInfo {
    /// CPU seconds (user + system) the strobe process used during the load.
    pub cpu_seconds: f64,
    /// `cpu_seconds` divided by the load's wall time: cores kept busy.
    pub cpu_cores_used: f64,
    /// Cores available to the process.
    pub cpu_cores_available: u32,
    /// CPU microseconds per streamed output token.
    pub cpu_us_per_output_token: Option<f64>,
    /// Connections (one per worker) the run opened.
    pub connections: u64,
    /// Includes the built-in target's CPU when it ran in-process.
    pub includes_built_in_target: bool,
    /// How arrivals were dated: `kernel` (receive timestamps on every socket), `user` (when the
    /// task read), or `mixed` (see the socket counts).
    pub receive_timestamps: String,
    /// Sockets whose reads the kernel stamped, and sockets that fell back to user-space stamps.
    pub sockets_kernel_timestamps: u64,
    pub sockets_user_timestamps: u64,
    /// Times a worker waited because the records thread fell behind (it then sent its next
    /// request late), and the total wait.
    pub records_backpressure_waits: u64,
    pub records_backpressure_s: f64,
    pub warnings: Vec<String>,
}

/// One class's facts and statistics, for [`Report::build`].
pub struct ClassInput {
    pub name: String,
    pub id: u16,
    pub request: RequestInfo,
    pub workload: WorkloadInfo,
    pub load: LoadInfo,
    pub stop_reason: String,
    pub unsent: u64,
    pub peak_in_flight: u64,
    pub slo: Vec<SloTarget>,
}

/// Everything the report needs besides the statistics.
pub struct ReportInputs {
    pub started_at: String,
    pub experiment: Option<String>,
    pub label: Option<String>,
    pub target: TargetInfo,
    pub classes: Vec<ClassInput>,
    pub stop_reason: String,
    pub interrupted: bool,
    pub aborted: bool,
    pub peak_in_flight: u64,
    pub error_examples: BTreeMap<String, String>,
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    pub cpu_cores_available: u32,
    pub connections: u64,
    pub includes_built_in_target: bool,
    pub receive_timestamps: String,
    pub sockets_kernel_timestamps: u64,
    pub sockets_user_timestamps: u64,
    pub backpressure_waits: u64,
    pub backpressure_s: f64,
    pub price: Option<GpuPrice>,
}

const MS: f64 = 1e-6;

impl Results {
    /// The results of one set of statistics.
    pub fn from_set(
        m: &MetricSet,
        requested: Option<u32>,
        peak_in_flight: u64,
        unsent: u64,
        error_examples: &BTreeMap<String, String>,
    ) -> Results {
        let errors = m
            .failed
            .iter()
            .map(|(kind, &count)| ErrorCount {
                kind: kind.clone(),
                count,
                example: error_examples.get(kind).cloned().unwrap_or_default(),
            })
            .collect();
        let tokens_total = m.input_tokens_total + m.output_tokens_total;
        let batches = (!m.batches.is_empty()).then(|| {
            let mut prefill = strobe_metrics::Distribution::default();
            for b in m.batches.values() {
                prefill.record(b.max_ttft_ns);
            }
            BatchResults {
                count: m.batches.len() as u64,
                latency_ms: m.batch_latency_ns().summary(MS),
                prefill_ms: prefill.summary(MS),
            }
        });
        Results {
            duration_s: m.window().duration_s(),
            requests: RequestCounts {
                measured: m.measured(),
                successful: m.successful,
                failed: m.failed_total(),
                cancelled: m.cancelled,
                warmup: m.warmup,
                unsent,
                errors,
            },
            tokens: TokenTotals {
                input: m.input_tokens_total,
                output: m.output_tokens_total,
                output_count_sources: m.output_token_sources.clone(),
                content_chunks: m.content_chunks_total,
            },
            throughput: Throughput {
                requests_per_s: m.per_second(m.successful),
                input_tokens_per_s: m.per_second(m.input_tokens_total),
                output_tokens_per_s: m.per_second(m.output_tokens_total),
                total_tokens_per_s: m.per_second(tokens_total),
            },
            concurrency: Concurrency {
                requested,
                achieved_mean: m.achieved_concurrency(),
                peak_in_flight,
                queued_mean: m.average_queued(),
            },
            latency: Latency {
                ttft_ms: m.ttft_ns.summary(MS),
                tpot_ms: m.tpot_ns.summary(MS),
                itl_ms: m.itl_ns.summary(MS),
                e2e_ms: m.e2e_ns.summary(MS),
                queue_delay_ms: m.queue_delay_ns.summary(MS),
            },
            tokens_per_chunk: m.tokens_per_chunk_milli.summary(1e-3),
            output_tokens_per_request: m.output_tokens.summary(1.0),
            input_tokens_per_request: m.input_tokens.summary(1.0),
            input_length_check: (m.input_check.compared > 0).then(|| {
                let c = m.input_check;
                InputLengthCheck {
                    compared: c.compared,
                    exact: c.exact,
                    mean_diff: c.diff_sum as f64 / c.compared as f64,
                    min_diff: c.diff_min,
                    max_diff: c.diff_max,
                }
            }),
            batches,
        }
    }
}

/// The concurrency a class asked for, from its load.
fn requested(load: &LoadInfo) -> Option<u32> {
    load.concurrency
        .or(load.max_concurrency)
        .or(load.batch_size)
}

/// Warnings a careful reader of one class's results needs.
fn class_warnings(
    name: Option<&str>,
    load: &LoadInfo,
    r: &Results,
    m: &MetricSet,
    cpu: &str,
) -> Vec<String> {
    let p = name.map(|n| format!("class `{n}`: ")).unwrap_or_default();
    let mut w = Vec::new();
    let l = &r.latency;
    if load.schedule == "open" && load.max_concurrency.is_none() && l.queue_delay_ms.p99 > 5.0 {
        w.push(format!(
            "{p}requests left up to {:.1} ms after their intended time (p99 {:.1} ms): the client fell behind its schedule; latencies measured from the intended time would be higher",
            l.queue_delay_ms.max, l.queue_delay_ms.p99
        ));
    }
    if load.schedule == "closed" {
        if let Some(req) = load.concurrency {
            if m.successful > 0 && r.concurrency.achieved_mean < 0.9 * req as f64 {
                w.push(format!(
                    "{p}asked for {req} concurrent requests but {:.1} were in flight on average (peak {}): \
                     the rest of the time went between a response's arrival and the next send, in the client \
                     or on this machine ({cpu})",
                    r.concurrency.achieved_mean, r.concurrency.peak_in_flight
                ));
            }
        }
    }
    if r.requests.unsent > 0 {
        w.push(format!(
            "{p}{} requests were due but never sent: the concurrency cap ({}) held them back until the run ended (raise --max-concurrency, or read the queue delay)",
            r.requests.unsent,
            load.max_concurrency.map_or("none".into(), |c| c.to_string())
        ));
    }
    if r.requests.failed > 0 {
        w.push(format!(
            "{p}{} of {} measured requests failed",
            r.requests.failed, r.requests.measured
        ));
    }
    if m.output_token_sources.contains_key("chunks") {
        w.push(format!("{p}the server sent no usage for some requests: their output tokens were counted as content chunks"));
    }
    w
}

impl Report {
    /// Builds the report from per-class statistics and the run's facts, adding the warnings a
    /// careful reader needs (client-bound run, schedule lag, unsent requests, failures).
    pub fn build(sets: &ClassSets, inputs: ReportInputs) -> Report {
        let overall = sets.overall();
        let cpu_cores_used = if inputs.wall_seconds > 0.0 {
            inputs.cpu_seconds / inputs.wall_seconds
        } else {
            0.0
        };
        let cpu = format!(
            "strobe used {cpu_cores_used:.2} of {} cores",
            inputs.cpu_cores_available
        );
        let empty = MetricSet::default();
        let class_sets: Vec<&MetricSet> = inputs
            .classes
            .iter()
            .map(|c| sets.get(strobe_core::ClassId(c.id)).unwrap_or(&empty))
            .collect();
        let seconds = overall.window().duration_s();
        let shares = cost::attribute_seconds(&class_sets, seconds);
        let several = inputs.classes.len() > 1;

        let mut warnings = Vec::new();
        if cpu_cores_used > 0.9 * inputs.cpu_cores_available as f64 {
            warnings.push(format!(
                "the client used {cpu_cores_used:.2} of {} cores: it may be limiting the run{}",
                inputs.cpu_cores_available,
                if inputs.includes_built_in_target {
                    " (the built-in target shares this process)"
                } else {
                    ""
                }
            ));
        }
        if inputs.sockets_kernel_timestamps > 0 && inputs.sockets_user_timestamps > 0 {
            warnings.push(format!(
                "{} of {} sockets got no kernel receive timestamps: their reads are dated when strobe's task ran (a little later)",
                inputs.sockets_user_timestamps,
                inputs.sockets_kernel_timestamps + inputs.sockets_user_timestamps
            ));
        }
        if inputs.backpressure_waits > 0 {
            warnings.push(format!(
                "workers waited {} times ({:.3} s in all) for the records thread to catch up: those requests were sent late (see queue delay)",
                inputs.backpressure_waits, inputs.backpressure_s
            ));
        }
        let mut classes = Vec::with_capacity(inputs.classes.len());
        let mut unsent_total = 0;
        for ((c, m), share) in inputs.classes.into_iter().zip(&class_sets).zip(shares) {
            let results = Results::from_set(
                m,
                requested(&c.load),
                c.peak_in_flight,
                c.unsent,
                &inputs.error_examples,
            );
            unsent_total += c.unsent;
            warnings.extend(class_warnings(
                several.then_some(c.name.as_str()),
                &c.load,
                &results,
                m,
                &cpu,
            ));
            classes.push(ClassReport {
                slo: (!c.slo.is_empty()).then(|| SloReport::evaluate(&c.slo, m)),
                cost: inputs.price.map(|p| Cost::of(m, p, share)),
                name: c.name,
                id: c.id,
                request: c.request,
                workload: c.workload,
                load: c.load,
                stop_reason: c.stop_reason,
                results,
                state: (*m).clone(),
            });
        }
        let requested_total = classes
            .iter()
            .filter_map(|c| c.results.concurrency.requested)
            .reduce(|a, b| a.saturating_add(b));
        let results = Results::from_set(
            &overall,
            requested_total,
            inputs.peak_in_flight,
            unsent_total,
            &inputs.error_examples,
        );
        Report {
            schema: SCHEMA_ID.into(),
            tool: Tool {
                name: "strobe".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            run: RunInfo {
                started_at: inputs.started_at,
                experiment: inputs.experiment,
                label: inputs.label,
                target: inputs.target,
                stop_reason: inputs.stop_reason,
                interrupted: inputs.interrupted,
                aborted: inputs.aborted,
                saturation: None,
            },
            cost: inputs.price.map(|p| Cost::of(&overall, p, seconds)),
            client: ClientInfo {
                cpu_seconds: inputs.cpu_seconds,
                cpu_cores_used,
                cpu_cores_available: inputs.cpu_cores_available,
                cpu_us_per_output_token: (overall.output_tokens_total > 0)
                    .then(|| inputs.cpu_seconds * 1e6 / overall.output_tokens_total as f64),
                connections: inputs.connections,
                includes_built_in_target: inputs.includes_built_in_target,
                receive_timestamps: inputs.receive_timestamps,
                sockets_kernel_timestamps: inputs.sockets_kernel_timestamps,
                sockets_user_timestamps: inputs.sockets_user_timestamps,
                records_backpressure_waits: inputs.backpressure_waits,
                records_backpressure_s: inputs.backpressure_s,
                warnings,
            },
            results,
            classes,
            server_metrics: None,
            gpu: crate::Gpu {
                source: "none".into(),
                note: None,
                devices: vec![],
            },
            engine: None,
        }
    }

    /// The class called `name`.
    pub fn class(&self, name: &str) -> Option<&ClassReport> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// The per-class statistics (e.g. to combine the reports of several processes).
    pub fn class_sets(&self) -> ClassSets {
        ClassSets::from_sets(
            self.classes
                .iter()
                .map(|c| (strobe_core::ClassId(c.id), c.state.clone())),
        )
    }
}
