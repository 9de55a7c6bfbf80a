//! One sampling run as the library offers it: a solver on a grid from x_T, and the record
//! of how it ran (what `pfode sample` writes as its sidecar, and Python returns as `info`).

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::grid::{GridOptions, Spacing, TimeGrid};
use crate::model::{Counted, ScoreModel};
use crate::schedule::Schedule;
use crate::solver::{Ctx, Precision, Solver};
use serde_json::json;
use std::time::Instant;

/// What to run: the solver, and the grid as steps or an NFE budget.
#[derive(Clone, Debug)]
pub struct Request {
    pub solver: Solver,
    pub spacing: Spacing,
    /// Number of steps (`None`: the spacing's own, e.g. a grid file's).
    pub steps: Option<usize>,
    /// A model-evaluation budget instead of `steps`: the most steps whose NFE fits it.
    pub nfe: Option<usize>,
    pub grid: GridOptions,
    pub precision: Precision,
    /// Seed of any noise the solver injects.
    pub seed: u64,
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct Samples {
    /// The samples at the grid's end, `[n, d]`.
    pub x0: Batch,
    pub grid: TimeGrid,
    /// Model evaluations used (counted on the model, not by the solver).
    pub nfe: usize,
    pub wall_s: f64,
    /// Solver, options, schedule, the exact grid, NFE, wall time, seed, shape and dtype.
    pub info: serde_json::Value,
}

impl Request {
    /// The default spacing of `schedule`: trailing when discrete, uniform otherwise.
    pub fn default_spacing(schedule: &Schedule) -> Spacing {
        if schedule.discrete().is_some() {
            Spacing::Trailing
        } else {
            Spacing::Uniform
        }
    }

    /// The time grid this request runs on for a model that is (or is not) defined on clean
    /// data (the NFE of a budget depends on it).
    pub fn time_grid(&self, schedule: &Schedule, defined_at_clean: bool) -> Result<TimeGrid> {
        if self.steps.is_some() && self.nfe.is_some() {
            return Err(Error::invalid("nfe", "give `steps` or `nfe`, not both"));
        }
        if self.steps.is_none()
            && self.nfe.is_none()
            && !self.solver.is_adaptive()
            && !matches!(self.spacing, Spacing::File(_))
        {
            return Err(Error::invalid("steps", "give `steps` or `nfe`"));
        }
        let steps = match (self.nfe, self.solver.is_adaptive()) {
            (Some(_), true) => {
                return Err(Error::invalid(
                    "nfe",
                    format!(
                        "{} chooses its own steps: set `rtol`/`atol` instead",
                        self.solver.name()
                    ),
                ))
            }
            (Some(budget), false) => Some(self.solver.steps_for_nfe(
                schedule,
                &self.spacing,
                self.grid,
                budget,
                defined_at_clean,
            )?),
            (None, true) => Some(self.steps.unwrap_or(1)),
            (None, false) => self.steps,
        };
        TimeGrid::build(schedule, &self.spacing, steps, self.grid)
    }

    /// Runs the request on `model` from `x_t` (rounded to f32 first in single precision).
    pub fn sample(
        &self,
        model: &dyn ScoreModel,
        schedule: &Schedule,
        x_t: Batch,
    ) -> Result<Samples> {
        let grid = self.time_grid(schedule, model.defined_at_clean())?;
        self.sample_on(model, schedule, grid, x_t)
    }

    /// [`Request::sample`] on `grid`, the request's [`Request::time_grid`] for this model,
    /// for a caller that built it already (to check it before reading x_T).
    pub fn sample_on(
        &self,
        model: &dyn ScoreModel,
        schedule: &Schedule,
        grid: TimeGrid,
        x_t: Batch,
    ) -> Result<Samples> {
        if x_t.d != model.dim() {
            return Err(Error::invalid(
                "x_t",
                format!(
                    "expected rows of the model's dimension {}, got {}",
                    model.dim(),
                    x_t.d
                ),
            ));
        }
        let (n, d) = (x_t.n, x_t.d);
        let mut x_t = x_t;
        let f32 = self.precision == Precision::F32;
        if f32 {
            x_t.round_to_f32();
        }
        let counted = Counted::new(model, f32);
        let ctx = Ctx::new(&counted, schedule, &grid, self.seed);
        let start = Instant::now();
        let x0 = self.solver.integrate(&ctx, x_t, self.precision)?;
        let wall_s = start.elapsed().as_secs_f64();
        let nfe = counted.nfe();
        let times = grid.times();
        let info = json!({
            "pfode_version": env!("CARGO_PKG_VERSION"),
            "model": {"description": model.describe()},
            "solver": self.solver.name(),
            "order": self.solver.order(),
            "nfe_budget": self.nfe,
            "options": self.solver.options_json(),
            "schedule": schedule.describe(),
            "spacing": self.spacing.to_string(),
            "final_sigma": self.grid.final_sigma,
            "karras_rho": self.grid.rho,
            "steps": grid.steps(),
            "grid": {
                "t": times,
                "model_time": times.iter().map(|&t| schedule.model_time(t)).collect::<Vec<_>>(),
                "alpha": times.iter().map(|&t| schedule.alpha(t)).collect::<Vec<_>>(),
                "sigma": times.iter().map(|&t| schedule.sigma(t)).collect::<Vec<_>>(),
            },
            "nfe": nfe,
            "wall_time_s": wall_s,
            "seed": self.seed,
            "n": n,
            "dim": d,
            "dtype": self.precision,
        });
        Ok(Samples {
            x0,
            grid,
            nfe,
            wall_s,
            info,
        })
    }
}
