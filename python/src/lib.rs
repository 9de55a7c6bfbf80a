//! `pfode._pfode`: the Python face of the pfode library (the `pfode` package wraps it).
//!
//! Every function binds the library's own API (`sampling::Request`, `check::ddim_euler`,
//! `reference::solve`, `experiment::sweep_text`, …) and does its Rust work detached from
//! the interpreter; a Python model's calls attach for their duration only (model.rs).

mod convert;
mod model;

use convert::{
    array_from, batch_from, json_to_py, run_error, scalar_to_json, to_py, ModelError, SigintGuard,
};
use model::{PyModel, Runnable};
use numpy::PyArray1;
use pfode::experiment::{NamedModel, Spec, SweepOptions};
use pfode::grid::{FinalSigma, GridOptions, Spacing, TimeGrid};
use pfode::sampling::Request;
use pfode::schedule::{Discrete, Schedule, ScheduleConfig};
use pfode::solver::options::Given;
use pfode::solver::{Precision, Solver};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::path::{Path, PathBuf};

/// A VP noise schedule: `Schedule("linear", beta_start=1e-4, beta_end=0.02,
/// num_train_timesteps=1000)`, `"scaled-linear"`, `"cosine"`, `"vp-linear"`,
/// `"vp-cosine"`, or `Schedule(betas=array_or_path)`.
#[pyclass(name = "Schedule", module = "pfode", frozen)]
#[derive(Clone)]
struct PySchedule {
    schedule: Schedule,
}

#[pymethods]
impl PySchedule {
    #[new]
    #[pyo3(signature = (name="linear", num_train_timesteps=1000, beta_start=None, beta_end=None, betas=None))]
    fn new(
        py: Python<'_>,
        name: &str,
        num_train_timesteps: usize,
        beta_start: Option<f64>,
        beta_end: Option<f64>,
        betas: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if let Some(b) = betas {
            if let Ok(path) = b.extract::<PathBuf>() {
                let config = ScheduleConfig {
                    betas: Some(path),
                    ..Default::default()
                };
                return Ok(PySchedule {
                    schedule: config.build().map_err(to_py)?,
                });
            }
            let np = py.import("numpy")?;
            let arr = np
                .call_method1("asarray", (b, "float64"))
                .map_err(|_| PyTypeError::new_err("betas: expected a 1-D array or a path"))?;
            let v: Vec<f64> = arr
                .call_method0("tolist")?
                .extract()
                .map_err(|_| PyValueError::new_err("betas: expected a 1-D array of numbers"))?;
            let d = Discrete::from_betas("custom", v).map_err(to_py)?;
            return Ok(PySchedule {
                schedule: Schedule::Discrete(d),
            });
        }
        let config = ScheduleConfig {
            name: name.parse().map_err(to_py)?,
            num_train_timesteps,
            beta_start,
            beta_end,
            betas: None,
        };
        Ok(PySchedule {
            schedule: config.build().map_err(to_py)?,
        })
    }

    /// Signal scale a(t).
    fn alpha(&self, t: f64) -> f64 {
        self.schedule.alpha(t)
    }
    /// Noise scale s(t).
    fn sigma(&self, t: f64) -> f64 {
        self.schedule.sigma(t)
    }
    /// Log signal-to-noise λ(t) = log(a/s).
    fn lambda_(&self, t: f64) -> f64 {
        self.schedule.lambda(t)
    }
    /// The model's own time input at t: the training index tT − 1 when discrete.
    fn model_time(&self, t: f64) -> f64 {
        self.schedule.model_time(t)
    }
    #[getter]
    fn t_max(&self) -> f64 {
        self.schedule.t_max()
    }
    #[getter]
    fn t_min(&self) -> f64 {
        self.schedule.t_min()
    }
    /// Training steps T of a discrete schedule (`None` when continuous).
    #[getter]
    fn num_train_timesteps(&self) -> Option<usize> {
        self.schedule.discrete().map(|d| d.num_train_timesteps())
    }
    fn describe(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        json_to_py(py, &self.schedule.describe())
    }
    fn __repr__(&self) -> String {
        format!("pfode.Schedule({})", self.schedule.describe())
    }
}

/// A schedule argument: a `Schedule`, a name, or `None` (diffusers' default, linear T=1000).
fn schedule_arg(s: Option<&Bound<'_, PyAny>>) -> PyResult<Schedule> {
    match s {
        None => Ok(Schedule::ddpm_linear()),
        Some(s) => {
            if let Ok(ps) = s.cast::<PySchedule>() {
                return Ok(ps.get().schedule.clone());
            }
            if let Ok(name) = s.extract::<String>() {
                return Schedule::named(&name).map_err(to_py);
            }
            Err(PyTypeError::new_err(format!(
                "schedule: expected a pfode.Schedule or a schedule name, got {}",
                s.get_type().name()?
            )))
        }
    }
}

fn num_train_timesteps(s: &Schedule) -> Option<usize> {
    s.discrete().map(|d| d.num_train_timesteps())
}

/// The solver `name` with keyword options, validated by the shared options schema.
fn solver_arg(name: &str, options: Option<&Bound<'_, PyDict>>) -> PyResult<Solver> {
    let mut given = Given::new();
    if let Some(opts) = options {
        for (k, v) in opts.iter() {
            let key: String = k.extract()?;
            let value = scalar_to_json(&key, &v)?;
            given.set_json(&key, &value).map_err(to_py)?;
        }
    }
    Solver::build(name, &given).map_err(to_py)
}

/// A spacing argument: a name (`"trailing"`, `"logsnr"`, `"file:grid.json"`, …) or an
/// explicit decreasing sequence of times.
enum SpacingArg {
    Named(Spacing),
    Times(Vec<f64>),
}

fn spacing_arg(s: Option<&Bound<'_, PyAny>>, schedule: &Schedule) -> PyResult<SpacingArg> {
    match s {
        None => Ok(SpacingArg::Named(Request::default_spacing(schedule))),
        Some(s) if s.is_instance_of::<PyString>() => {
            let text: String = s.extract()?;
            Ok(SpacingArg::Named(text.parse().map_err(to_py)?))
        }
        Some(s) => {
            let np = s.py().import("numpy")?;
            let times: Vec<f64> = np
                .call_method1("asarray", (s, "float64"))
                .and_then(|a| a.call_method0("tolist"))
                .and_then(|l| l.extract())
                .map_err(|_| {
                    PyTypeError::new_err(
                        "spacing: expected a spacing name or a 1-D sequence of decreasing times",
                    )
                })?;
            Ok(SpacingArg::Times(times))
        }
    }
}

fn final_sigma_arg(s: &str) -> PyResult<FinalSigma> {
    s.parse().map_err(to_py)
}

fn precision_arg(s: &str) -> PyResult<Precision> {
    match s {
        "float64" | "f64" => Ok(Precision::F64),
        "float32" | "f32" => Ok(Precision::F32),
        _ => Err(PyValueError::new_err(format!(
            "precision: expected 'float64' or 'float32', got '{s}'"
        ))),
    }
}

/// A request and its grid, as `sample` and `grid` build them.
#[allow(clippy::too_many_arguments)]
fn request_and_grid(
    solver: Solver,
    steps: Option<usize>,
    nfe: Option<usize>,
    spacing: SpacingArg,
    schedule: &Schedule,
    final_sigma: &str,
    rho: f64,
    precision: Precision,
    seed: u64,
    defined_at_clean: bool,
) -> PyResult<(Request, TimeGrid, String)> {
    let grid_options = GridOptions {
        final_sigma: final_sigma_arg(final_sigma)?,
        rho,
    };
    let (spacing, explicit) = match spacing {
        SpacingArg::Named(s) => (s, None),
        SpacingArg::Times(t) => (Spacing::Uniform, Some(t)),
    };
    let request = Request {
        solver,
        spacing,
        steps,
        nfe,
        grid: grid_options,
        precision,
        seed,
    };
    match explicit {
        None => {
            let grid = request
                .time_grid(schedule, defined_at_clean)
                .map_err(to_py)?;
            let label = request.spacing.to_string();
            Ok((request, grid, label))
        }
        Some(times) => {
            if steps.is_some() || nfe.is_some() {
                return Err(PyValueError::new_err(
                    "spacing: explicit times fix the steps: leave out `steps` and `nfe`",
                ));
            }
            let grid = TimeGrid::new(times, schedule).map_err(|e| match e {
                pfode::Error::Invalid { msg, .. } => {
                    PyValueError::new_err(format!("spacing: {msg}"))
                }
                e => to_py(e),
            })?;
            Ok((request, grid, "explicit".into()))
        }
    }
}

fn defined_at_clean(model: &PyModel) -> bool {
    match &model.inner {
        model::Inner::Native { model, .. } => model.defined_at_clean(),
        model::Inner::Callback(c) => c.defined_at_clean,
    }
}

/// Samples from `x_T` with one solver; returns `(x0, info)`, `info` the CLI's sidecar.
///
/// `out`: a `.npy` path to write the samples to, with `info` beside it as `.json`, only
/// once the run succeeded.
#[pyfunction]
#[allow(non_snake_case, clippy::too_many_arguments)]
#[pyo3(signature = (model, x_T, solver="ddim", steps=None, nfe=None, spacing=None, schedule=None, final_sigma="zero", rho=7.0, precision="float64", seed=0, out=None, **options))]
fn sample<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyModel>,
    x_T: &Bound<'py, PyAny>,
    solver: &str,
    steps: Option<usize>,
    nfe: Option<usize>,
    spacing: Option<&Bound<'py, PyAny>>,
    schedule: Option<&Bound<'py, PyAny>>,
    final_sigma: &str,
    rho: f64,
    precision: &str,
    seed: u64,
    out: Option<PathBuf>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<(Bound<'py, PyAny>, Py<PyAny>)> {
    let model = model.get();
    let schedule = schedule_arg(schedule)?;
    let solver = solver_arg(solver, options)?;
    if let Some(o) = &out {
        if o.extension().is_none_or(|e| e != "npy") {
            return Err(PyValueError::new_err(format!(
                "out: expected a path ending in .npy, got {}",
                o.display()
            )));
        }
    }
    let (x_t, sample_shape) = batch_from(py, "x_T", x_T)?;
    let spacing = spacing_arg(spacing, &schedule)?;
    let (request, grid, spacing_label) = request_and_grid(
        solver,
        steps,
        nfe,
        spacing,
        &schedule,
        final_sigma,
        rho,
        precision_arg(precision)?,
        seed,
        defined_at_clean(model),
    )?;
    let run = model.for_run(
        py,
        &sample_shape,
        num_train_timesteps(&schedule),
        Some(grid.times().to_vec()),
    )?;
    let m = run.model();
    let guard = SigintGuard::new(py)?;
    let result = py.detach(|| request.sample_on(m.as_ref(), &schedule, grid, x_t));
    drop(guard);
    let samples = result.map_err(|e| run_error(py, e, run.take_error()))?;
    let mut info = samples.info;
    info["spacing"] = serde_json::json!(spacing_label);
    info["shape"] = serde_json::json!(sample_shape);
    if let Some(o) = &out {
        let shape: Vec<usize> = std::iter::once(samples.x0.n)
            .chain(sample_shape.iter().copied())
            .collect();
        pfode::npy::write_with_sidecar(o, &shape, &samples.x0.data, pfode::npy::Dtype::F64, &info)
            .map_err(to_py)?;
    }
    let x0 = array_from(py, samples.x0, &sample_shape)?;
    Ok((x0, json_to_py(py, &info)?))
}

/// The time grid a run would use (decreasing times t, from t_max to the end).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (steps=None, spacing=None, schedule=None, solver="ddim", nfe=None, final_sigma="zero", rho=7.0, **options))]
fn grid<'py>(
    py: Python<'py>,
    steps: Option<usize>,
    spacing: Option<&Bound<'py, PyAny>>,
    schedule: Option<&Bound<'py, PyAny>>,
    solver: &str,
    nfe: Option<usize>,
    final_sigma: &str,
    rho: f64,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let schedule = schedule_arg(schedule)?;
    let solver = solver_arg(solver, options)?;
    let spacing = spacing_arg(spacing, &schedule)?;
    let (_, grid, _) = request_and_grid(
        solver,
        steps,
        nfe,
        spacing,
        &schedule,
        final_sigma,
        rho,
        Precision::F64,
        0,
        false,
    )?;
    Ok(PyArray1::from_vec(py, grid.times().to_vec()))
}

/// Every registered solver: name, order, kind, summary and options (with defaults).
#[pyfunction]
fn solvers(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let list: Vec<serde_json::Value> = pfode::solver::SOLVERS
        .iter()
        .map(|s| {
            let solver = Solver::named(s.name).expect("registered solvers build with defaults");
            serde_json::json!({
                "name": s.name,
                "order": s.order,
                "stochastic": s.stochastic,
                "adaptive": solver.is_adaptive(),
                "summary": s.summary,
                "options": s.options.iter().map(|o| serde_json::json!({
                    "name": o.name,
                    "default": o.default.to_json(),
                    "expected": o.expected(),
                    "doc": o.doc,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json_to_py(py, &serde_json::Value::Array(list))
}

/// pfode's standard-normal x_T, the same draws as the CLI's `--seed`: shape `(n, *shape)`.
#[pyfunction]
#[pyo3(signature = (n, shape, seed=0))]
fn noise<'py>(
    py: Python<'py>,
    n: usize,
    shape: &Bound<'py, PyAny>,
    seed: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let shape: Vec<usize> = match shape.extract::<usize>() {
        Ok(d) => vec![d],
        Err(_) => shape.extract().map_err(|_| {
            PyTypeError::new_err("shape: expected an int or a tuple of ints (one sample's shape)")
        })?,
    };
    let d: usize = shape.iter().product();
    if n == 0 || d == 0 {
        return Err(PyValueError::new_err(
            "n, shape: expected at least one sample of at least one element",
        ));
    }
    let b = py.detach(|| pfode::noise::draw(n, d, seed));
    array_from(py, b, &shape)
}

/// DDIM (η = 0) against Euler in σ, DPM-Solver-1 and Euler in t on every spacing, from
/// `x_T`: the per-grid table as a dict of columns.
#[pyfunction]
#[allow(non_snake_case)]
#[pyo3(signature = (model, x_T, steps=vec![10, 20, 50], schedule=None))]
fn check_ddim_euler<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyModel>,
    x_T: &Bound<'py, PyAny>,
    steps: Vec<usize>,
    schedule: Option<&Bound<'py, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let model = model.get();
    let schedule = schedule_arg(schedule)?;
    let (x_t, sample_shape) = batch_from(py, "x_T", x_T)?;
    let run = model.for_run(py, &sample_shape, num_train_timesteps(&schedule), None)?;
    let m = run.model();
    let _guard = SigintGuard::new(py)?;
    let rows = py
        .detach(|| pfode::check::ddim_euler(m.as_ref(), &schedule, &x_t, &steps))
        .map_err(|e| run_error(py, e, run.take_error()))?;
    let cols = serde_json::json!({
        "spacing": rows.iter().map(|r| r.spacing.clone()).collect::<Vec<_>>(),
        "steps": rows.iter().map(|r| r.steps).collect::<Vec<_>>(),
        "ddim_vs_euler_sigma": rows.iter().map(|r| r.euler_sigma_abs).collect::<Vec<_>>(),
        "ddim_vs_euler_sigma_rel": rows.iter().map(|r| r.euler_sigma_rel).collect::<Vec<_>>(),
        "ddim_vs_dpm_solver_1": rows.iter().map(|r| r.dpm1_abs).collect::<Vec<_>>(),
        "ddim_vs_euler_t": rows.iter().map(|r| r.euler_t_abs).collect::<Vec<_>>(),
    });
    json_to_py(py, &cols)
}

/// DOP853 solution of the model's probability-flow ODE from `x_T` (at `t_start`, default
/// the schedule's t_max) to clean data: `(x0, info)`. Tolerances default to 1e-10 for a
/// model defined on clean data (exact ones), 1e-7 otherwise (networks).
#[pyfunction]
#[allow(non_snake_case, clippy::too_many_arguments)]
#[pyo3(signature = (model, x_T, rtol=None, atol=None, schedule=None, mode="batch", t_start=None))]
fn reference<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyModel>,
    x_T: &Bound<'py, PyAny>,
    rtol: Option<f64>,
    atol: Option<f64>,
    schedule: Option<&Bound<'py, PyAny>>,
    mode: &str,
    t_start: Option<f64>,
) -> PyResult<(Bound<'py, PyAny>, Py<PyAny>)> {
    use pfode::reference::{solve, Settings};
    let model = model.get();
    let schedule = schedule_arg(schedule)?;
    let (x_t, sample_shape) = batch_from(py, "x_T", x_T)?;
    let run = model.for_run(py, &sample_shape, num_train_timesteps(&schedule), None)?;
    let m = run.model();
    let tolerance = pfode::reference::default_tolerance(m.as_ref());
    let settings = Settings {
        rtol: rtol.unwrap_or(tolerance),
        atol: atol.unwrap_or(tolerance),
        mode: mode.parse().map_err(to_py)?,
        progress: false,
    };
    settings.validate().map_err(to_py)?;
    let t_start = t_start.unwrap_or(schedule.t_max());
    let start = std::time::Instant::now();
    let _guard = SigintGuard::new(py)?;
    let (x0, stats) = py
        .detach(|| solve(m.as_ref(), &schedule, &x_t, t_start, 0.0, &settings))
        .map_err(|e| run_error(py, e, run.take_error()))?;
    let info = serde_json::json!({
        "pfode_version": env!("CARGO_PKG_VERSION"),
        "method": "DOP853 (ode_solvers), sigma-coordinates, f64",
        "model": {"description": model.description()},
        "schedule": schedule.describe(),
        "rtol": settings.rtol,
        "atol": settings.atol,
        "mode": settings.mode,
        "t_start": t_start,
        "nfe": stats.model_calls,
        "stats": stats,
        "wall_time_s": start.elapsed().as_secs_f64(),
        "n": x_t.n,
        "shape": sample_shape,
    });
    Ok((array_from(py, x0, &sample_shape)?, json_to_py(py, &info)?))
}

/// Tunes a step grid to `model`, `solver` and an NFE budget on calibration x_T (`seed`),
/// judges it on held-out x_T (`held_out_seed`, default `seed + 1`) against every fixed
/// spacing, and returns `(times, report)`; with `out=`, also writes the grid file that
/// `spacing="file:PATH"` and `pfode sample --spacing file:PATH` read.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (model, solver, nfe, out=None, method="direct", objective="error", calibration=256, seed=0, held_out=1024, held_out_seed=None, candidates=60, dp_cost="propagated", dp_rows=256, max_evals=3000, starts=3, rtol=None, atol=None, schedule=None, final_sigma="zero", rho=7.0, **options))]
fn optimize_grid<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyModel>,
    solver: &str,
    nfe: usize,
    out: Option<PathBuf>,
    method: &str,
    objective: &str,
    calibration: usize,
    seed: u64,
    held_out: usize,
    held_out_seed: Option<u64>,
    candidates: usize,
    dp_cost: &str,
    dp_rows: usize,
    max_evals: usize,
    starts: usize,
    rtol: Option<f64>,
    atol: Option<f64>,
    schedule: Option<&Bound<'py, PyAny>>,
    final_sigma: &str,
    rho: f64,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Py<PyAny>)> {
    use pfode::optimize::{self, Options, Problem};
    let py_model = model.get();
    let schedule = schedule_arg(schedule)?;
    let solver = solver_arg(solver, options)?;
    if let Some(o) = &out {
        if o.extension().is_none_or(|e| e != "json") {
            return Err(PyValueError::new_err(format!(
                "out: expected a path ending in .json, got {}",
                o.display()
            )));
        }
    }
    let shape = py_model.shape_known().ok_or_else(|| {
        PyValueError::new_err(
            "model: optimize_grid draws its own x_T, so it needs the model's sample shape: \
             pfode.Model(fn, ..., shape=(C, H, W))",
        )
    })?;
    let run = py_model.for_run(py, &shape, num_train_timesteps(&schedule), None)?;
    let m = run.model();
    let problem = Problem {
        model: m.as_ref(),
        schedule: &schedule,
        solver: &solver,
        nfe,
        grid: pfode::grid::GridOptions {
            final_sigma: final_sigma.parse().map_err(to_py)?,
            rho,
        },
    };
    let mut o = Options::new(&schedule, m.as_ref());
    o.method = method.parse().map_err(to_py)?;
    o.objective = objective.parse().map_err(to_py)?;
    o.calibration = calibration;
    o.seed = seed;
    o.held_out = held_out;
    o.held_out_seed = held_out_seed.unwrap_or(seed.wrapping_add(1));
    o.candidates = candidates;
    o.dp_cost = dp_cost.parse().map_err(to_py)?;
    o.dp_rows = dp_rows;
    o.max_evals = max_evals;
    o.starts = starts;
    if let Some(r) = rtol {
        o.reference.rtol = r;
        o.reference.atol = r;
    }
    if let Some(a) = atol {
        o.reference.atol = a;
    }
    let _guard = SigintGuard::new(py)?;
    let r = py
        .detach(|| optimize::optimize(&problem, &o))
        .map_err(|e| run_error(py, e, run.take_error()))?;
    // provenance records the model as it describes itself: a callable by its repr and conventions.
    let made_by = optimize::provenance(&problem, &o, &r);
    if let Some(path) = &out {
        optimize::write_grid(path, &schedule, &r.grid, made_by.clone()).map_err(to_py)?;
    }
    Ok((
        PyArray1::from_vec(py, r.grid.times().to_vec()),
        json_to_py(py, &made_by)?,
    ))
}

/// Runs a sweep spec (a TOML path or a dict of the same keys) with any extra models by
/// name, writing the same results folder as `pfode sweep`; returns the table as a dict of
/// columns and the folder.
#[pyfunction]
#[pyo3(signature = (spec, models=None, out=None, resume=false, jobs=None, quiet=true))]
fn sweep(
    py: Python<'_>,
    spec: &Bound<'_, PyAny>,
    models: Option<&Bound<'_, PyDict>>,
    out: Option<PathBuf>,
    resume: bool,
    jobs: Option<usize>,
    quiet: bool,
) -> PyResult<(Py<PyAny>, String)> {
    let (origin, text) = if let Ok(path) = spec.extract::<PathBuf>() {
        let text = std::fs::read_to_string(&path).map_err(|e| to_py(pfode::Error::io(&path, e)))?;
        (path, text)
    } else if spec.is_instance_of::<PyDict>() {
        let json = convert::py_to_json(py, "spec", spec)?;
        let value = toml::Value::try_from(&json)
            .map_err(|e| PyValueError::new_err(format!("spec: not expressible as TOML: {e}")))?;
        let text = toml::to_string(&value)
            .map_err(|e| PyValueError::new_err(format!("spec: not expressible as TOML: {e}")))?;
        (PathBuf::from("spec"), text)
    } else {
        return Err(PyTypeError::new_err(format!(
            "spec: expected a path to a TOML spec or a dict, got {}",
            spec.get_type().name()?
        )));
    };
    let parsed = Spec::from_text(&origin, &text).map_err(to_py)?;
    // A callable given time="index" needs the training steps of the spec's schedules.
    let mut steps_t: Vec<Option<usize>> = Vec::new();
    for name in parsed.schedule.values() {
        steps_t.push(num_train_timesteps(&Schedule::named(&name).map_err(to_py)?));
    }
    steps_t.dedup();
    let train_steps = if steps_t.len() == 1 { steps_t[0] } else { None };
    let mut runs: Vec<Runnable> = Vec::new();
    let mut named = Vec::new();
    if let Some(models) = models {
        for (k, v) in models.iter() {
            let name: String = k.extract().map_err(|_| {
                PyTypeError::new_err("models: expected a dict of name -> pfode.Model")
            })?;
            let m = v.cast::<PyModel>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "models['{name}']: expected a pfode.Model, got {}",
                    v.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            let m = m.get();
            let shape = m.shape_known().ok_or_else(|| {
                PyValueError::new_err(format!(
                    "models['{name}']: a sweep draws its own x_T, so it needs the model's \
                     sample shape: pfode.Model(fn, ..., shape=(C, H, W))"
                ))
            })?;
            let run = m
                .for_run(py, &shape, train_steps, None)
                .map_err(|e| PyValueError::new_err(format!("models['{name}']: {e}")))?;
            named.push(NamedModel {
                name,
                model: run.model(),
                data: m.data.clone(),
            });
            runs.push(run);
        }
    }
    let out = out.unwrap_or_else(|| PathBuf::from("results").join(&parsed.name));
    let opts = SweepOptions {
        out: out.clone(),
        shard: None,
        resume,
        jobs: jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
        quiet,
        models: named,
    };
    let _guard = SigintGuard::new(py)?;
    py.detach(|| pfode::experiment::sweep_text(&origin, &text, &opts))
        .map_err(|e| {
            let raised = runs.iter().find_map(|r| r.take_error());
            run_error(py, e, raised)
        })?;
    let table = read_table(py, &out.join("results.csv"))?;
    Ok((table, out.display().to_string()))
}

/// `results.csv` as a dict of columns.
fn read_table(py: Python<'_>, path: &Path) -> PyResult<Py<PyAny>> {
    let (rows, _) = pfode::experiment::table::read(path).map_err(to_py)?;
    let v = serde_json::to_value(&rows).expect("rows serialise");
    let mut cols = serde_json::Map::new();
    for name in pfode::experiment::table::COLUMNS {
        let col = v.as_array().expect("array").iter().map(|r| r[name].clone());
        cols.insert(name.to_string(), col.collect());
    }
    let d = json_to_py(py, &serde_json::Value::Object(cols))?;
    // JSON has no NaN (a diverged run's metrics): the values go over as floats directly.
    let values: Vec<f64> = rows.iter().map(|r| r.value).collect();
    d.bind(py).set_item("value", values)?;
    Ok(d)
}

/// Reads a results folder's table (`results.csv`) as a dict of columns.
#[pyfunction]
fn results(py: Python<'_>, results_dir: PathBuf) -> PyResult<Py<PyAny>> {
    read_table(py, &results_dir.join("results.csv"))
}

/// Writes the plots of a results folder (as `pfode plot`); returns their paths.
#[pyfunction]
fn plot(py: Python<'_>, results_dir: PathBuf) -> PyResult<Vec<String>> {
    let files = py
        .detach(|| pfode::plot::plot(&results_dir))
        .map_err(to_py)?;
    Ok(files.iter().map(|p| p.display().to_string()).collect())
}

/// Fitted vs declared convergence orders of a results folder (as `pfode orders`; also
/// writes its `orders.csv`): a dict of columns.
#[pyfunction]
fn orders(py: Python<'_>, results_dir: PathBuf) -> PyResult<Py<PyAny>> {
    let rows = py
        .detach(|| pfode::experiment::orders::orders(&results_dir))
        .map_err(to_py)?;
    let col = |f: &dyn Fn(&pfode::experiment::orders::Order) -> serde_json::Value| {
        serde_json::Value::Array(rows.iter().map(f).collect())
    };
    let cols = serde_json::json!({
        "model": col(&|o| serde_json::json!(o.model)),
        "solver": col(&|o| serde_json::json!(o.solver)),
        "options": col(&|o| serde_json::json!(o.options)),
        "spacing": col(&|o| serde_json::json!(o.spacing)),
        "kind": col(&|o| serde_json::json!(o.kind)),
        "declared": col(&|o| serde_json::json!(o.declared)),
        "observed": col(&|o| serde_json::json!(o.observed)),
        "nfe_used": col(&|o| serde_json::json!(o.nfe_used)),
    });
    json_to_py(py, &cols)
}

/// The 8×8 digits pfode's digits benchmark uses, in [−1, 1]: `(images [n, 1, 8, 8],
/// labels [n])` of the `"train"` (1 438) or `"held-out"` (359) split.
#[pyfunction]
#[pyo3(signature = (split="train"))]
fn digits<'py>(py: Python<'py>, split: &str) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    use pfode::digits::{load, Split, SIDE};
    let split = match split {
        "train" => Split::Train,
        "held-out" | "held_out" => Split::HeldOut,
        _ => {
            return Err(PyValueError::new_err(format!(
                "split: expected 'train' or 'held-out', got '{split}'"
            )))
        }
    };
    let d = load(split).map_err(to_py)?;
    let labels = PyArray1::from_vec(py, d.labels).into_any();
    Ok((array_from(py, d.images, &[1, SIDE, SIDE])?, labels))
}

/// Digits feature FD and KID of `images` (`[n, 64]` or `[n, 1, 8, 8]`, in [−1, 1]) against
/// the held-out digits, with the real-data floor (held-out vs training) beside them, as
/// `pfode digits score` prints.
#[pyfunction]
fn digits_scores(py: Python<'_>, images: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let (x, shape) = batch_from(py, "images", images)?;
    if x.d != pfode::digits::PIXELS {
        return Err(PyValueError::new_err(format!(
            "images: expected 64 pixels per image ((N, 64) or (N, 1, 8, 8)), got shape {shape:?}"
        )));
    }
    let r = py
        .detach(|| {
            let c = pfode::digits::Classifier::load_or_committed(None)?;
            pfode::digits::score_report(&c, &x)
        })
        .map_err(to_py)?;
    let info = serde_json::json!({
        "fd": r.samples.fd,
        "kid": r.samples.kid,
        "floor_fd": r.floor.fd,
        "floor_kid": r.floor.kid,
        "nearest_sample": r.nearest_sample,
        "nearest_held_out": r.nearest_held_out,
    });
    json_to_py(py, &info)
}

/// The configurations `orders` leaves out (stochastic samplers, clamped runs) with why.
#[pyfunction]
fn orders_left_out(py: Python<'_>, results_dir: PathBuf) -> PyResult<Vec<(String, String)>> {
    let left = py
        .detach(|| pfode::experiment::orders::left_out(&results_dir))
        .map_err(to_py)?;
    Ok(left
        .into_iter()
        .map(|(c, why)| (c, why.to_string()))
        .collect())
}

#[pymodule]
fn _pfode(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyModel>()?;
    m.add_class::<PySchedule>()?;
    m.add("ModelError", m.py().get_type::<ModelError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(sample, m)?)?;
    m.add_function(wrap_pyfunction!(grid, m)?)?;
    m.add_function(wrap_pyfunction!(solvers, m)?)?;
    m.add_function(wrap_pyfunction!(noise, m)?)?;
    m.add_function(wrap_pyfunction!(check_ddim_euler, m)?)?;
    m.add_function(wrap_pyfunction!(reference, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(optimize_grid, m)?)?;
    m.add_function(wrap_pyfunction!(results, m)?)?;
    m.add_function(wrap_pyfunction!(plot, m)?)?;
    m.add_function(wrap_pyfunction!(orders, m)?)?;
    m.add_function(wrap_pyfunction!(orders_left_out, m)?)?;
    m.add_function(wrap_pyfunction!(digits, m)?)?;
    m.add_function(wrap_pyfunction!(digits_scores, m)?)?;
    Ok(())
}
