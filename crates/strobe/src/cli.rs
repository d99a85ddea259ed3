//! Command-line definitions (raw values). Validation and defaults that depend on several flags
//! happen in [`crate::settings`].

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

use crate::units::{parse_count, parse_count_u32, parse_duration};

/// Benchmark LLM inference servers (vLLM and any OpenAI-compatible server), precisely.
#[derive(Debug, Parser)]
#[command(name = "strobe", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark a server (the built-in target when no --url is given).
    Run(Box<RunArgs>),
    /// Serve the built-in OpenAI-compatible target with exact, configurable timing.
    Serve(ServeArgs),
    /// Inspect data sets: token length distributions and fitted length specs.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// List the built-in profiles, or show one (`strobe profiles show NAME`).
    Profiles(ProfilesArgs),
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

#[derive(Debug, Args)]
pub struct RunArgs {
    // --- target ---
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
    /// Which endpoint to benchmark [default: completions, or the profile's].
    #[arg(long, value_enum, help_heading = "Target")]
    pub api: Option<ApiArg>,
    /// Ask for whole responses instead of streams (TTFT, TPOT and ITL are then unavailable).
    #[arg(long, help_heading = "Target")]
    pub no_stream: bool,
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
    /// Extra JSON body fields for every request, as one JSON object, e.g.
    /// '{"temperature":0,"min_tokens":64}'. They override strobe's own fields of the same name.
    #[arg(long, value_name = "JSON", help_heading = "Target")]
    pub body: Option<String>,
    /// Do not send `ignore_eos: true` (sent by default so that outputs have exactly --output-len
    /// tokens; some servers reject unknown fields).
    #[arg(long, help_heading = "Target")]
    pub no_ignore_eos: bool,
    /// Per-request timeout (a stalled stream fails as `timeout` after it).
    #[arg(long, default_value = "10m", value_parser = parse_duration, help_heading = "Target")]
    pub timeout: Duration,
    /// How response arrivals are dated: by the kernel's receive timestamp, or when strobe's task
    /// read them.
    #[arg(long, value_enum, default_value = "kernel", help_heading = "Target")]
    pub timestamps: TimestampsArg,

    // --- engine and telemetry ---
    /// Start the engine with this shell command before the run (e.g. a `vllm serve ...` line), wait
    /// until it serves --url (default http://127.0.0.1:8000), and stop its whole process group at
    /// the end, on error and on Ctrl-C.
    #[arg(long, value_name = "COMMAND", help_heading = "Engine and telemetry")]
    pub launch: Option<String>,
    /// How long a launched engine may take to serve.
    #[arg(long, default_value = "10m", value_parser = parse_duration, help_heading = "Engine and telemetry")]
    pub launch_timeout: Duration,
    /// Where the launched engine's output goes (default: next to --output, else the temp folder).
    #[arg(long, value_name = "PATH", help_heading = "Engine and telemetry")]
    pub launch_log: Option<PathBuf>,
    /// Prometheus endpoint to scrape during the run (default: the server's /metrics).
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

    // --- load ---
    /// Closed loop: keep this many requests in flight (default 10 when no --rate is given).
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
    /// With --rate: at most this many requests in flight; the rest wait, and their wait is reported
    /// as queue delay.
    #[arg(long, value_parser = parse_count_u32, help_heading = "Load")]
    pub max_concurrency: Option<u32>,
    /// Stop after this many measured requests (default 100 when no --duration is given).
    #[arg(short = 'n', long, value_parser = parse_count, help_heading = "Load")]
    pub requests: Option<u64>,
    /// Stop sending this long after the first measured request, e.g. 30s, 5m.
    #[arg(short = 'd', long, value_parser = parse_duration, help_heading = "Load")]
    pub duration: Option<Duration>,
    /// Warm-up: the first N requests are sent but excluded from the statistics.
    #[arg(long, default_value = "0", value_parser = parse_count, help_heading = "Load")]
    pub warmup_requests: u64,
    /// Warm-up: requests intended within this time from the start are excluded.
    #[arg(long = "warmup", default_value = "0s", value_parser = parse_duration, help_heading = "Load")]
    pub warmup_duration: Duration,
    /// Seed for arrivals and prompts: the same seed gives the same request stream.
    #[arg(long, default_value = "0", help_heading = "Load")]
    pub seed: u64,
    /// On Ctrl-C, how long in-flight requests may finish before they are cancelled.
    #[arg(long, default_value = "10s", value_parser = parse_duration, help_heading = "Load")]
    pub drain_timeout: Duration,

    // --- workload ---
    /// Start from a named preset of workload and load (`strobe profiles` lists them); flags given
    /// here override its values.
    #[arg(long, value_name = "NAME", help_heading = "Workload")]
    pub profile: Option<String>,
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
    /// server's /tokenize when it has one, else approximate lengths.
    #[arg(long, value_name = "PATH|server|words", help_heading = "Workload")]
    pub tokenizer: Option<String>,
    /// Send prompts from this data set instead of synthetic ones.
    #[arg(long, value_name = "FILE", help_heading = "Workload")]
    pub dataset: Option<PathBuf>,
    /// The first N tokens of every prompt are shared (prefix-cache studies).
    #[arg(long, value_name = "N", default_value = "0", value_parser = parse_count_u32, help_heading = "Workload")]
    pub shared_prefix: u32,
    /// Number of distinct shared prefixes, used in turn.
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_count_u32, help_heading = "Workload")]
    pub prefix_groups: u32,
    /// Turns per conversation (chat): each turn resends the previous turns and answers.
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_count_u32, help_heading = "Workload")]
    pub turns: u32,
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

    // --- output ---
    /// Write the JSON report here (schema: strobe.report.v1).
    #[arg(short = 'o', long, value_name = "FILE.json", help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// Append one JSON line per request here, as requests finish.
    #[arg(long, value_name = "FILE.jsonl", help_heading = "Output")]
    pub records: Option<PathBuf>,
    /// No live progress and no summary on the terminal (errors still go to stderr).
    #[arg(short, long, help_heading = "Output")]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
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
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub ttft: Duration,
    /// Time between tokens.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    pub itl: Duration,
    /// Uniform jitter added to each delay, ±this.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub jitter: Duration,
    /// Output tokens of every response (default: the request's max_tokens).
    #[arg(long, value_parser = parse_count_u32)]
    pub output_len: Option<u32>,
    /// Inject a fault at random: KIND:PROBABILITY, KIND one of http-CODE, cut, truncate, malformed,
    /// error-event, stall (repeatable). A request header `x-strobe-fault: KIND` forces one.
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
    /// Require this API key (read from the named environment variable) as a Bearer token.
    #[arg(long, value_name = "NAME")]
    pub api_key_env: Option<String>,
}
