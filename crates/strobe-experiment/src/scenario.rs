//! Scenario files: one run of one or more classes at once, in TOML (docs/scenarios.md; examples
//! in `examples/`).
//!
//! ```toml
//! title = "a batch beside ten interactive users"
//! api = "chat"                      # defaults for every class: api, stream, ignore_eos, body,
//!                                   # tokenizer, seed
//! [[class]]
//! name = "batch"
//! schedule = "offline"              # closed | open | offline | lockstep
//! requests = 1000
//! max_concurrency = 256
//! input_len = 1024
//! output_len = 128
//!
//! [[class]]
//! name = "interactive"
//! concurrency = 10
//! until = "batch"                   # stop sending when the batch is done
//! input_len = "normal:128:32"
//! output_len = 64
//! slo = "ttft_p95=200ms,e2e_p95=2s"
//! ```
//!
//! Every key of a class is the scenario spelling of a `strobe run` flag (`input_len` for
//! `--input-len`). Paths are relative to the file. Any mistake — bad syntax, an unknown key, a bad
//! value, settings that conflict — is an error naming the file, the line and the key.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use strobe_core::units::{parse_count, parse_duration};
use strobe_core::Api;
use strobe_workload::picture::ImageFormat;
use strobe_workload::{DatasetFormat, DatasetSpec, LengthSpec};

use crate::draft::{ArrivalKind, ClassDraft, DraftError, ScheduleKind};
use crate::experiment::ClassSpec;
use crate::workloads::{TokenizerChoice, WorkloadSpec};

/// A scenario file that cannot be used, located.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{}:{line}:{column}: {}{message}", file.display(), key.as_deref().map(|k| format!("{k}: ")).unwrap_or_default())]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The key at fault (`class[2].concurrency`), when one is.
    pub key: Option<String>,
    pub message: String,
}

/// A number, or a string holding a count or a length spec.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Int(u64),
    Float(f64),
    Text(String),
}

impl NumOrText {
    fn text(&self) -> String {
        match self {
            NumOrText::Int(n) => n.to_string(),
            NumOrText::Float(f) => f.to_string(),
            NumOrText::Text(s) => s.clone(),
        }
    }
}

/// A string `"ttft_p99=500ms,e2e=2s"` or a table `{ ttft_p99 = "500ms" }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum SloValue {
    Text(String),
    Table(toml::Table),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    title: Option<String>,
    seed: Option<u64>,
    api: Option<String>,
    stream: Option<bool>,
    ignore_eos: Option<bool>,
    body: Option<toml::Table>,
    tokenizer: Option<String>,
    #[serde(rename = "class", default)]
    classes: Vec<RawClass>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    name: String,
    profile: Option<String>,
    schedule: Option<String>,
    concurrency: Option<u32>,
    rate: Option<f64>,
    arrival: Option<String>,
    burstiness: Option<f64>,
    max_concurrency: Option<u32>,
    batch_size: Option<u32>,
    batches: Option<u64>,
    requests: Option<NumOrText>,
    duration: Option<NumOrText>,
    until: Option<String>,
    start_after: Option<NumOrText>,
    warmup_requests: Option<NumOrText>,
    warmup: Option<NumOrText>,
    seed: Option<u64>,
    api: Option<String>,
    stream: Option<bool>,
    ignore_eos: Option<bool>,
    body: Option<toml::Table>,
    slo: Option<SloValue>,
    input_len: Option<NumOrText>,
    output_len: Option<NumOrText>,
    tokenizer: Option<String>,
    dataset: Option<String>,
    dataset_format: Option<String>,
    skip_invalid: Option<bool>,
    min_input_len: Option<u32>,
    max_input_len: Option<u32>,
    min_output_len: Option<u32>,
    max_total_len: Option<u32>,
    no_filter: Option<bool>,
    keep_order: Option<bool>,
    shared_prefix: Option<u32>,
    prefix_groups: Option<u32>,
    turns: Option<u32>,
    sessions: Option<u32>,
    images: Option<u32>,
    image_size: Option<String>,
    image_format: Option<String>,
    image: Option<Vec<String>>,
    /// A batch file (OpenAI batch format) as this class's requests; results to `batch_output`.
    batch_file: Option<String>,
    batch_output: Option<String>,
    batch_errors: Option<String>,
    max_attempts: Option<u32>,
}

/// A parsed scenario: its classes, still to be resolved.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub path: PathBuf,
    pub title: Option<String>,
    pub classes: Vec<ClassDraft>,
    text: String,
}

/// Line and column (1-based) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn to_json(t: &toml::Table) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

impl Scenario {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.to_owned(),
            line: 1,
            column: 1,
            key: None,
            message: format!("cannot read the scenario: {e}"),
        })?;
        Scenario::parse(&text, path)
    }

    /// Parses scenario `text` (read from `path`, which relative paths in it start from).
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ScenarioError {
                file: path.to_owned(),
                line,
                column,
                key: None,
                message: e.message().trim().to_owned(),
            }
        })?;
        let mut s = Scenario {
            path: path.to_owned(),
            title: raw.title.clone(),
            classes: vec![],
            text: text.to_owned(),
        };
        if raw.classes.is_empty() {
            return Err(s.error(
                None,
                None,
                "no [[class]] tables: a scenario needs at least one class",
            ));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for (i, c) in raw.classes.iter().enumerate() {
            let draft = s.draft(&raw, c, base).map_err(|e| s.located(i, &e))?;
            if s.classes.iter().any(|o| o.name == draft.name) {
                return Err(s.located(
                    i,
                    &DraftError {
                        key: "name",
                        message: format!("two classes are called `{}`", draft.name),
                    },
                ));
            }
            s.classes.push(draft);
        }
        for (i, c) in s.classes.iter().enumerate() {
            if let Some(u) = &c.until {
                if u == &c.name || !s.classes.iter().any(|o| &o.name == u) {
                    let names: Vec<&str> = s.classes.iter().map(|c| c.name.as_str()).collect();
                    return Err(s.located(
                        i,
                        &DraftError {
                            key: "until",
                            message: format!(
                                "`{u}` is not another class of this scenario (they are: {})",
                                names.join(", ")
                            ),
                        },
                    ));
                }
            }
        }
        Ok(s)
    }

    /// The classes, checked, each with its workload (workload `k` for class `k`).
    pub fn resolve(&self) -> Result<Vec<(ClassSpec, WorkloadSpec)>, ScenarioError> {
        self.classes
            .iter()
            .enumerate()
            .map(|(i, d)| d.resolve(i).map_err(|e| self.located(i, &e)))
            .collect()
    }

    /// The draft of the class called `name`.
    pub fn class(&self, name: &str) -> Option<&ClassDraft> {
        self.classes.iter().find(|c| c.name == name)
    }

    fn error(
        &self,
        at: Option<std::ops::Range<usize>>,
        key: Option<String>,
        message: &str,
    ) -> ScenarioError {
        let (line, column) = at.map_or((1, 1), |r| line_col(&self.text, r.start));
        ScenarioError {
            file: self.path.clone(),
            line,
            column,
            key,
            message: message.to_owned(),
        }
    }

    /// An error about `key` of class `i`, at that key's place in the file (else the class's name).
    pub fn located(&self, i: usize, e: &DraftError) -> ScenarioError {
        let span = toml_edit::Document::parse(self.text.clone())
            .ok()
            .and_then(|doc| {
                let class = doc.as_table().get("class")?.as_array_of_tables()?.get(i)?;
                class
                    .get_key_value(e.key)
                    .or_else(|| class.get_key_value("name"))
                    .and_then(|(k, _)| k.span())
            });
        self.error(span, Some(format!("class[{i}].{}", e.key)), &e.message)
    }

    fn draft(
        &self,
        top: &RawScenario,
        c: &RawClass,
        base: &Path,
    ) -> Result<ClassDraft, DraftError> {
        let bad = |key: &'static str, message: String| DraftError { key, message };
        let path = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let count = |key: &'static str, v: &NumOrText| -> Result<u64, DraftError> {
            match v {
                NumOrText::Int(n) => Ok(*n),
                other => parse_count(&other.text()).map_err(|e| bad(key, e)),
            }
        };
        let duration =
            |key: &'static str, v: &NumOrText| -> Result<std::time::Duration, DraftError> {
                parse_duration(&v.text()).map_err(|e| bad(key, e))
            };
        let length = |key: &'static str, v: &NumOrText| -> Result<LengthSpec, DraftError> {
            let spec = LengthSpec::parse(&v.text()).map_err(|e| bad(key, e))?;
            Ok(match spec {
                LengthSpec::Empirical(p) => LengthSpec::Empirical(path(&p.to_string_lossy())),
                d => d,
            })
        };
        let api = |key: &'static str, v: &str| -> Result<Api, DraftError> {
            match v {
                "chat" => Ok(Api::Chat),
                "completions" => Ok(Api::Completions),
                other => Err(bad(
                    key,
                    format!("`{other}` is not an API; use chat or completions"),
                )),
            }
        };
        let mut d = ClassDraft::new(&c.name);
        if c.name.trim().is_empty() {
            return Err(bad("name", "a class needs a name".into()));
        }
        if let Some(p) = &c.profile {
            let p = strobe_workload::profiles::find(p).map_err(|e| bad("profile", e))?;
            d.apply_profile(p);
        }
        d.schedule = match &c.schedule {
            Some(s) => Some(ScheduleKind::parse(s).ok_or_else(|| {
                bad(
                    "schedule",
                    format!("`{s}` is not a schedule; use closed, open, offline or lockstep"),
                )
            })?),
            None => None,
        };
        d.concurrency = c.concurrency.or(d.concurrency);
        d.rate = c.rate.or(d.rate);
        d.arrival = match c.arrival.as_deref() {
            None => None,
            Some("poisson") => Some(ArrivalKind::Poisson),
            Some("constant") => Some(ArrivalKind::Constant),
            Some("gamma") => Some(ArrivalKind::Gamma),
            Some(o) => {
                return Err(bad(
                    "arrival",
                    format!("`{o}` is not an arrival process; use poisson, constant or gamma"),
                ))
            }
        };
        d.burstiness = c.burstiness;
        d.max_concurrency = c.max_concurrency;
        d.batch_size = c.batch_size;
        d.batches = c.batches;
        if let Some(v) = &c.requests {
            d.requests = Some(count("requests", v)?);
        }
        if let Some(v) = &c.duration {
            d.duration = Some(duration("duration", v)?);
        }
        if c.duration.is_some() && c.requests.is_none() && d.profile.is_some() {
            d.requests = None;
        }
        d.until = c.until.clone();
        if let Some(v) = &c.start_after {
            d.start_after = duration("start_after", v)?;
        }
        if let Some(v) = &c.warmup_requests {
            d.warmup_requests = count("warmup_requests", v)?;
        }
        if let Some(v) = &c.warmup {
            d.warmup = duration("warmup", v)?;
        }
        d.seed = c.seed.or(top.seed).unwrap_or(0);
        if let Some(a) = c.api.as_deref().or(top.api.as_deref()) {
            d.api = Some(api("api", a)?);
        }
        d.stream = c.stream.or(top.stream).unwrap_or(true);
        d.ignore_eos = c.ignore_eos.or(top.ignore_eos).unwrap_or(true);
        if let Some(b) = &top.body {
            d.body.extend(to_json(b));
        }
        if let Some(b) = &c.body {
            d.body.extend(to_json(b));
        }
        if let Some(slo) = &c.slo {
            let spec = match slo {
                SloValue::Text(s) => s.clone(),
                SloValue::Table(t) => t
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}={}",
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            };
            d.slo = strobe_metrics::slo::parse(&spec).map_err(|e| bad("slo", e.to_string()))?;
        }
        let w = &mut d.workload;
        if let Some(v) = &c.input_len {
            w.input_len = Some(length("input_len", v)?);
        }
        if let Some(v) = &c.output_len {
            w.output_len = Some(length("output_len", v)?);
        }
        w.tokenizer = match c.tokenizer.as_deref().or(top.tokenizer.as_deref()) {
            None => TokenizerChoice::Auto,
            Some("words") => TokenizerChoice::Words,
            Some("server") => TokenizerChoice::Server,
            Some(p) => {
                let p = path(p);
                if !p.exists() {
                    return Err(bad("tokenizer", format!("{}: no such file or folder (give a tokenizer.json, a model folder, `server` or `words`)", p.display())));
                }
                TokenizerChoice::File(p)
            }
        };
        if let Some(ds) = &c.dataset {
            let p = path(ds);
            if !p.is_file() {
                return Err(bad("dataset", format!("{}: no such file", p.display())));
            }
            w.dataset = Some(DatasetSpec {
                path: p,
                format: match &c.dataset_format {
                    Some(f) => Some(DatasetFormat::parse(f).map_err(|e| bad("dataset_format", e))?),
                    None => None,
                },
                skip_invalid: c.skip_invalid.unwrap_or(false),
                min_input: c.min_input_len,
                max_input: c.max_input_len,
                min_output: c.min_output_len,
                max_total: c.max_total_len,
                no_filter: c.no_filter.unwrap_or(false),
                keep_order: c.keep_order.unwrap_or(false),
            });
        } else if c.dataset_format.is_some()
            || c.skip_invalid.is_some()
            || c.max_input_len.is_some()
        {
            return Err(bad("dataset", "data-set options need a dataset".into()));
        }
        w.shared_prefix = c.shared_prefix.unwrap_or(0);
        w.prefix_groups = c.prefix_groups;
        w.turns = c.turns;
        w.sessions = c.sessions;
        if c.images.is_some() {
            w.images = c.images;
        }
        if let Some(s) = &c.image_size {
            w.image_size =
                Some(strobe_workload::images::parse_size(s).map_err(|e| bad("image_size", e))?);
        }
        if let Some(f) = &c.image_format {
            w.image_format = Some(
                f.parse::<ImageFormat>()
                    .map_err(|e| bad("image_format", e))?,
            );
        }
        w.image_files = c.image.iter().flatten().map(|p| path(p)).collect();
        if let Some(f) = &c.batch_file {
            let input = path(f);
            let output = path(c.batch_output.as_deref().ok_or_else(|| {
                bad(
                    "batch_output",
                    "a class with `batch_file` needs `batch_output`, the file its results go to"
                        .into(),
                )
            })?);
            let errors = c
                .batch_errors
                .as_deref()
                .map(path)
                .unwrap_or_else(|| strobe_batch::errors_path_for(&output));
            let lines = strobe_batch::input::read(&input, strobe_batch::Limits::default())
                .map_err(|e| bad("batch_file", e.to_string()))?;
            let (store, recovered) = strobe_batch::FileStore::open(&output, &errors)
                .map_err(|e| bad("batch_output", e.to_string()))?;
            let job = strobe_batch::BatchJob::new(lines, Box::new(store), recovered);
            d.requests = Some(job.pending().max(1));
            d.batch = Some(strobe_batch::JobHandle(std::sync::Arc::new(job)));
            d.retry = strobe_load::Retry {
                max_attempts: c.max_attempts.unwrap_or(5),
                ..Default::default()
            };
            d.ignore_eos = false;
            // Every line offered at once, `max_concurrency` (or `concurrency`) in flight at most.
            d.schedule = Some(crate::draft::ScheduleKind::Offline);
            if d.max_concurrency.is_none() {
                d.max_concurrency = d.concurrency.take();
            }
        } else if c.batch_output.is_some() || c.batch_errors.is_some() {
            return Err(bad(
                "batch_output",
                "`batch_output` goes with `batch_file`".into(),
            ));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(text, Path::new("/tmp/s.toml"))
    }

    #[test]
    fn a_two_class_scenario_resolves() {
        let s = parse(
            "title = \"t\"\napi = \"chat\"\n[[class]]\nname = \"batch\"\nschedule = \"offline\"\nrequests = \"2k\"\ninput_len = 512\noutput_len = 64\n\n[[class]]\nname = \"interactive\"\nconcurrency = 4\nuntil = \"batch\"\nslo = { ttft_p95 = \"200ms\", e2e = \"2s\" }\nbody = { temperature = 0 }\n",
        )
        .unwrap();
        let classes = s.resolve().unwrap();
        let (b, bw) = &classes[0];
        assert_eq!(b.requests, Some(2000));
        assert_eq!(
            b.schedule,
            strobe_load::Schedule::Offline {
                max_concurrency: Some(1024)
            }
        );
        assert_eq!(b.request.api, Api::Chat);
        assert_eq!(bw.output, LengthSpec::parse("64").ok());
        let (u, _) = &classes[1];
        assert_eq!((u.until.as_deref(), u.requests), (Some("batch"), None));
        assert_eq!(u.slo.len(), 2);
        assert_eq!(u.request.extra_body["temperature"], serde_json::json!(0));
    }

    #[test]
    fn mistakes_name_the_file_line_and_key() {
        let cases = [
            (
                "[[class]]\nname = \"a\"\nconcurency = 3\n",
                3,
                None,
                "unknown field `concurency`",
            ),
            (
                "[[class]]\nname = \"a\"\nconcurrency = \"x\"\n",
                3,
                None,
                "invalid type",
            ),
            (
                "[[class]]\nname = \"a\"\nrate = 2.0\nconcurrency = 4\n",
                4,
                Some("class[0].concurrency"),
                "exclude each other",
            ),
            (
                "[[class]]\nname = \"a\"\n\n[[class]]\nname = \"b\"\nuntil = \"c\"\n",
                6,
                Some("class[1].until"),
                "`c` is not another class",
            ),
            (
                "[[class]]\nname = \"a\"\nschedule = \"offline\"\n",
                2,
                Some("class[0].requests"),
                "fixed number",
            ),
            (
                "[[class]]\nname = \"a\"\ninput_len = \"normal:1\"\n",
                3,
                Some("class[0].input_len"),
                "expected normal:MEAN:STD",
            ),
            (
                "[[class]]\nname = \"a\"\nslo = \"ttft_p42=1s\"\n",
                3,
                Some("class[0].slo"),
                "unknown statistic",
            ),
            ("title = 3\n", 1, None, "invalid type"),
            ("title = \"x\"\n", 1, None, "at least one class"),
            ("[[class]\n", 1, None, ""),
        ];
        for (text, line, key, needle) in cases {
            let e = parse(text)
                .and_then(|s| s.resolve().map(|_| s))
                .unwrap_err();
            assert_eq!((e.line, e.key.as_deref()), (line, key), "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
            assert!(
                e.to_string().starts_with(&format!("/tmp/s.toml:{line}:")),
                "{e}"
            );
        }
    }
}
