//! Plots of a results folder (PNG and SVG, with an embedded DejaVu Sans so no system fonts
//! are needed). Plots read `results.csv` and the arrays a sweep saved; they never rerun a
//! solver.

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::experiment::orders::why_left_out;
use crate::experiment::table::{self, Row};
use crate::model::{self, GaussianMixture};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
            unreachable!("the embedded DejaVu Sans parses");
        }
    });
}

/// A model name as it appears in file names: anything but ASCII letters and digits → `_`.
pub fn file_tag(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn plot_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::file(path, format!("plotting failed: {e}"))
}

/// Tick label on a log axis in short form; on axes spanning several decades only at
/// 1, 2 and 5 × 10^k, so labels never collide.
fn log_tick(v: f64, sparse: bool) -> String {
    let exp = v.log10().floor();
    let mantissa = v / 10f64.powf(exp);
    if sparse
        && ![1.0, 2.0, 5.0]
            .iter()
            .any(|m| (mantissa - m).abs() < 1e-6 * m)
    {
        return String::new();
    }
    if (1e-2..1e4).contains(&v) {
        linear_tick(v)
    } else {
        format!("{}e{}", (mantissa * 10.0).round() / 10.0, exp)
    }
}

fn linear_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A line series: label and (x, y) points.
type Series = (String, Vec<(f64, f64)>);

type LogLog = Cartesian2d<LogCoord<f64>, LogCoord<f64>>;
type LogLin = Cartesian2d<LogCoord<f64>, RangedCoordf64>;

/// A chart with a log NFE axis and a log or linear y axis; with `slopes`, dashed
/// reference lines of orders 1–4 through the top-left corner.
fn line_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    series: &[Series],
    slopes: bool,
    log_y: bool,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let keep = |p: &(f64, f64)| p.0 > 0.0 && p.1.is_finite() && (p.1 > 0.0 || !log_y);
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.1.iter().cloned())
        .filter(keep)
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in &pts {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if pts.is_empty() || x0 > x1 {
        return Err("no plottable points".into());
    }
    if x0 == x1 {
        (x0, x1) = (x0 * 0.5, x1 * 2.0);
    }
    // Distances (no slope guides): a few blown-up low-NFE runs would flatten everything
    // else, so the axis stops at 30× the median and the title says so.
    let mut title = title.to_string();
    if log_y && !slopes {
        let mut ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
        ys.sort_by(f64::total_cmp);
        let cap = 30.0 * ys[ys.len() / 2];
        if y1 > cap {
            y1 = cap;
            title.push_str(" (cut at 30× median)");
        }
    }
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(&title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70);
    let xr = (x0 * 0.9..x1 * 1.1).log_scale();
    // Under a decade and a half of NFE every tick gets its label, not only 1, 2, 5.
    let sparse_x = x1 / x0 > 30.0;
    if log_y {
        if y0 == y1 {
            (y0, y1) = (y0 * 0.5, y1 * 2.0);
        }
        let mut chart: ChartContext<DB, LogLog> = builder
            .build_cartesian_2d(xr, (y0 * 0.5..y1 * 2.0).log_scale())
            .map_err(|e| e.to_string())?;
        let sparse_y = (y1 / y0).log10() > 1.5;
        chart
            .configure_mesh()
            .x_desc("NFE")
            .y_desc(y_label)
            .x_label_formatter(&|v| log_tick(*v, sparse_x))
            .y_label_formatter(&|v| log_tick(*v, sparse_y))
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(|e| e.to_string())?;
        if slopes {
            for p in 1..=4 {
                let line: Vec<(f64, f64)> = (0..=20)
                    .map(|i| x0 * (x1 / x0).powf(i as f64 / 20.0))
                    .map(|x| (x, y1 * (x / x0).powf(-(p as f64))))
                    .filter(|&(_, y)| y >= y0 * 0.5)
                    .collect();
                let style = ShapeStyle::from(&BLACK.mix(0.35)).stroke_width(1);
                chart
                    .draw_series(DashedLineSeries::new(line, 6, 4, style))
                    .map_err(|e| e.to_string())?;
            }
        }
        draw_lines(&mut chart, series, &keep)?;
    } else {
        let pad = 0.1 * (y1 - y0).max(1e-9);
        let mut chart: ChartContext<DB, LogLin> = builder
            .build_cartesian_2d(xr, y0 - pad..y1 + pad)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("NFE")
            .y_desc(y_label)
            .x_label_formatter(&|v| log_tick(*v, sparse_x))
            .y_label_formatter(&|v| linear_tick(*v))
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(|e| e.to_string())?;
        draw_lines(&mut chart, series, &keep)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Draws the series, with markers and a legend.
fn draw_lines<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<LogCoord<f64>, Y>>,
    series: &[Series],
    keep: &dyn Fn(&(f64, f64)) -> bool,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    for (i, (label, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = points.iter().cloned().filter(|p| keep(p)).collect();
        chart
            .draw_series(LineSeries::new(
                pts.clone(),
                ShapeStyle::from(&color).stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x, y), (x + 18, y)],
                    ShapeStyle::from(&color).stroke_width(2),
                )
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::LowerLeft)
        .draw()
        .map_err(|e| e.to_string())
}

/// What one figure shows.
enum Figure<'a> {
    Log {
        title: String,
        y_label: &'a str,
        series: &'a [Series],
        slopes: bool,
        log_y: bool,
    },
    Density {
        title: String,
        model: &'a GaussianMixture,
        paths: &'a [Vec<(f64, f64)>],
        dots: &'a [(f64, f64)],
    },
}

fn render<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    fig: &Figure,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    match fig {
        Figure::Log {
            title,
            y_label,
            series,
            slopes,
            log_y,
        } => line_chart(root, title, y_label, series, *slopes, *log_y),
        Figure::Density {
            title,
            model,
            paths,
            dots,
        } => scatter_2d(root, title, model, paths, dots),
    }
}

/// Draws one sample file of `model` (a built-in name, a mixture JSON or a checkpoint):
/// 2-D samples over the density of the data the model stands for, digits as an image grid
/// of the first 64. Writes `base`.png (and `base`.svg for 2-D), nothing on failure.
pub fn plot_samples(samples: &Batch, model: &str, base: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    let data = if model.ends_with(".safetensors") {
        let mlp = model::mlp::Mlp::load(Path::new(model))?;
        mlp.trained_on().unwrap_or_default().to_string()
    } else {
        model.to_string()
    };
    if samples.d == crate::digits::PIXELS && data == crate::digits::NAME {
        let png = base.with_extension("png");
        image_grid(samples, crate::digits::SIDE, samples.n.min(64), &png)?;
        return Ok(vec![png]);
    }
    match model::resolve(&data) {
        Ok(density) if samples.d == 2 && model::ScoreModel::dim(&density) == 2 => {
            let dots: Vec<(f64, f64)> = (0..samples.n.min(2000))
                .map(|i| (samples.row(i)[0], samples.row(i)[1]))
                .collect();
            let title = format!(
                "{} samples of {model} over the density of {data}",
                dots.len()
            );
            let fig = Figure::Density {
                title,
                model: &density,
                paths: &[],
                dots: &dots,
            };
            both(base, &fig).inspect_err(|_| {
                let _ = std::fs::remove_file(base.with_extension("png"));
                let _ = std::fs::remove_file(base.with_extension("svg"));
            })
        }
        _ => Err(Error::invalid(
            "model",
            format!(
                "draws samples of a 2-D mixture (over its density) or of the digits (as images); \
                 '{model}' stands for '{data}' and the samples have dimension {}",
                samples.d
            ),
        )),
    }
}

/// Writes `base`.png and `base`.svg.
fn both(base: &Path, fig: &Figure) -> Result<Vec<PathBuf>> {
    let png = base.with_extension("png");
    let svg = base.with_extension("svg");
    render(
        BitMapBackend::new(&png, (960, 680)).into_drawing_area(),
        fig,
    )
    .map_err(plot_err(&png))?;
    render(SVGBackend::new(&svg, (960, 680)).into_drawing_area(), fig).map_err(plot_err(&svg))?;
    Ok(vec![png, svg])
}

/// Marching squares: the segments where the field (on an `n × n` grid of nodes spaced `h`
/// from `origin` in both axes, row-major in y) crosses `level`.
fn contour_segments(
    field: &[f64],
    n: usize,
    origin: f64,
    h: f64,
    level: f64,
) -> Vec<((f64, f64), (f64, f64))> {
    let at = |i: usize, j: usize| field[j * n + i];
    let pos = |i: usize, j: usize| (origin + i as f64 * h, origin + j as f64 * h);
    // The crossing point on the edge between two nodes.
    let cross = |a: (usize, usize), b: (usize, usize)| {
        let (va, vb) = (at(a.0, a.1), at(b.0, b.1));
        let f = (level - va) / (vb - va);
        let (pa, pb) = (pos(a.0, a.1), pos(b.0, b.1));
        (pa.0 + f * (pb.0 - pa.0), pa.1 + f * (pb.1 - pa.1))
    };
    let mut out = Vec::new();
    for j in 0..n - 1 {
        for i in 0..n - 1 {
            let corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)];
            let edges: Vec<(f64, f64)> = (0..4)
                .filter_map(|e| {
                    let (a, b) = (corners[e], corners[(e + 1) % 4]);
                    ((at(a.0, a.1) >= level) != (at(b.0, b.1) >= level)).then(|| cross(a, b))
                })
                .collect();
            // Two crossings: one segment; four (a saddle): pair them in order.
            for pair in edges.chunks_exact(2) {
                out.push((pair[0], pair[1]));
            }
        }
    }
    out
}

/// Mean of `value(row)` per (`label(row)`, NFE) over the selected rows.
fn mean_series<'a>(
    rows: impl Iterator<Item = &'a Row>,
    label: impl Fn(&Row) -> String,
    value: impl Fn(&Row) -> f64,
) -> Vec<Series> {
    let mut acc: BTreeMap<String, BTreeMap<usize, (f64, usize)>> = BTreeMap::new();
    for r in rows {
        let e = acc
            .entry(label(r))
            .or_default()
            .entry(r.nfe)
            .or_insert((0.0, 0));
        e.0 += value(r);
        e.1 += 1;
    }
    acc.into_iter()
        .map(|(l, m)| {
            (
                l,
                m.into_iter()
                    .map(|(n, (s, c))| (n as f64, s / c as f64))
                    .collect(),
            )
        })
        .collect()
}

/// Mean of `metric` per (solver label, NFE) for one schedule, model and spacing.
fn series(rows: &[Row], schedule: &str, model: &str, spacing: &str, metric: &str) -> Vec<Series> {
    let selected = rows.iter().filter(|r| {
        r.schedule == schedule
            && r.model == model
            && r.spacing == spacing
            && r.metric == metric
            && r.value.is_finite()
            // A stochastic sampler's (or a clamped run's) distance to the ODE reference is
            // no discretisation error: its error curve would sit among the ODE solvers' as
            // if it were one. Its distribution metrics are plotted.
            && !(metric.starts_with("error") && why_left_out(r).is_some())
    });
    let label = |r: &Row| {
        if r.options == "{}" {
            r.solver.clone()
        } else {
            format!("{} {}", r.solver, r.options)
        }
    };
    mean_series(selected, label, |r| r.value)
}

/// Mean wall time per run, per solver and NFE (one row per run: its `diverged` row).
fn wall_series(rows: &[Row], model: &str) -> Vec<Series> {
    mean_series(
        rows.iter()
            .filter(|r| r.model == model && r.metric == "diverged"),
        |r| r.solver.clone(),
        |r| r.wall_ms,
    )
}

/// Density heat map of a 2-D mixture with trajectories or samples on top.
fn scatter_2d<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    m: &GaussianMixture,
    paths: &[Vec<(f64, f64)>],
    dots: &[(f64, f64)],
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let lim = 6.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(-lim..lim, -lim..lim)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    let cells = 90;
    let h = 2.0 * lim / cells as f64;
    let centers: Vec<f64> = (0..cells * cells)
        .flat_map(|k| {
            [
                -lim + (k % cells) as f64 * h + h / 2.0,
                -lim + (k / cells) as f64 * h + h / 2.0,
            ]
        })
        .collect();
    let logp = m.log_density(&Batch {
        n: cells * cells,
        d: 2,
        data: centers.clone(),
    });
    let max = logp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    chart
        .draw_series((0..cells * cells).filter_map(|k| {
            let level = (logp[k] - max).exp();
            (level > 0.01).then(|| {
                let (x, y) = (centers[2 * k], centers[2 * k + 1]);
                let shade = RGBColor(
                    255,
                    (255.0 * (1.0 - 0.55 * level)) as u8,
                    (255.0 * (1.0 - 0.75 * level)) as u8,
                );
                Rectangle::new(
                    [(x - h / 2.0, y - h / 2.0), (x + h / 2.0, y + h / 2.0)],
                    shade.filled(),
                )
            })
        }))
        .map_err(|e| e.to_string())?;
    // Density contours at 5 %, 25 % and 60 % of the peak.
    let density: Vec<f64> = logp.iter().map(|l| (l - max).exp()).collect();
    for level in [0.05, 0.25, 0.6] {
        let segments = contour_segments(&density, cells, -lim + h / 2.0, h, level);
        chart
            .draw_series(segments.into_iter().map(|seg| {
                PathElement::new(
                    vec![seg.0, seg.1],
                    ShapeStyle::from(&RGBColor(170, 60, 20)).stroke_width(1),
                )
            }))
            .map_err(|e| e.to_string())?;
    }
    for (i, p) in paths.iter().enumerate() {
        let color = Palette99::pick(i).mix(0.8);
        chart
            .draw_series(LineSeries::new(
                p.clone(),
                ShapeStyle::from(&color).stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        if let Some(&end) = p.last() {
            chart
                .draw_series(std::iter::once(Circle::new(end, 3, BLACK.filled())))
                .map_err(|e| e.to_string())?;
        }
    }
    chart
        .draw_series(
            dots.iter()
                .map(|&d| Circle::new(d, 1, BLUE.mix(0.5).filled())),
        )
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Draws every plot for a results folder; returns the files written.
pub fn plot(dir: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    let (rows, _) = table::read(&dir.join("results.csv"))?;
    if rows.is_empty() {
        return Err(Error::file(&dir.join("results.csv"), "no rows to plot"));
    }
    let out = dir.join("plots");
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let mut written = Vec::new();
    let models: Vec<String> = rows
        .iter()
        .map(|r| r.model.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let spacings: Vec<String> = rows
        .iter()
        .map(|r| r.spacing.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let schedules: Vec<String> = rows
        .iter()
        .map(|r| r.schedule.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for model in &models {
        let stem = file_tag(model);
        for (spacing, schedule) in spacings
            .iter()
            .flat_map(|sp| schedules.iter().map(move |sc| (sp, sc)))
        {
            // The schedule is named in files and titles only when the sweep has several.
            let (tag, note) = if schedules.len() > 1 {
                (format!("_{schedule}"), format!(", {schedule}"))
            } else {
                (String::new(), String::new())
            };
            for (metric, label, file, slopes, log_y) in [
                (
                    "error_rms",
                    "RMS error to the ODE reference (ODE solvers)",
                    "error",
                    true,
                    true,
                ),
                (
                    "frechet",
                    "Fréchet distance to the data",
                    "frechet",
                    false,
                    true,
                ),
                ("nll", "NLL under the data density", "nll", false, false),
                (
                    "digits_fd",
                    "digits FD to held-out digits",
                    "digits_fd",
                    false,
                    true,
                ),
            ] {
                let s = series(&rows, schedule, model, spacing, metric);
                if s.is_empty() {
                    continue;
                }
                let title = format!("{model}, {spacing} grid{note}: {label}");
                let base = out.join(format!("{file}_vs_nfe_{stem}_{spacing}{tag}"));
                written.extend(both(
                    &base,
                    &Figure::Log {
                        title,
                        y_label: label,
                        series: &s,
                        slopes,
                        log_y,
                    },
                )?);
            }
        }
        let w = wall_series(&rows, model);
        let title = format!("{model}: wall time per run (mean over grids)");
        written.extend(both(
            &out.join(format!("wall_vs_nfe_{stem}")),
            &Figure::Log {
                title,
                y_label: "wall time (ms)",
                series: &w,
                slopes: false,
                log_y: true,
            },
        )?);
        // 2-D models: trajectories and reference samples saved by the sweep.
        let traj = dir.join(format!("trajectory_{stem}.npy"));
        if traj.exists() {
            let data = std::fs::read_to_string(dir.join(format!("data_{stem}.txt")))
                .unwrap_or_else(|_| model.clone());
            let m = model::resolve(data.trim())?;
            let t = crate::npy::read(&traj)?;
            let (steps, paths) = (t.shape[0], t.shape[1]);
            let lines: Vec<Vec<(f64, f64)>> = (0..paths)
                .map(|p| {
                    (0..steps)
                        .map(|s| (t.data[(s * paths + p) * 2], t.data[(s * paths + p) * 2 + 1]))
                        .collect()
                })
                .collect();
            let title = format!("{model}: probability-flow paths from x_T to x_0 (reference)");
            written.extend(both(
                &out.join(format!("trajectories_{stem}")),
                &Figure::Density {
                    title,
                    model: &m,
                    paths: &lines,
                    dots: &[],
                },
            )?);
            let samples = crate::npy::read(&dir.join(format!("reference_{stem}.npy")))?;
            let dots: Vec<(f64, f64)> = samples.data.chunks(2).map(|c| (c[0], c[1])).collect();
            let title =
                format!("{model}: final samples (reference ODE solution) on the data density");
            written.extend(both(
                &out.join(format!("samples_{stem}")),
                &Figure::Density {
                    title,
                    model: &m,
                    paths: &[],
                    dots: &dots,
                },
            )?);
        }
    }
    Ok(written)
}

/// The training loss curve against step, PNG only (y clipped at 10× the lowest loss).
pub fn loss_plot(losses: &[f64], path: &Path) -> Result<()> {
    register_font();
    let draw = || -> std::result::Result<(), String> {
        let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (lo, hi) = losses
            .iter()
            .filter(|l| l.is_finite() && **l > 0.0)
            .fold((f64::MAX, f64::MIN), |(a, b), &l| (a.min(l), b.max(l)));
        if lo > hi {
            return Err("no positive losses".into());
        }
        let mut chart = ChartBuilder::on(&root)
            .caption("training loss", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..losses.len() as f64, 0.0..hi.min(10.0 * lo) * 1.05)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss")
            .y_label_formatter(&|v| linear_tick(*v))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                losses.iter().enumerate().map(|(i, &l)| (i as f64, l)),
                BLUE.mix(0.3),
            ))
            .map_err(|e| e.to_string())?;
        // A running mean over 100 steps, so the trend is visible through the noise.
        let window = 100.min(losses.len());
        let smooth: Vec<(f64, f64)> = (window..=losses.len())
            .map(|i| {
                (
                    i as f64,
                    losses[i - window..i].iter().sum::<f64>() / window as f64,
                )
            })
            .collect();
        chart
            .draw_series(LineSeries::new(
                smooth,
                ShapeStyle::from(&RED).stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    };
    draw().map_err(plot_err(path))
}

/// Draws the first `count` rows of `images` (`[n, side²]`, values in [−1, 1], clamped) as a
/// PNG grid of `side × side` images, ten to a row, ink (+1) dark on white (−1).
pub fn image_grid(images: &Batch, side: usize, count: usize, path: &Path) -> Result<()> {
    if images.d != side * side || images.n == 0 || count == 0 {
        return Err(Error::invalid(
            "images",
            format!(
                "expected [n ≥ 1, {}] images and count ≥ 1, got [{}, {}]",
                side * side,
                images.n,
                images.d
            ),
        ));
    }
    const SCALE: usize = 4;
    const GAP: usize = 2;
    let count = count.min(images.n);
    let (cols, rows) = (count.min(10), count.div_ceil(10));
    let cell = side * SCALE + GAP;
    let size = ((cols * cell + GAP) as u32, (rows * cell + GAP) as u32);
    let tmp = path.with_extension("png.tmp.png");
    let draw = || -> std::result::Result<(), String> {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&RGBColor(200, 200, 200))
            .map_err(|e| e.to_string())?;
        for k in 0..count {
            let (x0, y0) = (GAP + (k % 10) * cell, GAP + (k / 10) * cell);
            for (p, &v) in images.row(k).iter().enumerate() {
                let ink = ((v.clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0).round() as u8;
                let gray = RGBColor(255 - ink, 255 - ink, 255 - ink);
                let (px, py) = (x0 + (p % side) * SCALE, y0 + (p / side) * SCALE);
                root.draw(&Rectangle::new(
                    [
                        (px as i32, py as i32),
                        ((px + SCALE) as i32, (py + SCALE) as i32),
                    ],
                    gray.filled(),
                ))
                .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())
    };
    draw().map_err(plot_err(path))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// One line chart against NFE (log x, log y unless `log_y` is false), written as
/// `base`.png and `base`.svg; nothing is left behind on failure.
pub fn nfe_chart(
    base: &Path,
    title: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log_y: bool,
) -> Result<Vec<PathBuf>> {
    register_font();
    let fig = Figure::Log {
        title: title.to_string(),
        y_label,
        series,
        slopes: false,
        log_y,
    };
    both(base, &fig).inspect_err(|_| {
        let _ = std::fs::remove_file(base.with_extension("png"));
        let _ = std::fs::remove_file(base.with_extension("svg"));
    })
}

/// Step grids drawn in log-SNR λ: one row of points per labelled grid (a point at σ = 0,
/// λ = ∞, is drawn as an arrow at the right edge). Written as `path` (PNG).
pub fn lambda_grids(path: &Path, title: &str, grids: &[(String, Vec<f64>)]) -> Result<()> {
    register_font();
    let finite: Vec<f64> = grids
        .iter()
        .flat_map(|g| g.1.iter().copied())
        .filter(|l| l.is_finite())
        .collect();
    if finite.is_empty() {
        return Err(Error::invalid("grids", "no grid points to draw"));
    }
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = 0.05 * (hi - lo).max(1e-9);
    let (x0, x1) = (lo - pad, hi + 3.0 * pad);
    let rows = grids.len();
    let tmp = path.with_extension("png.tmp.png");
    let draw = || -> std::result::Result<(), String> {
        let height = (120 + 34 * rows) as u32;
        let root = BitMapBackend::new(&tmp, (960, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(260)
            .build_cartesian_2d(x0..x1, -0.5..rows as f64 - 0.5)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("log-SNR λ (noise → data; the arrow is σ = 0)")
            .y_labels(rows)
            .y_label_formatter(&|v| {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < rows {
                    grids[rows - 1 - i as usize].0.clone()
                } else {
                    String::new()
                }
            })
            .x_label_formatter(&|v| linear_tick(*v))
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        for (r, (_, lambdas)) in grids.iter().enumerate() {
            let y = (rows - 1 - r) as f64;
            let color = Palette99::pick(r).to_rgba();
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x0, y), (x1, y)],
                    ShapeStyle::from(&BLACK.mix(0.15)),
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(
                    lambdas
                        .iter()
                        .filter(|l| l.is_finite())
                        .map(|&l| Circle::new((l, y), 4, color.filled())),
                )
                .map_err(|e| e.to_string())?;
            if lambdas.iter().any(|l| !l.is_finite()) {
                chart
                    .draw_series(std::iter::once(TriangleMarker::new(
                        (x1 - pad, y),
                        6,
                        color.filled(),
                    )))
                    .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())
    };
    if let Err(e) = draw() {
        let _ = std::fs::remove_file(&tmp);
        return Err(plot_err(path)(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
