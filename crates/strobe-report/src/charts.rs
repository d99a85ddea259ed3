//! Charts as SVG, drawn with `plotters`: line charts (several series, reference lines, log axes)
//! and bar charts. Every chart names its axes with units. The HTML report inlines them; `strobe
//! plot` writes them as files, and [`crate::raster`] turns them into PNG.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Colours for series, in order (Tableau 10: distinct, and readable by most colour-blind readers).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0x9c, 0x75, 0x5f),
];
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);
const FONT: &str = "sans-serif";

/// One line of a chart; points with a non-finite coordinate break the line.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Draw a marker at each point (sweeps: each point is a run).
    pub markers: bool,
    /// Label each point (a Pareto curve's run labels).
    pub point_labels: Vec<String>,
}

/// A reference line across the plot: a horizontal one at `y` (an SLO limit), or a vertical one
/// at `x` (the start of the measured window).
#[derive(Clone, Debug)]
pub enum Rule {
    Y(String, f64),
    X(String, f64),
}

#[derive(Clone, Debug, Default)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub rules: Vec<Rule>,
    pub log_x: bool,
    pub log_y: bool,
    /// Start the y axis at 0 (rates, counts), rather than at the data's least value.
    pub y_from_zero: bool,
    /// Start the x axis at 0.
    pub x_from_zero: bool,
}

/// Bars over numeric intervals (a histogram), one colour per series, drawn side by side.
#[derive(Clone, Debug, Default)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// The intervals' edges (`n + 1` of them).
    pub edges: Vec<f64>,
    /// Per series: name and `n` heights.
    pub series: Vec<(String, Vec<f64>)>,
}

/// Bars over named categories (e.g. a latency statistic with and without the batch).
#[derive(Clone, Debug, Default)]
pub struct GroupedBars {
    pub title: String,
    pub y_label: String,
    pub categories: Vec<String>,
    /// Per series: name and one height per category.
    pub series: Vec<(String, Vec<f64>)>,
}

pub const WIDTH: u32 = 640;
pub const HEIGHT: u32 = 380;

fn finite(p: &(f64, f64)) -> bool {
    p.0.is_finite() && p.1.is_finite()
}

/// Axis range around `lo..hi` with a little room; positive for a log axis.
fn padded(lo: f64, hi: f64, log: bool, from_zero: bool) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        let lo = lo.max(1e-9);
        let hi = hi.max(lo * 1.0001);
        return (lo / 1.15, hi * 1.15);
    }
    let lo = if from_zero { lo.min(0.0) } else { lo };
    if hi <= lo {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    let d = (hi - lo) * 0.06;
    (if from_zero && lo >= 0.0 { 0.0 } else { lo - d }, hi + d)
}

/// A tick label on an axis spanning `span`: enough decimals to tell neighbouring ticks apart
/// (9.995, 10, 10.005 on a narrow axis), else [`tick`].
pub fn tick_on(v: f64, span: f64) -> String {
    let step = span / 8.0;
    if step.is_finite() && step > 0.0 && step < 1.0 && v.abs() < 1e4 {
        let decimals = (-step.log10()).ceil().clamp(0.0, 6.0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            return s.trim_end_matches('0').trim_end_matches('.').to_owned();
        }
        return s;
    }
    tick(v)
}

/// A tick label that is short and exact enough: 0.25, 12.5, 1500, 12k, 1.2M.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        let m = format!("{:.3}", v / 1e6);
        format!("{}M", m.trim_end_matches('0').trim_end_matches('.'))
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3).replace(".0k", "k")
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn frame<'a>(
    svg: &'a mut String,
    title: &str,
) -> Result<DrawingArea<SVGBackend<'a>, Shift>, String> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let style = TextStyle::from((FONT, 19).into_font())
        .color(&INK)
        .pos(Pos::new(HPos::Left, VPos::Top));
    root.draw(&Text::new(escape(title), (14, 10), style))
        .map_err(|e| e.to_string())?;
    Ok(root.margin(36, 10, 10, 18))
}

fn label_style() -> TextStyle<'static> {
    TextStyle::from((FONT, 15).into_font()).color(&INK)
}

/// An SVG document from `draw`, or one that says why the chart could not be drawn.
fn document(title: &str, draw: impl FnOnce(&mut String) -> Result<(), String>) -> String {
    let mut svg = String::new();
    match draw(&mut svg) {
        Ok(()) => svg,
        Err(e) => error_svg(title, &e),
    }
}

/// Draws a line chart as an SVG document.
pub fn line(chart: &LineChart) -> String {
    document(&chart.title, |svg| draw_line(svg, chart))
}

fn draw_line(svg: &mut String, c: &LineChart) -> Result<(), String> {
    let pts = || {
        c.series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| finite(p))
            .filter(|p| (!c.log_x || p.0 > 0.0) && (!c.log_y || p.1 > 0.0))
    };
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in pts() {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    for r in &c.rules {
        match r {
            Rule::Y(_, y) if y.is_finite() => (y0, y1) = (y0.min(*y), y1.max(*y)),
            Rule::X(_, x) if x.is_finite() => (x0, x1) = (x0.min(*x), x1.max(*x)),
            _ => {}
        }
    }
    let (xa, xb) = padded(x0, x1, c.log_x, c.x_from_zero);
    let (ya, yb) = padded(y0, y1, c.log_y, c.y_from_zero);
    let area = frame(svg, &c.title)?;
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    // Four axis combinations, one body.
    macro_rules! body {
        ($chart:expr) => {{
            let mut ch = $chart;
            ch.configure_mesh()
                .light_line_style(WHITE)
                .bold_line_style(GRID)
                .axis_style(INK)
                .x_desc(c.x_label.as_str())
                .y_desc(c.y_label.as_str())
                .label_style(label_style())
                .axis_desc_style(label_style())
                .x_labels(8)
                .y_labels(7)
                .x_label_formatter(&|v: &f64| {
                    if c.log_x {
                        tick(*v)
                    } else {
                        tick_on(*v, xb - xa)
                    }
                })
                .y_label_formatter(&|v: &f64| {
                    if c.log_y {
                        tick(*v)
                    } else {
                        tick_on(*v, yb - ya)
                    }
                })
                .draw()
                .map_err(e)?;
            for (i, s) in c.series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let mut runs: Vec<Vec<(f64, f64)>> = vec![vec![]];
                for p in &s.points {
                    let ok = finite(p) && (!c.log_x || p.0 > 0.0) && (!c.log_y || p.1 > 0.0);
                    if ok {
                        runs.last_mut().unwrap().push(*p);
                    } else if !runs.last().unwrap().is_empty() {
                        runs.push(vec![]);
                    }
                }
                let mut first = true;
                for run in runs.into_iter().filter(|r| !r.is_empty()) {
                    let drawn = ch
                        .draw_series(LineSeries::new(run.clone(), color.stroke_width(2)))
                        .map_err(e)?;
                    if first && !s.name.is_empty() {
                        drawn.label(s.name.clone()).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                        });
                        first = false;
                    }
                    if s.markers {
                        ch.draw_series(run.iter().map(|&p| Circle::new(p, 3, color.filled())))
                            .map_err(e)?;
                    }
                }
                for (p, l) in s.points.iter().zip(&s.point_labels) {
                    if finite(p) {
                        ch.draw_series(std::iter::once(Text::new(
                            escape(l),
                            *p,
                            TextStyle::from((FONT, 13).into_font()).color(&INK),
                        )))
                        .map_err(e)?;
                    }
                }
            }
            for r in &c.rules {
                let (name, path) = match r {
                    Rule::Y(n, y) => (n, vec![(xa, *y), (xb, *y)]),
                    Rule::X(n, x) => (n, vec![(*x, ya), (*x, yb)]),
                };
                let style = RGBColor(0x88, 0x88, 0x88).stroke_width(1);
                ch.draw_series(std::iter::once(DashedPathElement::new(
                    path.clone(),
                    6,
                    4,
                    style,
                )))
                .map_err(e)?;
                if !name.is_empty() {
                    let at = match r {
                        Rule::Y(_, y) => (xa, *y),
                        Rule::X(_, x) => (*x, yb),
                    };
                    ch.draw_series(std::iter::once(Text::new(
                        format!(" {}", escape(name)),
                        at,
                        TextStyle::from((FONT, 13).into_font())
                            .color(&RGBColor(0x55, 0x55, 0x55))
                            .pos(Pos::new(HPos::Left, VPos::Bottom)),
                    )))
                    .map_err(e)?;
                }
            }
            if c.series.iter().filter(|s| !s.name.is_empty()).count() > 1 {
                ch.configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(GRID)
                    .label_font(label_style())
                    .position(SeriesLabelPosition::UpperLeft)
                    .draw()
                    .map_err(e)?;
            }
        }};
    }
    // On a log x axis (a geometric sweep), ticks at the points' own values when they are few.
    let mut key_x: Vec<f64> = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    key_x.sort_by(f64::total_cmp);
    key_x.dedup();
    if key_x.len() > 12 {
        key_x.clear();
    }
    let mut b = ChartBuilder::on(&area);
    b.x_label_area_size(42).y_label_area_size(62);
    match (c.log_x, c.log_y) {
        (false, false) => body!(b.build_cartesian_2d(xa..xb, ya..yb).map_err(e)?),
        (true, false) if !key_x.is_empty() => body!(b
            .build_cartesian_2d((xa..xb).log_scale().with_key_points(key_x), ya..yb)
            .map_err(e)?),
        (true, false) => body!(b
            .build_cartesian_2d((xa..xb).log_scale(), ya..yb)
            .map_err(e)?),
        (false, true) => body!(b
            .build_cartesian_2d(xa..xb, (ya..yb).log_scale())
            .map_err(e)?),
        (true, true) => body!(b
            .build_cartesian_2d((xa..xb).log_scale(), (ya..yb).log_scale())
            .map_err(e)?),
    }
    area.present().map_err(e)?;
    Ok(())
}

/// Draws a histogram as an SVG document.
pub fn bars(chart: &BarChart) -> String {
    document(&chart.title, |svg| draw_bars(svg, chart))
}

fn draw_bars(svg: &mut String, c: &BarChart) -> Result<(), String> {
    let n = c.edges.len().saturating_sub(1);
    let top = c
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let (xa, xb) = match (c.edges.first(), c.edges.last()) {
        (Some(a), Some(b)) if b > a => (*a, *b),
        _ => (0.0, 1.0),
    };
    let area = frame(svg, &c.title)?;
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut ch = ChartBuilder::on(&area)
        .x_label_area_size(42)
        .y_label_area_size(62)
        .build_cartesian_2d(xa..xb, 0.0..(top * 1.08).max(1.0))
        .map_err(e)?;
    ch.configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .axis_style(INK)
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .label_style(label_style())
        .axis_desc_style(label_style())
        .x_labels(8)
        .x_label_formatter(&|v: &f64| tick_on(*v, xb - xa))
        .y_label_formatter(&|v: &f64| tick(*v))
        .draw()
        .map_err(e)?;
    let k = c.series.len().max(1) as f64;
    for (si, (name, heights)) in c.series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let rects = (0..n).filter_map(|i| {
            let h = *heights.get(i)?;
            let (lo, hi) = (c.edges[i], c.edges[i + 1]);
            let w = (hi - lo) / k;
            let x = lo + w * si as f64;
            (h > 0.0)
                .then(|| Rectangle::new([(x, 0.0), (x + w * 0.92, h)], color.mix(0.85).filled()))
        });
        let drawn = ch.draw_series(rects).map_err(e)?;
        if !name.is_empty() {
            drawn.label(name.clone()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
            });
        }
    }
    if c.series.len() > 1 {
        ch.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(GRID)
            .label_font(label_style())
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(e)?;
    }
    area.present().map_err(e)?;
    Ok(())
}

/// Draws bars over categories as an SVG document.
pub fn grouped(chart: &GroupedBars) -> String {
    document(&chart.title, |svg| draw_grouped(svg, chart))
}

fn draw_grouped(svg: &mut String, c: &GroupedBars) -> Result<(), String> {
    let n = c.categories.len();
    let top = c
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let area = frame(svg, &c.title)?;
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut ch = ChartBuilder::on(&area)
        .x_label_area_size(42)
        .y_label_area_size(62)
        .build_cartesian_2d(0.0..n.max(1) as f64, 0.0..(top * 1.12).max(1.0))
        .map_err(e)?;
    let cats = c.categories.clone();
    ch.configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .axis_style(INK)
        .y_desc(c.y_label.as_str())
        .label_style(label_style())
        .axis_desc_style(label_style())
        .x_labels(n * 2 + 1)
        .x_label_formatter(&move |v: &f64| {
            let i = (*v - 0.5).round();
            if (v - 0.5 - i).abs() < 0.01 && i >= 0.0 {
                cats.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v: &f64| tick(*v))
        .draw()
        .map_err(e)?;
    let k = c.series.len().max(1) as f64;
    for (si, (name, heights)) in c.series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let w = 0.8 / k;
        let rects = heights
            .iter()
            .enumerate()
            .take(n)
            .filter(|(_, h)| h.is_finite())
            .map(|(i, &h)| {
                let x = i as f64 + 0.1 + w * si as f64;
                Rectangle::new([(x, 0.0), (x + w * 0.94, h)], color.filled())
            });
        let drawn = ch.draw_series(rects).map_err(e)?;
        if !name.is_empty() {
            drawn.label(name.clone()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
            });
        }
        ch.draw_series(
            heights
                .iter()
                .enumerate()
                .take(n)
                .filter(|(_, h)| h.is_finite())
                .map(|(i, &h)| {
                    let x = i as f64 + 0.1 + w * (si as f64 + 0.5);
                    Text::new(
                        tick(h),
                        (x, h),
                        TextStyle::from((FONT, 13).into_font())
                            .color(&INK)
                            .pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )
                }),
        )
        .map_err(e)?;
    }
    ch.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(GRID)
        .label_font(label_style())
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(e)?;
    area.present().map_err(e)?;
    Ok(())
}

/// A chart that could not be drawn says so, in the chart's place.
fn error_svg(title: &str, error: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"80\"><text x=\"10\" y=\"30\" font-family=\"sans-serif\" font-size=\"14\">{}: cannot draw this chart ({})</text></svg>",
        escape(title),
        escape(error)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(12.5), "12.5");
        assert_eq!(tick(1500.0), "1500");
        assert_eq!(tick(12000.0), "12k");
        assert_eq!(tick(1_250_000.0), "1.25M");
        assert_eq!(tick(3.0), "3");
        // A narrow axis keeps its ticks apart.
        assert_eq!(tick_on(10.005, 0.03), "10.005");
        assert_eq!(tick_on(1320.5, 3.0), "1320.5");
        assert_eq!(tick_on(40.0, 100.0), "40");
    }

    #[test]
    fn a_line_chart_has_its_title_axes_series_and_rules() {
        let svg = line(&LineChart {
            title: "TTFT over time".into(),
            x_label: "time (s)".into(),
            y_label: "TTFT (ms)".into(),
            series: vec![
                Series {
                    name: "interactive".into(),
                    points: vec![(0.0, 10.0), (1.0, 12.0), (f64::NAN, 1.0), (3.0, 30.0)],
                    ..Default::default()
                },
                Series {
                    name: "batch".into(),
                    points: vec![(0.0, 100.0), (3.0, 90.0)],
                    markers: true,
                    ..Default::default()
                },
            ],
            rules: vec![Rule::Y("SLO 50 ms".into(), 50.0)],
            ..Default::default()
        });
        for needle in [
            "TTFT over time",
            "time (s)",
            "TTFT (ms)",
            "interactive",
            "batch",
            "SLO 50 ms",
        ] {
            assert!(svg.contains(needle), "{needle} missing");
        }
        // The NaN point breaks the first line in two; each series also has its legend line.
        let lines = |color: &str| {
            svg.lines()
                .filter(|l| l.starts_with("<polyline") && l.contains(color))
                .count()
        };
        assert_eq!(lines("#4E79A7"), 2 + 1, "{svg}");
        assert_eq!(lines("#F28E2B"), 1 + 1, "{svg}");
    }

    #[test]
    fn log_axes_leave_out_non_positive_points_instead_of_failing() {
        let svg = line(&LineChart {
            title: "t".into(),
            series: vec![Series {
                name: "s".into(),
                points: vec![(0.0, 1.0), (1.0, 2.0), (10.0, 3.0)],
                ..Default::default()
            }],
            log_x: true,
            ..Default::default()
        });
        assert!(!svg.contains("cannot draw"), "{svg}");
    }
}
