//! Sweep presets: the seed documents' sweeps, one command each (`strobe sweep --preset NAME`).
//! A preset is a base class and its axes; any flag given on the command line overrides the
//! preset's value for that setting, and a `--sweep` axis on a key replaces the preset's axis on it.

use crate::draft::{ClassDraft, DraftError, ScheduleKind};
use crate::experiment::Experiment;
use crate::levels::{self, LevelRequests};
use crate::sweep::{self, parse_axis, Axis, Sweep, SweepError};
use crate::ExperimentOptions;

/// Why a sweep cannot be built from its settings.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SweepSetupError {
    #[error("--preset {0}: this preset prices every point: give --gpu-price USD (per GPU-hour) and --gpus N")]
    NeedsPrice(&'static str),
    #[error("--preset {preset}: its axis is the profile's concurrency levels; for other levels use --profile {profile} --sweep concurrency=...")]
    ProfileAxis {
        preset: &'static str,
        profile: &'static str,
    },
    #[error("--preset sets one class; it does not go with --scenario")]
    PresetWithScenario,
    #[error("strobe sweep needs --sweep KEY=VALUES (e.g. --sweep concurrency=1,2,4) or --preset NAME (strobe sweep --list)")]
    NoAxes,
    #[error("{} {}", .0.flag(), .0.message)]
    Draft(DraftError),
    #[error("--sweep {0}")]
    Sweep(#[from] SweepError),
    #[error("--preset: {0}")]
    Profile(String),
}

/// A sweep's experiment from its base classes (the flags' one class, or a scenario's), a preset
/// and the axes given. `counts_given`: the command line bounds the runs (`-n`/`-d`), so a seed 002
/// preset keeps that bound instead of its profile's request rule.
pub fn sweep_experiment(
    preset: Option<&'static Preset>,
    mut drafts: Vec<ClassDraft>,
    given: Vec<Axis>,
    same_prompts: bool,
    counts_given: bool,
    options: ExperimentOptions,
) -> Result<Experiment, SweepSetupError> {
    if preset.is_some() && drafts.len() > 1 {
        return Err(SweepSetupError::PresetWithScenario);
    }
    match preset {
        Some(p) if p.needs_price && options.price.is_none() => {
            Err(SweepSetupError::NeedsPrice(p.name))
        }
        Some(
            p @ Preset {
                profile: Some(name),
                ..
            },
        ) => {
            if !given.is_empty() {
                return Err(SweepSetupError::ProfileAxis {
                    preset: p.name,
                    profile: name,
                });
            }
            let profile =
                strobe_workload::profiles::find(name).map_err(SweepSetupError::Profile)?;
            let mut d = drafts.remove(0);
            d.apply_profile(profile);
            let (class, workload) = d.resolve(0).map_err(SweepSetupError::Draft)?;
            let requests = if counts_given {
                LevelRequests::AsGiven
            } else {
                LevelRequests::PerLevel(profile)
            };
            let mut e = levels::experiment(
                profile.name,
                class,
                workload,
                profile.concurrency,
                requests,
                options,
            );
            e.kind = "sweep".into();
            e.title = format!("{}: {}", p.name, p.about);
            Ok(e)
        }
        Some(p) => {
            p.apply(&mut drafts[0]);
            let axes = p.axes(&given)?;
            Ok(sweep::experiment(
                "sweep",
                &format!("{}: {}", p.name, p.about),
                &drafts,
                &Sweep { axes, same_prompts },
                options,
            )?)
        }
        None => {
            if given.is_empty() {
                return Err(SweepSetupError::NoAxes);
            }
            let title = format!(
                "sweep over {}",
                given
                    .iter()
                    .map(|g| g
                        .keys
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join("+"))
                    .collect::<Vec<_>>()
                    .join(" × ")
            );
            Ok(sweep::experiment(
                "sweep",
                &title,
                &drafts,
                &Sweep {
                    axes: given,
                    same_prompts,
                },
                options,
            )?)
        }
    }
}

/// One preset.
#[derive(Debug)]
pub struct Preset {
    pub name: &'static str,
    /// Which seed document it reproduces, and how.
    pub about: &'static str,
    pub schedule: Option<ScheduleKind>,
    /// Base settings (scenario keys), applied where the command line gives none.
    pub base: &'static [(&'static str, &'static str)],
    pub axes: &'static [&'static str],
    /// Seed 001 prices every point: `--gpu-price` must be given.
    pub needs_price: bool,
    /// Seed 002: the profile whose levels are the axis (with the profile's request rule).
    pub profile: Option<&'static str>,
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "seed004-batch",
        about: "seed 004's batch-size sweep: lockstep batches of 1-32 requests, 128 tokens in, 64 out, one warm-up batch, 5 measured batches each",
        schedule: Some(ScheduleKind::Lockstep),
        base: &[("input_len", "128"), ("output_len", "64"), ("batches", "5"), ("warmup_requests", "1")],
        axes: &["batch_size=1,2,4,8,16,32"],
        needs_price: false,
        profile: None,
    },
    Preset {
        name: "seed004-seqlen",
        about: "seed 004's sequence-length sweep: 64 requests offered at once (offline), input = output = 32-512 tokens",
        schedule: Some(ScheduleKind::Offline),
        base: &[("requests", "64")],
        axes: &["input_len,output_len=32,64,128,256,512"],
        needs_price: false,
        profile: None,
    },
    Preset {
        name: "seed004-requests",
        about: "seed 004's request-count sweep: 10-500 requests offered at once (offline), 128 tokens in, 64 out",
        schedule: Some(ScheduleKind::Offline),
        base: &[("input_len", "128"), ("output_len", "64")],
        axes: &["requests=10,50,100,200,500"],
        needs_price: false,
        profile: None,
    },
    Preset {
        name: "seed001-cost",
        about: "seed 001's cost sweep: lockstep batch sizes 4-128, 20 batches each, normal length distributions (ShareGPT's mean and spread), $ per million input and output tokens (needs --gpu-price)",
        schedule: Some(ScheduleKind::Lockstep),
        base: &[
            ("input_len", "normal:236:264:4:1024"),
            ("output_len", "normal:217:234:4:1948"),
            ("batches", "20"),
        ],
        axes: &["batch_size=4,8,16,32,64,128"],
        needs_price: true,
        profile: None,
    },
    Preset {
        name: "seed002-high",
        about: "seed 002's high profile as a sweep: input = context - 2048, output 2048, concurrency 1, 5, 10",
        schedule: None,
        base: &[],
        axes: &[],
        needs_price: false,
        profile: Some("high"),
    },
    Preset {
        name: "seed002-medium",
        about: "seed 002's medium profile as a sweep: input 200, output 250, concurrency 32, 64, 128",
        schedule: None,
        base: &[],
        axes: &[],
        needs_price: false,
        profile: Some("medium"),
    },
    Preset {
        name: "seed002-low",
        about: "seed 002's low profile as a sweep: input 100, output 150, concurrency 1-32",
        schedule: None,
        base: &[],
        axes: &[],
        needs_price: false,
        profile: Some("low"),
    },
    Preset {
        name: "seed002-vision-a",
        about: "seed 002's vision a profile as a sweep: one image, input 50, output 300, concurrency 8-128",
        schedule: None,
        base: &[],
        axes: &[],
        needs_price: false,
        profile: Some("vision-a"),
    },
    Preset {
        name: "seed002-vision-b",
        about: "seed 002's vision b profile as a sweep: one image, input 100, output 100, concurrency 1-32",
        schedule: None,
        base: &[],
        axes: &[],
        needs_price: false,
        profile: Some("vision-b"),
    },
];

/// The preset called `name`, or an error listing them.
pub fn find(name: &str) -> Result<&'static Preset, String> {
    PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
        format!(
            "no preset `{name}`; presets: {} (`strobe sweep --list` describes them)",
            PRESETS
                .iter()
                .map(|p| p.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

impl Preset {
    /// Applies the preset's base to `draft` where the command line left a setting unset.
    pub fn apply(&self, draft: &mut ClassDraft) {
        let load_given = draft.concurrency.is_some()
            || draft.rate.is_some()
            || draft.batch_size.is_some()
            || draft.schedule.is_some();
        if !load_given {
            draft.schedule = self.schedule;
        }
        for (key, value) in self.base {
            if !draft.is_set(key) {
                draft
                    .set(key, value)
                    .expect("preset values are valid settings");
            }
        }
    }

    /// The preset's axes, less those whose keys `given` axes set.
    pub fn axes(&self, given: &[Axis]) -> Result<Vec<Axis>, SweepError> {
        let mut out = vec![];
        for a in self.axes {
            let a = parse_axis(a)?;
            let overridden = a.keys.iter().any(|k| {
                given
                    .iter()
                    .any(|g| g.keys.iter().any(|gk| gk.key == k.key))
            });
            if !overridden {
                out.push(a);
            }
        }
        out.extend(given.iter().cloned());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_builds_and_flags_override_it() {
        for p in PRESETS.iter().filter(|p| p.profile.is_none()) {
            let mut d = ClassDraft::new("default");
            p.apply(&mut d);
            let axes = p.axes(&[]).unwrap();
            let sweep = crate::sweep::Sweep {
                axes,
                same_prompts: false,
            };
            let options = crate::ExperimentOptions {
                drain_timeout: std::time::Duration::from_secs(1),
                abort_after_failures: 20,
                price: None,
                outputs: Default::default(),
                reset_prefix_cache: false,
                restart: false,
            };
            let e = crate::sweep::experiment("sweep", p.name, &[d], &sweep, options)
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert!(e.runs.len() >= 5, "{}", p.name);
        }
        // An output length from the command line beats the preset's; a given axis replaces its.
        let p = find("seed004-batch").unwrap();
        let mut d = ClassDraft::new("default");
        d.set("output_len", "16").unwrap();
        p.apply(&mut d);
        assert_eq!(
            d.workload.output_len,
            strobe_workload::LengthSpec::parse("16").ok()
        );
        let axes = p.axes(&[parse_axis("batch_size=1,2").unwrap()]).unwrap();
        assert_eq!(axes.len(), 1);
        assert_eq!(axes[0].values, ["1", "2"]);
        assert!(find("seed9").unwrap_err().contains("seed004-batch"));
    }
}
