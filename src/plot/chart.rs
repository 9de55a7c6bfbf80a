//! Line charts against NFE: what `pfode plot` draws for each metric.
//!
//! Both axes are drawn in transformed coordinates (log₁₀ NFE across; log₁₀, symlog or
//! linear up), with tick positions chosen here and labelled in the data's own units, so
//! every tick carries a label. The legend sits in its own column beside the data; with many
//! lines the figure splits into one panel per solver family. Points beyond a capped axis are
//! drawn as triangles on its edge; a metric's floor is a labelled dashed line; slope guides
//! carry their order; seeds' spread is an error bar of ± one standard deviation.

use crate::solver::Family;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::ops::Range;

/// A linear axis over transformed coordinates with the tick positions chosen here (plotters'
/// own key-point wrapper loses the label formatter).
struct Ticked {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let f = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// One point of a line: NFE, the mean over seeds, and their standard deviation (0 for one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub sd: f64,
}

/// A labelled line; `family` places it in a panel when the figure has several.
#[derive(Clone, Debug)]
pub struct Line {
    pub label: String,
    pub family: Option<Family>,
    pub points: Vec<Point>,
}

/// The y axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    Log,
    Linear,
    /// Linear within ±c, logarithmic beyond: values of either sign spanning decades.
    Symlog(f64),
}

impl Scale {
    fn to_axis(self, y: f64) -> f64 {
        match self {
            Scale::Log => y.log10(),
            Scale::Linear => y,
            Scale::Symlog(c) => y.signum() * (1.0 + y.abs() / c).log10(),
        }
    }

    fn data_at(self, v: f64) -> f64 {
        match self {
            Scale::Log => 10f64.powf(v),
            Scale::Linear => v,
            Scale::Symlog(c) => v.signum() * c * (10f64.powf(v.abs()) - 1.0),
        }
    }

    /// True if `y` can be drawn on this axis.
    fn holds(self, y: f64) -> bool {
        y.is_finite() && (y > 0.0 || self != Scale::Log)
    }
}

/// A horizontal reference line with its label (e.g. what exact samples score).
#[derive(Clone, Debug)]
pub struct Floor {
    pub y: f64,
    pub label: String,
}

/// One figure: a title, the y axis, lines and their decorations.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    pub scale: Scale,
    /// Dashed guides of orders 1–4, each labelled.
    pub slopes: bool,
    /// Cap the y axis at this multiple of the median (blown-up runs would flatten the rest).
    pub cap: Option<f64>,
    pub floor: Option<Floor>,
}

/// Line colours: twelve that stay apart on white (no yellow), then the same again dashed.
const COLORS: [(u8, u8, u8); 12] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (23, 190, 207),
    (140, 86, 75),
    (227, 119, 194),
    (80, 80, 80),
    (188, 189, 34),
    (0, 0, 128),
    (128, 0, 0),
];

/// The colour of line `i`.
fn color(i: usize) -> RGBAColor {
    let (r, g, b) = COLORS[i % COLORS.len()];
    RGBColor(r, g, b).to_rgba()
}

/// Line `i`'s marker: shapes cycle so that coinciding lines (DDIM η = 1 and DDPM) stay
/// visible as two.
fn marker<DB: DrawingBackend, C: Into<ShapeStyle> + Copy>(
    plot: &mut ChartContext<DB, Cartesian2d<Ticked, Ticked>>,
    i: usize,
    at: (f64, f64),
    style: C,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let style: ShapeStyle = style.into();
    let r = match i % 4 {
        0 => plot.draw_series(std::iter::once(Circle::new(at, 4, style.filled()))),
        1 => plot.draw_series(std::iter::once(Cross::new(at, 5, style.stroke_width(2)))),
        2 => plot.draw_series(std::iter::once(Circle::new(at, 5, style.stroke_width(2)))),
        _ => plot.draw_series(std::iter::once(TriangleMarker::new(
            at,
            5,
            style.stroke_width(2),
        ))),
    };
    r.map(|_| ()).map_err(|e| e.to_string())
}

/// The stroke of line `i`: solid for the first twelve, dashed for the next.
fn dashed(i: usize) -> bool {
    i >= COLORS.len()
}

/// More lines than this, from more than one family, split the figure into panels.
pub const MAX_LINES_PER_PANEL: usize = 8;
/// Width of the legend column, in pixels.
const LEGEND_WIDTH: u32 = 330;

/// The figure's size in pixels: wider and taller when it splits into panels.
pub fn size(chart: &Chart) -> (u32, u32) {
    match panels(chart).len() {
        1 => (1160, 680),
        n => (1900, 80 + 520 * n.div_ceil(2) as u32),
    }
}

/// The lines of each panel: one panel, or one per family in family order.
fn panels(chart: &Chart) -> Vec<(Option<Family>, Vec<usize>)> {
    let mut families: Vec<Family> = chart.lines.iter().filter_map(|l| l.family).collect();
    families.sort_by_key(|f| f.as_str());
    families.dedup();
    let order = [
        Family::RungeKutta,
        Family::Exponential,
        Family::Multistep,
        Family::Stochastic,
    ];
    if chart.lines.len() <= MAX_LINES_PER_PANEL || families.len() < 2 {
        return vec![(None, (0..chart.lines.len()).collect())];
    }
    let mut out: Vec<(Option<Family>, Vec<usize>)> = order
        .iter()
        .map(|&f| {
            let idx = (0..chart.lines.len())
                .filter(|&i| chart.lines[i].family == Some(f))
                .collect();
            (Some(f), idx)
        })
        .filter(|(_, idx): &(_, Vec<usize>)| !idx.is_empty())
        .collect();
    let rest: Vec<usize> = (0..chart.lines.len())
        .filter(|&i| chart.lines[i].family.is_none())
        .collect();
    if !rest.is_empty() {
        out.push((None, rest));
    }
    out
}

/// The axes' extent in transformed coordinates, shared by every panel so they compare.
#[derive(Clone, Copy, Debug)]
struct Extent {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    /// The cap, in data units, where some point lies beyond it.
    capped: Option<f64>,
}

fn extent(chart: &Chart) -> Result<Extent, String> {
    let pts: Vec<Point> = chart
        .lines
        .iter()
        .flat_map(|l| l.points.iter().copied())
        .filter(|p| p.x > 0.0 && chart.scale.holds(p.y))
        .collect();
    if pts.is_empty() {
        return Err(
            "no plottable points: no finite value this axis can show (a log axis \
                    needs values above 0)"
                .into(),
        );
    }
    let xs = pts.iter().map(|p| p.x.log10());
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let mut ys: Vec<f64> = pts.iter().map(|p| p.y).collect();
    ys.sort_by(f64::total_cmp);
    let (mut lo, mut hi) = (ys[0], ys[ys.len() - 1]);
    let mut capped = None;
    if let Some(k) = chart.cap {
        let cap = k * ys[ys.len() / 2].abs();
        if hi > cap && cap > lo {
            hi = cap;
            capped = Some(cap);
        }
    }
    if let Some(f) = &chart.floor {
        if chart.scale.holds(f.y) {
            lo = lo.min(f.y);
            hi = hi.max(f.y);
        }
    }
    // Error bars widen the range on a linear axis; on log axes they are cut at the edges.
    if chart.scale != Scale::Log {
        for p in &pts {
            lo = lo.min(p.y - p.sd);
            hi = hi.max((p.y + p.sd).min(capped.unwrap_or(f64::INFINITY)));
        }
    }
    let (mut y0, mut y1) = (chart.scale.to_axis(lo), chart.scale.to_axis(hi));
    if y1 - y0 < 1e-12 {
        let pad = if chart.scale == Scale::Log {
            0.3
        } else {
            0.5 * y0.abs().max(1e-3)
        };
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let pad = 0.06 * (y1 - y0);
    let (x0, x1) = if x1 - x0 < 1e-12 {
        (x0 - 0.3, x1 + 0.3)
    } else {
        let p = 0.04 * (x1 - x0);
        (x0 - p, x1 + p)
    };
    Ok(Extent {
        x0,
        x1,
        y0: y0 - pad,
        y1: y1 + pad,
        capped,
    })
}

/// Short labels: plain decimals within [0.01, 10⁴), else `2e-5`.
pub fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-2..1e4).contains(&a) {
        let s = format!("{v:.3}");
        return s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    let exp = a.log10().floor();
    let mantissa = (v / 10f64.powf(exp) * 10.0).round() / 10.0;
    format!("{mantissa}e{exp}")
}

/// Tick positions along x (log₁₀ NFE): the NFE values the data has when they are few,
/// else 1, 2 and 5 × 10ᵏ.
fn x_ticks(chart: &Chart, e: &Extent) -> Vec<f64> {
    let mut nfe: Vec<f64> = chart
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.x))
        .filter(|x| *x > 0.0)
        .collect();
    nfe.sort_by(f64::total_cmp);
    nfe.dedup();
    if nfe.len() <= 12 {
        return nfe.iter().map(|x| x.log10()).collect();
    }
    nice_log_ticks(e.x0, e.x1, &[1.0, 2.0, 5.0])
}

/// Positions (log₁₀) of m × 10ᵏ within [a, b] (log₁₀ units), for mantissas `ms`.
fn nice_log_ticks(a: f64, b: f64, ms: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    for k in (a.floor() as i32 - 1)..=(b.ceil() as i32) {
        for m in ms {
            let v = (m * 10f64.powi(k)).log10();
            if v >= a && v <= b {
                out.push(v);
            }
        }
    }
    out
}

/// Tick positions along y, in axis units, with their labels: decades (and 2, 5 between them
/// when the axis spans few) on log axes, 1-2-5 steps on linear ones, 0 and ±c·10ᵏ on symlog.
fn y_ticks(scale: Scale, e: &Extent) -> Vec<f64> {
    match scale {
        Scale::Log => {
            let decades = e.y1 - e.y0;
            let ms: &[f64] = if decades > 6.0 {
                &[1.0]
            } else if decades > 2.5 {
                &[1.0, 3.0]
            } else if decades > 1.0 {
                &[1.0, 2.0, 5.0]
            } else {
                &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]
            };
            let mut t = nice_log_ticks(e.y0, e.y1, ms);
            if decades > 10.0 {
                // Every other decade, so the labels never collide.
                t.retain(|v| (v.round() as i64) % 2 == 0);
            }
            t
        }
        Scale::Linear => {
            let span = e.y1 - e.y0;
            let raw = span / 6.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| *s >= raw)
                .unwrap_or(10.0 * mag);
            let first = (e.y0 / step).ceil() as i64;
            let last = (e.y1 / step).floor() as i64;
            (first..=last).map(|k| k as f64 * step).collect()
        }
        Scale::Symlog(c) => {
            // Over few decades, 2 and 5 between the powers of ten too.
            let ms: &[f64] = if e.y1 - e.y0 < 4.0 {
                &[1.0, 2.0, 5.0]
            } else {
                &[1.0]
            };
            let mut t = vec![0.0];
            for k in 0..12 {
                for (sign, m) in [1.0, -1.0]
                    .iter()
                    .flat_map(|s| ms.iter().map(move |m| (*s, *m)))
                {
                    let v = scale.to_axis(sign * m * c * 10f64.powi(k));
                    if v >= e.y0 && v <= e.y1 {
                        t.push(v);
                    }
                }
            }
            t.retain(|v| *v >= e.y0 && *v <= e.y1);
            t.sort_by(f64::total_cmp);
            t
        }
    }
}

/// Draws `chart` on `root`.
pub fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = extent(chart)?;
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let groups = panels(chart);
    let body = root
        .titled(&chart.title, ("sans-serif", 22))
        .map_err(|e| e.to_string())?;
    if groups.len() == 1 {
        return panel(&body, chart, &e, None, &groups[0].1).and_then(|_| present(&root));
    }
    let areas = body.split_evenly((groups.len().div_ceil(2), 2));
    for (area, (family, lines)) in areas.iter().zip(&groups) {
        let heading = family.map_or("other", |f| f.title());
        panel(area, chart, &e, Some(heading), lines)?;
    }
    present(&root)
}

fn present<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.present().map_err(|e| e.to_string())
}

/// One panel: the data on the left, its legend in a column on the right.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
    e: &Extent,
    heading: Option<&str>,
    lines: &[usize],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let width = area.dim_in_pixel().0;
    let (data_area, legend_area) = area.split_horizontally(width.saturating_sub(LEGEND_WIDTH));
    let mut builder = ChartBuilder::on(&data_area);
    builder
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75);
    if let Some(h) = heading {
        builder.caption(h, ("sans-serif", 18));
    }
    let xt = x_ticks(chart, e);
    let yt = y_ticks(chart.scale, e);
    let mut plot = builder
        .build_cartesian_2d(
            Ticked {
                lo: e.x0,
                hi: e.x1,
                ticks: xt,
            },
            Ticked {
                lo: e.y0,
                hi: e.y1,
                ticks: yt,
            },
        )
        .map_err(|e| e.to_string())?;
    let scale = chart.scale;
    plot.configure_mesh()
        .x_desc("NFE")
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&|v| tick_label(10f64.powf(*v)))
        .y_label_formatter(&|v| tick_label(round_tick(scale.data_at(*v))))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(|e| e.to_string())?;
    let grey = BLACK.mix(0.45);
    if chart.slopes {
        // Through the top-left corner of the data, one per order, labelled where it leaves.
        let (left, top) = (e.x0, e.y1 - 0.06 * (e.y1 - e.y0) / 1.12);
        for p in 1..=4 {
            let p = p as f64;
            let end_x = e.x1.min(left + (top - e.y0) / p);
            let pts = vec![(left, top), (end_x, top - p * (end_x - left))];
            let style = ShapeStyle::from(&grey).stroke_width(1);
            plot.draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style))
                .map_err(|e| e.to_string())?;
            let at = pts[1];
            plot.draw_series(std::iter::once(Text::new(
                format!("order {p}"),
                (at.0 - 0.02 * (e.x1 - e.x0), at.1 + 0.02 * (e.y1 - e.y0)),
                ("sans-serif", 12).into_font().color(&grey),
            )))
            .map_err(|e| e.to_string())?;
        }
    }
    if let Some(f) = chart.floor.as_ref().filter(|f| scale.holds(f.y)) {
        let y = scale.to_axis(f.y);
        let style = ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(2);
        plot.draw_series(DashedLineSeries::new(
            vec![(e.x0, y), (e.x1, y)],
            10,
            5,
            style,
        ))
        .map_err(|e| e.to_string())?;
        plot.draw_series(std::iter::once(Text::new(
            f.label.clone(),
            (e.x0 + 0.01 * (e.x1 - e.x0), y + 0.015 * (e.y1 - e.y0)),
            ("sans-serif", 13).into_font().color(&RGBColor(60, 60, 60)),
        )))
        .map_err(|e| e.to_string())?;
    }
    let top = e.capped.map(|c| scale.to_axis(c));
    // Colours and markers count within the panel, so each panel's lines stay apart.
    for (j, &i) in lines.iter().enumerate() {
        let line = &chart.lines[i];
        let color = color(j);
        let pts: Vec<Point> = line
            .points
            .iter()
            .copied()
            .filter(|p| p.x > 0.0 && scale.holds(p.y))
            .collect();
        // Beyond the cap a point sits on the edge, as a triangle.
        let at = |p: &Point| {
            let y = scale.to_axis(p.y);
            (p.x.log10(), top.map_or(y, |t| y.min(t)))
        };
        let stroke = ShapeStyle::from(&color).stroke_width(2);
        if dashed(j) {
            plot.draw_series(DashedLineSeries::new(pts.iter().map(at), 8, 4, stroke))
                .map_err(|e| e.to_string())?;
        } else {
            plot.draw_series(LineSeries::new(pts.iter().map(at), stroke))
                .map_err(|e| e.to_string())?;
        }
        for p in &pts {
            let (x, y) = at(p);
            if top.is_some_and(|t| scale.to_axis(p.y) > t) {
                // Filled and larger than any line marker: a point beyond the axis.
                plot.draw_series(std::iter::once(TriangleMarker::new(
                    (x, y),
                    8,
                    color.filled(),
                )))
                .map_err(|e| e.to_string())?;
                continue;
            }
            marker(&mut plot, j, (x, y), color)?;
            if p.sd > 0.0 {
                let lo = if scale.holds(p.y - p.sd) {
                    scale.to_axis(p.y - p.sd).max(e.y0)
                } else {
                    e.y0
                };
                let hi = scale.to_axis(p.y + p.sd).min(top.unwrap_or(e.y1)).min(e.y1);
                let w = 0.006 * (e.x1 - e.x0);
                let style = ShapeStyle::from(&color).stroke_width(1);
                for seg in [
                    vec![(x, lo), (x, hi)],
                    vec![(x - w, lo), (x + w, lo)],
                    vec![(x - w, hi), (x + w, hi)],
                ] {
                    plot.draw_series(std::iter::once(PathElement::new(seg, style)))
                        .map_err(|e| e.to_string())?;
                }
            }
        }
    }
    legend(&legend_area, chart, e, lines)
}

/// Rounds a tick value read back from the axis to the few digits its position has.
fn round_tick(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let mag = 10f64.powf(v.abs().log10().floor() - 2.0);
    (v / mag).round() * mag
}

/// The legend column: each line's colour, marker and label, then notes on what the marks
/// mean.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
    e: &Extent,
    lines: &[usize],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let font = ("sans-serif", 13).into_font();
    let row = 19;
    let mut y = 30;
    for (j, &i) in lines.iter().enumerate() {
        let color = color(j);
        let style = ShapeStyle::from(&color).stroke_width(2);
        let seg = vec![(6, y), (30, y)];
        if dashed(j) {
            area.draw(&PathElement::new(vec![(6, y), (14, y)], style))
                .and_then(|_| area.draw(&PathElement::new(vec![(22, y), (30, y)], style)))
        } else {
            area.draw(&PathElement::new(seg, style))
        }
        .map_err(|e| e.to_string())?;
        let r = match j % 4 {
            0 => area.draw(&Circle::new((18, y), 4, color.filled())),
            1 => area.draw(&Cross::new((18, y), 5, style)),
            2 => area.draw(&Circle::new((18, y), 5, style)),
            _ => area.draw(&TriangleMarker::new((18, y), 5, style)),
        };
        r.map_err(|e| e.to_string())?;
        area.draw(&Text::new(
            chart.lines[i].label.clone(),
            (38, y - 7),
            font.clone(),
        ))
        .map_err(|e| e.to_string())?;
        y += row;
    }
    let mut notes = Vec::new();
    if chart.slopes {
        notes.push("error to the ODE reference".to_string());
        if chart.lines.iter().any(|l| l.label.ends_with("(strong)")) {
            notes.push("(strong): to the SDE path of the same seed".to_string());
        }
    }
    if chart
        .lines
        .iter()
        .any(|l| l.points.iter().any(|p| p.sd > 0.0))
    {
        notes.push("bars: ± 1 s.d. over seeds".to_string());
    }
    if let Some(c) = e.capped {
        notes.push(format!(
            "▲ beyond the axis (cut at {})",
            tick_label(round_tick(c))
        ));
    }
    if let Scale::Symlog(c) = chart.scale {
        notes.push(format!(
            "axis: linear within ±{}, log beyond",
            tick_label(c)
        ));
    }
    let grey = ("sans-serif", 12).into_font().color(&RGBColor(70, 70, 70));
    y += 8;
    for n in notes {
        area.draw(&Text::new(n, (8, y - 7), grey.clone()))
            .map_err(|e| e.to_string())?;
        y += row;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(label: &str, family: Family, pts: &[(f64, f64)]) -> Line {
        Line {
            label: label.into(),
            family: Some(family),
            points: pts.iter().map(|&(x, y)| Point { x, y, sd: 0.0 }).collect(),
        }
    }

    #[test]
    fn symlog_round_trips_and_is_linear_near_zero() {
        let s = Scale::Symlog(0.1);
        for y in [-2.7e4, -1.0, -0.01, 0.0, 0.003, 5.0, 1e6] {
            let back = s.data_at(s.to_axis(y));
            assert!((back - y).abs() <= 1e-9 * y.abs().max(1.0), "{y} -> {back}");
        }
        // Within ±c the axis is nearly proportional: 0.01 and 0.02 sit in ratio ≈ 2.
        let r = s.to_axis(0.02) / s.to_axis(0.01);
        assert!((r - 2.0).abs() < 0.1, "{r}");
    }

    #[test]
    fn more_than_eight_lines_from_several_families_split_into_family_panels() {
        let mut chart = Chart {
            title: "t".into(),
            y_label: "y".into(),
            lines: Vec::new(),
            scale: Scale::Log,
            slopes: false,
            cap: None,
            floor: None,
        };
        for k in 0..5 {
            chart
                .lines
                .push(line(&format!("rk{k}"), Family::RungeKutta, &[(10.0, 1.0)]));
            chart
                .lines
                .push(line(&format!("ms{k}"), Family::Multistep, &[(10.0, 1.0)]));
        }
        let p = panels(&chart);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].0, Some(Family::RungeKutta));
        assert_eq!(p[0].1, vec![0, 2, 4, 6, 8]);
        chart.lines.truncate(8);
        assert_eq!(panels(&chart).len(), 1, "eight lines stay in one panel");
    }

    #[test]
    fn every_nfe_of_the_data_is_a_labelled_x_tick() {
        let chart = Chart {
            title: "t".into(),
            y_label: "y".into(),
            lines: vec![line(
                "a",
                Family::Exponential,
                &[(4.0, 1.0), (5.0, 0.5), (6.0, 0.3), (8.0, 0.1), (10.0, 0.05)],
            )],
            scale: Scale::Log,
            slopes: true,
            cap: None,
            floor: None,
        };
        let e = extent(&chart).unwrap();
        let labels: Vec<String> = x_ticks(&chart, &e)
            .iter()
            .map(|v| tick_label(10f64.powf(*v)))
            .collect();
        assert_eq!(labels, ["4", "5", "6", "8", "10"]);
    }

    #[test]
    fn a_point_beyond_the_cap_is_reported_as_capped() {
        let chart = Chart {
            title: "t".into(),
            y_label: "y".into(),
            lines: vec![line(
                "a",
                Family::Exponential,
                &[(5.0, 2.7e4), (10.0, 1.0), (20.0, 0.9), (50.0, 0.8)],
            )],
            scale: Scale::Log,
            slopes: false,
            cap: Some(30.0),
            floor: None,
        };
        let e = extent(&chart).unwrap();
        assert_eq!(e.capped, Some(30.0), "30 × the median, 1.0");
        assert!(e.y1 < (2.7e4f64).log10());
    }
}
