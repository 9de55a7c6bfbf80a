//! Plots of a results folder (PNG and SVG, with an embedded DejaVu Sans so no system fonts
//! are needed). Plots read `results.csv` and the arrays a sweep saved; they never rerun a
//! solver.

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::experiment::orders::why_left_out;
use crate::experiment::spec::ADAPTIVE;
use crate::experiment::table::{self, Row};
use crate::model::{self, GaussianMixture};
use crate::solver::{Family, Solver};
use chart::{Chart, Floor, Line, Point, Scale};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

pub mod chart;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/DejaVuSans.ttf");
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
            unreachable!("the embedded DejaVu Sans parses");
        }
    });
}

/// A model name as it appears in file names: anything but ASCII letters and digits → `_`,
/// leading ones dropped (`../models/a.safetensors` → `models_a_safetensors`).
pub fn file_tag(name: &str) -> String {
    let tag: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    tag.trim_start_matches('_').to_string()
}

fn plot_err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::file(path, format!("plotting failed: {e}"))
}

fn linear_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// What one figure shows.
enum Figure<'a> {
    Lines(Chart),
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
        Figure::Lines(chart) => chart::draw(root, chart),
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
            both(base, &fig)
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

/// Writes `base`.png and `base`.svg; a figure that fails leaves neither (a backend writes
/// its file even when drawing failed, so both are removed).
fn both(base: &Path, fig: &Figure) -> Result<Vec<PathBuf>> {
    let png = base.with_extension("png");
    let svg = base.with_extension("svg");
    let size = match fig {
        Figure::Lines(c) => chart::size(c),
        Figure::Density { .. } => (960, 680),
    };
    let drawn = render(BitMapBackend::new(&png, size).into_drawing_area(), fig)
        .map_err(plot_err(&png))
        .and_then(|_| {
            render(SVGBackend::new(&svg, size).into_drawing_area(), fig).map_err(plot_err(&svg))
        });
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&png);
        let _ = std::fs::remove_file(&svg);
        return Err(e);
    }
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

/// Mean and standard deviation (over seeds) of `value(row)` per (`label(row)`, NFE) of the
/// selected rows, as lines; `family` gives a line's panel.
fn mean_lines<'a>(
    rows: impl Iterator<Item = &'a Row>,
    label: impl Fn(&Row) -> String,
    family: impl Fn(&Row) -> Option<Family>,
    value: impl Fn(&Row) -> f64,
) -> Vec<Line> {
    // Per label: the line's family and its values by NFE.
    type Values = BTreeMap<usize, Vec<f64>>;
    let mut acc: BTreeMap<String, (Option<Family>, Values)> = BTreeMap::new();
    for r in rows {
        let e = acc
            .entry(label(r))
            .or_insert_with(|| (family(r), BTreeMap::new()));
        e.1.entry(r.nfe).or_default().push(value(r));
    }
    acc.into_iter()
        .map(|(label, (family, by_nfe))| Line {
            label,
            family,
            points: by_nfe
                .into_iter()
                .map(|(n, v)| {
                    let mean = v.iter().sum::<f64>() / v.len() as f64;
                    let sd = if v.len() > 1 {
                        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64)
                            .sqrt()
                    } else {
                        0.0
                    };
                    Point {
                        x: n as f64,
                        y: mean,
                        sd,
                    }
                })
                .collect(),
        })
        .collect()
}

/// The solver family of a row's configuration (none for an unknown solver).
fn row_family(r: &Row) -> Option<Family> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&r.options).ok()?;
    let mut given = crate::solver::Given::new();
    for (k, v) in &map {
        given.set_json(k, v).ok()?;
    }
    Solver::build(&r.solver, &given).ok().map(|s| s.family())
}

/// Lines of `metric` per solver configuration for one schedule, model and spacing, mean ±
/// s.d. over seeds. An adaptive solver's runs (spacing `adaptive`, one per tolerance) join
/// every spacing's figure as one line through its tolerances.
fn lines(rows: &[Row], schedule: &str, model: &str, spacing: &str, metric: &str) -> Vec<Line> {
    let selected = rows.iter().filter(|r| {
        r.schedule == schedule
            && r.model == model
            && (r.spacing == spacing || r.spacing == ADAPTIVE)
            && r.metric == metric
            && r.value.is_finite()
            // A clamped run's (or an old table's stochastic run's) distance to the ODE
            // reference is no discretisation error: it would sit among the ODE solvers' as
            // if it were one. Its distribution metrics are plotted.
            && !(metric.starts_with("error") && why_left_out(r).is_some())
    });
    let label = |r: &Row| {
        let mut options: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&r.options).unwrap_or_default();
        if r.spacing == ADAPTIVE {
            options.remove("rtol");
            options.remove("atol");
        }
        let mut label = r.solver.clone();
        if !options.is_empty() {
            label = format!("{label} {}", serde_json::Value::Object(options));
        }
        if r.spacing == ADAPTIVE {
            label.push_str(" (adaptive, over rtol)");
        }
        if metric.starts_with("error") && why_left_out(r).is_none() && is_stochastic(r) {
            label.push_str(" (strong)");
        }
        label
    };
    mean_lines(selected, label, row_family, |r| r.value)
}

fn is_stochastic(r: &Row) -> bool {
    row_family(r) == Some(Family::Stochastic)
}

/// Mean wall time per run, per solver and NFE (one row per run: its `diverged` row).
fn wall_lines(rows: &[Row], model: &str) -> Vec<Line> {
    mean_lines(
        rows.iter()
            .filter(|r| r.model == model && r.metric == "diverged"),
        |r| r.solver.clone(),
        |_| None,
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

/// What exact samples score, per model, from the sweep's `meta.json` (`data_floors`); empty
/// for folders written before sweeps recorded them.
fn read_floors(dir: &Path) -> serde_json::Map<String, serde_json::Value> {
    std::fs::read_to_string(dir.join("meta.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|m| m.get("data_floors").and_then(|f| f.as_object().cloned()))
        .unwrap_or_default()
}

/// The symlog axis's linear range: a power of ten near the smallest magnitudes the lines
/// reach (at least 10⁻³), so small differences stay visible beside huge ones.
fn symlog_threshold(lines: &[Line]) -> f64 {
    let mut mags: Vec<f64> = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.y.abs()))
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    if mags.is_empty() {
        return 1.0;
    }
    mags.sort_by(f64::total_cmp);
    let low = mags[mags.len() / 10];
    10f64.powf(low.log10().floor()).max(1e-3)
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
    // Adaptive runs have no spacing of their own: they join every spacing's figures.
    let mut spacings: Vec<String> = rows
        .iter()
        .filter(|r| r.spacing != ADAPTIVE)
        .map(|r| r.spacing.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if spacings.is_empty() {
        spacings.push(ADAPTIVE.to_string());
    }
    let schedules: Vec<String> = rows
        .iter()
        .map(|r| r.schedule.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let floors = read_floors(dir);
    for model in &models {
        let stem = file_tag(model);
        let floor = floors.get(model);
        let of = |key: &str| floor.and_then(|f| f.get(key)).and_then(|v| v.as_f64());
        let samples = of("samples").unwrap_or(0.0);
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
            let entropy = of("entropy");
            let figures = [
                (
                    "error_rms",
                    "RMS error to the reference".to_string(),
                    "error",
                    Scale::Log,
                    true,
                    None,
                ),
                (
                    "frechet",
                    "Fréchet distance to the data".to_string(),
                    "frechet",
                    Scale::Log,
                    false,
                    of("frechet").map(|y| Floor {
                        y,
                        label: format!("floor: {samples} exact samples ({})", chart::tick_label(y)),
                    }),
                ),
                (
                    "nll",
                    match entropy {
                        Some(_) => "NLL minus the data's entropy".to_string(),
                        None => "NLL under the data density".to_string(),
                    },
                    "nll",
                    Scale::Symlog(1.0),
                    false,
                    entropy.map(|_| Floor {
                        y: 0.0,
                        label: "exact samples (0: NLL = entropy)".into(),
                    }),
                ),
                (
                    "digits_fd",
                    "digits FD to held-out digits".to_string(),
                    "digits_fd",
                    Scale::Log,
                    false,
                    of("digits_fd").map(|y| Floor {
                        y,
                        label: format!("floor: training images ({})", chart::tick_label(y)),
                    }),
                ),
            ];
            for (metric, label, file, scale, slopes, floor) in figures {
                let mut lines = lines(&rows, schedule, model, spacing, metric);
                if lines.is_empty() {
                    continue;
                }
                let mut scale = scale;
                if metric == "nll" {
                    if let Some(h) = entropy {
                        for l in &mut lines {
                            l.points.iter_mut().for_each(|p| p.y -= h);
                        }
                    }
                    scale = Scale::Symlog(symlog_threshold(&lines));
                }
                let title = format!("{model}, {spacing} grid{note}: {label}");
                let base = out.join(format!("{file}_vs_nfe_{stem}_{spacing}{tag}"));
                let y_label = match metric {
                    "error_rms" => "RMS error",
                    _ => label.as_str(),
                };
                let chart = Chart {
                    title,
                    y_label: y_label.to_string(),
                    lines,
                    scale,
                    slopes,
                    // Distances: a few blown-up low-NFE runs would flatten the rest.
                    cap: (!slopes && scale == Scale::Log).then_some(30.0),
                    floor,
                };
                written.extend(both(&base, &Figure::Lines(chart))?);
            }
        }
        let chart = Chart {
            title: format!("{model}: wall time per run (mean over grids)"),
            y_label: "wall time (ms)".into(),
            lines: wall_lines(&rows, model),
            scale: Scale::Log,
            slopes: false,
            cap: None,
            floor: None,
        };
        written.extend(both(
            &out.join(format!("wall_vs_nfe_{stem}")),
            &Figure::Lines(chart),
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
    let chart = Chart {
        title: title.to_string(),
        y_label: y_label.to_string(),
        lines: series
            .iter()
            .map(|(label, pts)| Line {
                label: label.clone(),
                family: None,
                points: pts.iter().map(|&(x, y)| Point { x, y, sd: 0.0 }).collect(),
            })
            .collect(),
        scale: if log_y { Scale::Log } else { Scale::Linear },
        slopes: false,
        cap: None,
        floor: None,
    };
    both(base, &Figure::Lines(chart))
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
