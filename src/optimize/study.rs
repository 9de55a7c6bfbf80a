//! A study of optimised grids (`pfode optimize-grid --study SPEC.toml`): every model ×
//! solver × NFE × method of a spec, each optimised grid and every fixed spacing judged on
//! the same held-out x_T, into `results.csv`, the grid files and the plots.

use super::{optimize, Method, Objective, Optimized, Options, Problem};
use crate::error::{Error, Result};
use crate::experiment::spec::SolverEntry;
use crate::grid::{GridOptions, TimeGrid};
use crate::model;
use crate::schedule::Schedule;
use crate::solver::Solver;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A study spec.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySpec {
    /// Study name (the results folder's default name).
    pub name: String,
    /// Schedule name as for `--schedule` (default `linear`).
    #[serde(default = "default_schedule")]
    pub schedule: String,
    pub models: Vec<StudyModel>,
    pub solvers: Vec<SolverEntry>,
    /// NFE budgets (a model may narrow them).
    pub nfe: Vec<usize>,
    pub methods: Vec<Method>,
    #[serde(default = "default_batch")]
    pub calibration: usize,
    #[serde(default = "default_batch")]
    pub held_out: usize,
    /// Calibration seed; held-out seeds default to `seed + 1`.
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_max_evals")]
    pub max_evals: usize,
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    #[serde(default = "default_starts")]
    pub starts: usize,
    /// dp: calibration x_T its costs are measured on (the first ones).
    #[serde(default = "default_dp_rows")]
    pub dp_rows: usize,
    /// The spec file's folder: model files are read relative to it.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// One model of a study, with what may differ per model.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyModel {
    /// A built-in name, a mixture JSON file or a `.safetensors` checkpoint.
    pub model: String,
    #[serde(default)]
    pub objective: Option<Objective>,
    /// Held-out seeds (the grids are judged on each; the first one is the search's).
    #[serde(default)]
    pub held_out_seeds: Option<Vec<u64>>,
    #[serde(default)]
    pub nfe: Option<Vec<usize>>,
    #[serde(default)]
    pub methods: Option<Vec<Method>>,
    #[serde(default)]
    pub calibration: Option<usize>,
    #[serde(default)]
    pub held_out: Option<usize>,
    #[serde(default)]
    pub max_evals: Option<usize>,
}

fn default_schedule() -> String {
    "linear".into()
}
fn default_batch() -> usize {
    1024
}
fn default_max_evals() -> usize {
    3000
}
fn default_candidates() -> usize {
    60
}
fn default_dp_rows() -> usize {
    256
}
fn default_starts() -> usize {
    3
}

impl StudySpec {
    /// Reads a spec, naming the file and the key on error.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut spec: StudySpec =
            toml::from_str(&text).map_err(|e| Error::file(path, e.to_string()))?;
        spec.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for (field, empty) in [
            ("models", spec.models.is_empty()),
            ("solvers", spec.solvers.is_empty()),
            ("nfe", spec.nfe.is_empty()),
            ("methods", spec.methods.is_empty()),
        ] {
            if empty {
                return Err(Error::file(path, format!("{field}: expected at least one")));
            }
        }
        Ok(spec)
    }
}

/// One judged grid of a study.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub model: String,
    pub objective: Objective,
    pub solver: String,
    pub options: String,
    /// The NFE budget, and the NFE the solver's grids use within it.
    pub budget: usize,
    pub nfe: usize,
    pub steps: usize,
    /// `fixed`, or the search method.
    pub method: String,
    /// The spacing, or the grid file (relative to the results folder).
    pub grid: String,
    pub held_out_seed: u64,
    pub calibration: f64,
    pub held_out: f64,
    /// Held-out value over the best fixed grid's (chosen on the calibration batch).
    pub ratio: f64,
    pub best_fixed: String,
    pub evaluations: usize,
    pub search_s: f64,
}

/// Runs the study into `out` (created; files are written only once every case is done).
pub fn run(spec: &StudySpec, out: &Path, quiet: bool) -> Result<Vec<Row>> {
    let schedule = Schedule::named(&spec.schedule)?;
    // Every name is checked before the first (long) search starts.
    for entry in &spec.solvers {
        Solver::build(&entry.name, &entry.options)?;
    }
    for m in &spec.models {
        model::load_in(&m.model, &spec.dir)?;
    }
    let mut rows = Vec::new();
    let mut grids: Vec<(PathBuf, TimeGrid, serde_json::Value)> = Vec::new();
    for m in &spec.models {
        let model = model::load_in(&m.model, &spec.dir)?;
        let model = model.as_ref();
        let objective = m.objective.unwrap_or(Objective::Error);
        let seeds = m
            .held_out_seeds
            .clone()
            .unwrap_or_else(|| vec![spec.seed + 1]);
        let short = crate::plot::file_tag(&m.model);
        let mut base = Options::new(&schedule, model);
        base.objective = objective;
        base.calibration = m.calibration.unwrap_or(spec.calibration);
        base.held_out = m.held_out.unwrap_or(spec.held_out);
        base.seed = spec.seed;
        base.held_out_seed = seeds[0];
        base.max_evals = m.max_evals.unwrap_or(spec.max_evals);
        base.candidates = spec.candidates;
        base.dp_rows = spec.dp_rows;
        base.starts = spec.starts;
        let digits = match objective {
            Objective::DigitsFd => Some(super::DigitsJudge::committed()?),
            Objective::Error => None,
        };
        for entry in &spec.solvers {
            let solver = Solver::build(&entry.name, &entry.options)?;
            let label = solver_label(&solver);
            for &nfe in m.nfe.as_ref().unwrap_or(&spec.nfe) {
                let problem = Problem {
                    model,
                    schedule: &schedule,
                    solver: &solver,
                    nfe,
                    grid: GridOptions::default(),
                };
                // Held-out seeds after the searches' own, judged once for every method.
                let extra = seeds[1..]
                    .iter()
                    .map(|&seed| {
                        let judge = problem.judge(
                            base.held_out,
                            seed,
                            objective,
                            &base.reference,
                            digits,
                            &mut 0,
                        )?;
                        Ok((seed, judge))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let mut first = true;
                for &method in m.methods.as_ref().unwrap_or(&spec.methods) {
                    let o = Options {
                        method,
                        ..base.clone()
                    };
                    let r = optimize(&problem, &o)?;
                    if !quiet {
                        eprintln!(
                            "{} · {label} · NFE {nfe} · {method}: held-out {:.4e} vs best fixed ({}) {:.4e}, ratio {:.3}, {:.1} s",
                            m.model,
                            r.scores.held_out,
                            r.best().spacing,
                            r.best().scores.held_out,
                            r.held_out_ratio(),
                            r.total_s
                        );
                    }
                    let file = format!(
                        "grids/{short}_{}_nfe{nfe}_{method}.json",
                        crate::plot::file_tag(&label)
                    );
                    let mut made_by = super::provenance(&problem, &o, &r);
                    made_by["model"]["spec"] = serde_json::json!(m.model);
                    grids.push((out.join(&file), r.grid.clone(), made_by));
                    judged(
                        &mut rows, &problem, &o, &r, &extra, first, &file, &m.model, &label,
                    )?;
                    first = false;
                }
            }
        }
    }
    std::fs::create_dir_all(out.join("grids")).map_err(|e| Error::io(out, e))?;
    for (path, grid, made_by) in grids {
        super::write_grid(&path, &schedule, &grid, made_by)?;
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in &rows {
        w.serialize(r)
            .map_err(|e| Error::invalid("results", e.to_string()))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::invalid("results", e.to_string()))?;
    crate::io::write_atomic(&out.join("results.csv"), &bytes)?;
    plots(spec, &schedule, out, &rows)?;
    Ok(rows)
}

/// Redraws the plots of a finished study in `out` from its `results.csv` and grid files.
pub fn replot(spec: &StudySpec, out: &Path) -> Result<()> {
    let path = out.join("results.csv");
    let mut reader =
        csv::Reader::from_path(&path).map_err(|e| Error::file(&path, e.to_string()))?;
    let rows: Vec<Row> = reader
        .deserialize()
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::file(&path, e.to_string()))?;
    plots(spec, &Schedule::named(&spec.schedule)?, out, &rows)
}

/// The solver with its options, as a label.
fn solver_label(solver: &Solver) -> String {
    let given: Vec<String> = solver
        .given()
        .iter()
        .map(|(k, v)| match v.to_json() {
            serde_json::Value::String(text) => format!("{k}={text}"),
            other => format!("{k}={other}"),
        })
        .collect();
    if given.is_empty() {
        solver.name().to_string()
    } else {
        format!("{} ({})", solver.name(), given.join(", "))
    }
}

/// Rows of one search: the optimised grid (and, the first time, every fixed grid) on the
/// search's held-out seed, with the scores the search made, and on each `extra` seed.
#[allow(clippy::too_many_arguments)]
fn judged(
    rows: &mut Vec<Row>,
    problem: &Problem,
    o: &Options,
    r: &Optimized,
    extra: &[(u64, super::Judge)],
    with_fixed: bool,
    file: &str,
    model: &str,
    label: &str,
) -> Result<()> {
    let seeds =
        std::iter::once((o.held_out_seed, None)).chain(extra.iter().map(|(s, j)| (*s, Some(j))));
    for (seed, judge) in seeds {
        let held = |grid: &TimeGrid, first: f64| -> Result<f64> {
            match judge {
                None => Ok(first),
                Some(j) => j.value(grid),
            }
        };
        let best_held = held(&r.best().grid, r.best().scores.held_out)?;
        let row = |method: &str, grid: String, steps, cal, ho: f64, evals, search_s| Row {
            model: model.to_string(),
            objective: o.objective,
            solver: label.to_string(),
            options: problem.solver.given().label(),
            budget: problem.nfe,
            nfe: r.nfe,
            steps,
            method: method.to_string(),
            grid,
            held_out_seed: seed,
            calibration: cal,
            held_out: ho,
            ratio: ho / best_held,
            best_fixed: r.best().spacing.to_string(),
            evaluations: evals,
            search_s,
        };
        if with_fixed {
            for f in &r.fixed {
                let ho = held(&f.grid, f.scores.held_out)?;
                rows.push(row(
                    "fixed",
                    f.spacing.to_string(),
                    f.grid.steps(),
                    f.scores.calibration,
                    ho,
                    0,
                    0.0,
                ));
            }
        }
        let ho = held(&r.grid, r.scores.held_out)?;
        rows.push(row(
            o.method.as_str(),
            file.to_string(),
            r.grid.steps(),
            r.scores.calibration,
            ho,
            r.evaluations,
            r.search_s,
        ));
    }
    Ok(())
}

/// Per model and method: held-out objective against NFE, best fixed grid vs optimised, one
/// colour per solver (mean over held-out seeds); and the grids of the largest NFE in λ.
fn plots(spec: &StudySpec, schedule: &Schedule, out: &Path, rows: &[Row]) -> Result<()> {
    let dir = out.join("plots");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mean = |sel: &dyn Fn(&Row) -> bool| -> Vec<(f64, f64)> {
        let mut by_nfe: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
        for r in rows.iter().filter(|r| sel(r)) {
            by_nfe.entry(r.nfe).or_default().push(r.held_out);
        }
        by_nfe
            .into_iter()
            .map(|(n, v)| (n as f64, v.iter().sum::<f64>() / v.len() as f64))
            .collect()
    };
    for m in &spec.models {
        let tag = crate::plot::file_tag(&m.model);
        let objective = m.objective.unwrap_or(Objective::Error);
        let y_label = match objective {
            Objective::Error => "held-out RMS error to the ODE reference",
            Objective::DigitsFd => "held-out digits FD",
        };
        for &method in m.methods.as_ref().unwrap_or(&spec.methods) {
            let mut series = Vec::new();
            for entry in &spec.solvers {
                let label = solver_label(&Solver::build(&entry.name, &entry.options)?);
                series.push((
                    format!("{label} · best fixed"),
                    mean(&|r: &Row| {
                        r.model == m.model
                            && r.solver == label
                            && r.method == "fixed"
                            && r.grid == r.best_fixed
                    }),
                ));
                series.push((
                    format!("{label} · {method}"),
                    mean(&|r: &Row| {
                        r.model == m.model && r.solver == label && r.method == method.as_str()
                    }),
                ));
            }
            crate::plot::nfe_chart(
                &dir.join(format!("{tag}_{method}")),
                &format!("{}: best fixed spacing vs {method}-optimised grid", m.model),
                y_label,
                &series,
                true,
            )?;
        }
        let top = m
            .nfe
            .as_ref()
            .unwrap_or(&spec.nfe)
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        let mut drawn = Vec::new();
        let seed = rows_seed(rows, &m.model);
        for r in rows
            .iter()
            .filter(|r| r.model == m.model && r.held_out_seed == seed)
        {
            let is_top = r.budget == top;
            if !is_top || (r.method == "fixed" && r.grid != r.best_fixed) {
                continue;
            }
            let times: Vec<f64> = if r.method == "fixed" {
                let spacing: crate::grid::Spacing = r.grid.parse()?;
                TimeGrid::build(schedule, &spacing, Some(r.steps), GridOptions::default())?
                    .times()
                    .to_vec()
            } else {
                TimeGrid::from_file(&out.join(&r.grid), schedule)?
                    .times()
                    .to_vec()
            };
            let name = if r.method == "fixed" {
                format!("{} · {}", r.solver, r.grid)
            } else {
                format!("{} · {}", r.solver, r.method)
            };
            drawn.push((name, times.iter().map(|&t| schedule.lambda(t)).collect()));
        }
        if !drawn.is_empty() {
            crate::plot::lambda_grids(
                &dir.join(format!("{tag}_grids.png")),
                &format!("{}: grids at NFE budget {top} in log-SNR", m.model),
                &drawn,
            )?;
        }
    }
    Ok(())
}

/// The first held-out seed of a model's rows.
fn rows_seed(rows: &[Row], model: &str) -> u64 {
    rows.iter()
        .find(|r| r.model == model)
        .map_or(0, |r| r.held_out_seed)
}
