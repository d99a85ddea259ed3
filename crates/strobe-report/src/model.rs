//! The report's data model (schema `strobe.report.v1`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strobe_metrics::{MetricSet, MetricSetState, Summary};

/// Identifies this layout; bumped on any incompatible change.
pub const SCHEMA_ID: &str = "strobe.report.v1";

/// The result of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA_ID`].
    pub schema: String,
    pub tool: Tool,
    pub run: RunInfo,
    pub results: Results,
    pub client: ClientInfo,
    /// What the server's /metrics said (absent with --no-server-metrics).
    pub server_metrics: Option<crate::ServerMetrics>,
    pub gpu: crate::Gpu,
    /// The engine strobe launched, if it did.
    pub engine: Option<crate::Engine>,
    /// Lossless statistics, for exact merging and re-analysis.
    pub state: MetricSetState,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

/// What was run, as resolved from the settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Wall-clock start, RFC 3339 UTC.
    pub started_at: String,
    pub target: TargetInfo,
    pub workload: WorkloadInfo,
    pub load: LoadInfo,
    /// Why sending stopped.
    pub stop_reason: String,
    /// Stopped by the user (Ctrl-C): the report is partial.
    pub interrupted: bool,
    /// Stopped by the abort rule (all early requests failed).
    pub aborted: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub base_url: String,
    /// `completions` or `chat`.
    pub api: String,
    pub endpoint: String,
    pub model: String,
    pub streaming: bool,
    /// The built-in `strobe serve` target, started in-process.
    pub built_in: bool,
    /// Names of extra headers sent (values are not recorded: they may hold secrets).
    pub extra_header_names: Vec<String>,
    /// Extra JSON body fields sent with every request.
    pub extra_body: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadInfo {
    /// `concurrency` (closed loop) or `rate` (open loop).
    pub mode: String,
    pub concurrency: Option<u32>,
    pub rate_per_s: Option<f64>,
    /// `poisson`, `constant` or `gamma`.
    pub arrival: Option<String>,
    pub burstiness: Option<f64>,
    pub max_concurrency: Option<u32>,
    pub requests: Option<u64>,
    pub duration_s: Option<f64>,
    pub warmup_requests: u64,
    pub warmup_duration_s: f64,
    pub seed: u64,
    pub request_timeout_s: f64,
}

/// Measured results. Warm-up requests are excluded from everything but `requests.warmup`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
}

/// What loading the data set did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// Measured requests that ended (successful + failed + cancelled).
    pub measured: u64,
    pub successful: u64,
    pub failed: u64,
    /// Cancelled by strobe at shutdown (not server failures).
    pub cancelled: u64,
    pub warmup: u64,
    /// Failures by kind (`http_503`, `stream_cut`, `timeout`, ...).
    pub errors: Vec<ErrorCount>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorCount {
    pub kind: String,
    pub count: u64,
    /// The first message seen of this kind.
    pub example: String,
}

/// Token totals of successful measured requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenTotals {
    pub input: u64,
    pub output: u64,
    /// Successful requests by the source of their output count: `usage`, `tokenizer`, `chunks`.
    pub output_count_sources: BTreeMap<String, u64>,
    pub content_chunks: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub requests_per_s: f64,
    pub input_tokens_per_s: f64,
    pub output_tokens_per_s: f64,
    pub total_tokens_per_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Concurrency {
    /// What was asked for (`--concurrency`, or `--max-concurrency` in rate mode).
    pub requested: Option<u32>,
    /// Time-averaged requests in flight over the measured window.
    pub achieved_mean: f64,
    /// Most requests in flight at once (warm-up included).
    pub peak_in_flight: u64,
    /// Time-averaged requests waiting to be sent (intended but not sent yet).
    pub queued_mean: f64,
}

/// Latency distributions in milliseconds; definitions in docs/metrics.md.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub ttft_ms: Summary,
    pub tpot_ms: Summary,
    pub itl_ms: Summary,
    pub e2e_ms: Summary,
    pub queue_delay_ms: Summary,
}

/// What the client says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// How arrivals were dated: `kernel` (receive timestamps) or `user` (when the task read).
    pub receive_timestamps: String,
    pub warnings: Vec<String>,
}

/// Everything the report needs besides the statistics.
pub struct ReportInputs {
    pub started_at: String,
    pub target: TargetInfo,
    pub workload: WorkloadInfo,
    pub load: LoadInfo,
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
}

const MS: f64 = 1e-6;

impl Report {
    /// Builds the report from the statistics and the run's facts, adding the warnings a careful
    /// reader needs (client-bound run, schedule lag, failures).
    pub fn build(metrics: &MetricSet, inputs: ReportInputs) -> Report {
        let duration_s = metrics.window().duration_s();
        let errors = metrics
            .failed
            .iter()
            .map(|(kind, &count)| ErrorCount {
                kind: kind.clone(),
                count,
                example: inputs.error_examples.get(kind).cloned().unwrap_or_default(),
            })
            .collect();
        let tokens_total = metrics.input_tokens_total + metrics.output_tokens_total;
        let latency = Latency {
            ttft_ms: metrics.ttft_ns.summary(MS),
            tpot_ms: metrics.tpot_ns.summary(MS),
            itl_ms: metrics.itl_ns.summary(MS),
            e2e_ms: metrics.e2e_ns.summary(MS),
            queue_delay_ms: metrics.queue_delay_ns.summary(MS),
        };
        let requested = inputs.load.concurrency.or(inputs.load.max_concurrency);
        let achieved = metrics.achieved_concurrency();
        let cpu_cores_used = if inputs.wall_seconds > 0.0 {
            inputs.cpu_seconds / inputs.wall_seconds
        } else {
            0.0
        };

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
        let uncapped_rate = inputs.load.mode == "rate" && inputs.load.max_concurrency.is_none();
        if uncapped_rate && latency.queue_delay_ms.p99 > 5.0 {
            warnings.push(format!(
                "requests left up to {:.1} ms after their intended time (p99 {:.1} ms): the client fell behind its schedule; latencies measured from the intended time would be higher",
                latency.queue_delay_ms.max, latency.queue_delay_ms.p99
            ));
        }
        if inputs.load.mode == "concurrency" {
            if let Some(req) = requested {
                if metrics.successful > 0 && achieved < 0.9 * req as f64 {
                    warnings.push(format!(
                        "asked for {req} concurrent requests but {achieved:.1} were in flight on average (peak {}): \
                         the rest of the time went between a response's arrival and the next send, in the client \
                         or on this machine (strobe used {cpu_cores_used:.2} of {} cores)",
                        inputs.peak_in_flight, inputs.cpu_cores_available
                    ));
                }
            }
        }
        if metrics.failed_total() > 0 {
            warnings.push(format!(
                "{} of {} measured requests failed",
                metrics.failed_total(),
                metrics.measured()
            ));
        }
        if metrics.output_token_sources.contains_key("chunks") {
            warnings.push("the server sent no usage for some requests: their output tokens were counted as content chunks".into());
        }

        Report {
            schema: SCHEMA_ID.into(),
            tool: Tool {
                name: "strobe".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            run: RunInfo {
                started_at: inputs.started_at,
                target: inputs.target,
                workload: inputs.workload,
                load: inputs.load,
                stop_reason: inputs.stop_reason,
                interrupted: inputs.interrupted,
                aborted: inputs.aborted,
            },
            results: Results {
                duration_s,
                requests: RequestCounts {
                    measured: metrics.measured(),
                    successful: metrics.successful,
                    failed: metrics.failed_total(),
                    cancelled: metrics.cancelled,
                    warmup: metrics.warmup,
                    errors,
                },
                tokens: TokenTotals {
                    input: metrics.input_tokens_total,
                    output: metrics.output_tokens_total,
                    output_count_sources: metrics.output_token_sources.clone(),
                    content_chunks: metrics.content_chunks_total,
                },
                throughput: Throughput {
                    requests_per_s: metrics.per_second(metrics.successful),
                    input_tokens_per_s: metrics.per_second(metrics.input_tokens_total),
                    output_tokens_per_s: metrics.per_second(metrics.output_tokens_total),
                    total_tokens_per_s: metrics.per_second(tokens_total),
                },
                concurrency: Concurrency {
                    requested,
                    achieved_mean: achieved,
                    peak_in_flight: inputs.peak_in_flight,
                    queued_mean: metrics.average_queued(),
                },
                latency,
                tokens_per_chunk: metrics.tokens_per_chunk_milli.summary(1e-3),
                output_tokens_per_request: metrics.output_tokens.summary(1.0),
                input_tokens_per_request: metrics.input_tokens.summary(1.0),
                input_length_check: (metrics.input_check.compared > 0).then(|| {
                    let c = metrics.input_check;
                    InputLengthCheck {
                        compared: c.compared,
                        exact: c.exact,
                        mean_diff: c.diff_sum as f64 / c.compared as f64,
                        min_diff: c.diff_min,
                        max_diff: c.diff_max,
                    }
                }),
            },
            client: ClientInfo {
                cpu_seconds: inputs.cpu_seconds,
                cpu_cores_used,
                cpu_cores_available: inputs.cpu_cores_available,
                cpu_us_per_output_token: (metrics.output_tokens_total > 0)
                    .then(|| inputs.cpu_seconds * 1e6 / metrics.output_tokens_total as f64),
                connections: inputs.connections,
                includes_built_in_target: inputs.includes_built_in_target,
                receive_timestamps: inputs.receive_timestamps,
                warnings,
            },
            server_metrics: None,
            gpu: crate::Gpu {
                source: "none".into(),
                note: None,
                devices: vec![],
            },
            engine: None,
            state: metrics.state(),
        }
    }
}
