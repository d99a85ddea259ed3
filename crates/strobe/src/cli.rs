//! Command-line definitions (raw values). [`crate::settings`] turns them into typed settings.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use strobe_core::units::{parse_count, parse_count_u32, parse_duration};

/// Benchmark LLM inference servers (vLLM and any OpenAI-compatible server), precisely.
#[derive(Debug, Parser)]
#[command(name = "strobe", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark a server (the built-in target when no --url is given): one class of requests, or
    /// several at once from a scenario file.
    Run(Box<RunArgs>),
    /// Run a batch file (OpenAI batch format: custom_id, method, url, body per line) against the
    /// server and write each line's result once, in OpenAI's batch output format; re-running with
    /// the same --output resumes, sending only the lines without a result.
    Batch(Box<BatchArgs>),
    /// Seed 000's three conditions: a batch alone, interactive users alone, and the batch with the
    /// users beside it, every interactive figure set beside its isolated baseline.
    Interference(Box<InterferenceArgs>),
    /// One run per point of a grid over load and workload settings (`--sweep KEY=VALUES`), or a
    /// seed document's sweep (`--preset`; `--list` names them); with --launch and --engine-grid,
    /// once per engine-flag combination too.
    Sweep(Box<SweepArgs>),
    /// Capacity search: the highest request rate (or concurrency) whose runs meet the --slo
    /// targets, with few probes, a statistical check on each and early stops on over-saturation.
    /// Each probe sends for --duration (default 20s) after its --warmup.
    Search(Box<SearchArgs>),
    /// Serve the built-in OpenAI-compatible target with exact, configurable timing.
    Serve(Box<ServeArgs>),
    /// The batch service of seed 000: the OpenAI Batch API (/v1/files, /v1/batches) in front of
    /// one or more engines, interactive requests proxied straight through, batch concurrency
    /// adapted to keep interactive users fast; batches in a durable store.
    Gateway(Box<GatewayArgs>),
    /// Re-render saved results (reports or experiment summaries) in another format, or recompute
    /// a report from its per-request records (`--records`) with another warm-up cut, classes or SLOs.
    Report(ReportArgs),
    /// Charts of saved results as SVG or PNG files, for slides and papers.
    Plot(PlotArgs),
    /// Compare runs: per-metric changes of NEW against BASE with a significance test each; exits 1
    /// when a --fail-on metric regressed (for CI).
    Compare(CompareArgs),
    /// Inspect data sets: token length distributions and fitted length specs.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// List the built-in profiles, or show one (`strobe profiles show NAME`).
    Profiles(ProfilesArgs),
    /// The simulated engine without a server: capacity planning on its virtual clock.
    #[command(subcommand)]
    Sim(SimCommand),
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// For each model × GPU, the most users (a closed loop, one request each in flight) whose
    /// steady state meets --slo, on the simulated engine's virtual clock: a grid in seconds.
    Plan(Box<SimPlanArgs>),
    /// Fit the simulated engine's overheads and efficiencies to a real engine's saved strobe
    /// reports (closed loops, e.g. -c 1 and -c 2), print the residuals, and write a model file
    /// that --sim loads; --predict checks the fit on runs it did not see.
    Fit(SimFitArgs),
    /// Run a load on the simulated engine's virtual clock: the requests `strobe run` would send
    /// with the same flags (profile, data set, lengths, tokenizer, seed; closed loop, rate,
    /// offline or lockstep), in a fraction of a second, and what its users would see.
    Run(Box<SimRunArgs>),
}

#[derive(Debug, Args)]
pub struct SimRunArgs {
    #[command(flatten)]
    pub engine: SimArgs,
    /// Copies of the engine sharing the load (data parallelism): request i goes to copy
    /// i mod N, each with its share of the users or the rate.
    #[arg(long, default_value = "1", value_parser = parse_count_u32, help_heading = "Simulated engine")]
    pub replicas: u32,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Also write the result as JSON here (schema strobe.sim_run.v1).
    #[arg(short, long, value_name = "FILE.json", help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// Exit 1 when a --slo target (a statistic of the distribution) is missed.
    #[arg(long, requires = "slo", help_heading = "Output")]
    pub fail_on_slo: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanBy {
    Users,
    Rate,
}

#[derive(Debug, Args)]
pub struct SimFitArgs {
    /// Reports (or experiment summaries) of closed-loop runs against the real engine. Repeats of
    /// one load are pooled into their medians: on a noisy machine, run the loads in turn several
    /// times (1, 2, 4, 8, 1, 2, 4, 8, …) and pass them all.
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    /// The engine to start from: MODEL@GPU[xN] or a model file (.toml); use the `cpu` GPU preset
    /// for an engine on a CPU.
    #[arg(long, value_name = "MODEL@GPU|FILE.toml")]
    pub sim: String,
    /// Reports the fit does not see, to show how well it predicts them (repeats pooled too).
    #[arg(long, value_name = "REPORT", num_args = 1..)]
    pub predict: Vec<PathBuf>,
    /// Write the fitted engine here (TOML), for `--sim FILE.toml`.
    #[arg(short, long, value_name = "FILE.toml")]
    pub output: Option<PathBuf>,
    /// Exit 1 when a --predict run's TTFT, TPOT or throughput is off by more than this many
    /// percent (a check of the fit, for CI).
    #[arg(long, value_name = "PERCENT", requires = "predict")]
    pub fail_above: Option<f64>,
    /// Terms to keep at --sim's values instead of fitting, comma-separated: per_step, per_seq,
    /// per_request_api, flops_efficiency, bw_efficiency (e.g. efficiencies a microbenchmark
    /// measured, in a model file). Fewer terms from the same runs read less of their noise.
    #[arg(long, value_delimiter = ',', value_name = "TERM")]
    pub hold: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SimPlanArgs {
    /// Model presets, comma-separated (llama-3-8b, llama-3.1-70b, llama-2-70b, qwen2.5-7b,
    /// qwen2.5-0.5b, smollm2-135m, mixtral-8x7b).
    #[arg(long, value_delimiter = ',', required = true)]
    pub model: Vec<String>,
    /// GPU presets, comma-separated, each GPU or GPUxN for N GPUs in tensor parallel (t4, a10,
    /// l40s, a100-40gb, a100-80gb, h100, h200; e.g. h100,h100x2).
    #[arg(long, value_delimiter = ',', required = true)]
    pub gpu: Vec<String>,
    /// Objectives on the steady state's distributions, as `strobe run --slo` (ttft, tpot, e2e
    /// with a statistic), e.g. ttft_p99=200ms,tpot_p99=50ms.
    #[arg(long, required = true)]
    pub slo: String,
    /// The requests: `--input-len`/`--output-len` as `strobe run` takes them (a number or a
    /// distribution; 512 and 128 when no profile or data set gives them), a `--profile`, or a
    /// `--dataset` with its filters and `--tokenizer`.
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Requests drawn from the workload; every probe cycles through them in order.
    #[arg(long, default_value = "1000", value_parser = parse_count_u32, help_heading = "Workload")]
    pub samples: u32,
    /// Seed of the draw (length distributions, a data set's shuffle), as `strobe run --seed`.
    #[arg(long, default_value = "0", help_heading = "Workload")]
    pub seed: u64,
    /// What capacity is: `users` (a closed loop, each user sending its next request when the
    /// last ends, without think time) or `rate` (requests per second, Poisson arrivals).
    #[arg(long, value_enum, default_value = "users")]
    pub by: PlanBy,
    /// The most users searched (--by users).
    #[arg(long, default_value = "4096", value_parser = parse_count_u32)]
    pub max_users: u32,
    /// The highest rate searched, requests per second (--by rate).
    #[arg(long, default_value = "1000")]
    pub max_rate: f64,
    /// The engines' max_num_seqs (vLLM's default 256).
    #[arg(long, value_parser = parse_count_u32)]
    pub max_num_seqs: Option<u32>,
    /// The engines' max_num_batched_tokens (vLLM's default 8192).
    #[arg(long, value_parser = parse_count_u32)]
    pub max_num_batched_tokens: Option<u32>,
    /// The engines' overheads, by name: vllm (default), vllm-2024, none (see strobe serve
    /// --sim-overheads).
    #[arg(long, value_name = "PROFILE")]
    pub overheads: Option<String>,
    /// Schedule as vLLM's V0 engine without chunked prefill (see strobe serve
    /// --sim-no-chunked-prefill).
    #[arg(long)]
    pub no_chunked_prefill: bool,
    /// Also write the grid as JSON here.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Print the input/output token length distribution of a data set and fitted length specs.
    Stats(DatasetStatsArgs),
    /// Print the first N requests `strobe run --dataset FILE` would send, one JSON line each
    /// (index, input_tokens, max_tokens, prompt).
    Sample(DatasetSampleArgs),
}

/// The data set a `strobe dataset` command reads, and how (as `strobe run --dataset` would).
#[derive(Debug, Args)]
pub struct DatasetInput {
    /// The data set file (ShareGPT JSON, JSONL, OpenAI batch JSONL, or text lines).
    pub file: PathBuf,
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Tokenizer: a tokenizer.json or model folder (default: whitespace-separated words).
    #[arg(long, value_name = "PATH|words")]
    pub tokenizer: Option<String>,
    /// Seed, as `strobe run --seed` (ShareGPT's shuffle).
    #[arg(long, default_value = "0")]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct DatasetSampleArgs {
    #[command(flatten)]
    pub input: DatasetInput,
    /// How many requests.
    #[arg(short = 'n', long, default_value = "10", value_parser = parse_count)]
    pub requests: u64,
    /// Output length to ask for instead of the data set's own, as `strobe run --output-len`.
    #[arg(long, value_name = "SPEC")]
    pub output_len: Option<String>,
}

#[derive(Debug, Args)]
pub struct DatasetStatsArgs {
    #[command(flatten)]
    pub input: DatasetInput,
    /// Examine only the first N usable records (after shuffling).
    #[arg(long, value_parser = parse_count)]
    pub limit: Option<u64>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How a data set is read and filtered (shared by `run` and `dataset stats`).
#[derive(Debug, Args, Clone, Default)]
pub struct DatasetArgs {
    /// Data-set format (default: detected from the content).
    #[arg(long, value_enum, help_heading = "Data set")]
    pub dataset_format: Option<DatasetFormatArg>,
    /// Skip malformed records (counted and reported) and use a truncated JSON file's complete
    /// records, instead of failing.
    #[arg(long, help_heading = "Data set")]
    pub skip_invalid: bool,
    /// Drop records whose prompt has fewer tokens (ShareGPT default 4, as vLLM).
    #[arg(long, value_parser = parse_count_u32, help_heading = "Data set")]
    pub min_input_len: Option<u32>,
    /// Drop records whose prompt has more tokens (ShareGPT default 1024, as vLLM).
    #[arg(long, value_parser = parse_count_u32, help_heading = "Data set")]
    pub max_input_len: Option<u32>,
    /// Drop records whose output has fewer tokens (ShareGPT default 4, as vLLM).
    #[arg(long, value_parser = parse_count_u32, help_heading = "Data set")]
    pub min_output_len: Option<u32>,
    /// Drop records whose input + output exceed this (ShareGPT default 2048, as vLLM; else the
    /// server's context length when it reports one).
    #[arg(long, value_parser = parse_count_u32, help_heading = "Data set")]
    pub max_total_len: Option<u32>,
    /// Apply no length filters at all.
    #[arg(long, help_heading = "Data set")]
    pub no_filter: bool,
    /// Keep the file's order (default: ShareGPT is shuffled as vLLM does, others keep file order).
    #[arg(long, help_heading = "Data set")]
    pub no_shuffle: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatasetFormatArg {
    /// JSON array of {"conversations": [{"from", "value"}, ...]} (vLLM's ShareGPT).
    Sharegpt,
    /// One JSON object per line: prompt/text or messages, optional output_tokens or completion.
    Jsonl,
    /// OpenAI batch input lines: {"custom_id", "method", "url", "body"}.
    OpenaiBatch,
    /// One prompt per non-empty line.
    Text,
}

#[derive(Debug, Args)]
pub struct ProfilesArgs {
    /// `show NAME` prints one profile in full.
    #[arg(value_name = "show NAME", num_args = 0..=2)]
    pub show: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImageFormatArg {
    Png,
    Jpeg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ApiArg {
    /// POST /v1/completions
    Completions,
    /// POST /v1/chat/completions
    Chat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TimestampsArg {
    /// When the kernel received the bytes (Linux; falls back to user where unavailable).
    Kernel,
    /// When the reading task ran (includes the client's own scheduling delay).
    User,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ArrivalArg {
    /// Exponential gaps: independent users.
    Poisson,
    /// Equal gaps.
    Constant,
    /// Gamma gaps with shape --burstiness.
    Gamma,
}

/// The server, and how strobe talks to it and watches it.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8000 (a trailing /v1 is fine). Without it,
    /// strobe starts its built-in target in-process and benchmarks that.
    #[arg(
        long,
        env = "STROBE_URL",
        hide_env_values = true,
        help_heading = "Target"
    )]
    pub url: Option<String>,
    /// Model name to request (default: the first model the server lists at /v1/models).
    #[arg(long, help_heading = "Target")]
    pub model: Option<String>,
    /// Without --url: benchmark a simulated engine in-process instead of the built-in target's
    /// fixed timing (see `strobe serve --sim`).
    #[command(flatten)]
    pub sim: SimArgs,
    /// Environment variable holding the API key (sent as a Bearer token; never printed or saved).
    #[arg(
        long,
        default_value = "OPENAI_API_KEY",
        value_name = "NAME",
        help_heading = "Target"
    )]
    pub api_key_env: String,
    /// File holding the API key (takes precedence over --api-key-env).
    #[arg(long, value_name = "PATH", help_heading = "Target")]
    pub api_key_file: Option<PathBuf>,
    /// Extra HTTP header for every request, `Name: value` (repeatable).
    #[arg(
        short = 'H',
        long = "header",
        value_name = "NAME: VALUE",
        help_heading = "Target"
    )]
    pub headers: Vec<String>,
    /// Per-request timeout: no complete answer within it fails the request as `timeout`.
    #[arg(long, default_value = "10m", value_parser = parse_duration, help_heading = "Target")]
    pub timeout: Duration,
    /// No response head within this time of sending (connecting included) fails the request as
    /// `first_byte_timeout` (a server that accepts and stalls, or reads requests too slowly).
    /// Default: only --timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Target")]
    pub first_byte_timeout: Option<Duration>,
    /// Nothing received for this long in the middle of a response fails it as `idle_timeout`
    /// (a stream that stalls). `0` turns it off.
    #[arg(long, default_value = "2m", value_name = "DURATION", value_parser = parse_duration, help_heading = "Target")]
    pub idle_timeout: Duration,
    /// How response arrivals are dated: by the kernel's receive timestamp, or when strobe's task
    /// read them.
    #[arg(long, value_enum, default_value = "kernel", help_heading = "Target")]
    pub timestamps: TimestampsArg,
    /// For https:// URLs: trust only the CA certificates (PEM) in this file, instead of the
    /// platform's roots.
    #[arg(long, value_name = "FILE", help_heading = "Target")]
    pub ca_cert: Option<PathBuf>,
    /// For https:// URLs: accept any certificate (self-signed test servers); the report says so.
    #[arg(long, help_heading = "Target")]
    pub insecure: bool,

    /// Start the engine with this shell command before the runs (e.g. a `vllm serve ...` line),
    /// wait until it serves --url (default http://127.0.0.1:8000), and stop its whole process
    /// group at the end, on error and on Ctrl-C or SIGTERM.
    #[arg(long, value_name = "COMMAND", help_heading = "Engine and telemetry")]
    pub launch: Option<String>,
    /// How long a launched engine may take to serve.
    #[arg(long, default_value = "10m", value_parser = parse_duration, help_heading = "Engine and telemetry")]
    pub launch_timeout: Duration,
    /// Where the launched engine's output goes (default: next to --output, else the temp folder).
    #[arg(long, value_name = "PATH", help_heading = "Engine and telemetry")]
    pub launch_log: Option<PathBuf>,
    /// Prometheus endpoint to scrape during each run (default: the server's /metrics).
    #[arg(long, value_name = "URL", help_heading = "Engine and telemetry")]
    pub metrics_url: Option<String>,
    /// Do not scrape server metrics.
    #[arg(long, help_heading = "Engine and telemetry")]
    pub no_server_metrics: bool,
    /// Do not sample local GPUs through NVML.
    #[arg(long, help_heading = "Engine and telemetry")]
    pub no_gpu: bool,
    /// How often server metrics and GPUs are sampled.
    #[arg(long, default_value = "1s", value_parser = parse_duration, help_heading = "Engine and telemetry")]
    pub telemetry_interval: Duration,
}

/// When one class's requests are sent.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Closed loop: keep this many requests in flight (default 10 when no other schedule is
    /// given).
    #[arg(short = 'c', long, value_parser = parse_count_u32, help_heading = "Load")]
    pub concurrency: Option<u32>,
    /// Open loop: send this many requests per second, whatever the server does.
    #[arg(short = 'r', long, help_heading = "Load")]
    pub rate: Option<f64>,
    /// Arrival process for --rate.
    #[arg(long, value_enum, default_value = "poisson", help_heading = "Load")]
    pub arrival: ArrivalArg,
    /// Gamma shape for --arrival gamma (implies it): <1 burstier than Poisson, >1 more regular.
    #[arg(long, help_heading = "Load")]
    pub burstiness: Option<f64>,
    /// With --rate or --offline: at most this many requests in flight; the rest wait, and their
    /// wait is reported as queue delay.
    #[arg(long, value_parser = parse_count_u32, help_heading = "Load")]
    pub max_concurrency: Option<u32>,
    /// Offline throughput (seed 003): offer all -n requests at once (at most 1024 connections
    /// unless --max-concurrency says otherwise) and report total time, generations/s and tokens/s.
    #[arg(long, help_heading = "Load")]
    pub offline: bool,
    /// Lockstep batches (seed 001): send this many requests together, wait for all, repeat.
    #[arg(long, value_parser = parse_count_u32, help_heading = "Load")]
    pub batch_size: Option<u32>,
    /// Lockstep batches to send (default 20).
    #[arg(long, value_parser = parse_count, help_heading = "Load")]
    pub num_batches: Option<u64>,
    /// Stop after this many measured requests (default 100 when no --duration is given).
    #[arg(short = 'n', long, value_parser = parse_count, help_heading = "Load")]
    pub requests: Option<u64>,
    /// Stop sending this long after the first measured request, e.g. 30s, 5m.
    #[arg(short = 'd', long, value_parser = parse_duration, help_heading = "Load")]
    pub duration: Option<Duration>,
    /// Warm-up: the first N requests are sent but excluded from the statistics (lockstep: the
    /// batches they fill).
    #[arg(long, default_value = "0", value_parser = parse_count, help_heading = "Load")]
    pub warmup_requests: u64,
    /// Warm-up: requests intended within this time from the start are excluded.
    #[arg(long = "warmup", default_value = "0s", value_parser = parse_duration, help_heading = "Load")]
    pub warmup_duration: Duration,
    /// Seed for arrivals and prompts: the same seed gives the same request stream.
    #[arg(long, default_value = "0", help_heading = "Load")]
    pub seed: u64,
    /// Service-level objectives: METRIC_STAT=DURATION on a distribution (ttft_p99=500ms) or
    /// METRIC=DURATION per request (e2e=2s, counted as goodput); METRIC is ttft, tpot, itl, e2e
    /// or queue_delay, comma-separated.
    #[arg(long, value_name = "SPEC", help_heading = "Load")]
    pub slo: Option<String>,
}

/// What one class sends.
#[derive(Debug, Args)]
pub struct WorkloadArgs {
    /// Start from a named preset of workload and load (`strobe profiles` lists them); flags given
    /// here override its values.
    #[arg(long, value_name = "NAME", help_heading = "Workload")]
    pub profile: Option<String>,
    /// Which endpoint to benchmark [default: completions, or the profile's].
    #[arg(long, value_enum, help_heading = "Workload")]
    pub api: Option<ApiArg>,
    /// Ask for whole responses instead of streams (TTFT, TPOT and ITL are then unavailable).
    #[arg(long, help_heading = "Workload")]
    pub no_stream: bool,
    /// Extra JSON body fields for every request, as one JSON object, e.g.
    /// '{"temperature":0,"min_tokens":64}'. They override strobe's own fields of the same name.
    #[arg(long, value_name = "JSON", help_heading = "Workload")]
    pub body: Option<String>,
    /// Do not send `ignore_eos: true` (sent by default so that outputs have exactly --output-len
    /// tokens; some servers reject unknown fields).
    #[arg(long, help_heading = "Workload")]
    pub no_ignore_eos: bool,
    /// Input tokens per request: N, uniform:LO:HI, normal:MEAN:STD[:MIN:MAX],
    /// lognormal:MEAN:STD[:MIN:MAX], or empirical:FILE (a data set's own prompt lengths)
    /// [default: 128].
    #[arg(long, value_name = "SPEC", help_heading = "Workload")]
    pub input_len: Option<String>,
    /// Output tokens per request (`max_tokens`; exact with ignore_eos), same forms as
    /// --input-len [default: 128, or the data set's own lengths].
    #[arg(long, value_name = "SPEC", help_heading = "Workload")]
    pub output_len: Option<String>,
    /// How tokens are counted for exact lengths: a tokenizer.json or model folder, `server` (the
    /// server's /tokenize), or `words`. Default: `words` for the built-in target, else the
    /// server's /tokenize when it has one, else approximate lengths. With --sim, the simulated
    /// engine counts and caches prompts by the same tokenizer file.
    #[arg(long, value_name = "PATH|server|words", help_heading = "Workload")]
    pub tokenizer: Option<String>,
    /// Send prompts from this data set instead of synthetic ones.
    #[arg(long, value_name = "FILE", help_heading = "Workload")]
    pub dataset: Option<PathBuf>,
    /// The first N tokens of every prompt are shared (prefix-cache studies).
    #[arg(long, value_name = "N", default_value = "0", value_parser = parse_count_u32, help_heading = "Workload")]
    pub shared_prefix: u32,
    /// Number of distinct shared prefixes, used in turn.
    #[arg(long, value_name = "N", value_parser = parse_count_u32, help_heading = "Workload")]
    pub prefix_groups: Option<u32>,
    /// Turns per conversation (chat): each turn resends the previous turns and answers.
    #[arg(long, value_name = "N", value_parser = parse_count_u32, help_heading = "Workload")]
    pub turns: Option<u32>,
    /// Conversations interleaved in the request stream, so a follow-up turn is sent this many
    /// requests after the one before [default: the concurrency; with --rate, --max-concurrency
    /// or else 64].
    #[arg(long, value_name = "N", value_parser = parse_count_u32, help_heading = "Workload")]
    pub sessions: Option<u32>,
    /// Images per chat request (generated, unless --image is given).
    #[arg(long, value_name = "N", value_parser = parse_count_u32, help_heading = "Workload")]
    pub images: Option<u32>,
    /// Size of generated images, WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", help_heading = "Workload")]
    pub image_size: Option<String>,
    /// Format of generated images.
    #[arg(long, value_enum, help_heading = "Workload")]
    pub image_format: Option<ImageFormatArg>,
    /// Image file or folder of images to send instead of generated ones (repeatable).
    #[arg(long = "image", value_name = "PATH", help_heading = "Workload")]
    pub image_files: Vec<PathBuf>,
    #[command(flatten)]
    pub data: DatasetArgs,
}

/// Where results go, and what they cost.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write the JSON report here (schema strobe.report.v4). For several runs (profile levels,
    /// `strobe interference`, sweeps, searches) this is the experiment summary, and each run's report goes beside
    /// it as FILE.LABEL.json.
    #[arg(short = 'o', long, value_name = "FILE.json", help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// Also write the results as FORMAT (html, csv, md, vllm-json, json, text) to FILE, rewritten
    /// after every run (for several runs, the whole experiment). `FILE` alone takes the format
    /// from its extension (.html, .csv, .md); `FORMAT=-` writes to standard output at the end.
    /// Repeat for several formats.
    #[arg(long = "export", value_name = "FORMAT=FILE", value_parser = parse_export, help_heading = "Output")]
    pub exports: Vec<ExportArg>,
    /// Append one JSON line per request here, as requests finish (FILE.LABEL.jsonl per run for
    /// several runs).
    #[arg(long, value_name = "FILE.jsonl", help_heading = "Output")]
    pub records: Option<PathBuf>,
    /// No live progress and no summary on the terminal (errors still go to stderr).
    #[arg(short, long, help_heading = "Output")]
    pub quiet: bool,
    /// A full-screen live dashboard while each run goes (progress, live percentiles, throughput
    /// and in-flight over time per class, errors by kind); q or Ctrl-C stops the run cleanly.
    #[arg(long, help_heading = "Output", conflicts_with = "quiet")]
    pub tui: bool,
    /// GPU price in USD per GPU-hour: adds $ per million input and output tokens and per 1,000
    /// requests to every report.
    #[arg(long, value_name = "USD", help_heading = "Output")]
    pub gpu_price: Option<f64>,
    /// GPUs the server uses (with --gpu-price).
    #[arg(long, default_value = "1", value_parser = parse_count_u32, help_heading = "Output")]
    pub gpus: u32,
    /// On Ctrl-C or SIGTERM, how long in-flight requests may finish before they are cancelled.
    #[arg(long, default_value = "10s", value_parser = parse_duration, help_heading = "Output")]
    pub drain_timeout: Duration,
    /// Exit 1 when more than this fraction of a run's measured requests failed (a run that
    /// measured nothing exits 2).
    #[arg(
        long,
        default_value = "0.05",
        value_name = "FRACTION",
        help_heading = "Output"
    )]
    pub max_error_rate: f64,
    /// Exit 1 when a run misses one of its SLOs (the point estimate of any --slo target), for CI.
    #[arg(long, help_heading = "Output")]
    pub fail_on_slo: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Reports or experiment summaries strobe wrote with -o (several reports become one table).
    #[arg(value_name = "RESULT.json")]
    pub files: Vec<PathBuf>,
    /// Output format: html, md, csv, vllm-json, json or text.
    #[arg(long, short = 'f', default_value = "text")]
    pub format: String,
    /// Write here instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Recompute the report from these per-request records (the run's report, given as RESULT,
    /// supplies class names and settings).
    #[arg(long, value_name = "FILE.jsonl", help_heading = "Recompute")]
    pub records: Option<PathBuf>,
    /// With --records: count the first N requests of each class as warm-up.
    #[arg(long, value_parser = parse_count, help_heading = "Recompute")]
    pub warmup_requests: Option<u64>,
    /// With --records: count requests sent in the first DURATION as warm-up.
    #[arg(long, value_parser = parse_duration, help_heading = "Recompute")]
    pub warmup: Option<Duration>,
    /// With --records: keep only these classes (names from the report, or record class ids).
    #[arg(long = "class", value_name = "NAME", help_heading = "Recompute")]
    pub classes: Vec<String>,
    /// With --records: judge every class by these SLOs instead (same syntax as `run --slo`).
    #[arg(long, value_name = "SPEC", help_heading = "Recompute")]
    pub slo: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A report or experiment summary strobe wrote with -o.
    #[arg(value_name = "RESULT.json")]
    pub file: PathBuf,
    /// Charts to draw (default: all of them); --list names them.
    #[arg(long = "chart", value_name = "NAME")]
    pub charts: Vec<String>,
    /// svg or png.
    #[arg(long, short = 'f', default_value = "svg")]
    pub format: String,
    /// Folder for the files (NAME.svg or NAME.png); created when missing.
    #[arg(long, short = 'd', default_value = "plots", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// PNG pixels per SVG unit (2 suits slides and high-DPI screens).
    #[arg(long, default_value = "2")]
    pub scale: f32,
    /// Name the charts this file has, and draw nothing.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a report or experiment summary.
    #[arg(value_name = "BASE.json")]
    pub base: PathBuf,
    /// One or more results to compare with it (experiments: point by point, by label).
    #[arg(value_name = "NEW.json", required = true)]
    pub new: Vec<PathBuf>,
    /// A change counts beyond this relative size.
    #[arg(long, default_value = "5%", value_parser = parse_fraction)]
    pub threshold: f64,
    /// One-sided significance level of each metric's test.
    #[arg(long, default_value = "0.01")]
    pub alpha: f64,
    /// Exit 1 when one of these metrics regressed (beyond --threshold and significantly):
    /// ttft_p99,e2e_p50,output_tokens_per_s,... (`all`: any metric).
    #[arg(long, value_delimiter = ',', value_name = "METRICS")]
    pub fail_on: Vec<String>,
    /// Only these metrics (default: all).
    #[arg(long, value_delimiter = ',', value_name = "METRICS")]
    pub metrics: Vec<String>,
    /// text, md or json.
    #[arg(long, short = 'f', default_value = "text")]
    pub format: String,
}

/// `5%` or `0.05`.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => s.trim().parse::<f64>(),
    }
    .map_err(|_| format!("`{s}` is not a fraction (write 5% or 0.05)"))?;
    if !(0.0..10.0).contains(&v) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(v)
}

/// One `--export`: a format and where it goes (`None`: standard output).
#[derive(Clone, Debug, PartialEq)]
pub struct ExportArg {
    pub format: String,
    pub path: Option<PathBuf>,
}

/// `html=report.html`, `csv=-`, or `report.html` (the format from the extension).
pub fn parse_export(s: &str) -> Result<ExportArg, String> {
    use strobe_report::export::{format_of_path, FORMATS};
    let known = |f: &str| FORMATS.contains(&f) || f == "markdown";
    let (format, path) = match s.split_once('=') {
        Some((f, p)) if known(f) => (f.to_owned(), p),
        Some((f, _)) if !f.contains(['/', '.']) => {
            return Err(format!(
                "`{f}` is not a format strobe writes; use one of {}",
                FORMATS.join(", ")
            ))
        }
        _ => {
            let f = format_of_path(std::path::Path::new(s)).ok_or_else(|| {
                format!(
                    "cannot tell the format of `{s}` from its extension; write FORMAT=FILE with FORMAT one of {}",
                    FORMATS.join(", ")
                )
            })?;
            (f.to_owned(), s)
        }
    };
    let format = if format == "markdown" {
        "md".to_owned()
    } else {
        format
    };
    match path {
        "" => Err(format!(
            "--export {format}= needs a file name (or - for standard output)"
        )),
        "-" => Ok(ExportArg { format, path: None }),
        p => Ok(ExportArg {
            format,
            path: Some(PathBuf::from(p)),
        }),
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run the classes of this scenario file (TOML, docs/scenarios.md) at once, instead of the
    /// one class the load and workload flags describe.
    #[arg(long, value_name = "FILE.toml", help_heading = "Scenario")]
    pub scenario: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// An axis: KEY=VALUES, values as a list (1,2,4), a range (10..50:10) or a geometric range
    /// (1..32*2); KEY1,KEY2=VALUES moves keys together (input_len,output_len=32..512*2). Repeat
    /// to cross axes. With a scenario, name the class: interactive.concurrency=1,10. Keys:
    /// concurrency, rate, max_concurrency, batch_size, batches, requests, duration,
    /// warmup_requests, warmup, burstiness, input_len, output_len, shared_prefix, prefix_groups,
    /// turns, sessions, images.
    #[arg(long = "sweep", value_name = "KEY=VALUES", help_heading = "Sweep")]
    pub axes: Vec<String>,
    /// A seed document's sweep (flags given here override its settings; a --sweep on one of its
    /// keys replaces its axis).
    #[arg(long, value_name = "NAME", help_heading = "Sweep")]
    pub preset: Option<String>,
    /// List the presets and exit.
    #[arg(long, help_heading = "Sweep")]
    pub list: bool,
    /// Send the same prompt text at every point (default: fresh text of the same lengths per
    /// point; the same text measures the server's prefix cache).
    #[arg(long, help_heading = "Sweep")]
    pub same_prompts: bool,
    /// Ask the server to empty its prefix cache before every point (vLLM: needs
    /// VLLM_SERVER_DEV_MODE=1; SGLang: /flush_cache).
    #[arg(long, help_heading = "Sweep")]
    pub reset_prefix_cache: bool,
    /// Run every point again even when --output holds an interrupted attempt at this sweep (by
    /// default its finished points are kept and only the rest run).
    #[arg(long, help_heading = "Sweep")]
    pub restart: bool,
    /// With --launch: restart the engine for each combination of these engine flags, FLAG=V1,V2
    /// (repeat to cross), e.g. --engine-grid max-num-seqs=8,16.
    #[arg(
        long = "engine-grid",
        value_name = "FLAG=VALUES",
        help_heading = "Sweep"
    )]
    pub engine_grid: Vec<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SearchVariableArg {
    /// Open-loop request rate, requests/s.
    Rate,
    /// Closed-loop concurrency.
    Concurrency,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to search for.
    #[arg(long, value_enum, default_value = "rate", help_heading = "Search")]
    pub search: SearchVariableArg,
    /// The first probe's value [default: 1].
    #[arg(long, help_heading = "Search")]
    pub search_start: Option<f64>,
    /// The lowest value probed [default: 0.1 req/s, or concurrency 1].
    #[arg(long, help_heading = "Search")]
    pub search_min: Option<f64>,
    /// The highest value probed [default: 10000].
    #[arg(long, help_heading = "Search")]
    pub search_max: Option<f64>,
    /// How narrow the answer's bracket must get: a percentage of the value (5%) or an absolute
    /// width (1) [default: 5% for rates, 1 for concurrency].
    #[arg(long, value_name = "P% | N", help_heading = "Search")]
    pub precision: Option<String>,
    /// Probes at most, re-probes included.
    #[arg(long, default_value = "15", help_heading = "Search")]
    pub max_probes: usize,
    /// Times an inconclusive value is probed again (each time twice as long).
    #[arg(long, default_value = "2", help_heading = "Search")]
    pub reprobes: u32,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConditionArg {
    /// Condition 1: the batch alone.
    Batch,
    /// Condition 2: the interactive users alone, for --user-duration each.
    Isolated,
    /// Condition 3: the batch with the users beside it, for as long as the batch runs.
    Mixed,
}

#[derive(Debug, Args)]
pub struct InterferenceArgs {
    /// Take the `batch` and `interactive` classes from this scenario file (TOML) instead of the
    /// flags below.
    #[arg(long, value_name = "FILE.toml", help_heading = "Scenario")]
    pub scenario: Option<PathBuf>,
    /// Concurrent interactive users, one isolated and one mixed run each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,10",
        help_heading = "Conditions"
    )]
    pub users: Vec<u32>,
    /// How long each isolated interactive run lasts.
    #[arg(long, default_value = "30s", value_parser = parse_duration, help_heading = "Conditions")]
    pub user_duration: Duration,
    /// Which conditions to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "batch,isolated,mixed",
        help_heading = "Conditions"
    )]
    pub conditions: Vec<ConditionArg>,
    /// Requests in the batch.
    #[arg(long, default_value = "1000", value_parser = parse_count, help_heading = "Batch")]
    pub batch_requests: u64,
    /// The batch's prompts from this data set (any --dataset format, e.g. an OpenAI batch file)
    /// instead of synthetic ones.
    #[arg(long, value_name = "FILE", help_heading = "Batch")]
    pub batch_dataset: Option<PathBuf>,
    /// The batch's input tokens per request (same forms as --input-len).
    #[arg(
        long,
        value_name = "SPEC",
        default_value = "1024",
        help_heading = "Batch"
    )]
    pub batch_input_len: String,
    /// The batch's output tokens per request [default: 128, or the data set's own].
    #[arg(long, value_name = "SPEC", help_heading = "Batch")]
    pub batch_output_len: Option<String>,
    /// Send the batch as a closed loop of this many requests instead of all at once.
    #[arg(long, value_parser = parse_count_u32, help_heading = "Batch")]
    pub batch_concurrency: Option<u32>,
    /// With the batch sent all at once: at most this many in flight.
    #[arg(long, value_parser = parse_count_u32, help_heading = "Batch")]
    pub batch_max_concurrency: Option<u32>,
    /// The interactive users' input tokens per request.
    #[arg(
        long,
        value_name = "SPEC",
        default_value = "128",
        help_heading = "Interactive users"
    )]
    pub input_len: String,
    /// The interactive users' output tokens per request.
    #[arg(
        long,
        value_name = "SPEC",
        default_value = "64",
        help_heading = "Interactive users"
    )]
    pub output_len: String,
    /// The interactive users' SLOs (as `strobe run --slo`).
    #[arg(long, value_name = "SPEC", help_heading = "Interactive users")]
    pub slo: Option<String>,
    /// Which endpoint both classes use.
    #[arg(long, value_enum, default_value = "chat", help_heading = "Requests")]
    pub api: ApiArg,
    /// Token counting, as `strobe run --tokenizer`.
    #[arg(long, value_name = "PATH|server|words", help_heading = "Requests")]
    pub tokenizer: Option<String>,
    /// Extra JSON body fields for every request.
    #[arg(long, value_name = "JSON", help_heading = "Requests")]
    pub body: Option<String>,
    /// Do not send `ignore_eos: true`.
    #[arg(long, help_heading = "Requests")]
    pub no_ignore_eos: bool,
    /// Seed for prompts (each run adds its index, for fresh text of the same lengths).
    #[arg(long, default_value = "0", help_heading = "Requests")]
    pub seed: u64,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// The batch file: one JSON request per line (`custom_id`, `method`, `url`, `body`).
    #[arg(value_name = "INPUT.jsonl")]
    pub input: PathBuf,
    /// Results (successful lines) go here, appended; an existing file is resumed.
    #[arg(short = 'o', long, value_name = "OUT.jsonl", help_heading = "Batch")]
    pub output: PathBuf,
    /// Failed lines go here [default: OUT.errors.jsonl].
    #[arg(long, value_name = "FILE.jsonl", help_heading = "Batch")]
    pub errors: Option<PathBuf>,
    /// Requests in flight at most [default: every line at once, as fast as the server allows].
    #[arg(short = 'c', long, value_parser = parse_count_u32, help_heading = "Batch")]
    pub concurrency: Option<u32>,
    /// Attempts per line, the first included; retried are connection failures, timeouts, cut
    /// answers, HTTP 408, 409, 429 and 5xx (never other 4xx).
    #[arg(long, default_value = "5", value_parser = parse_count_u32, help_heading = "Batch")]
    pub max_attempts: u32,
    /// The first retry's backoff, doubled for each further one (with jitter), up to
    /// --max-backoff; a server's Retry-After wins.
    #[arg(long, default_value = "1s", value_parser = parse_duration, help_heading = "Batch")]
    pub retry_backoff: Duration,
    #[arg(long, default_value = "60s", value_parser = parse_duration, help_heading = "Batch")]
    pub max_backoff: Duration,
    /// Abort (leaving unsent lines pending) when no response at all has come for this long,
    /// over 10 attempts in a row. `0` turns the rule off.
    #[arg(long, default_value = "60s", value_parser = parse_duration, help_heading = "Batch")]
    pub abort_unreachable: Duration,
    /// Abort once more than this many lines have failed for good.
    #[arg(long, value_parser = parse_count, help_heading = "Batch")]
    pub max_failures: Option<u64>,
    /// Most lines an input may hold (OpenAI's limit by default).
    #[arg(long, default_value = "50000", value_parser = parse_count, help_heading = "Batch")]
    pub max_input_lines: u64,
    /// Write the JSON report (schema strobe.report.v4) of this run here.
    #[arg(long, value_name = "FILE.json", help_heading = "Output")]
    pub report: Option<PathBuf>,
    /// As `strobe run --export`.
    #[arg(long = "export", value_name = "FORMAT=FILE", value_parser = parse_export, help_heading = "Output")]
    pub exports: Vec<ExportArg>,
    /// Append one JSON line per request here.
    #[arg(long, value_name = "FILE.jsonl", help_heading = "Output")]
    pub records: Option<PathBuf>,
    /// No live progress and no summary on the terminal.
    #[arg(short, long, help_heading = "Output")]
    pub quiet: bool,
    /// On Ctrl-C or SIGTERM, how long in-flight requests may finish before they are cancelled
    /// (they stay pending).
    #[arg(long, default_value = "30s", value_parser = parse_duration, help_heading = "Output")]
    pub drain_timeout: Duration,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// A simulated continuous-batching engine (crate strobe-sim).
#[derive(Debug, Args, Clone)]
pub struct SimArgs {
    /// Simulate MODEL@GPU, or MODEL@GPUxN on N GPUs (tensor parallel), from the presets, e.g.
    /// llama-3-8b@h100 or llama-2-70b@h200x8: a vLLM-like engine (chunked prefill, paged KV cache,
    /// preemption) stepped in real time, one step clock for all streams. Presets: models
    /// llama-3-8b, llama-3.1-70b, llama-2-70b, qwen2.5-7b, qwen2.5-0.5b, smollm2-135m, mixtral-8x7b; GPUs t4,
    /// a10, l40s, a100-40gb, a100-80gb, h100, h200 (and cpu, nominal, for fitting to an engine on a CPU).
    /// Or a model file (.toml, docs/sim.md), e.g. one `strobe sim fit` wrote.
    #[arg(long, value_name = "MODEL@GPU", help_heading = "Simulated engine")]
    pub sim: Option<String>,
    /// The simulated engine's max_num_seqs (vLLM's default 256).
    #[arg(long, requires = "sim", help_heading = "Simulated engine", value_parser = parse_count_u32)]
    pub sim_max_num_seqs: Option<u32>,
    /// The simulated engine's max_num_batched_tokens (vLLM's default 8192).
    #[arg(long, requires = "sim", help_heading = "Simulated engine", value_parser = parse_count_u32)]
    pub sim_max_num_batched_tokens: Option<u32>,
    /// The simulated engine's gpu_memory_utilization (vLLM's default 0.9).
    #[arg(long, requires = "sim", help_heading = "Simulated engine")]
    pub sim_gpu_memory_utilization: Option<f64>,
    /// Schedule as vLLM's V0 engine without chunked prefill (its default for models of up to
    /// 32K context before V1): waiting prompts go first, each whole, in steps without decodes.
    #[arg(long, requires = "sim", help_heading = "Simulated engine")]
    pub sim_no_chunked_prefill: bool,
    /// The simulated engine's overheads, by name: vllm (default: a published fit of vLLM on
    /// H100s), vllm-2024 (plus vLLM 0.4–0.5's 4 ms CPU gap per step), none (the roofline
    /// alone). Replaces a model file's.
    #[arg(
        long,
        requires = "sim",
        value_name = "PROFILE",
        help_heading = "Simulated engine"
    )]
    pub sim_overheads: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub sim: SimArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value = "8000")]
    pub port: u16,
    /// Model name to serve.
    #[arg(long, default_value = "strobe-sim")]
    pub model: String,
    /// Time to first token.
    #[arg(long, default_value = "50ms", value_parser = parse_duration, conflicts_with = "sim")]
    pub ttft: Duration,
    /// Time between tokens.
    #[arg(long, default_value = "10ms", value_parser = parse_duration, conflicts_with = "sim")]
    pub itl: Duration,
    /// Uniform jitter added to each delay, ±this.
    #[arg(long, default_value = "0ms", value_parser = parse_duration, conflicts_with = "sim")]
    pub jitter: Duration,
    /// Load-dependent timing: at most this many requests are served at once; the rest wait in a
    /// first-come queue (their wait is part of their TTFT), as an engine's max_num_seqs.
    #[arg(long, value_parser = parse_count_u32, conflicts_with = "sim")]
    pub max_running: Option<u32>,
    /// Load-dependent timing: each token gap grows by this much per other stream being served
    /// (ITL = --itl + this × (running − 1)), as decode steps do with batch size.
    #[arg(long, default_value = "0ms", value_parser = parse_duration, conflicts_with = "sim")]
    pub itl_per_stream: Duration,
    /// Load-dependent timing: time to first token grows by this much per prompt token (prefill).
    #[arg(long, default_value = "0ms", value_parser = parse_duration, conflicts_with = "sim")]
    pub prefill_per_token: Duration,
    /// Output tokens of every response (default: the request's max_tokens).
    #[arg(long, value_parser = parse_count_u32)]
    pub output_len: Option<u32>,
    /// Inject a fault at random: KIND:PROBABILITY, KIND one of http-CODE (an error body),
    /// http-CODE-empty (no body), reset (close unanswered), stall-head (never answer), cut,
    /// truncate, malformed, oversized (a 5 MiB line), error-event, stall (half-way through)
    /// (repeatable). A request header `x-strobe-fault: KIND` forces one. /strobe/truth counts them.
    #[arg(long = "fault", value_name = "KIND:P")]
    pub faults: Vec<String>,
    /// Seed for jitter and fault draws.
    #[arg(long, default_value = "0")]
    pub seed: u64,
    /// End streams without `data: [DONE]`, as some servers do.
    #[arg(long)]
    pub no_done: bool,
    /// Context length, listed at /v1/models and enforced: prompt + max_tokens beyond it is refused
    /// with HTTP 400, as vLLM does.
    #[arg(long, default_value = "8192", value_parser = parse_count_u32)]
    pub max_model_len: u32,
    /// Prompt tokens each image adds to usage.prompt_tokens.
    #[arg(long, default_value = "0")]
    pub image_tokens: u32,
    /// Count prompts with this tokenizer (a tokenizer.json or model folder, with its chat
    /// template) instead of by words: usage.prompt_tokens, /tokenize, the context-length check
    /// and, with --sim, the simulated engine's prompt lengths and prefix-cache blocks.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<String>,
    /// Require this API key (read from the named environment variable) as a Bearer token.
    #[arg(long, value_name = "NAME")]
    pub api_key_env: Option<String>,
    /// Require this API key as a Bearer token (as vLLM's --api-key).
    #[arg(long, value_name = "KEY", conflicts_with = "api_key_env")]
    pub api_key: Option<String>,
    /// Refuse body fields beyond the OpenAI API's with HTTP 422, as strict servers do (e.g.
    /// vLLM's `ignore_eos`).
    #[arg(long)]
    pub strict: bool,
    /// Read requests at most this many bytes per second (a slow reader, for back-pressure tests).
    #[arg(long, value_name = "BYTES")]
    pub read_rate: Option<u64>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// The engine (OpenAI-compatible), e.g. http://127.0.0.1:8000 or https://engine:443; repeat
    /// for several (interactive requests go round-robin; each has its own batch worker and
    /// policy, and one with no batch of its own helps send another's lines).
    #[arg(long = "upstream", required = true, value_name = "URL")]
    pub upstreams: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Where batches live: a SQLite file (created if missing), or a PostgreSQL database
    /// (`postgres://user:password@host:port/db`) that several gateways share.
    #[arg(long, default_value = "strobe-gateway.db", value_name = "PATH|URL")]
    pub store: String,
    /// Name environment variables holding the keys clients must send (`Authorization: Bearer`);
    /// repeatable. Each key sees only its own files and batches. Without one, anyone may use the
    /// gateway.
    #[arg(long = "api-key-env", value_name = "VAR")]
    pub api_key_envs: Vec<String>,
    /// Environment variable holding the engine's own API key, sent upstream instead of the client's.
    #[arg(long, value_name = "VAR")]
    pub upstream_api_key_env: Option<String>,
    /// Trust only the CA certificates (PEM) in this file for `https://` upstreams (the platform's
    /// and Mozilla's roots otherwise).
    #[arg(long, value_name = "FILE")]
    pub upstream_ca_cert: Option<PathBuf>,
    /// Accept any certificate from `https://` upstreams (self-signed test engines only).
    #[arg(long, conflicts_with = "upstream_ca_cert")]
    pub upstream_insecure: bool,
    /// Most requests in one input file (OpenAI's limit by default).
    #[arg(long, default_value = "50000")]
    pub max_input_lines: usize,
    /// Largest input file, in bytes (OpenAI's 200 MB by default).
    #[arg(long, default_value = "209715200")]
    pub max_input_bytes: u64,
    /// Most batch requests in flight per upstream.
    #[arg(long, default_value = "64")]
    pub batch_max_concurrency: u32,
    /// Fewest batch requests in flight per upstream while a batch runs (0 lets the policy pause it).
    #[arg(long, default_value = "1")]
    pub batch_min_concurrency: u32,
    /// Run batches at --batch-max-concurrency always (no adaptation: seed 000's naive batch).
    #[arg(long)]
    pub no_adaptive: bool,
    /// Interactive TTFT p95 the policy protects (0 turns the signal off).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub interactive_ttft_p95: Duration,
    /// Interactive time per output chunk p95 the policy protects (off by default).
    #[arg(long, value_parser = parse_duration)]
    pub interactive_tpot_p95: Option<Duration>,
    /// The engine's waiting requests above this shrink the batch.
    #[arg(long, default_value = "0")]
    pub max_engine_waiting: f64,
    /// The engine's KV-cache use (0-1) above this shrinks the batch.
    #[arg(long, default_value = "0.9")]
    pub max_kv_cache: f64,
    /// How often the batch concurrency moves.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub policy_interval: Duration,
    /// Interactive requests within this window count towards the policy's p95s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub policy_window: Duration,
    /// Add `"priority": N` to every batch request (vLLM started with --scheduling-policy
    /// priority; larger runs later).
    #[arg(long, value_name = "N")]
    pub batch_priority: Option<i64>,
    /// Attempts per batch line for retryable failures (429, 5xx, connection errors).
    #[arg(long, default_value = "5")]
    pub max_attempts: u32,
    /// Names this gateway's leases on batches (default: host name and port). Keep it across
    /// restarts so a restarted gateway resumes its batches at once.
    #[arg(long)]
    pub worker_id: Option<String>,
    /// No log lines.
    #[arg(short, long)]
    pub quiet: bool,
}
