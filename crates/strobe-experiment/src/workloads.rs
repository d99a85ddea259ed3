//! Turns a workload spec into a workload, once the server is known (its tokenizer, its context
//! length). Runs on a blocking thread: counting may call the server's /tokenize. Built once per
//! experiment; each run then varies it (fresh text, same lengths).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use strobe_core::Api;
use strobe_report::{DatasetInfo, WorkloadInfo};
use strobe_workload::dataset::{self, LoadSummary};
use strobe_workload::images::ImageSource;
use strobe_workload::picture::ImageFormat;
use strobe_workload::{
    ChatShape, DatasetError, DatasetSpec, DatasetWorkload, FilterRules, HfTokenizer, ImageSettings,
    LengthDist, LengthSpec, SyntheticWorkload, TokenCounter, TokenizerError, WordCounter, WordPool,
    Workload, DEFAULT_LEN,
};

use crate::server_tokenizer::ServerTokenizer;

/// How tokens are counted for exact lengths.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum TokenizerChoice {
    /// The built-in target's word rule for the built-in target, else the server's /tokenize when
    /// it answers, else approximate lengths (warned about).
    #[default]
    Auto,
    Words,
    Server,
    /// A tokenizer.json or a model folder.
    File(PathBuf),
}

/// How long prompts are.
#[derive(Clone, Debug, PartialEq)]
pub enum InputLength {
    Spec(LengthSpec),
    /// The server's context length minus this many tokens (seed 002's "high" profile).
    ContextMinus(u32),
}

/// Where a vision workload's images come from.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageSpec {
    Generated {
        width: u32,
        height: u32,
        format: ImageFormat,
    },
    Files(Vec<PathBuf>),
}

/// What to send, as the user asked for it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSpec {
    pub input: InputLength,
    /// `None`: a data set's own lengths, else the default.
    pub output: Option<LengthSpec>,
    pub tokenizer: TokenizerChoice,
    pub dataset: Option<DatasetSpec>,
    pub shared_prefix: u32,
    pub prefix_groups: u32,
    pub turns: u32,
    /// Conversations interleaved; `None`: the run's concurrency.
    pub sessions: Option<u32>,
    pub images_per_request: u32,
    pub images: Option<ImageSpec>,
    /// The profile the defaults came from, for the report.
    pub profile: Option<String>,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            input: InputLength::Spec(LengthSpec::Dist(LengthDist::Fixed(DEFAULT_LEN))),
            output: None,
            tokenizer: TokenizerChoice::Auto,
            dataset: None,
            shared_prefix: 0,
            prefix_groups: 1,
            turns: 1,
            sessions: None,
            images_per_request: 0,
            images: None,
            profile: None,
        }
    }
}

/// Why a workload could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("--tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    #[error("{0}")]
    Invalid(String),
}

/// What the builder knows about the run and the server.
pub struct BuildContext {
    pub api: Api,
    pub seed: u64,
    pub built_in: bool,
    /// The server's /tokenize, when it was probed.
    pub server_tokenizer: Option<Result<ServerTokenizer, String>>,
    pub max_model_len: Option<u32>,
    /// Requests the experiment will send with this workload, when known in advance.
    pub needed: Option<u64>,
    pub concurrency: u32,
}

/// A workload ready to run, with its report section.
pub struct Built {
    pub workload: Arc<dyn Workload>,
    pub info: WorkloadInfo,
    pub warnings: Vec<String>,
    /// What counted the prompts' tokens.
    pub counter: Arc<dyn TokenCounter>,
}

/// Picks the token counter: an explicit choice, else the built-in target's word rule, else the
/// server's /tokenize, else none (lengths approximate).
fn counter(
    choice: &TokenizerChoice,
    ctx: &mut BuildContext,
) -> Result<Option<Arc<dyn TokenCounter>>, WorkloadError> {
    Ok(match choice {
        TokenizerChoice::Words => Some(Arc::new(WordCounter)),
        TokenizerChoice::Server => match ctx.server_tokenizer.take() {
            Some(Ok(t)) => Some(Arc::new(t)),
            Some(Err(e)) => return Err(WorkloadError::Invalid(format!("--tokenizer server: {e}"))),
            None => {
                return Err(WorkloadError::Invalid(
                    "--tokenizer server: the server's /tokenize was not checked".into(),
                ))
            }
        },
        TokenizerChoice::File(path) => Some(Arc::new(HfTokenizer::load(path)?)),
        TokenizerChoice::Auto if ctx.built_in => Some(Arc::new(WordCounter)),
        TokenizerChoice::Auto => match ctx.server_tokenizer.take() {
            Some(Ok(t)) => Some(Arc::new(t)),
            _ => None,
        },
    })
}

/// Whether building `spec` wants the server's /tokenize probed.
pub fn wants_server_tokenizer(spec: &WorkloadSpec, built_in: bool) -> bool {
    match spec.tokenizer {
        TokenizerChoice::Server => true,
        TokenizerChoice::Auto => !built_in,
        _ => false,
    }
}

/// The report's view of a loaded data set.
pub fn dataset_info(s: &LoadSummary, rules: &FilterRules) -> DatasetInfo {
    DatasetInfo {
        path: s.path.display().to_string(),
        format: s.format.into(),
        records: s.records,
        examined: s.examined,
        kept: s.kept,
        dropped: s.dropped.clone(),
        malformed_skipped: s.malformed_skipped,
        truncated: s.truncated.clone(),
        shuffled: s.shuffled,
        filters: BTreeMap::from([
            ("min_input_len".to_owned(), Some(rules.min_input)),
            ("max_input_len".to_owned(), rules.max_input),
            ("min_output_len".to_owned(), Some(rules.min_output)),
            ("max_total_len".to_owned(), rules.max_total),
        ]),
    }
}

/// Resolves `empirical:FILE` into the file's own input or output lengths.
fn resolve_len(
    spec: &LengthSpec,
    outputs: bool,
    ws: &WorkloadSpec,
    counter: &dyn TokenCounter,
    seed: u64,
) -> Result<LengthDist, WorkloadError> {
    let path = match spec {
        LengthSpec::Dist(d) => return Ok(d.clone()),
        LengthSpec::Empirical(p) => p,
    };
    let mut ds = ws.dataset.clone().unwrap_or_default();
    ds.path = path.clone();
    let opts = ds.load_options(None, !outputs, None, seed, None)?;
    let data = dataset::load(path, counter, &opts)?;
    let lengths: Vec<u32> = data
        .entries
        .iter()
        .filter_map(|e| {
            if outputs {
                e.output_tokens
            } else {
                Some(e.input_tokens)
            }
        })
        .collect();
    LengthDist::empirical(lengths, path.display().to_string()).map_err(WorkloadError::Invalid)
}

/// Builds the workload.
pub fn build(ws: &WorkloadSpec, mut ctx: BuildContext) -> Result<Built, WorkloadError> {
    let chat = ctx.api == Api::Chat;
    let mut warnings = Vec::new();
    let counter = counter(&ws.tokenizer, &mut ctx)?;
    let (counter, exact_counter): (Arc<dyn TokenCounter>, bool) = match counter {
        Some(c) => (c, true),
        None => {
            warnings.push("input lengths are approximate (one token per common English word): the server has no /tokenize; pass --tokenizer PATH for exact lengths".into());
            (Arc::new(WordCounter), false)
        }
    };
    let pool = Arc::new(if !exact_counter {
        WordPool::words()
    } else if ws.dataset.is_some() {
        // A data set needs the pool only to measure the chat template; a tokenizer that merges
        // across words can still count a data set.
        match WordPool::build(counter.as_ref()) {
            Ok(p) => p,
            Err(_) => WordPool::words().with_specials(counter.count("")?),
        }
    } else {
        WordPool::build(counter.as_ref())?
    });
    let shape = if chat && exact_counter {
        match ChatShape::measure(counter.as_ref(), &pool) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!("{e}; chat input lengths are approximate"));
                None
            }
        }
    } else {
        None
    };
    let shape_failed = warnings
        .iter()
        .any(|w| w.contains("chat input lengths are approximate"));
    if chat && exact_counter && shape.is_none() && !shape_failed {
        warnings.push(format!(
            "{} has no chat template: chat input lengths are unknown; the report shows the server's counts only",
            counter.describe()
        ));
    }
    let output = match &ws.output {
        Some(s) => Some(resolve_len(s, true, ws, counter.as_ref(), ctx.seed)?),
        None => None,
    };
    let mut info = WorkloadInfo {
        profile: ws.profile.clone(),
        tokenizer: if exact_counter {
            counter.describe()
        } else {
            "none".into()
        },
        chat_template_tokens: shape.map(|s| s.first),
        prefix_groups: 1,
        turns: 1,
        content_seed: ctx.seed,
        ..Default::default()
    };

    if let Some(ds) = &ws.dataset {
        let path = &ds.path;
        let fixed = match &output {
            Some(LengthDist::Fixed(n)) => Some(*n),
            _ => None,
        };
        let opts = ds.load_options(
            fixed,
            output.is_some(),
            ctx.max_model_len,
            ctx.seed,
            ctx.needed.map(|n| n as usize),
        )?;
        let data = dataset::load(path, counter.as_ref(), &opts)?;
        if output.is_none() {
            let without = data
                .entries
                .iter()
                .filter(|e| e.output_tokens.is_none())
                .count();
            if without > 0 {
                warnings.push(format!(
                    "data set {}: {without} of {} records give no output length; they ask for {DEFAULT_LEN} tokens (set --output-len)",
                    path.display(),
                    data.entries.len()
                ));
            }
        }
        if let Some(t) = &data.summary.truncated {
            warnings.push(format!("data set {}: {t}", path.display()));
        }
        if ctx.needed.is_some_and(|n| n > data.entries.len() as u64) {
            warnings.push(format!(
                "data set {}: {} usable records for {} requests; records are reused in order",
                path.display(),
                data.entries.len(),
                ctx.needed.unwrap_or(0)
            ));
        }
        let w = DatasetWorkload {
            entries: Arc::new(data.entries),
            summary: data.summary.clone(),
            output: output.clone(),
            default_output: DEFAULT_LEN,
            chat,
            chat_shape: shape,
            specials: pool.specials,
            seed: ctx.seed,
            start: 0,
        };
        info.description = w.describe();
        info.kind = "dataset".into();
        let has_messages = w
            .entries
            .iter()
            .any(|e| matches!(e.prompt, strobe_core::Prompt::Messages(_)));
        info.exact_input_lengths = exact_counter && (!chat || (shape.is_some() && !has_messages));
        info.input_len = "dataset".into();
        info.output_len = output.map_or("dataset".into(), |o| o.to_string());
        info.dataset = Some(dataset_info(&data.summary, &opts.rules));
        return Ok(Built {
            workload: Arc::new(w),
            info,
            warnings,
            counter,
        });
    }

    let input = match &ws.input {
        InputLength::ContextMinus(minus) => match ctx.max_model_len {
            Some(c) if c > *minus => LengthDist::Fixed(c - minus),
            Some(c) => return Err(WorkloadError::Invalid(format!("the profile's input is the context length minus {minus}, but the server's context is only {c} tokens; pass --input-len"))),
            None => return Err(WorkloadError::Invalid(format!("the profile's input is the context length minus {minus}, but the server does not report its context length (max_model_len); pass --input-len"))),
        },
        InputLength::Spec(s) => resolve_len(s, false, ws, counter.as_ref(), ctx.seed)?,
    };
    let output = output.unwrap_or(LengthDist::Fixed(DEFAULT_LEN));
    if let Some(c) = ctx.max_model_len {
        if input.max() as u64 + output.max() as u64 > c as u64 {
            warnings.push(format!(
                "input up to {} plus output up to {} tokens can exceed the server's context of {c} tokens: such requests will fail (lower the maxima of --input-len/--output-len)",
                input.max(),
                output.max()
            ));
        }
    }
    let overhead = if chat {
        shape.map_or(0, |s| s.first)
    } else {
        pool.specials
    };
    if input.min() < overhead + ws.shared_prefix + 1 {
        warnings.push(format!(
            "input lengths below {} tokens ({} fixed template/special tokens + {} shared-prefix tokens + 1) cannot be made: such prompts are sent with {} tokens (--input-len {})",
            overhead + ws.shared_prefix + 1,
            overhead,
            ws.shared_prefix,
            overhead + ws.shared_prefix + 1,
            input
        ));
    }
    let images = match (&ws.images, ws.images_per_request) {
        (Some(spec), n) if n > 0 => {
            let source = match spec {
                ImageSpec::Generated {
                    width,
                    height,
                    format,
                } => ImageSource::Generated {
                    width: *width,
                    height: *height,
                    format: *format,
                },
                ImageSpec::Files(paths) => {
                    ImageSource::from_paths(paths).map_err(WorkloadError::Invalid)?
                }
            };
            Some(ImageSettings {
                per_request: n,
                source,
            })
        }
        _ => None,
    };
    if let Some(i) = &images {
        warnings.push(format!(
            "{} image(s) per request ({}): input lengths count text only; the server adds its own image tokens",
            i.per_request, i.source
        ));
    }
    let w = SyntheticWorkload {
        pool,
        input: input.clone(),
        output: output.clone(),
        chat,
        chat_shape: shape,
        shared_prefix: ws.shared_prefix,
        prefix_groups: ws.prefix_groups,
        turns: ws.turns,
        sessions: ws.sessions.unwrap_or(ctx.concurrency).max(1),
        sessions_given: ws.sessions.is_some(),
        images: images.clone(),
        seed: ctx.seed,
        content_seed: ctx.seed,
    };
    info.description = w.describe();
    info.kind = "synthetic".into();
    info.exact_input_lengths = exact_counter && (!chat || shape.is_some());
    info.input_len = input.to_string();
    info.output_len = output.to_string();
    info.shared_prefix_tokens = ws.shared_prefix;
    info.prefix_groups = ws.prefix_groups;
    info.turns = ws.turns;
    info.images_per_request = images.as_ref().map_or(0, |i| i.per_request);
    info.images = images.map(|i| i.source.to_string());
    Ok(Built {
        workload: Arc::new(w),
        info,
        warnings,
        counter,
    })
}
