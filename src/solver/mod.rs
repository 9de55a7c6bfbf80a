//! Samplers behind one trait, one file per solver, and the single integration loop.
//!
//! A sampler is configuration plus `init` and `step`; its per-run state (history, noise
//! streams) is handed in and back, never hidden in the sampler. The loop, not the solver,
//! owns the grid walk; the [`Counted`] model, not the solver, counts NFE.

mod ddim;
mod ddpm;
mod dpm_solver_1;
mod euler;
mod euler_maruyama;

pub use ddim::Ddim;
pub use ddpm::{Ddpm, Variance};
pub use dpm_solver_1::DpmSolver1;
pub use euler::Euler;
pub use euler_maruyama::EulerMaruyama;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::flow::Coords;
use crate::grid::TimeGrid;
use crate::model::{Counted, Level, ScoreModel};
use crate::schedule::Schedule;
use std::cell::RefCell;

/// Everything a step needs besides the state.
pub struct Ctx<'a> {
    pub model: &'a Counted<'a>,
    pub schedule: &'a Schedule,
    pub grid: &'a TimeGrid,
    /// Seed for any noise the sampler injects.
    pub seed: u64,
    /// Spent model-output buffers, reused so that a step allocates (and page-faults) nothing.
    scratch: RefCell<Vec<Vec<f64>>>,
}

impl<'a> Ctx<'a> {
    /// A context for one run.
    pub fn new(
        model: &'a Counted<'a>,
        schedule: &'a Schedule,
        grid: &'a TimeGrid,
        seed: u64,
    ) -> Self {
        Ctx {
            model,
            schedule,
            grid,
            seed,
            scratch: RefCell::new(Vec::new()),
        }
    }

    /// Hands a spent batch back for reuse by the next [`Ctx::eps`].
    pub fn recycle(&self, b: Batch) {
        self.scratch.borrow_mut().push(b.data);
    }

    /// Time of grid point `i`.
    pub fn t(&self, i: usize) -> f64 {
        self.grid.times()[i]
    }

    /// Level of grid point `i`.
    pub fn level(&self, i: usize) -> Level {
        Level::at(self.schedule, self.t(i))
    }

    /// `ε̂` at grid point `i` (one NFE).
    pub fn eps(&self, x: &Batch, i: usize) -> Result<Batch> {
        let len = x.data.len();
        let mut buf = self
            .scratch
            .borrow_mut()
            .pop()
            .filter(|b| b.len() == len)
            .unwrap_or_else(|| vec![0.0; len]);
        self.model.eps_into(x, &self.level(i), &mut buf)?;
        Batch::new(x.n, x.d, buf)
    }
}

/// A sampler: `init` once, then `step` from grid point `i` to `i + 1`.
pub trait Sampler {
    /// Per-run state (e.g. multistep history), passed in and handed back.
    type State;
    /// State before the first step.
    fn init(&self, ctx: &Ctx, x: &Batch) -> Result<Self::State>;
    /// Advances `x` from grid point `i` to `i + 1`.
    fn step(
        &self,
        ctx: &Ctx,
        i: usize,
        x: Batch,
        state: Self::State,
    ) -> Result<(Batch, Self::State)>;
}

/// Precision of the sampling state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F64,
    /// State and model outputs rounded to f32 after every operation that produces them.
    F32,
}

/// Walks the whole grid: the one integration loop every sampler shares.
pub fn integrate<S: Sampler>(
    sampler: &S,
    ctx: &Ctx,
    x: Batch,
    precision: Precision,
) -> Result<Batch> {
    let mut state = sampler.init(ctx, &x)?;
    let mut x = x;
    for i in 0..ctx.grid.steps() {
        let (next, st) = sampler.step(ctx, i, x, state)?;
        x = next;
        state = st;
        if precision == Precision::F32 {
            x.round_to_f32();
        }
    }
    Ok(x)
}

/// What `pfode solvers` prints about a solver.
pub struct SolverInfo {
    pub name: &'static str,
    /// Theoretical convergence order (strong order for SDE solvers).
    pub order: f64,
    pub stochastic: bool,
    pub options: &'static str,
    pub summary: &'static str,
}

/// Every registered solver. Adding one: a file, a line here, a variant in [`Solver`].
pub const SOLVERS: &[SolverInfo] = &[
    SolverInfo {
        name: "ddim",
        order: 1.0,
        stochastic: false,
        options: "--eta E (default 0; η > 0 adds noise, η = 1 on consecutive steps is DDPM's posterior)",
        summary: "DDIM (Song et al. 2021), textbook discrete form; η = 0 is Euler in σ",
    },
    SolverInfo {
        name: "euler",
        order: 1.0,
        stochastic: false,
        options: "--coords t|sigma|lambda (default sigma)",
        summary: "explicit Euler on the probability-flow ODE",
    },
    SolverInfo {
        name: "dpm-solver-1",
        order: 1.0,
        stochastic: false,
        options: "",
        summary: "first-order exponential integrator in λ (Lu et al. 2022); equals DDIM",
    },
    SolverInfo {
        name: "ddpm",
        order: 1.0,
        stochastic: true,
        options: "--variance beta-tilde|beta (default beta-tilde)",
        summary: "DDPM ancestral sampling (Ho et al. 2020) between any two grid points; weak order 1",
    },
    SolverInfo {
        name: "euler-maruyama",
        order: 1.0,
        stochastic: true,
        options: "",
        summary: "Euler–Maruyama on the reverse SDE with a seeded Brownian tree; strong order 1 (additive noise)",
    },
];

/// Looks a solver up by name.
pub fn info(name: &str) -> Result<&'static SolverInfo> {
    SOLVERS.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<_> = SOLVERS.iter().map(|s| s.name).collect();
        Error::invalid(
            "--solver",
            format!(
                "unknown solver '{name}' (expected one of {})",
                names.join(", ")
            ),
        )
    })
}

/// Options as given on the command line; `None` means not given.
#[derive(Clone, Debug, Default)]
pub struct SolverOptions {
    pub eta: Option<f64>,
    pub coords: Option<Coords>,
    pub variance: Option<Variance>,
}

/// A configured solver.
#[derive(Clone, Debug)]
pub enum Solver {
    Ddim(Ddim),
    Euler(Euler),
    DpmSolver1(DpmSolver1),
    Ddpm(Ddpm),
    EulerMaruyama(EulerMaruyama),
}

impl Solver {
    /// Builds solver `name`, rejecting options it does not take.
    pub fn build(name: &str, opts: &SolverOptions) -> Result<Self> {
        let info = info(name)?;
        let reject = |given: bool, flag: &str| -> Result<()> {
            if given {
                return Err(Error::invalid(
                    flag,
                    format!("solver '{}' does not take {flag}", info.name),
                ));
            }
            Ok(())
        };
        if name != "ddim" {
            reject(opts.eta.is_some(), "--eta")?;
        }
        if name != "euler" {
            reject(opts.coords.is_some(), "--coords")?;
        }
        if name != "ddpm" {
            reject(opts.variance.is_some(), "--variance")?;
        }
        Ok(match name {
            "ddim" => Solver::Ddim(Ddim::new(opts.eta.unwrap_or(0.0))?),
            "euler" => Solver::Euler(Euler {
                coords: opts.coords.unwrap_or(Coords::Sigma),
            }),
            "dpm-solver-1" => Solver::DpmSolver1(DpmSolver1),
            "ddpm" => Solver::Ddpm(Ddpm {
                variance: opts.variance.unwrap_or(Variance::BetaTilde),
            }),
            "euler-maruyama" => Solver::EulerMaruyama(EulerMaruyama),
            _ => unreachable!("every registered solver is built above"),
        })
    }

    /// Registry entry.
    pub fn info(&self) -> &'static SolverInfo {
        let name = match self {
            Solver::Ddim(_) => "ddim",
            Solver::Euler(_) => "euler",
            Solver::DpmSolver1(_) => "dpm-solver-1",
            Solver::Ddpm(_) => "ddpm",
            Solver::EulerMaruyama(_) => "euler-maruyama",
        };
        info(name).expect("registered")
    }

    /// The effective options, for sidecars.
    pub fn options_json(&self) -> serde_json::Value {
        match self {
            Solver::Ddim(s) => serde_json::json!({"eta": s.eta}),
            Solver::Euler(s) => serde_json::json!({"coords": s.coords}),
            Solver::Ddpm(s) => serde_json::json!({"variance": s.variance}),
            Solver::DpmSolver1(_) | Solver::EulerMaruyama(_) => serde_json::json!({}),
        }
    }

    /// Runs the solver over the context's grid.
    pub fn run(&self, ctx: &Ctx, x: Batch, precision: Precision) -> Result<Batch> {
        match self {
            Solver::Ddim(s) => integrate(s, ctx, x, precision),
            Solver::Euler(s) => integrate(s, ctx, x, precision),
            Solver::DpmSolver1(s) => integrate(s, ctx, x, precision),
            Solver::Ddpm(s) => integrate(s, ctx, x, precision),
            Solver::EulerMaruyama(s) => integrate(s, ctx, x, precision),
        }
    }
}

/// Convenience: run `solver` with `model` on `grid` from `x`, returning output and NFE.
pub fn sample(
    solver: &Solver,
    model: &dyn ScoreModel,
    schedule: &Schedule,
    grid: &TimeGrid,
    x: Batch,
    seed: u64,
) -> Result<(Batch, usize)> {
    let counted = Counted::new(model, false);
    let ctx = Ctx::new(&counted, schedule, grid, seed);
    let out = solver.run(&ctx, x, Precision::F64)?;
    Ok((out, counted.nfe()))
}
