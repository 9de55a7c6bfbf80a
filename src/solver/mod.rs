//! Samplers behind one trait, one file per solver, and the single integration loop.
//!
//! A sampler is configuration plus `init` and `step`; its per-run state (history, noise
//! streams) is handed in and back, never hidden in the sampler. The loop, not the solver,
//! owns the grid walk; the [`Counted`] model, not the solver, counts NFE.

pub mod clamp;
mod exponential;
mod kernels;
pub mod options;
pub mod pool;
mod rk;
pub mod tiles;

/// Declares the solver modules and lists their registrations, in the order `pfode solvers`
/// prints them: `module => REGISTRATION, …;`.
macro_rules! registry {
    ($($module:ident => $($info:ident),+;)+) => {
        $(pub mod $module;)+
        /// Every registered solver. Adding one: its file, and its line in `registry!` (docs/architecture.md).
        pub const SOLVERS: &[&SolverInfo] = &[$($(&$module::$info),+),+];
    };
}

registry! {
    ddim => INFO;
    euler => INFO;
    heun => INFO;
    midpoint => INFO;
    rk4 => INFO;
    ipndm => INFO;
    dopri5 => INFO;
    dpm_solver_1 => INFO;
    dpm_solver => DPM_SOLVER_2, DPM_SOLVER_3;
    dpm_solver_pp => DPM_SOLVER_PP_2M, DPM_SOLVER_PP_3M;
    unipc => INFO;
    ddpm => INFO;
    euler_maruyama => INFO;
    dpm_solver_pp_sde => INFO;
    deis => DEIS_1, DEIS_2, DEIS_3;
    pndm => INFO;
}

pub use clamp::DataClamp;
pub use ddpm::Variance;
pub use euler_maruyama::{Brownian, TreeClock};
pub use options::{Given, Opt, Resolved, WarmStart};
pub use pool::Scratch;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::grid::TimeGrid;
use crate::model::{check_finite, Counted, Level, ScoreModel};
use crate::noise::{self, Purpose};
use crate::schedule::Schedule;
use std::sync::Arc;

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
    /// The run's buffers ([`Scratch`] batches return there when dropped).
    pool: Arc<pool::Pool>,
    /// Clamping of x̂₀ the solver was asked for (diffusers' clip_sample / thresholding):
    /// every ε̂ is then re-derived from the clamped x̂₀ ([`clamp`]).
    data_clamp: Option<DataClamp>,
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
            pool: Arc::default(),
            data_clamp: None,
        }
    }

    /// This context with x̂₀ clamped at every evaluation.
    fn with_clamp(&self, clamp: DataClamp) -> Ctx<'a> {
        Ctx {
            pool: self.pool.clone(),
            data_clamp: Some(clamp),
            ..*self
        }
    }

    /// The clamping of x̂₀ this run applies, if any.
    pub fn data_clamp(&self) -> Option<DataClamp> {
        self.data_clamp
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

    /// `batch` as one of this run's buffers: it goes to the pool when dropped.
    pub fn adopt(&self, batch: Batch) -> Scratch {
        Scratch::adopt(&self.pool, batch)
    }

    /// A batch shaped like `like`, from the pool (its values are stale: overwrite).
    pub fn batch_like(&self, like: &Batch) -> Scratch {
        Scratch::new(&self.pool, like.n, like.d)
    }

    /// A new batch `Σ_j c_j·terms_j` (at least one term), from the pool.
    pub fn combination(&self, terms: &[(f64, &Batch)]) -> Scratch {
        let mut out = self.batch_like(terms[0].1);
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
    pub fn eps(&self, x: &Batch, i: usize) -> Result<Scratch> {
        self.eps_at(x, self.t(i))
    }

    /// `ε̂` at any time `t` (one NFE), re-derived from the clamped x̂₀ where the run
    /// clamps it.
    pub fn eps_at(&self, x: &Batch, t: f64) -> Result<Scratch> {
        let mut out = self.eps_unclamped_at(x, t)?;
        if let Some(c) = self.data_clamp {
            let (a, s) = (self.schedule.alpha(t), self.schedule.sigma(t));
            c.rederive_eps(&x.data, &mut out.data, x.d, a, s);
        }
        Ok(out)
    }

    /// The model's own `ε̂` at grid point `i`, whatever the run's clamping (one NFE).
    pub fn eps_unclamped(&self, x: &Batch, i: usize) -> Result<Scratch> {
        self.eps_unclamped_at(x, self.t(i))
    }

    fn eps_unclamped_at(&self, x: &Batch, t: f64) -> Result<Scratch> {
        crate::interrupt::check()?;
        let mut out = self.batch_like(x);
        let level = Level::at(self.schedule, t);
        // A row tile runs on one thread: its calls go straight to the model's row evaluator
        // and are checked in one vectorised pass (the batch call's nested parallel loop and
        // per-row scan would cost more than the tile's own work), the first non-finite
        // output reported as the batch call reports it.
        match self.tile_offset.and_then(|_| self.model.row_pass(&level)) {
            Some(rows) => {
                rows.eps_rows(&x.data, &mut out.data);
                check_finite(&out.data, x.d, level.t)?;
            }
            None => self.model.eps_into(x, &level, &mut out.data)?,
        }
        Ok(out)
    }

    /// Data prediction `x̂_0 = (x - s ε̂)/a` at time `t > 0` (one NFE).
    pub fn x0_at(&self, x: &Batch, t: f64) -> Result<Scratch> {
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
pub struct History(pub Vec<(f64, Scratch)>);

impl History {
    /// Adds the newest output, keeping at most `keep` (older buffers go back to the pool).
    pub fn push(&mut self, key: f64, value: Scratch, keep: usize) {
        self.0.insert(0, (key, value));
        self.0.truncate(keep);
    }

    /// The `n` newest outputs' values, newest first.
    pub fn newest(&self, n: usize) -> Vec<&[f64]> {
        self.0[..n].iter().map(|m| &m.1.data[..]).collect()
    }
}

/// A sampler: `init` once, then `step` from grid point `i` to `i + 1`.
pub trait Sampler: Send + Sync + std::fmt::Debug {
    /// Per-run state (e.g. multistep history, a step-size controller), passed in and
    /// handed back.
    type State;
    /// State before the first step.
    fn init(&self, ctx: &Ctx, x: &Batch) -> Result<Self::State>;
    /// Advances `x` from grid point `i` to `i + 1` (a buffer it replaces goes back to the
    /// run's pool when dropped).
    fn step(
        &self,
        ctx: &Ctx,
        i: usize,
        x: Scratch,
        state: Self::State,
    ) -> Result<(Scratch, Self::State)>;

    /// This configuration's theoretical order, where options change the `declared` one.
    fn order(&self, declared: f64) -> f64 {
        declared
    }

    /// True if this configuration injects noise (`declared`: the registration's answer).
    fn is_stochastic(&self, declared: bool) -> bool {
        declared
    }

    /// True for adaptive solvers, whose NFE is set by tolerances, not steps.
    fn is_adaptive(&self) -> bool {
        false
    }

    /// True if all the noise the sampler draws is per-step noise (stream `i` of
    /// [`Purpose::StepNoise`] at step `i`), which can be drawn ahead for the whole batch.
    fn draws_step_noise_only(&self) -> bool {
        true
    }

    /// True if runs of this configuration at different step counts on one seed follow one
    /// Brownian path (a stochastic sampler whose noise is a path's increments, not fresh
    /// per step): their distance to a fine run on that seed is then a strong error.
    fn shares_brownian_path(&self) -> bool {
        false
    }
}

/// The object-safe face of a [`Sampler`], which [`Solver`] holds: the whole-grid loop and
/// the sampler's properties.
pub trait Method: Send + Sync + std::fmt::Debug {
    /// Runs [`integrate`] over the context's grid on the whole batch.
    fn integrate(&self, ctx: &Ctx, x: Batch, precision: Precision) -> Result<Batch>;
    /// See [`Sampler::order`].
    fn order(&self, declared: f64) -> f64;
    /// See [`Sampler::is_stochastic`].
    fn is_stochastic(&self, declared: bool) -> bool;
    /// See [`Sampler::is_adaptive`].
    fn is_adaptive(&self) -> bool;
    /// See [`Sampler::draws_step_noise_only`].
    fn draws_step_noise_only(&self) -> bool;
    /// See [`Sampler::shares_brownian_path`].
    fn shares_brownian_path(&self) -> bool;
}

impl<S: Sampler> Method for S {
    fn integrate(&self, ctx: &Ctx, x: Batch, precision: Precision) -> Result<Batch> {
        integrate(self, ctx, x, precision)
    }
    fn order(&self, declared: f64) -> f64 {
        Sampler::order(self, declared)
    }
    fn is_stochastic(&self, declared: bool) -> bool {
        Sampler::is_stochastic(self, declared)
    }
    fn is_adaptive(&self) -> bool {
        Sampler::is_adaptive(self)
    }
    fn draws_step_noise_only(&self) -> bool {
        Sampler::draws_step_noise_only(self)
    }
    fn shares_brownian_path(&self) -> bool {
        Sampler::shares_brownian_path(self)
    }
}

crate::names::named_enum! {
    /// Precision of the sampling state.
    pub enum Precision("dtype") {
        F64 = "f64",
        /// State and model outputs rounded to f32 after every operation that produces them.
        F32 = "f32",
    }
}

/// Walks the whole grid: the one integration loop every sampler shares.
pub fn integrate<S: Sampler>(
    sampler: &S,
    ctx: &Ctx,
    x: Batch,
    precision: Precision,
) -> Result<Batch> {
    let mut state = sampler.init(ctx, &x)?;
    let mut x = ctx.adopt(x);
    for i in 0..ctx.grid.steps() {
        let (next, st) = sampler.step(ctx, i, x, state)?;
        x = next;
        state = st;
        if precision == Precision::F32 {
            x.round_to_f32();
        }
    }
    Ok(x.into_batch())
}

/// A solver's registration: what it is, what it takes, and how to build it. Each solver
/// file declares its own; [`SOLVERS`] lists them.
pub struct SolverInfo {
    pub name: &'static str,
    /// Theoretical convergence order with default options (strong order for SDE solvers).
    pub order: f64,
    pub stochastic: bool,
    /// The kind of method, which plots group by.
    pub family: Family,
    /// The options it takes besides the common ones.
    pub options: &'static [&'static Opt],
    pub summary: &'static str,
    /// Builds the sampler from its options (defaults filled in).
    pub build: fn(&Resolved) -> Result<Box<dyn Method>>,
}

crate::names::named_enum! {
    /// Kinds of solver, as the plots group them when a figure holds many.
    pub enum Family("family") {
        /// Generic Runge–Kutta methods on the ODE in σ or t, adaptive ones included.
        RungeKutta = "runge-kutta",
        /// Single-step exponential integrators (the linear part solved exactly in λ).
        Exponential = "exponential",
        /// Multistep methods: several past model outputs per step.
        Multistep = "multistep",
        /// Samplers that inject noise (any configuration that does, e.g. DDIM with η > 0).
        Stochastic = "stochastic",
    }
}

impl Family {
    /// A heading for plots.
    pub fn title(self) -> &'static str {
        match self {
            Family::RungeKutta => "Runge–Kutta",
            Family::Exponential => "exponential integrators",
            Family::Multistep => "multistep",
            Family::Stochastic => "stochastic",
        }
    }
}

/// Looks a solver up by name.
pub fn info(name: &str) -> Result<&'static SolverInfo> {
    SOLVERS
        .iter()
        .copied()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            let names: Vec<_> = SOLVERS.iter().map(|s| s.name).collect();
            Error::invalid(
                "solver",
                format!(
                    "unknown solver '{name}' (expected one of {})",
                    names.join(", ")
                ),
            )
        })
}

/// A configured solver: its registration, the options it was given, and its sampler.
#[derive(Clone)]
pub struct Solver {
    info: &'static SolverInfo,
    given: Given,
    resolved: Resolved,
    method: Arc<dyn Method>,
    clamp: Option<DataClamp>,
}

impl std::fmt::Debug for Solver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.info.name, self.given.label())
    }
}

impl Solver {
    /// Builds solver `name` with the `given` options, rejecting options it does not take.
    pub fn build(name: &str, given: &Given) -> Result<Self> {
        let info = info(name)?;
        let resolved = Resolved::new(name, info.options, given)?;
        let method = (info.build)(&resolved)?;
        Ok(Solver {
            info,
            given: given.clone(),
            clamp: DataClamp::from_options(&resolved)?,
            resolved,
            method: Arc::from(method),
        })
    }

    /// Solver `name` with its default options.
    pub fn named(name: &str) -> Result<Self> {
        Solver::build(name, &Given::new())
    }

    /// Solver `name` with options given as text, e.g. `Solver::with("euler", &[("coords", "t")])`.
    pub fn with(name: &str, options: &[(&str, &str)]) -> Result<Self> {
        Solver::build(name, &Given::from_pairs(options)?)
    }

    /// Registry name.
    pub fn name(&self) -> &'static str {
        self.info.name
    }

    /// Registry entry.
    pub fn info(&self) -> &'static SolverInfo {
        self.info
    }

    /// The options as given (the `options` column of `results.csv`).
    pub fn given(&self) -> &Given {
        &self.given
    }

    /// Theoretical order of this configuration.
    pub fn order(&self) -> f64 {
        self.method.order(self.info.order)
    }

    /// The configuration's family: its registration's, or stochastic when its options make
    /// it inject noise.
    pub fn family(&self) -> Family {
        if self.is_stochastic() {
            Family::Stochastic
        } else {
            self.info.family
        }
    }

    /// True if this configuration injects noise.
    pub fn is_stochastic(&self) -> bool {
        self.method.is_stochastic(self.info.stochastic)
    }

    /// True for adaptive solvers, whose NFE is set by tolerances, not steps.
    pub fn is_adaptive(&self) -> bool {
        self.method.is_adaptive()
    }

    /// True if all the noise the solver draws is per-step noise, which can be drawn ahead
    /// for the whole batch (Euler–Maruyama on its Brownian tree draws tree nodes instead).
    pub fn draws_step_noise_only(&self) -> bool {
        self.method.draws_step_noise_only()
    }

    /// True if this configuration's runs on one seed share one Brownian path at every step
    /// count (see [`Sampler::shares_brownian_path`]).
    pub fn shares_brownian_path(&self) -> bool {
        self.method.shares_brownian_path()
    }

    /// Every option with its effective value, for sidecars.
    pub fn options_json(&self) -> serde_json::Value {
        self.resolved.to_json()
    }

    /// Runs the solver over the context's grid: in row tiles where that gives the same
    /// result (see [`tiles`]), else on the whole batch.
    ///
    /// A run started outside the thread pool moves onto a pool thread first: each parallel
    /// loop it then starts finds the other threads awake, where from outside the pool the
    /// caller sleeps until the loop ends and is woken late. A thread-bound model (Python)
    /// keeps the run on the calling thread.
    pub fn integrate(&self, ctx: &Ctx, x: Batch, precision: Precision) -> Result<Batch> {
        if rayon::current_thread_index().is_none() && !ctx.model.thread_bound() {
            return rayon::scope(|_| self.integrate(ctx, x, precision));
        }
        if self.clamp.is_none() {
            if let Some(plan) = tiles::plan(self, ctx, &x) {
                return tiles::integrate(self, ctx, x, precision, plan);
            }
        }
        self.integrate_whole(ctx, x, precision)
    }

    /// Runs the solver over the context's grid on the whole batch at once.
    pub fn integrate_whole(&self, ctx: &Ctx, x: Batch, precision: Precision) -> Result<Batch> {
        match self.clamp {
            Some(c) => self.method.integrate(&ctx.with_clamp(c), x, precision),
            None => self.method.integrate(ctx, x, precision),
        }
    }

    /// True if the run clamps x̂₀ (`clip_sample`, `thresholding`): it then integrates
    /// another field than the model's probability-flow ODE.
    pub fn clamps_data(&self) -> bool {
        self.clamp.is_some()
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

    /// The most steps whose grid lets this solver stay within `budget` model evaluations
    /// (counted by dry runs, so exact for every solver and grid).
    pub fn steps_for_nfe(
        &self,
        schedule: &Schedule,
        spacing: &crate::grid::Spacing,
        opts: crate::grid::GridOptions,
        budget: usize,
        defined_at_clean: bool,
    ) -> Result<usize> {
        // A grid file fixes its steps: the budget only has to hold them.
        if let crate::grid::Spacing::File(path) = spacing {
            let grid = TimeGrid::build(schedule, spacing, None, opts)?;
            let nfe = self.nfe_on(schedule, &grid, defined_at_clean)?;
            if nfe > budget {
                return Err(Error::invalid(
                    "nfe",
                    format!(
                        "{budget} is too small for the grid in {}: solver '{}' takes {nfe} model evaluations on its {} steps",
                        path.display(),
                        self.name(),
                        grid.steps()
                    ),
                ));
            }
            return Ok(grid.steps());
        }
        let nfe_of = |n: usize| -> Result<usize> {
            let grid = TimeGrid::build(schedule, spacing, Some(n), opts)?;
            self.nfe_on(schedule, &grid, defined_at_clean)
        };
        let least = nfe_of(1)?;
        if budget < least {
            return Err(Error::invalid(
                "nfe",
                format!(
                    "{budget} is too small: solver '{}' needs at least {least} model evaluations",
                    self.name()
                ),
            ));
        }
        // NFE grows with the step count: binary search for the largest n within budget.
        let max_n = schedule
            .discrete()
            .map_or(budget, |d| budget.min(d.num_train_timesteps()));
        let (mut lo, mut hi) = (1, max_n);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if nfe_of(mid)? <= budget {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok(lo)
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
    let out = solver.integrate(&ctx, x, Precision::F64)?;
    Ok((out, counted.nfe()))
}
