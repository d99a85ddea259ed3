//! Turns the workload settings into a workload, once the server is known (its tokenizer, its
//! context length). Runs on a blocking thread: counting may call the server's /tokenize.

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use strobe_core::Api;
use strobe_report::{DatasetInfo, WorkloadInfo};
use strobe_workload::dataset::{self, LoadOptions};
use strobe_workload::images::ImageSource;
use strobe_workload::{
    ChatShape, DatasetFormat, DatasetWorkload, FilterRules, HfTokenizer, ImageSettings, LengthDist,
    SyntheticWorkload, TokenCounter, WordCounter, WordPool, Workload,
};

use crate::cli::{DatasetArgs, DatasetFormatArg};
use crate::settings::{WorkloadSettings, DEFAULT_LEN};

/// What the builder knows about the run and the server.
pub struct BuildContext {
    pub api: Api,
    pub seed: u64,
    pub built_in: bool,
    /// The server's /tokenize, when it answered.
    pub server_tokenizer: Option<Result<crate::server_tokenizer::ServerTokenizer, String>>,
    pub max_model_len: Option<u32>,
    /// Requests the run will send (measured + warm-up), when known in advance.
    pub needed: Option<u64>,
    pub concurrency: u32,
    pub profile: Option<String>,
}

/// A workload ready to run, with its report section.
pub struct Built {
    pub workload: Arc<dyn Workload>,
    pub info: WorkloadInfo,
    pub warnings: Vec<String>,
}

/// Picks the token counter: an explicit `--tokenizer`, else the built-in target's word rule, else
/// the server's /tokenize, else none (lengths approximate).
pub fn counter(
    choice: Option<&str>,
    ctx: &mut BuildContext,
) -> anyhow::Result<Option<Arc<dyn TokenCounter>>> {
    Ok(match choice {
        Some("words") => Some(Arc::new(WordCounter)),
        Some("server") => match ctx.server_tokenizer.take() {
            Some(Ok(t)) => Some(Arc::new(t)),
            Some(Err(e)) => bail!("--tokenizer server: {e}"),
            None => bail!("--tokenizer server: the server's /tokenize was not checked"),
        },
        Some(path) => Some(Arc::new(
            HfTokenizer::load(Path::new(path)).context("--tokenizer")?,
        )),
        None if ctx.built_in => Some(Arc::new(WordCounter)),
        None => match ctx.server_tokenizer.take() {
            Some(Ok(t)) => Some(Arc::new(t)),
            _ => None,
        },
    })
}

fn format_of(a: &DatasetArgs) -> Option<DatasetFormat> {
    a.dataset_format.map(|f| match f {
        DatasetFormatArg::Sharegpt => DatasetFormat::ShareGpt,
        DatasetFormatArg::Jsonl => DatasetFormat::Jsonl,
        DatasetFormatArg::OpenaiBatch => DatasetFormat::OpenAiBatch,
        DatasetFormatArg::Text => DatasetFormat::Text,
    })
}

/// The filter rules: the format's defaults (vLLM's for ShareGPT), then explicit flags.
pub fn rules_for(
    a: &DatasetArgs,
    format: DatasetFormat,
    output_given: bool,
    context: Option<u32>,
) -> FilterRules {
    if a.no_filter {
        return FilterRules::none();
    }
    let mut r = if format == DatasetFormat::ShareGpt {
        FilterRules::vllm_sharegpt(output_given)
    } else {
        FilterRules {
            max_total: context,
            ..FilterRules::none()
        }
    };
    if let Some(v) = a.min_input_len {
        r.min_input = v;
    }
    if let Some(v) = a.max_input_len {
        r.max_input = Some(v);
    }
    if let Some(v) = a.min_output_len {
        r.min_output = v;
    }
    if let Some(v) = a.max_total_len {
        r.max_total = Some(v);
    }
    r
}

/// Load options for `path` under the data-set flags.
pub fn load_options(
    path: &Path,
    a: &DatasetArgs,
    output_fixed: Option<u32>,
    output_given: bool,
    context: Option<u32>,
    seed: u64,
    limit: Option<usize>,
) -> anyhow::Result<LoadOptions> {
    let format = match format_of(a) {
        Some(f) => f,
        None => {
            let mut head = vec![0u8; 4096];
            let n = std::fs::File::open(path)
                .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
                .with_context(|| format!("data set {}: cannot read it", path.display()))?;
            head.truncate(n);
            DatasetFormat::detect(&head)
        }
    };
    Ok(LoadOptions {
        default_output: DEFAULT_LEN.parse().unwrap_or(128),
        format: Some(format),
        skip_invalid: a.skip_invalid,
        rules: rules_for(a, format, output_given, context),
        output_given,
        output_fixed,
        shuffle: format == DatasetFormat::ShareGpt && !a.no_shuffle,
        seed,
        limit,
    })
}

pub fn dataset_info(s: &dataset::LoadSummary, rules: &FilterRules) -> DatasetInfo {
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
    spec: &str,
    outputs: bool,
    ws: &WorkloadSettings,
    counter: &dyn TokenCounter,
    seed: u64,
) -> anyhow::Result<LengthDist> {
    let Some(file) = spec.strip_prefix("empirical:") else {
        return LengthDist::parse(spec).map_err(|e| anyhow::anyhow!(e));
    };
    let path = Path::new(file);
    let opts = load_options(path, &ws.data, None, !outputs, None, seed, None)?;
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
    LengthDist::empirical(lengths, file.to_owned()).map_err(|e| anyhow::anyhow!(e))
}

/// Builds the workload.
pub fn build(ws: &WorkloadSettings, mut ctx: BuildContext) -> anyhow::Result<Built> {
    let chat = ctx.api == Api::Chat;
    let mut warnings = Vec::new();
    let counter = counter(ws.tokenizer.as_deref(), &mut ctx)?;
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
    let output = match &ws.output_len {
        Some(s) => Some(resolve_len(s, true, ws, counter.as_ref(), ctx.seed)?),
        None => None,
    };
    let mut info = WorkloadInfo {
        profile: ctx.profile.clone(),
        tokenizer: if exact_counter {
            counter.describe()
        } else {
            "none".into()
        },
        chat_template_tokens: shape.map(|s| s.first),
        prefix_groups: 1,
        turns: 1,
        ..Default::default()
    };

    if let Some(path) = &ws.dataset {
        let fixed = match &output {
            Some(LengthDist::Fixed(n)) => Some(*n),
            _ => None,
        };
        let opts = load_options(
            path,
            &ws.data,
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
            default_output: DEFAULT_LEN.parse().unwrap_or(128),
            chat,
            chat_shape: shape,
            specials: pool.specials,
            seed: ctx.seed,
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
        });
    }

    let input = match ws.context_minus {
        Some(minus) => match ctx.max_model_len {
            Some(c) if c > minus => LengthDist::Fixed(c - minus),
            Some(c) => bail!("the profile's input is the context length minus {minus}, but the server's context is only {c} tokens; pass --input-len"),
            None => bail!("the profile's input is the context length minus {minus}, but the server does not report its context length (max_model_len); pass --input-len"),
        },
        None => resolve_len(&ws.input_len, false, ws, counter.as_ref(), ctx.seed)?,
    };
    let output = output.unwrap_or(LengthDist::Fixed(DEFAULT_LEN.parse().unwrap_or(128)));
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
    let images = if ws.images > 0 {
        let source = if ws.image_files.is_empty() {
            ImageSource::Generated {
                width: ws.image_size.0,
                height: ws.image_size.1,
                format: ws.image_format,
            }
        } else {
            ImageSource::from_paths(&ws.image_files).map_err(|e| anyhow::anyhow!(e))?
        };
        Some(ImageSettings {
            per_request: ws.images,
            source,
        })
    } else {
        None
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
        images: images.clone(),
        seed: ctx.seed,
    };
    info.description = w.describe();
    info.kind = "synthetic".into();
    info.exact_input_lengths = exact_counter && (!chat || shape.is_some());
    info.input_len = input.to_string();
    info.output_len = output.to_string();
    info.shared_prefix_tokens = ws.shared_prefix;
    info.prefix_groups = ws.prefix_groups;
    info.turns = ws.turns;
    info.images_per_request = ws.images;
    info.images = images.map(|i| i.source.to_string());
    Ok(Built {
        workload: Arc::new(w),
        info,
        warnings,
    })
}
