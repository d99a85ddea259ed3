//! The charts of a run and of an experiment, as data ([`crate::charts`] draws them). The HTML
//! report and `strobe plot` share them, so a chart in a slide is the chart in the report.

use strobe_metrics::{Distribution, MetricSet, Timeline};

use crate::charts::{BarChart, GroupedBars, LineChart, Rule, Series};
use crate::summary::{ClassSummary, ExperimentSummary};
use crate::Report;

/// A chart, whichever kind.
#[derive(Clone, Debug)]
pub enum Figure {
    Line(LineChart),
    Bars(BarChart),
    Grouped(GroupedBars),
}

impl Figure {
    pub fn svg(&self) -> String {
        match self {
            Figure::Line(c) => crate::charts::line(c),
            Figure::Bars(c) => crate::charts::bars(c),
            Figure::Grouped(c) => crate::charts::grouped(c),
        }
    }
}

/// A named figure (`ttft-cdf`, `throughput-over-time`, ...): the name is what `strobe plot
/// --chart` takes and the file name it writes.
#[derive(Clone, Debug)]
pub struct Named {
    pub name: String,
    pub figure: Figure,
}

fn named(name: &str, figure: Figure) -> Named {
    Named {
        name: name.to_owned(),
        figure,
    }
}

/// Latency metrics: (key, label, the metric's distribution in a set).
pub const LATENCY: [(&str, &str); 4] = [
    ("ttft", "TTFT"),
    ("tpot", "TPOT"),
    ("itl", "ITL"),
    ("e2e", "E2E latency"),
];

fn dist<'a>(m: &'a MetricSet, key: &str) -> &'a Distribution {
    match key {
        "ttft" => &m.ttft_ns,
        "tpot" => &m.tpot_ns,
        "itl" => &m.itl_ns,
        _ => &m.e2e_ns,
    }
}

/// The SLO limits (ms) on `metric` over a report's classes: `(label, limit)`.
fn slo_limits(r: &Report, metric: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = vec![];
    for c in &r.classes {
        for ch in c.slo.iter().flat_map(|s| &s.checks) {
            let m = ch.name.split('_').next().unwrap_or("");
            if m == metric && !out.iter().any(|(n, _)| *n == ch.name) {
                out.push((format!("SLO {}", ch.name), ch.limit_ms));
            }
        }
    }
    out
}

fn series(name: &str, points: Vec<(f64, f64)>) -> Series {
    Series {
        name: name.to_owned(),
        points,
        ..Default::default()
    }
}

/// Quantiles a CDF is drawn at: fine steps, then the tail.
fn cdf_quantiles() -> Vec<f64> {
    let mut q: Vec<f64> = (0..=98).map(|i| i as f64 / 100.0).collect();
    q.extend([0.99, 0.995, 0.999, 1.0]);
    q
}

/// The CDF of one latency metric, one line per class.
pub fn cdf(r: &Report, metric: &str, label: &str) -> LineChart {
    let mut max_ratio: f64 = 1.0;
    let series_list: Vec<Series> = r
        .classes
        .iter()
        .filter(|c| dist(&c.state, metric).count() > 0)
        .map(|c| {
            let d = dist(&c.state, metric);
            let pts: Vec<(f64, f64)> = cdf_quantiles()
                .into_iter()
                .map(|q| (d.quantile(q) as f64 / 1e6, q * 100.0))
                .collect();
            let p50 = d.quantile(0.5).max(1) as f64;
            max_ratio = max_ratio.max(d.quantile(1.0) as f64 / p50);
            series(&c.name, pts)
        })
        .collect();
    LineChart {
        title: format!("{label}: cumulative distribution"),
        x_label: format!("{label} (ms)"),
        y_label: "requests at or below (%)".into(),
        series: series_list,
        rules: slo_limits(r, metric)
            .into_iter()
            .map(|(n, v)| Rule::X(n, v))
            .collect(),
        // A long tail squeezes the body of the curve into one pixel column; a log axis keeps both.
        log_x: max_ratio > 30.0,
        y_from_zero: true,
        ..Default::default()
    }
}

/// A histogram of one latency metric (to its p99.5, so that one outlier does not flatten it),
/// one colour per class.
pub fn histogram(r: &Report, metric: &str, label: &str) -> BarChart {
    let sets: Vec<(&str, &Distribution)> = r
        .classes
        .iter()
        .map(|c| (c.name.as_str(), dist(&c.state, metric)))
        .filter(|(_, d)| d.count() > 0)
        .collect();
    let lo = sets.iter().map(|(_, d)| d.quantile(0.0)).min().unwrap_or(0);
    let hi = sets
        .iter()
        .map(|(_, d)| d.quantile(0.995))
        .max()
        .unwrap_or(1)
        .max(lo + 1);
    // No bin narrower than the histogram's own resolution (1/1000 of the value), or
    // its buckets would show as a comb.
    let n = 30u64.min(((hi - lo) / (hi / 1024).max(1)).max(1));
    let step = (hi - lo).div_ceil(n).max(1);
    let edges: Vec<u64> = (0..=n).map(|i| lo + i * step).collect();
    BarChart {
        title: format!("{label}: histogram (to p99.5)"),
        x_label: format!("{label} (ms)"),
        y_label: "requests".into(),
        edges: edges.iter().map(|&e| e as f64 / 1e6).collect(),
        series: sets
            .iter()
            .map(|(name, d)| {
                (
                    name.to_string(),
                    d.bins(&edges).into_iter().map(|c| c as f64).collect(),
                )
            })
            .collect(),
    }
}

/// Centred moving sums over `w` intervals (fewer at the edges), so a chart shows a trend rather
/// than which interval each request happened to end in.
fn moving(v: &[f64], w: usize) -> Vec<f64> {
    let h = w / 2;
    (0..v.len())
        .map(|i| {
            v[i.saturating_sub(h)..(i + h + 1).min(v.len())]
                .iter()
                .sum()
        })
        .collect()
}

fn col(v: &[u64], n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| v.get(i).copied().unwrap_or(0) as f64)
        .collect()
}

/// What a timeline chart shows.
#[derive(Clone, Copy)]
enum Over {
    Requests,
    OutputTokens,
    InFlight,
    Ttft,
    E2e,
}

/// The moving-average window (intervals) for a timeline of `n` intervals whose requests last
/// `e2e_s` on average: about a twentieth of the run, at least 3, and at least two request
/// lifetimes (so requests that end together, as a batch does, do not draw a comb); odd.
fn window(n: usize, e2e_s: f64, bucket_s: f64) -> usize {
    let lifetimes = if bucket_s > 0.0 && e2e_s.is_finite() {
        (2.0 * e2e_s / bucket_s).ceil() as usize
    } else {
        0
    };
    (n / 20).max(3).max(lifetimes.min(n / 2)) | 1
}

/// `what` over time: rates per second and means over a moving window, plotted at the middle of
/// each interval. The last interval (cut short by the run's end) is left out.
fn over_time(t: &Timeline, what: Over, w: usize) -> Vec<(f64, f64)> {
    let n = t.len().saturating_sub(1).max(1.min(t.len()));
    let width_s = t.bucket_ns as f64 / 1e9;
    let span = |v: &[u64]| moving(&col(v, n), w);
    let widths = moving(&vec![width_s; n], w);
    let y: Vec<f64> = match what {
        Over::Requests => span(&t.completed)
            .iter()
            .zip(&widths)
            .map(|(a, b)| a / b)
            .collect(),
        Over::OutputTokens => span(&t.output_tokens)
            .iter()
            .zip(&widths)
            .map(|(a, b)| a / b)
            .collect(),
        Over::InFlight => span(&t.in_flight_ns)
            .iter()
            .zip(&widths)
            .map(|(a, b)| a / (b * 1e9))
            .collect(),
        Over::Ttft => span(&t.ttft_ns_sum)
            .iter()
            .zip(span(&t.ttft_count))
            .map(|(s, c)| if c > 0.0 { s / c / 1e6 } else { f64::NAN })
            .collect(),
        Over::E2e => span(&t.e2e_ns_sum)
            .iter()
            .zip(span(&t.completed))
            .map(|(s, c)| if c > 0.0 { s / c / 1e6 } else { f64::NAN })
            .collect(),
    };
    (0..n).map(|i| ((i as f64 + 0.5) * width_s, y[i])).collect()
}

fn measured_from(r: &Report) -> Vec<Rule> {
    let start = r
        .classes
        .iter()
        .filter_map(|c| c.state.window.map(|w| w.start_ns))
        .min();
    let warm = r.classes.iter().any(|c| c.state.warmup > 0);
    match start {
        Some(s) if warm && s > 0 => vec![Rule::X("measured from".into(), s as f64 / 1e9)],
        _ => vec![],
    }
}

fn time_chart(r: &Report, title: &str, y_label: &str, what: Over) -> LineChart {
    let n = r
        .classes
        .iter()
        .map(|c| c.state.timeline.len())
        .max()
        .unwrap_or(0);
    let bucket_s = r
        .classes
        .iter()
        .map(|c| c.state.timeline.bucket_ns)
        .max()
        .unwrap_or(0) as f64
        / 1e9;
    let e2e_s = r
        .classes
        .iter()
        .map(|c| c.state.e2e_ns.mean() / 1e9)
        .fold(0.0f64, f64::max);
    let w = window(n.saturating_sub(1).max(1), e2e_s, bucket_s);
    let series_list = r
        .classes
        .iter()
        .filter(|c| !c.state.timeline.is_empty())
        .map(|c| series(&c.name, over_time(&c.state.timeline, what, w)))
        .collect();
    LineChart {
        title: format!(
            "{title} ({} s moving average)",
            crate::charts::tick(w as f64 * bucket_s)
        ),
        x_label: "time since the run started (s)".into(),
        y_label: y_label.into(),
        series: series_list,
        rules: measured_from(r),
        y_from_zero: true,
        ..Default::default()
    }
}

/// Every chart of one run, by name; charts without data are left out.
pub fn run(r: &Report) -> Vec<Named> {
    let mut out = vec![];
    for (key, label) in LATENCY {
        if r.classes.iter().any(|c| dist(&c.state, key).count() > 0) {
            out.push(named(
                &format!("{key}-cdf"),
                Figure::Line(cdf(r, key, label)),
            ));
            out.push(named(
                &format!("{key}-histogram"),
                Figure::Bars(histogram(r, key, label)),
            ));
        }
    }
    if r.classes.iter().any(|c| !c.state.timeline.is_empty()) {
        out.push(named(
            "throughput-over-time",
            Figure::Line(time_chart(
                r,
                "Output throughput",
                "output tokens/s",
                Over::OutputTokens,
            )),
        ));
        out.push(named(
            "requests-over-time",
            Figure::Line(time_chart(
                r,
                "Completed requests",
                "requests/s",
                Over::Requests,
            )),
        ));
        out.push(named(
            "in-flight-over-time",
            Figure::Line(time_chart(
                r,
                "Requests in flight",
                "requests in flight (mean)",
                Over::InFlight,
            )),
        ));
        let mut ttft = time_chart(
            r,
            "Mean TTFT of the requests ending",
            "TTFT (ms)",
            Over::Ttft,
        );
        ttft.rules.extend(
            slo_limits(r, "ttft")
                .into_iter()
                .filter(|(n, _)| !n.contains("ttft_p"))
                .map(|(n, v)| Rule::Y(n, v)),
        );
        if ttft
            .series
            .iter()
            .any(|s| s.points.iter().any(|p| p.1.is_finite()))
        {
            out.push(named("ttft-over-time", Figure::Line(ttft)));
        }
        out.push(named(
            "e2e-over-time",
            Figure::Line(time_chart(
                r,
                "Mean E2E latency of the requests ending",
                "E2E latency (ms)",
                Over::E2e,
            )),
        ));
    }
    if let Some(sm) = &r.server_metrics {
        let gauge = |name: &str| sm.gauges.get(name).filter(|s| !s.samples.is_empty());
        let mut queue = vec![];
        for (key, label) in [
            ("running_requests", "running"),
            ("waiting_requests", "waiting"),
        ] {
            if let Some(s) = gauge(key) {
                queue.push(series(
                    label,
                    s.samples.iter().map(|p| (p[0], p[1])).collect(),
                ));
            }
        }
        if !queue.is_empty() {
            out.push(named(
                "server-queue",
                Figure::Line(LineChart {
                    title: format!("Engine queue ({}'s /metrics)", sm.engine),
                    x_label: "time since the run started (s)".into(),
                    y_label: "requests".into(),
                    series: queue,
                    y_from_zero: true,
                    ..Default::default()
                }),
            ));
        }
        if let Some(s) = gauge("kv_cache_usage") {
            out.push(named(
                "kv-cache",
                Figure::Line(LineChart {
                    title: format!("KV-cache use ({}'s /metrics)", sm.engine),
                    x_label: "time since the run started (s)".into(),
                    y_label: "KV cache in use (%)".into(),
                    series: vec![series(
                        "",
                        s.samples.iter().map(|p| (p[0], p[1] * 100.0)).collect(),
                    )],
                    y_from_zero: true,
                    ..Default::default()
                }),
            ));
        }
    }
    let gpus: Vec<Series> = r
        .gpu
        .devices
        .iter()
        .filter(|d| !d.memory_used_bytes.samples.is_empty())
        .map(|d| {
            series(
                &format!("GPU {} {}", d.index, d.name),
                d.memory_used_bytes
                    .samples
                    .iter()
                    .map(|p| (p[0], p[1] / (1u64 << 30) as f64))
                    .collect(),
            )
        })
        .collect();
    if !gpus.is_empty() {
        out.push(named(
            "gpu-memory",
            Figure::Line(LineChart {
                title: "GPU memory in use".into(),
                x_label: "time since the run started (s)".into(),
                y_label: "memory used (GiB)".into(),
                series: gpus,
                y_from_zero: true,
                ..Default::default()
            }),
        ));
    }
    out
}

/// The swept variable of an experiment: its name and each point's value, when every point has
/// one numeric parameter that varies (the first such, when keys move together).
pub fn sweep_axis(s: &ExperimentSummary) -> Option<(String, Vec<f64>)> {
    let first = s.points.first()?;
    let keys: Vec<&String> = first.parameters.keys().collect();
    for key in keys {
        let values: Option<Vec<f64>> = s
            .points
            .iter()
            .map(|p| p.parameters.get(key).and_then(|v| v.as_f64()))
            .collect();
        if let Some(v) = values {
            let varies = v.iter().any(|x| *x != v[0]);
            if varies || s.points.len() == 1 {
                let together: Vec<&String> = first
                    .parameters
                    .iter()
                    .filter(|(k, val)| {
                        *k != key
                            && s.points
                                .iter()
                                .all(|p| p.parameters.get(*k) == p.parameters.get(key))
                            && val.is_number()
                    })
                    .map(|(k, _)| k)
                    .collect();
                let mut name = key.clone();
                for k in together {
                    name = format!("{name} = {k}");
                }
                return Some((name, v));
            }
        }
    }
    None
}

/// Classes present in an experiment's points, in first-seen order.
fn class_names(s: &ExperimentSummary) -> Vec<String> {
    let mut names: Vec<String> = vec![];
    for p in &s.points {
        for c in &p.classes {
            if !names.contains(&c.name) {
                names.push(c.name.clone());
            }
        }
    }
    names
}

/// One series per class of `f(class)` against the swept variable.
fn against(
    s: &ExperimentSummary,
    xs: &[f64],
    suffix: &str,
    f: impl Fn(&ClassSummary) -> Option<f64>,
) -> Vec<Series> {
    let several = class_names(s).len() > 1;
    class_names(s)
        .into_iter()
        .map(|name| Series {
            name: match (several, suffix.is_empty()) {
                (true, true) => name.clone(),
                (true, false) => format!("{name} {suffix}"),
                (false, _) => suffix.to_owned(),
            },
            points: s
                .points
                .iter()
                .zip(xs)
                .map(|(p, &x)| (x, p.class(&name).and_then(&f).unwrap_or(f64::NAN)))
                .collect(),
            markers: true,
            ..Default::default()
        })
        .collect()
}

fn geometric(xs: &[f64]) -> bool {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| *x > 0.0).collect();
    v.sort_by(f64::total_cmp);
    v.len() >= 3 && v.len() == xs.len() && v[v.len() - 1] / v[0] >= 16.0
}

/// Every chart of an experiment, by name.
pub fn experiment(s: &ExperimentSummary, reports: &[Report]) -> Vec<Named> {
    let mut out = vec![];
    if s.points.is_empty() {
        return out;
    }
    let (x_name, xs, x_is_index) = match sweep_axis(s) {
        Some((n, v)) => (n, v, false),
        None => (
            "run (in order)".to_owned(),
            (1..=s.points.len()).map(|i| i as f64).collect(),
            true,
        ),
    };
    let log_x = !x_is_index && geometric(&xs);
    let base = |title: &str, y: &str, series: Vec<Series>| LineChart {
        title: title.into(),
        x_label: x_name.clone(),
        y_label: y.into(),
        series,
        log_x,
        y_from_zero: true,
        ..Default::default()
    };
    out.push(named(
        "sweep-throughput",
        Figure::Line(base(
            "Output throughput",
            "output tokens/s",
            against(s, &xs, "", |c| Some(c.throughput.output_tokens_per_s)),
        )),
    ));
    out.push(named(
        "sweep-requests",
        Figure::Line(base(
            "Request throughput",
            "requests/s",
            against(s, &xs, "", |c| Some(c.throughput.requests_per_s)),
        )),
    ));
    let limits = |metric: &str| -> Vec<Rule> {
        let mut rules: Vec<Rule> = vec![];
        for r in reports {
            for (n, v) in slo_limits(r, metric) {
                if !rules.iter().any(|x| matches!(x, Rule::Y(m, _) if *m == n)) {
                    rules.push(Rule::Y(n, v));
                }
            }
        }
        rules
    };
    for (key, label, get) in [
        (
            "ttft",
            "TTFT",
            (|c: &ClassSummary| c.ttft_ms) as fn(&ClassSummary) -> strobe_metrics::Summary,
        ),
        ("tpot", "TPOT", |c: &ClassSummary| c.tpot_ms),
        ("e2e", "E2E latency", |c: &ClassSummary| c.e2e_ms),
    ] {
        let mut series = against(s, &xs, "p50", |c| (get(c).count > 0).then(|| get(c).p50));
        series.extend(against(s, &xs, "p99", |c| {
            (get(c).count > 0).then(|| get(c).p99)
        }));
        if series
            .iter()
            .any(|s| s.points.iter().any(|p| p.1.is_finite()))
        {
            let mut chart = base(
                &format!("{label} (p50 and p99)"),
                &format!("{label} (ms)"),
                series,
            );
            chart.rules = limits(key);
            out.push(named(&format!("sweep-{key}"), Figure::Line(chart)));
        }
    }
    if s.points
        .iter()
        .any(|p| p.classes.iter().any(|c| c.batch_latency_ms.is_some()))
    {
        out.push(named(
            "sweep-batch-latency",
            Figure::Line(base(
                "Batch latency (slowest member), mean",
                "batch latency (ms)",
                against(s, &xs, "", |c| c.batch_latency_ms.map(|b| b.mean)),
            )),
        ));
    }
    if s.points
        .iter()
        .any(|p| p.classes.iter().any(|c| c.cost.is_some()))
    {
        out.push(named(
            "sweep-cost",
            Figure::Line(base(
                "Cost per million output tokens",
                "USD per million output tokens",
                against(s, &xs, "", |c| {
                    c.cost.as_ref()?.usd_per_million_output_tokens
                }),
            )),
        ));
    }
    // Throughput per GPU against each user's decode speed: the serving trade-off curve.
    let gpus = |c: &ClassSummary| c.cost.as_ref().map_or(1, |k| k.gpus.max(1)) as f64;
    let point_label = |i: usize, label: &str| {
        if x_is_index {
            label.to_owned()
        } else {
            format!(" {}", crate::charts::tick(xs[i]))
        }
    };
    let curve: Vec<Series> = class_names(s)
        .into_iter()
        .map(|name| {
            let (mut pts, mut labels) = (vec![], vec![]);
            for (i, p) in s.points.iter().enumerate() {
                if let Some(c) = p
                    .class(&name)
                    .filter(|c| c.tpot_ms.count > 0 && c.tpot_ms.mean > 0.0)
                {
                    pts.push((
                        1000.0 / c.tpot_ms.mean,
                        c.throughput.output_tokens_per_s / gpus(c),
                    ));
                    labels.push(point_label(i, &p.label));
                }
            }
            Series {
                name: name.clone(),
                points: pts,
                markers: true,
                point_labels: labels,
            }
        })
        .filter(|s| s.points.len() >= 2)
        .collect();
    if !curve.is_empty() {
        out.push(named(
            "throughput-per-gpu-vs-per-user",
            Figure::Line(LineChart {
                title: if x_is_index {
                    "Throughput per GPU against speed per user".into()
                } else {
                    format!("Throughput per GPU against speed per user (points: {x_name})")
                },
                x_label: "output tokens/s per user (1000 / mean TPOT)".into(),
                y_label: "output tokens/s per GPU".into(),
                series: curve,
                y_from_zero: true,
                x_from_zero: true,
                ..Default::default()
            }),
        ));
    }
    // Seed 000: interactive latency with the batch beside it, against alone.
    for (i, c) in s
        .comparisons
        .iter()
        .filter(|c| c.row("ttft_ms.p95").is_some())
        .enumerate()
    {
        let stats = [
            "ttft_ms.p50",
            "ttft_ms.p95",
            "ttft_ms.p99",
            "e2e_ms.p50",
            "e2e_ms.p95",
            "e2e_ms.p99",
        ];
        let rows: Vec<_> = stats.iter().filter_map(|m| c.row(m)).collect();
        out.push(named(
            &format!("interference-{}", i + 1),
            Figure::Grouped(GroupedBars {
                title: format!("`{}` latency: {} against {}", c.class, c.label, c.baseline),
                y_label: "latency (ms)".into(),
                categories: rows
                    .iter()
                    .map(|r| r.metric.replace("_ms.", " ").to_uppercase())
                    .collect(),
                series: vec![
                    (
                        format!("{} (baseline)", c.baseline),
                        rows.iter().map(|r| r.baseline).collect(),
                    ),
                    (c.label.clone(), rows.iter().map(|r| r.value).collect()),
                ],
            }),
        ));
    }
    if let Some(search) = &s.search {
        let pass: Vec<(f64, f64)> = search
            .probes
            .iter()
            .enumerate()
            .map(|(i, p)| ((i + 1) as f64, if p.pass { p.value } else { f64::NAN }))
            .collect();
        let fail: Vec<(f64, f64)> = search
            .probes
            .iter()
            .enumerate()
            .map(|(i, p)| ((i + 1) as f64, if p.pass { f64::NAN } else { p.value }))
            .collect();
        let mut chart = LineChart {
            title: format!("Capacity search: probes ({})", search.outcome),
            x_label: "probe".into(),
            y_label: if search.variable == "rate" {
                "request rate (requests/s)".into()
            } else {
                "concurrency".into()
            },
            series: vec![
                Series {
                    name: "met the SLOs".into(),
                    points: pass,
                    markers: true,
                    ..Default::default()
                },
                Series {
                    name: "missed".into(),
                    points: fail,
                    markers: true,
                    ..Default::default()
                },
            ],
            y_from_zero: true,
            ..Default::default()
        };
        if let Some(a) = search.answer {
            chart
                .rules
                .push(Rule::Y(format!("answer {}", crate::charts::tick(a)), a));
        }
        out.push(named("search-probes", Figure::Line(chart)));
    }
    // Each point's TTFT distribution, overlaid (the first class of each run).
    let cdfs: Vec<Series> = reports
        .iter()
        .filter_map(|r| {
            let c = r.classes.first()?;
            let d = &c.state.ttft_ns;
            (d.count() > 0).then(|| {
                series(
                    r.run.label.as_deref().unwrap_or("run"),
                    cdf_quantiles()
                        .into_iter()
                        .map(|q| (d.quantile(q) as f64 / 1e6, q * 100.0))
                        .collect(),
                )
            })
        })
        .collect();
    if cdfs.len() > 1 && cdfs.len() <= 12 {
        let spread = cdfs
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .filter(|x| *x > 0.0)
            .fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
        out.push(named(
            "ttft-cdf-by-point",
            Figure::Line(LineChart {
                title: "TTFT distribution at each point".into(),
                x_label: "TTFT (ms)".into(),
                y_label: "requests at or below (%)".into(),
                series: cdfs,
                log_x: spread.1 / spread.0.max(1e-9) > 30.0,
                y_from_zero: true,
                ..Default::default()
            }),
        ));
    }
    out
}
