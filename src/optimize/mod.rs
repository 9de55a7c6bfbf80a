//! Step grids tuned to one model, solver and NFE budget (`pfode optimize-grid`), and
//! measured honestly: chosen on a calibration batch of x_T, reported on a held-out batch
//! drawn with another seed, against the best fixed spacing chosen the same way.
//!
//! Two searches, both over grids with the same first point (t_max), the same last point
//! (σ = 0, or the first training step) and the step count the budget buys:
//! * [`dp`]: dynamic programming over a fine candidate grid, the cost of a step being the
//!   solver's local error from the reference trajectory (Chen et al., "On the trajectory
//!   regularity of ODE-based diffusion sampling" (GITS), ICML 2024; Pei et al., "Optimal
//!   stepsize for diffusion sampling", 2025);
//! * [`direct`]: Nelder–Mead on the end-point objective of the whole N-NFE solve, over
//!   softmax increments in log-SNR λ (Tong et al., "Learning to discretize denoising
//!   diffusion ODEs" (LD3), ICLR 2025, optimise the same end-point loss by gradients).

pub mod direct;
pub mod dp;
pub mod nelder_mead;
pub mod study;

use crate::batch::Batch;
use crate::digits::classifier::Classifier;
use crate::error::{Error, Result};
use crate::grid::{FinalSigma, GridOptions, Spacing, TimeGrid};
use crate::model::ScoreModel;
use crate::reference::{self, Settings};
use crate::schedule::Schedule;
use crate::solver::{self, Solver};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

crate::names::named_enum! {
    /// How a grid is searched for.
    pub enum Method("method") {
        /// Dynamic programming over candidate points with additive local-error costs.
        Dp = "dp",
        /// Nelder–Mead on the whole solve's objective, from the best fixed grid.
        Direct = "direct",
    }
}

crate::names::named_enum! {
    /// What a grid is judged by.
    pub enum Objective("objective") {
        /// RMS end-point error to the DOP853 reference of the same model and x_T.
        Error = "error",
        /// Fréchet distance of the digits classifier's features to the held-out images
        /// (for 8×8 digits models: works where no exact reference exists).
        DigitsFd = "digits-fd",
    }
}

/// The grid's owner: which model, solver and budget it is tuned for.
pub struct Problem<'a> {
    pub model: &'a dyn ScoreModel,
    pub schedule: &'a Schedule,
    pub solver: &'a Solver,
    /// Model-evaluation budget.
    pub nfe: usize,
    /// Where the grid ends, and the Karras ρ of the fixed `karras` spacing.
    pub grid: GridOptions,
}

/// How to search and judge.
#[derive(Clone, Debug)]
pub struct Options {
    pub method: Method,
    pub objective: Objective,
    /// Size and seed of the batch of x_T the grid is tuned on.
    pub calibration: usize,
    pub seed: u64,
    /// Size and seed of the batch it is judged on (the seed must differ).
    pub held_out: usize,
    pub held_out_seed: u64,
    /// Tolerances of the reference solves.
    pub reference: Settings,
    /// `dp`: candidate points, uniform in λ, and what a step costs.
    pub candidates: usize,
    pub dp_cost: dp::Cost,
    /// `dp`: how many of the calibration x_T (the first ones) its costs are measured on
    /// (each candidate pair carries a batch of them to the end).
    pub dp_rows: usize,
    /// `direct`: most objective evaluations, and how many of the best fixed grids it starts
    /// from.
    pub max_evals: usize,
    pub starts: usize,
    /// The fixed spacings compared (and `direct` starts from the best of).
    pub spacings: Vec<Spacing>,
}

impl Options {
    /// Defaults for `schedule`, with tolerances fitting `model` ([`reference::default_tolerance`]).
    pub fn new(schedule: &Schedule, model: &dyn ScoreModel) -> Self {
        let tol = reference::default_tolerance(model);
        Options {
            method: Method::Direct,
            objective: Objective::Error,
            calibration: 256,
            seed: 0,
            held_out: 1024,
            held_out_seed: 1,
            reference: Settings {
                rtol: tol,
                atol: tol,
                ..Settings::default()
            },
            candidates: 60,
            dp_cost: dp::Cost::Propagated,
            dp_rows: 256,
            max_evals: 3000,
            starts: 3,
            spacings: fixed_spacings(schedule),
        }
    }
}

/// The fixed spacings that start at t_max, so that every grid compared solves the same
/// problem from the same x_T (diffusers' `leading` starts lower and is left out).
pub fn fixed_spacings(schedule: &Schedule) -> Vec<Spacing> {
    let mut s = Vec::new();
    if schedule.discrete().is_some() {
        s.extend([Spacing::Trailing, Spacing::Linspace]);
    }
    s.extend([
        Spacing::Uniform,
        Spacing::Quadratic,
        Spacing::LogSnr,
        Spacing::Karras,
    ]);
    s
}

/// A grid's objective on the calibration and the held-out batch.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Scores {
    pub calibration: f64,
    pub held_out: f64,
}

/// A fixed spacing's grid and scores.
#[derive(Clone, Debug)]
pub struct Fixed {
    pub spacing: Spacing,
    pub grid: TimeGrid,
    pub scores: Scores,
}

/// An optimised grid with the evidence for it.
#[derive(Clone, Debug)]
pub struct Optimized {
    pub grid: TimeGrid,
    pub scores: Scores,
    /// NFE the solver uses on the grid (equal to the best fixed grid's, counted by dry runs).
    pub nfe: usize,
    /// Every fixed spacing, and which one scored best on the calibration batch.
    pub fixed: Vec<Fixed>,
    pub best_fixed: usize,
    /// Objective evaluations (whole solves; `dp`: one-step solves) the search used.
    pub evaluations: usize,
    /// Reference model calls (batched) the search needed.
    pub reference_calls: usize,
    /// Wall time of the search alone, and of everything (references, fixed grids, scoring).
    pub search_s: f64,
    pub total_s: f64,
}

impl Optimized {
    /// The best fixed grid (chosen on the calibration batch).
    pub fn best(&self) -> &Fixed {
        &self.fixed[self.best_fixed]
    }

    /// Held-out objective of the optimised grid over that of the best fixed grid.
    pub fn held_out_ratio(&self) -> f64 {
        self.scores.held_out / self.best().scores.held_out
    }
}

/// Judges grids: one solve of the problem's solver from a batch of x_T, scored by the
/// objective. A run that stops on a non-finite value scores +∞ (the search avoids it).
pub struct Judge<'a> {
    problem: &'a Problem<'a>,
    x_t: Batch,
    target: Target<'a>,
}

enum Target<'a> {
    Reference(Batch),
    Features(&'a DigitsJudge),
}

/// The digits classifier and the held-out images' features, loaded once.
pub struct DigitsJudge {
    classifier: Classifier,
    real: Batch,
}

impl DigitsJudge {
    /// The committed classifier and the held-out digits' features, made once per process
    /// (every search of a study shares them).
    pub fn committed() -> Result<&'static Self> {
        static JUDGE: std::sync::OnceLock<DigitsJudge> = std::sync::OnceLock::new();
        if let Some(j) = JUDGE.get() {
            return Ok(j);
        }
        let classifier = Classifier::committed()?;
        let real = crate::digits::reference_features(&classifier)?;
        Ok(JUDGE.get_or_init(|| DigitsJudge { classifier, real }))
    }
}

impl<'a> Judge<'a> {
    /// Objective value of `grid`.
    pub fn value(&self, grid: &TimeGrid) -> Result<f64> {
        let Some(out) = self.problem.finite_run(grid, self.x_t.clone())? else {
            return Ok(f64::INFINITY);
        };
        match &self.target {
            Target::Reference(r) => Ok(out.rms_distance(r)),
            Target::Features(d) => {
                Ok(crate::digits::feature_scores(&d.classifier, &out, &d.real)?.fd)
            }
        }
    }
}

impl Problem<'_> {
    /// The grid's last time: 0, or the first training step.
    pub fn t_end(&self) -> f64 {
        match self.grid.final_sigma {
            FinalSigma::Zero => 0.0,
            FinalSigma::Min => self.schedule.t_min(),
        }
    }

    /// The solver's output on `grid` from `x`, or `None` where the run went non-finite
    /// (the model's output, or the state at the end).
    pub fn finite_run(&self, grid: &TimeGrid, x: Batch) -> Result<Option<Batch>> {
        match solver::sample(self.solver, self.model, self.schedule, grid, x, 0) {
            Ok((out, _)) if out.data.iter().all(|v| v.is_finite()) => Ok(Some(out)),
            Ok(_) | Err(Error::NonFinite { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn check(&self, o: &Options) -> Result<()> {
        if self.solver.is_adaptive() {
            return Err(Error::invalid(
                "solver",
                format!(
                    "{} chooses its own steps; a grid can be optimised for fixed-step solvers only",
                    self.solver.name()
                ),
            ));
        }
        if self.solver.is_stochastic() && o.objective == Objective::Error {
            return Err(Error::invalid(
                "objective",
                format!(
                    "{} injects noise, so its distance to the ODE reference is not an error; \
                     use --objective digits-fd or a deterministic solver",
                    self.solver.name()
                ),
            ));
        }
        if o.objective == Objective::DigitsFd && self.model.dim() != 64 {
            return Err(Error::invalid(
                "objective",
                format!(
                    "digits-fd scores 8×8 digits (dimension 64); the model has dimension {}",
                    self.model.dim()
                ),
            ));
        }
        for (name, n) in [("calibration", o.calibration), ("held_out", o.held_out)] {
            if n < 2 {
                return Err(Error::invalid(
                    name,
                    format!("expected at least 2 samples, got {n}"),
                ));
            }
        }
        if o.seed == o.held_out_seed {
            return Err(Error::invalid(
                "held_out_seed",
                format!(
                    "must differ from the calibration seed {} (held-out noise is new noise)",
                    o.seed
                ),
            ));
        }
        if o.spacings.is_empty() {
            return Err(Error::invalid(
                "spacings",
                "expected at least one fixed spacing",
            ));
        }
        if o.method == Method::Dp && o.candidates < 3 {
            return Err(Error::invalid(
                "candidates",
                format!("expected at least 3, got {}", o.candidates),
            ));
        }
        o.reference.validate()
    }

    /// A judge of grids on `n` x_T drawn with `seed`; `calls` counts the reference's model
    /// calls.
    pub fn judge<'a>(
        &'a self,
        n: usize,
        seed: u64,
        objective: Objective,
        settings: &Settings,
        digits: Option<&'a DigitsJudge>,
        calls: &mut usize,
    ) -> Result<Judge<'a>> {
        let x_t = crate::noise::draw(n, self.model.dim(), seed);
        let target = match (objective, digits) {
            (Objective::DigitsFd, Some(d)) => Target::Features(d),
            (Objective::DigitsFd, None) => {
                return Err(Error::invalid("objective", "digits-fd needs a DigitsJudge"))
            }
            (Objective::Error, _) => {
                let (r, st) = reference::solve(
                    self.model,
                    self.schedule,
                    &x_t,
                    self.schedule.t_max(),
                    self.t_end(),
                    settings,
                )?;
                *calls += st.model_calls;
                Target::Reference(r)
            }
        };
        Ok(Judge {
            problem: self,
            x_t,
            target,
        })
    }

    /// The fixed spacing's grid for this budget (an error where the spacing cannot serve
    /// it, e.g. the budget is below the solver's least NFE).
    fn fixed_grid(&self, spacing: &Spacing) -> Result<TimeGrid> {
        let clean = self.model.defined_at_clean();
        let steps =
            self.solver
                .steps_for_nfe(self.schedule, spacing, self.grid, self.nfe, clean)?;
        TimeGrid::build(self.schedule, spacing, Some(steps), self.grid)
    }
}

/// Optimises the grid of `problem` as `options` say.
pub fn optimize(problem: &Problem, options: &Options) -> Result<Optimized> {
    problem.check(options)?;
    let started = Instant::now();
    let digits = match options.objective {
        Objective::DigitsFd => Some(DigitsJudge::committed()?),
        Objective::Error => None,
    };
    let mut calls = 0;
    let calibration = problem.judge(
        options.calibration,
        options.seed,
        options.objective,
        &options.reference,
        digits,
        &mut calls,
    )?;
    let held_out = problem.judge(
        options.held_out,
        options.held_out_seed,
        options.objective,
        &options.reference,
        digits,
        &mut calls,
    )?;
    let scores = |grid: &TimeGrid| -> Result<Scores> {
        Ok(Scores {
            calibration: calibration.value(grid)?,
            held_out: held_out.value(grid)?,
        })
    };
    let mut fixed = Vec::new();
    for spacing in &options.spacings {
        let grid = problem.fixed_grid(spacing)?;
        fixed.push(Fixed {
            spacing: spacing.clone(),
            scores: scores(&grid)?,
            grid,
        });
    }
    // Fixed grids from best to worst on the calibration batch.
    let mut order: Vec<usize> = (0..fixed.len()).collect();
    order.sort_by(|&a, &b| {
        fixed[a]
            .scores
            .calibration
            .total_cmp(&fixed[b].scores.calibration)
    });
    let best_fixed = order[0];
    let clean = problem.model.defined_at_clean();
    let start = &fixed[best_fixed].grid;
    let nfe = problem.solver.nfe_on(problem.schedule, start, clean)?;
    let search_started = Instant::now();
    let (grid, evaluations) = match options.method {
        Method::Direct => {
            let starts: Vec<(&TimeGrid, f64)> = order
                .iter()
                .take(options.starts.max(1))
                .map(|&i| (&fixed[i].grid, fixed[i].scores.calibration))
                .collect();
            direct::search(problem, &calibration, &starts, options.max_evals)?
        }
        Method::Dp => {
            let rows = options.dp_rows.clamp(1, calibration.x_t.n);
            let x = &calibration.x_t;
            let x = Batch::new(rows, x.d, x.data[..rows * x.d].to_vec())?;
            let (grid, evals, ref_calls) = dp::search(
                problem,
                &x,
                start.steps(),
                options.candidates,
                options.dp_cost,
                &options.reference,
            )?;
            calls += ref_calls;
            (grid, evals)
        }
    };
    let search_s = search_started.elapsed().as_secs_f64();
    let used = problem.solver.nfe_on(problem.schedule, &grid, clean)?;
    if used != nfe {
        return Err(Error::Numerical {
            method: "optimize-grid".into(),
            msg: format!(
                "the optimised grid costs {used} NFE where the fixed grids cost {nfe}; \
                 this solver's NFE depends on the grid's times, which the search assumes it does not"
            ),
        });
    }
    Ok(Optimized {
        scores: scores(&grid)?,
        grid,
        nfe,
        fixed,
        best_fixed,
        evaluations,
        reference_calls: calls,
        search_s,
        total_s: started.elapsed().as_secs_f64(),
    })
}

/// Everything a grid file records besides the times: how it was made and what it scored.
pub fn provenance(problem: &Problem, options: &Options, o: &Optimized) -> serde_json::Value {
    json!({
        "pfode_version": env!("CARGO_PKG_VERSION"),
        "command": "optimize-grid",
        "model": problem.model.describe(),
        "schedule": problem.schedule.describe(),
        "solver": problem.solver.name(),
        "options": problem.solver.options_json(),
        "nfe_budget": problem.nfe,
        "nfe": o.nfe,
        "steps": o.grid.steps(),
        "final_sigma": problem.grid.final_sigma,
        "method": options.method,
        "objective": options.objective,
        "calibration": {"n": options.calibration, "seed": options.seed},
        "held_out": {"n": options.held_out, "seed": options.held_out_seed},
        "reference": {"rtol": options.reference.rtol, "atol": options.reference.atol},
        "candidates": (options.method == Method::Dp).then_some(options.candidates),
        "dp_cost": (options.method == Method::Dp).then_some(options.dp_cost),
        "dp_rows": (options.method == Method::Dp).then_some(options.dp_rows.min(options.calibration)),
        "max_evals": (options.method == Method::Direct).then_some(options.max_evals),
        "starts": (options.method == Method::Direct).then_some(options.starts),
        "before": {
            "spacing": o.best().spacing.to_string(),
            "calibration": o.best().scores.calibration,
            "held_out": o.best().scores.held_out,
        },
        "after": o.scores,
        "held_out_ratio": o.held_out_ratio(),
        "fixed": o.fixed.iter().map(|f| json!({
            "spacing": f.spacing.to_string(),
            "calibration": f.scores.calibration,
            "held_out": f.scores.held_out,
        })).collect::<Vec<_>>(),
        "evaluations": o.evaluations,
        "reference_calls": o.reference_calls,
        "search_s": o.search_s,
        "total_s": o.total_s,
    })
}

/// Writes a grid file that `--spacing file:PATH`, specs and Python read: `{"t": [...],
/// "sigma": [...], "lambda": [...], "made_by": {...}}` (only `t` is read back).
pub fn write_grid(
    path: &Path,
    schedule: &Schedule,
    grid: &TimeGrid,
    made_by: serde_json::Value,
) -> Result<()> {
    let t = grid.times();
    // λ is +∞ at σ = 0, which JSON cannot hold: it is written as null there.
    let lambda: Vec<Option<f64>> = t
        .iter()
        .map(|&t| Some(schedule.lambda(t)).filter(|l| l.is_finite()))
        .collect();
    let doc = json!({
        "t": t,
        "sigma": t.iter().map(|&t| schedule.sigma(t)).collect::<Vec<_>>(),
        "lambda": lambda,
        "made_by": made_by,
    });
    let text = serde_json::to_string_pretty(&doc).expect("JSON values serialise");
    crate::io::write_atomic(path, format!("{text}\n").as_bytes())
}
