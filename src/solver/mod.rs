//! Samplers behind one trait, one file per solver, and the single integration loop.
//!
//! A sampler is configuration plus `init` and `step`; its per-run state (history, noise
//! streams) is handed in and back, never hidden in the sampler. The loop, not the solver,
//! owns the grid walk; the [`Counted`] model, not the solver, counts NFE.

mod ddim;
mod ddpm;
mod dopri5;
mod dpm_solver;
mod dpm_solver_1;
mod dpm_solver_pp;
mod dpm_solver_pp_sde;
mod euler;
mod euler_maruyama;
mod exponential;
mod heun;
mod ipndm;
mod midpoint;
mod rk;
mod rk4;
pub mod tiles;
mod unipc;

pub use ddim::Ddim;
pub use ddpm::{Ddpm, Variance};
pub use dopri5::Dopri5;
pub use dpm_solver::DpmSolver;
pub use dpm_solver_1::DpmSolver1;
pub use dpm_solver_pp::DpmSolverPp;
pub use dpm_solver_pp_sde::DpmSolverPpSde;
pub use euler::Euler;
pub use euler_maruyama::{Brownian, EulerMaruyama, TreeClock};
pub use heun::{Churn, Heun};
pub use ipndm::{Ipndm, WarmStart};
pub use midpoint::Midpoint;
pub use rk4::Rk4;
pub use unipc::UniPc;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::flow::Coords;
use crate::grid::TimeGrid;
use crate::model::{check_finite, Counted, Level, ScoreModel};
use crate::noise::{self, Purpose};
use crate::schedule::Schedule;
use std::sync::Mutex;

/// Everything a step needs besides the state.
pub struct Ctx<'a> {
    pub model: &'a Counted<'a>,
    pub schedule: &'a Schedule,
    pub grid: &'a TimeGrid,
    /// Seed for any noise the sampler injects.
    pub seed: u64,
    /// For a row tile: the index of its first element in the whole batch.
    tile_offset: Option<usize>,
    /// For a row tile that splits noise blocks: every step's noise for the whole batch,
    /// drawn ahead (stream `i` of [`Purpose::StepNoise`] at index `i`).
    step_noise: Option<&'a [Vec<f64>]>,
    /// Spent model-output buffers, reused so that a step allocates (and page-faults) nothing.
    /// (A mutex, so that a run can move onto a pool thread: see [`Solver::run`].)
    scratch: Mutex<Vec<Vec<f64>>>,
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
            tile_offset: None,
            step_noise: None,
            scratch: Mutex::new(Vec::new()),
        }
    }

    /// A context for the row tile whose first element is element `offset` of the whole
    /// batch. Its noise is the whole batch's noise for its rows: drawn from `step_noise`
    /// (every step's noise for the whole batch, drawn ahead) when given, else generated
    /// from the noise blocks its rows fall in.
    pub fn for_tile(
        model: &'a Counted<'a>,
        schedule: &'a Schedule,
        grid: &'a TimeGrid,
        seed: u64,
        offset: usize,
        step_noise: Option<&'a [Vec<f64>]>,
    ) -> Self {
        Ctx {
            tile_offset: Some(offset),
            step_noise,
            ..Ctx::new(model, schedule, grid, seed)
        }
    }

    /// The noise block of this context's first element (0 for a whole batch).
    pub fn noise_block(&self) -> usize {
        let offset = self.tile_offset.unwrap_or(0);
        debug_assert_eq!(offset % noise::BLOCK, 0, "a noisy tile starts mid-block");
        offset / noise::BLOCK
    }

    /// `data += scale · z` with the normals of (seed, `purpose`, `stream`) that fall on this
    /// context's rows: the same numbers whether the batch runs whole or in row tiles.
    pub fn add_noise(&self, purpose: Purpose, stream: u64, scale: f64, data: &mut [f64]) {
        let Some(offset) = self.tile_offset else {
            return noise::add_scaled_normals(self.seed, purpose, stream, scale, data);
        };
        let drawn = self
            .step_noise
            .filter(|_| matches!(purpose, Purpose::StepNoise))
            .and_then(|steps| steps.get(stream as usize));
        match drawn {
            Some(z) => {
                let z = &z[offset..offset + data.len()];
                data.iter_mut().zip(z).for_each(|(v, z)| *v += scale * z);
            }
            None => noise::add_scaled_normals_from(self.seed, purpose, stream, scale, offset, data),
        }
    }

    /// Hands a spent batch back for reuse by [`Ctx::eps`] and [`Ctx::combination`].
    pub fn recycle(&self, b: Batch) {
        self.pool().push(b.data);
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<Vec<f64>>> {
        self.scratch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pooled buffer of `len` values (the newest such), else a new one.
    fn buffer(&self, len: usize) -> Vec<f64> {
        self.pooled(len).unwrap_or_else(|| vec![0.0; len])
    }

    /// The newest pooled buffer of `len` values, taken out of the pool.
    fn pooled(&self, len: usize) -> Option<Vec<f64>> {
        let mut pool = self.pool();
        let i = pool.iter().rposition(|b| b.len() == len)?;
        Some(pool.swap_remove(i))
    }

    /// A batch shaped like `like`, from a recycled buffer (its values are stale: overwrite).
    pub fn batch_like(&self, like: &Batch) -> Batch {
        Batch {
            n: like.n,
            d: like.d,
            data: self.buffer(like.data.len()),
        }
    }

    /// A new batch `Σ_j c_j·terms_j` (at least one term), from a recycled buffer.
    pub fn combination(&self, terms: &[(f64, &Batch)]) -> Batch {
        let first = terms[0].1;
        let mut out = Batch {
            n: first.n,
            d: first.d,
            data: self.buffer(first.data.len()),
        };
        out.set_combination(terms);
        out
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
        self.eps_at(x, self.t(i))
    }

    /// `ε̂` at any time `t` (one NFE).
    pub fn eps_at(&self, x: &Batch, t: f64) -> Result<Batch> {
        let mut buf = self.buffer(x.data.len());
        let level = Level::at(self.schedule, t);
        // A row tile runs on one thread: its calls go straight to the model's row evaluator
        // and are checked in one vectorised pass (the batch call's nested parallel loop and
        // per-row scan cost 6 % of a tiled run's time), the first non-finite output
        // reported as the batch call reports it.
        match self
            .tile_offset
            .and_then(|_| self.model.row_evaluator(&level))
        {
            Some(rows) => {
                self.model.add_calls(1);
                rows.eps_rows(&x.data, &mut buf);
                check_finite(&buf, x.d, level.t)?;
            }
            None => self.model.eps_into(x, &level, &mut buf)?,
        }
        Batch::new(x.n, x.d, buf)
    }

    /// Data prediction `x̂_0 = (x - s ε̂)/a` at time `t > 0` (one NFE).
    pub fn x0_at(&self, x: &Batch, t: f64) -> Result<Batch> {
        let mut out = self.eps_at(x, t)?;
        let (a, s) = (self.schedule.alpha(t), self.schedule.sigma(t));
        // Multiplying by 1/a, not dividing: a divide per element costs more than the rest.
        let (cx, ce) = (1.0 / a, -s / a);
        out.update_with(x, |e, x| cx * x + ce * e);
        Ok(out)
    }
}

/// Elements per chunk of a fused sweep: the handful of arrays a step touches, 1 024 f64
/// each, stay in L1 while every pass of the step runs on them.
const SWEEP_CHUNK: usize = 1024;

/// Calls `f` on successive element ranges of a `len`-element state: a step's passes, run
/// range by range, cost one sweep over memory instead of one per pass. Each element gets
/// the same arithmetic as in separate passes.
pub fn in_l1_chunks(len: usize, mut f: impl FnMut(std::ops::Range<usize>)) {
    let mut start = 0;
    while start < len {
        let end = (start + SWEEP_CHUNK).min(len);
        f(start..end);
        start = end;
    }
}

/// Past model outputs of a multistep method, newest first, keyed by their time variable
/// (σ or λ); the per-run state that multistep samplers hand back and forth.
#[derive(Default)]
pub struct History(pub Vec<(f64, Batch)>);

impl History {
    /// Adds the newest output, keeping at most `keep` (older buffers go back to the pool).
    pub fn push(&mut self, ctx: &Ctx, key: f64, value: Batch, keep: usize) {
        self.0.insert(0, (key, value));
        while self.0.len() > keep {
            let (_, old) = self.0.pop().unwrap();
            ctx.recycle(old);
        }
    }

    /// The `n` newest outputs' values, newest first.
    pub fn newest(&self, n: usize) -> Vec<&[f64]> {
        self.0[..n].iter().map(|m| &m.1.data[..]).collect()
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
    /// Theoretical convergence order with default options (strong order for SDE solvers).
    pub order: f64,
    pub stochastic: bool,
    /// Flags the solver accepts besides the common ones.
    pub options: &'static [&'static str],
    pub summary: &'static str,
}

const COORDS: &str = "--coords";
const CHURN: [&str; 4] = ["--s-churn", "--s-tmin", "--s-tmax", "--s-noise"];

/// Every registered solver. Adding one: a file, a line here, a variant in [`Solver`].
pub const SOLVERS: &[SolverInfo] = &[
    SolverInfo { name: "ddim", order: 1.0, stochastic: false, options: &["--eta"], summary: "DDIM (Song et al. 2021), textbook form; η = 0 is Euler in σ, η = 1 on consecutive steps is DDPM" },
    SolverInfo { name: "euler", order: 1.0, stochastic: false, options: &[COORDS], summary: "explicit Euler on the PF-ODE in t, σ or λ" },
    SolverInfo { name: "heun", order: 2.0, stochastic: false, options: &[COORDS, CHURN[0], CHURN[1], CHURN[2], CHURN[3]], summary: "Heun (Karras et al. 2022, Alg. 1), EDM churn (Alg. 2) with --s-churn > 0" },
    SolverInfo { name: "midpoint", order: 2.0, stochastic: false, options: &[COORDS], summary: "explicit midpoint on the PF-ODE" },
    SolverInfo { name: "rk4", order: 4.0, stochastic: false, options: &[COORDS], summary: "classical Runge–Kutta on the PF-ODE" },
    SolverInfo { name: "ipndm", order: 4.0, stochastic: false, options: &["--warm-start"], summary: "variable-step Adams–Bashforth on ε̂ in σ (iPNDM); RK3 warm start (order 4) or multistep (order 2)" },
    SolverInfo { name: "dopri5", order: 5.0, stochastic: false, options: &[COORDS, "--rtol", "--atol"], summary: "adaptive Dormand–Prince 5(4); NFE set by the tolerances" },
    SolverInfo { name: "dpm-solver-1", order: 1.0, stochastic: false, options: &[], summary: "first-order exponential integrator in λ (Lu et al. 2022); equals DDIM" },
    SolverInfo { name: "dpm-solver-2", order: 2.0, stochastic: false, options: &[], summary: "singlestep DPM-Solver-2, noise prediction (Lu et al. 2022)" },
    SolverInfo { name: "dpm-solver-3", order: 3.0, stochastic: false, options: &[], summary: "singlestep DPM-Solver-3, noise prediction (Lu et al. 2022)" },
    SolverInfo { name: "dpm-solver++2m", order: 2.0, stochastic: false, options: &["--lower-order-final"], summary: "multistep DPM-Solver++(2M), data prediction (Lu et al. 2022b)" },
    SolverInfo { name: "dpm-solver++3m", order: 3.0, stochastic: false, options: &["--lower-order-final"], summary: "multistep DPM-Solver++(3M), data prediction (Lu et al. 2022b)" },
    SolverInfo { name: "unipc", order: 3.0, stochastic: false, options: &["--lower-order-final", "--no-corrector"], summary: "UniPC: UniP-2 + UniC, bh2 (Zhao et al. 2023); order 2 with --no-corrector" },
    SolverInfo { name: "ddpm", order: 1.0, stochastic: true, options: &["--variance"], summary: "DDPM ancestral sampling (Ho et al. 2020) between any grid points; weak order 1" },
    SolverInfo { name: "euler-maruyama", order: 1.0, stochastic: true, options: &["--brownian"], summary: "Euler–Maruyama on the reverse SDE, per-step increments or a Brownian tree; strong order 1 (additive noise)" },
    SolverInfo { name: "dpm-solver++2m-sde", order: 1.0, stochastic: true, options: &["--lower-order-final"], summary: "SDE-DPM-Solver++(2M), data prediction (Lu et al. 2022b)" },
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
    pub brownian: Option<Brownian>,
    pub s_churn: Option<f64>,
    pub s_tmin: Option<f64>,
    pub s_tmax: Option<f64>,
    pub s_noise: Option<f64>,
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    pub lower_order_final: Option<bool>,
    pub no_corrector: bool,
    pub warm_start: Option<WarmStart>,
}

impl SolverOptions {
    /// The flags that were given.
    fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let flags: [(&'static str, bool); 12] = [
            ("--warm-start", self.warm_start.is_some()),
            ("--eta", self.eta.is_some()),
            (COORDS, self.coords.is_some()),
            ("--variance", self.variance.is_some()),
            ("--brownian", self.brownian.is_some()),
            (CHURN[0], self.s_churn.is_some()),
            (CHURN[1], self.s_tmin.is_some()),
            (CHURN[2], self.s_tmax.is_some()),
            (CHURN[3], self.s_noise.is_some()),
            ("--rtol", self.rtol.is_some()),
            ("--atol", self.atol.is_some()),
            ("--lower-order-final", self.lower_order_final.is_some()),
        ];
        v.extend(flags.iter().filter(|f| f.1).map(|f| f.0));
        if self.no_corrector {
            v.push("--no-corrector");
        }
        v
    }
}

/// A configured solver.
#[derive(Clone, Debug)]
pub enum Solver {
    Ddim(Ddim),
    Euler(Euler),
    Heun(Heun),
    Midpoint(Midpoint),
    Rk4(Rk4),
    Ipndm(Ipndm),
    Dopri5(Dopri5),
    DpmSolver1(DpmSolver1),
    DpmSolver(DpmSolver),
    DpmSolverPp(DpmSolverPp),
    UniPc(UniPc),
    Ddpm(Ddpm),
    EulerMaruyama(EulerMaruyama),
    DpmSolverPpSde(DpmSolverPpSde),
}

impl Solver {
    /// Builds solver `name`, rejecting options it does not take.
    pub fn build(name: &str, opts: &SolverOptions) -> Result<Self> {
        let info = info(name)?;
        if let Some(flag) = opts.given().into_iter().find(|f| !info.options.contains(f)) {
            let accepted = if info.options.is_empty() {
                "no options".to_string()
            } else {
                info.options.join(", ")
            };
            let takers: Vec<&str> = SOLVERS
                .iter()
                .filter(|s| s.options.contains(&flag))
                .map(|s| s.name)
                .collect();
            return Err(Error::invalid(
                flag,
                format!(
                    "solver '{name}' does not take {flag} (it takes {accepted}; {flag} is for {})",
                    takers.join(", ")
                ),
            ));
        }
        let coords = opts.coords.unwrap_or(Coords::Sigma);
        let lof = opts.lower_order_final.unwrap_or(true);
        Ok(match name {
            "ddim" => Solver::Ddim(Ddim::new(opts.eta.unwrap_or(0.0))?),
            "euler" => Solver::Euler(Euler { coords }),
            "heun" => {
                let d = Churn::default();
                let churn = Churn {
                    s_churn: opts.s_churn.unwrap_or(d.s_churn),
                    s_tmin: opts.s_tmin.unwrap_or(d.s_tmin),
                    s_tmax: opts.s_tmax.unwrap_or(d.s_tmax),
                    s_noise: opts.s_noise.unwrap_or(d.s_noise),
                };
                Solver::Heun(Heun::new(coords, churn)?)
            }
            "midpoint" => Solver::Midpoint(Midpoint { coords }),
            "rk4" => Solver::Rk4(Rk4 { coords }),
            "ipndm" => Solver::Ipndm(Ipndm::new(
                ipndm::MAX_ORDER,
                opts.warm_start.unwrap_or(WarmStart::Rk3),
            )?),
            "dopri5" => Solver::Dopri5(Dopri5::new(
                coords,
                opts.rtol.unwrap_or(1e-4),
                opts.atol.unwrap_or(1e-4),
            )?),
            "dpm-solver-1" => Solver::DpmSolver1(DpmSolver1),
            "dpm-solver-2" => Solver::DpmSolver(DpmSolver::new(2)?),
            "dpm-solver-3" => Solver::DpmSolver(DpmSolver::new(3)?),
            "dpm-solver++2m" => Solver::DpmSolverPp(DpmSolverPp::new(2, lof)?),
            "dpm-solver++3m" => Solver::DpmSolverPp(DpmSolverPp::new(3, lof)?),
            "unipc" => Solver::UniPc(UniPc::new(2, !opts.no_corrector, lof)?),
            "ddpm" => Solver::Ddpm(Ddpm {
                variance: opts.variance.unwrap_or(Variance::BetaTilde),
            }),
            "euler-maruyama" => Solver::EulerMaruyama(EulerMaruyama {
                brownian: opts.brownian.unwrap_or_default(),
            }),
            "dpm-solver++2m-sde" => Solver::DpmSolverPpSde(DpmSolverPpSde {
                lower_order_final: lof,
            }),
            _ => unreachable!("every registered solver is built above"),
        })
    }

    /// Registry name.
    pub fn name(&self) -> &'static str {
        match self {
            Solver::Ddim(_) => "ddim",
            Solver::Euler(_) => "euler",
            Solver::Heun(_) => "heun",
            Solver::Midpoint(_) => "midpoint",
            Solver::Rk4(_) => "rk4",
            Solver::Ipndm(_) => "ipndm",
            Solver::Dopri5(_) => "dopri5",
            Solver::DpmSolver1(_) => "dpm-solver-1",
            Solver::DpmSolver(s) => {
                if s.order == 2 {
                    "dpm-solver-2"
                } else {
                    "dpm-solver-3"
                }
            }
            Solver::DpmSolverPp(s) => {
                if s.order == 2 {
                    "dpm-solver++2m"
                } else {
                    "dpm-solver++3m"
                }
            }
            Solver::UniPc(_) => "unipc",
            Solver::Ddpm(_) => "ddpm",
            Solver::EulerMaruyama(_) => "euler-maruyama",
            Solver::DpmSolverPpSde(_) => "dpm-solver++2m-sde",
        }
    }

    /// Registry entry.
    pub fn info(&self) -> &'static SolverInfo {
        info(self.name()).expect("registered")
    }

    /// Theoretical order of this configuration.
    pub fn order(&self) -> f64 {
        match self {
            Solver::UniPc(u) => u.convergence_order() as f64,
            Solver::Ipndm(s) => s.convergence_order() as f64,
            _ => self.info().order,
        }
    }

    /// True if this configuration injects noise.
    pub fn is_stochastic(&self) -> bool {
        match self {
            Solver::Ddim(d) => d.eta > 0.0,
            Solver::Heun(h) => h.is_stochastic(),
            _ => self.info().stochastic,
        }
    }

    /// True for adaptive solvers, whose NFE is set by tolerances, not steps.
    pub fn is_adaptive(&self) -> bool {
        matches!(self, Solver::Dopri5(_))
    }

    /// True if all the noise the solver draws is per-step noise (stream `i` of
    /// [`Purpose::StepNoise`] at step `i`), which can be drawn ahead for the whole batch;
    /// Euler–Maruyama on its Brownian tree draws tree nodes instead.
    pub fn draws_step_noise_only(&self) -> bool {
        !matches!(
            self,
            Solver::EulerMaruyama(EulerMaruyama {
                brownian: Brownian::Tree
            })
        )
    }

    /// The effective options, for sidecars.
    pub fn options_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Solver::Ddim(s) => json!({"eta": s.eta}),
            Solver::Euler(s) => json!({"coords": s.coords}),
            Solver::Heun(s) => json!({"coords": s.coords, "churn": s.churn}),
            Solver::Midpoint(s) => json!({"coords": s.coords}),
            Solver::Rk4(s) => json!({"coords": s.coords}),
            Solver::Ipndm(s) => json!({"order": s.order, "warm_start": s.warm_start}),
            Solver::Dopri5(s) => json!({"coords": s.coords, "rtol": s.rtol, "atol": s.atol}),
            Solver::DpmSolverPp(s) => json!({"lower_order_final": s.lower_order_final}),
            Solver::UniPc(s) => {
                json!({"predictor_order": s.order, "corrector": s.corrector, "lower_order_final": s.lower_order_final})
            }
            Solver::Ddpm(s) => json!({"variance": s.variance}),
            Solver::DpmSolverPpSde(s) => json!({"lower_order_final": s.lower_order_final}),
            Solver::EulerMaruyama(s) => json!({"brownian": s.brownian}),
            Solver::DpmSolver1(_) | Solver::DpmSolver(_) => json!({}),
        }
    }

    /// Runs the solver over the context's grid: in row tiles where that gives the same
    /// result (see [`tiles`]), else on the whole batch.
    ///
    /// A run started outside the thread pool moves onto a pool thread first: each parallel
    /// loop it then starts finds the other threads awake, where from outside the pool the
    /// caller sleeps until the loop ends and is woken late (traced on dopri5's attempts:
    /// 10–150 µs after the loop's end).
    pub fn run(&self, ctx: &Ctx, x: Batch, precision: Precision) -> Result<Batch> {
        if rayon::current_thread_index().is_none() {
            return rayon::scope(|_| self.run(ctx, x, precision));
        }
        if let Some(plan) = tiles::plan(self, ctx, &x) {
            return tiles::run(self, ctx, x, precision, plan);
        }
        self.run_whole(ctx, x, precision)
    }

    /// Runs the solver over the context's grid on the whole batch at once.
    pub fn run_whole(&self, ctx: &Ctx, x: Batch, precision: Precision) -> Result<Batch> {
        match self {
            Solver::Ddim(s) => integrate(s, ctx, x, precision),
            Solver::Euler(s) => integrate(s, ctx, x, precision),
            Solver::Heun(s) => integrate(s, ctx, x, precision),
            Solver::Midpoint(s) => integrate(s, ctx, x, precision),
            Solver::Rk4(s) => integrate(s, ctx, x, precision),
            Solver::Ipndm(s) => integrate(s, ctx, x, precision),
            Solver::Dopri5(s) => s.run(ctx, x, precision),
            Solver::DpmSolver1(s) => integrate(s, ctx, x, precision),
            Solver::DpmSolver(s) => integrate(s, ctx, x, precision),
            Solver::DpmSolverPp(s) => integrate(s, ctx, x, precision),
            Solver::UniPc(s) => integrate(s, ctx, x, precision),
            Solver::Ddpm(s) => integrate(s, ctx, x, precision),
            Solver::EulerMaruyama(s) => integrate(s, ctx, x, precision),
            Solver::DpmSolverPpSde(s) => integrate(s, ctx, x, precision),
        }
    }

    /// NFE this solver uses on `grid`, counted by a dry run on a free model.
    pub fn nfe_on(
        &self,
        schedule: &Schedule,
        grid: &TimeGrid,
        defined_at_clean: bool,
    ) -> Result<usize> {
        let model = crate::model::ZeroModel {
            dim: 1,
            defined_at_clean,
        };
        let (_, nfe) = sample(self, &model, schedule, grid, Batch::zeros(1, 1), 0)?;
        Ok(nfe)
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
