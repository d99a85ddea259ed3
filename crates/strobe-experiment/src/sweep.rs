//! Sweeps: one run per point of a grid over load and workload settings.
//!
//! An axis is `KEY=VALUES`: a list (`1,2,4`), an arithmetic range (`10..50:10`) or a geometric one
//! (`1..32*2`). Several keys on one axis move together (`input_len,output_len=32..512*2` sets
//! input = output); several axes cross (every combination, the first axis outermost). With
//! several classes (a scenario), a key names its class: `interactive.concurrency=1,10`.
//!
//! Each point starts from the same base classes, sets its values (a [`ClassDraft`] setting, so a
//! point is checked exactly as a flag or a scenario key is), and gets fresh prompt text of the same
//! lengths (content seed + point index) unless told otherwise: a sweep that resends the same
//! prompts benchmarks the server's prefix cache.

use serde_json::Value;
use std::collections::BTreeMap;

use crate::draft::{ClassDraft, DraftError};
use crate::experiment::{ClassSpec, Experiment, RunSpec};
use crate::workloads::WorkloadSpec;
use crate::ExperimentOptions;

/// A sweep that cannot be built, naming the axis or the point.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SweepError {
    #[error("sweep axis `{axis}`: {message}")]
    Axis { axis: String, message: String },
    #[error("sweep point {label}: {key}: {message}")]
    Point {
        label: String,
        key: String,
        message: String,
    },
}

/// One class setting an axis moves.
#[derive(Clone, Debug, PartialEq)]
pub struct AxisKey {
    /// The class it sets (`None`: the only class).
    pub class: Option<String>,
    pub key: String,
}

impl AxisKey {
    /// `key`, or `class.key`.
    pub fn name(&self) -> String {
        match &self.class {
            Some(c) => format!("{c}.{}", self.key),
            None => self.key.clone(),
        }
    }
}

/// Keys that move together through one list of values.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub keys: Vec<AxisKey>,
    pub values: Vec<String>,
}

fn axis_err(axis: &str, message: impl Into<String>) -> SweepError {
    SweepError::Axis {
        axis: axis.to_owned(),
        message: message.into(),
    }
}

/// Expands `A..B:STEP` (arithmetic) and `A..B*FACTOR` (geometric); `A..B` steps by 1.
fn range(axis: &str, item: &str) -> Result<Option<Vec<String>>, SweepError> {
    let Some((a, rest)) = item.split_once("..") else {
        return Ok(None);
    };
    let num = |s: &str| -> Result<f64, SweepError> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| axis_err(axis, format!("`{item}`: `{s}` is not a number")))
    };
    let (b, step, geometric) = if let Some((b, f)) = rest.split_once('*') {
        (b, num(f)?, true)
    } else if let Some((b, s)) = rest.split_once(':') {
        (b, num(s)?, false)
    } else {
        (rest, 1.0, false)
    };
    let (a, b) = (num(a)?, num(b)?);
    if b < a {
        return Err(axis_err(
            axis,
            format!("`{item}`: the range ends below its start"),
        ));
    }
    let tolerance = 1e-9 * b.abs().max(1.0);
    // How many values, before making any.
    let count = if geometric {
        if step <= 1.0 || step.is_nan() || a <= 0.0 {
            return Err(axis_err(
                axis,
                format!("`{item}`: a geometric range needs a positive start and a factor above 1"),
            ));
        }
        ((b + tolerance) / a).ln() / step.ln()
    } else {
        if step <= 0.0 || step.is_nan() {
            return Err(axis_err(
                axis,
                format!("`{item}`: the step must be positive"),
            ));
        }
        (b + tolerance - a) / step
    };
    if !(count.is_finite() && count < 10_000.0) {
        return Err(axis_err(axis, format!("`{item}` has over 10,000 values")));
    }
    let n = count.floor() as usize + 1;
    let out: Vec<f64> = (0..n)
        .map(|k| {
            if geometric {
                a * step.powi(k as i32)
            } else {
                a + k as f64 * step
            }
        })
        .collect();
    Ok(Some(
        out.into_iter()
            .map(|v| {
                if (v - v.round()).abs() < 1e-9 * v.abs().max(1.0) {
                    format!("{}", v.round() as i64)
                } else {
                    // Nine decimals at most, trailing zeros dropped: 0.30000000000000004 → 0.3.
                    let t = format!("{v:.9}");
                    t.trim_end_matches('0').trim_end_matches('.').to_owned()
                }
            })
            .collect(),
    ))
}

/// Parses `KEY[,KEY...]=VALUE[,VALUE...]`, values being items or ranges.
pub fn parse_axis(s: &str) -> Result<Axis, SweepError> {
    let (keys, values) = s.split_once('=').ok_or_else(|| {
        axis_err(
            s,
            "expected KEY=VALUES, e.g. concurrency=1,2,4 or input_len,output_len=32..512*2",
        )
    })?;
    let keys = keys
        .split(',')
        .map(|k| {
            let k = k.trim();
            if k.is_empty() {
                return Err(axis_err(s, "an empty key"));
            }
            Ok(match k.split_once('.') {
                Some((c, key)) => AxisKey {
                    class: Some(c.to_owned()),
                    key: key.to_owned(),
                },
                None => AxisKey {
                    class: None,
                    key: k.to_owned(),
                },
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = vec![];
    for item in values.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        match range(s, item)? {
            Some(r) => out.extend(r),
            None => out.push(item.to_owned()),
        }
    }
    if out.is_empty() {
        return Err(axis_err(s, "no values"));
    }
    Ok(Axis { keys, values: out })
}

/// What to sweep, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    pub axes: Vec<Axis>,
    /// Resend the same prompt text at every point (default: fresh text per point).
    pub same_prompts: bool,
}

/// A value as JSON: a number when it reads as one.
fn json_value(v: &str) -> Value {
    if let Ok(n) = v.parse::<u64>() {
        return Value::from(n);
    }
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() => Value::from(f),
        _ => Value::String(v.to_owned()),
    }
}

/// Every combination of the axes' value indices, the first axis outermost.
fn combinations(axes: &[Axis]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for a in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..a.values.len()).map(move |i| {
                    let mut p = prefix.clone();
                    p.push(i);
                    p
                })
            })
            .collect();
    }
    out
}

/// The sweep's runs over `base` (one draft per class), each point's workloads deduplicated.
pub fn experiment(
    kind: &str,
    title: &str,
    base: &[ClassDraft],
    sweep: &Sweep,
    options: ExperimentOptions,
) -> Result<Experiment, SweepError> {
    if sweep.axes.is_empty() {
        return Err(axis_err("", "a sweep needs at least one axis"));
    }
    // Check the keys once, before any point.
    for a in &sweep.axes {
        for k in &a.keys {
            match &k.class {
                Some(c) if !base.iter().any(|d| &d.name == c) => {
                    return Err(axis_err(
                        &k.name(),
                        format!(
                            "no class `{c}` (the classes are: {})",
                            base.iter()
                                .map(|d| d.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ))
                }
                None if base.len() > 1 => {
                    return Err(axis_err(
                        &k.name(),
                        format!(
                            "there are several classes: name one, e.g. `{}.{}`",
                            base[0].name, k.key
                        ),
                    ))
                }
                _ => {}
            }
        }
    }
    let mut workloads: Vec<WorkloadSpec> = vec![];
    let mut runs = vec![];
    for (point, combo) in combinations(&sweep.axes).into_iter().enumerate() {
        let mut drafts = base.to_vec();
        let mut parameters = BTreeMap::new();
        let mut label_parts = vec![];
        for (axis, &i) in sweep.axes.iter().zip(&combo) {
            let value = &axis.values[i];
            for k in &axis.keys {
                let d = match &k.class {
                    Some(c) => drafts.iter_mut().find(|d| &d.name == c).expect("checked"),
                    None => &mut drafts[0],
                };
                d.set(&k.key, value).map_err(|e: DraftError| {
                    axis_err(&k.name(), format!("`{value}`: {}", e.message))
                })?;
                parameters.insert(k.name(), json_value(value));
            }
            let names: Vec<String> = axis.keys.iter().map(AxisKey::name).collect();
            label_parts.push(format!("{}-{}", names.join("+"), value.replace('/', "_")));
        }
        let label = label_parts.join("_");
        let mut classes: Vec<ClassSpec> = vec![];
        for (k, d) in drafts.iter().enumerate() {
            let (mut class, workload) = d.resolve(0).map_err(|e| SweepError::Point {
                label: label.clone(),
                key: match base.len() {
                    1 => e.key.to_owned(),
                    _ => format!("{}.{}", d.name, e.key),
                },
                message: e.message.clone(),
            })?;
            class.workload = match workloads.iter().position(|w| *w == workload) {
                Some(i) => i,
                None => {
                    workloads.push(workload);
                    workloads.len() - 1
                }
            };
            if !sweep.same_prompts {
                class.content_seed = class
                    .seed
                    .wrapping_add((point as u64) << 8)
                    .wrapping_add(k as u64);
            }
            classes.push(class);
        }
        runs.push(RunSpec {
            label,
            parameters,
            classes,
        });
    }
    Ok(Experiment::new(kind, title, workloads, runs, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_parse_lists_ranges_and_joint_keys() {
        let a = parse_axis("concurrency=1..32*2").unwrap();
        assert_eq!(a.values, ["1", "2", "4", "8", "16", "32"]);
        let a = parse_axis("requests=10,50..200:50,500").unwrap();
        assert_eq!(a.values, ["10", "50", "100", "150", "200", "500"]);
        let a = parse_axis("input_len,output_len=32,64").unwrap();
        assert_eq!(a.keys.len(), 2);
        assert_eq!(a.keys[1].key, "output_len");
        let a = parse_axis("interactive.rate=0.5..1.5:0.5").unwrap();
        assert_eq!(a.keys[0].class.as_deref(), Some("interactive"));
        assert_eq!(a.values, ["0.5", "1", "1.5"]);
        let a = parse_axis("input_len=normal:128:32,uniform:10:20").unwrap();
        assert_eq!(a.values, ["normal:128:32", "uniform:10:20"]);
        for bad in [
            "concurrency",
            "concurrency=",
            "c=4..1",
            "c=1..8*1",
            "c=0..8*2",
        ] {
            assert!(parse_axis(bad).is_err(), "{bad}");
        }
    }

    fn options() -> ExperimentOptions {
        ExperimentOptions {
            drain_timeout: std::time::Duration::from_secs(1),
            abort_after_failures: 20,
            price: None,
            outputs: Default::default(),
            reset_prefix_cache: false,
            restart: false,
        }
    }

    #[test]
    fn axes_cross_and_points_are_checked_like_flags() {
        let mut base = ClassDraft::new("default");
        base.requests = Some(10);
        let sweep = Sweep {
            axes: vec![
                parse_axis("concurrency=1,4").unwrap(),
                parse_axis("input_len,output_len=32,64").unwrap(),
            ],
            same_prompts: false,
        };
        let e = experiment("sweep", "t", &[base.clone()], &sweep, options()).unwrap();
        let labels: Vec<&str> = e.runs.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "concurrency-1_input_len+output_len-32",
                "concurrency-1_input_len+output_len-64",
                "concurrency-4_input_len+output_len-32",
                "concurrency-4_input_len+output_len-64"
            ]
        );
        // Two distinct workloads, shared by the points that use them.
        assert_eq!(e.workloads.len(), 2);
        assert_eq!(e.runs[0].classes[0].workload, e.runs[2].classes[0].workload);
        // Fresh text per point, same lengths seed.
        let seeds: std::collections::HashSet<u64> =
            e.runs.iter().map(|r| r.classes[0].content_seed).collect();
        assert_eq!(seeds.len(), 4);
        assert!(e.runs.iter().all(|r| r.classes[0].seed == 0));
        assert_eq!(e.runs[3].parameters["input_len"], 64);

        // A bad value names the axis and the value; a key that cannot be swept lists those that can.
        let bad = Sweep {
            axes: vec![parse_axis("concurrency=2,x").unwrap()],
            same_prompts: false,
        };
        let err = experiment("sweep", "t", &[base.clone()], &bad, options()).unwrap_err();
        assert!(err.to_string().contains("`x`"), "{err}");
        let bad = Sweep {
            axes: vec![parse_axis("temperature=0,1").unwrap()],
            same_prompts: false,
        };
        let err = experiment("sweep", "t", &[base.clone()], &bad, options()).unwrap_err();
        assert!(err.to_string().contains("sweepable settings"), "{err}");
        // Two classes: a key must name one.
        let other = ClassDraft::new("batch");
        let err = experiment("sweep", "t", &[base, other], &sweep, options()).unwrap_err();
        assert!(err.to_string().contains("name one"), "{err}");
    }
}
