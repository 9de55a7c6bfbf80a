//! Tightly solved reference solutions of the probability-flow ODE: DOP853 (Hairer, Nørsett &
//! Wanner, *Solving ODEs I*, §II.10) from the `ode_solvers` crate, in f64, in
//! σ-coordinates (`dy/dσ = ε̂`, `y = x/a`), where the field of an exact mixture is smooth
//! all the way to σ = 0.
//!
//! `ode_solvers` facts that shape this file:
//! * only `OutputType::Sparse` is used (its dense output returns a wrong final point and
//!   hangs when integrating backwards);
//! * its DOP853 tableau has `c₁₂ = 0` instead of 1 (measured with 0.6.2: on the scalar
//!   `y' = σy/(c² + σ²)` at rtol = atol = 1e-10 it took 37 484 steps to an error of 9e-8), so
//!   the time passed to the system is wrong in one stage. The system is therefore made
//!   autonomous: σ rides along as the last state component with dσ/dσ = 1, and the field
//!   reads it from the state (then: 22 steps, error 5e-11);
//! * its `System` cannot fail, so a model error is parked in a cell and stops the run.

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::model::{Level, ScoreModel};
use crate::schedule::Schedule;
use nalgebra::DVector;
use ode_solvers::dop853::Dop853;
use ode_solvers::{OutputType, System};
use std::cell::RefCell;

crate::names::named_enum! {
    /// How the batch is integrated.
    pub enum Mode("mode") {
        /// One state vector for the whole batch: one step-size sequence, batched model calls.
        Batch = "batch",
        /// Every sample on its own, in parallel: its own step sizes, one-row model calls.
        PerSample = "per-sample",
    }
}

/// Tolerances and mode of a reference solve.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub rtol: f64,
    pub atol: f64,
    pub mode: Mode,
    /// Draw a progress bar with an ETA on stderr (when it is a terminal).
    pub progress: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rtol: EXACT_TOLERANCE,
            atol: EXACT_TOLERANCE,
            mode: Mode::Batch,
            progress: false,
        }
    }
}

/// Progress of a solve from σ_from down to σ_to, in log(σ + c) (steps crowd at small σ,
/// so the log keeps the bar's pace, and its ETA, roughly even), as per mille on a bar.
struct Progress {
    bar: indicatif::ProgressBar,
    u_from: f64,
    u_to: f64,
    c: f64,
}

impl Progress {
    fn new(sig_from: f64, sig_to: f64, show: bool) -> Self {
        let bar = if show {
            indicatif::ProgressBar::new(1000)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "reference (DOP853) {bar:40} {percent:>3}%  ETA {eta}",
            )
            .expect("template"),
        );
        let c = (1e-3 * sig_from).max(sig_to.abs()).max(1e-12);
        Progress {
            bar,
            u_from: (sig_from + c).ln(),
            u_to: (sig_to + c).ln(),
            c,
        }
    }

    fn at(&self, sigma: f64) {
        let f = (self.u_from - (sigma.max(0.0) + self.c).ln()) / (self.u_from - self.u_to);
        self.bar.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
    }
}

/// The default tolerance of a reference solve for `model`: [`EXACT_TOLERANCE`] for a model
/// defined on clean data (the exact mixtures, computed in f64), [`LEARNED_TOLERANCE`]
/// otherwise (networks, whose f32 outputs make tighter solves change nothing but the cost).
pub fn default_tolerance(model: &dyn ScoreModel) -> f64 {
    if model.defined_at_clean() {
        EXACT_TOLERANCE
    } else {
        LEARNED_TOLERANCE
    }
}

/// rtol = atol of references of exact models.
pub const EXACT_TOLERANCE: f64 = 1e-10;

/// rtol = atol of references of learned models: below it the solution of the committed
/// f32 networks stops changing beyond their own round-off (docs/guide.md, "References of
/// learned models", has the measurement).
pub const LEARNED_TOLERANCE: f64 = 1e-7;

impl Settings {
    /// Checks the tolerances.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("rtol", self.rtol), ("atol", self.atol)] {
            if !(v.is_finite() && v > 0.0 && v < 1.0) {
                return Err(Error::invalid(
                    name,
                    format!("expected a tolerance in (0, 1), got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// What a solve cost.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Stats {
    /// Model calls (batched calls in batch mode; one-row calls summed in per-sample mode).
    pub model_calls: usize,
    pub accepted_steps: usize,
    pub rejected_steps: usize,
}

impl std::ops::Add for Stats {
    type Output = Stats;
    fn add(self, o: Stats) -> Stats {
        Stats {
            model_calls: self.model_calls + o.model_calls,
            accepted_steps: self.accepted_steps + o.accepted_steps,
            rejected_steps: self.rejected_steps + o.rejected_steps,
        }
    }
}

struct Flow<'a> {
    model: &'a dyn ScoreModel,
    schedule: &'a Schedule,
    d: usize,
    error: &'a RefCell<Option<Error>>,
    progress: &'a Progress,
}

impl System<f64, DVector<f64>> for Flow<'_> {
    fn system(&self, _: f64, state: &DVector<f64>, d_state: &mut DVector<f64>) {
        let len = state.len() - 1;
        let sigma = state[len];
        let t = self.schedule.t_of_sigma_ratio(sigma.max(0.0));
        let level = Level::at(self.schedule, t);
        let x = Batch {
            n: len / self.d,
            d: self.d,
            data: state.iter().take(len).map(|v| v * level.alpha).collect(),
        };
        if let Err(e) = crate::interrupt::check().and_then(|_| {
            self.model
                .eps_into(&x, &level, &mut d_state.as_mut_slice()[..len])
        }) {
            self.error.borrow_mut().get_or_insert(e);
            d_state.fill(f64::NAN);
        }
        d_state[len] = 1.0;
    }

    fn solout(&mut self, sigma: f64, _: &DVector<f64>, _: &DVector<f64>) -> bool {
        self.progress.at(sigma);
        self.error.borrow().is_some()
    }
}

/// Integrates rows of `x` (all at time `t_from`) to `t_to < t_from`.
fn solve_block(
    model: &dyn ScoreModel,
    schedule: &Schedule,
    x: &Batch,
    t_from: f64,
    t_to: f64,
    s: &Settings,
) -> Result<(Batch, Stats)> {
    let (a_from, a_to) = (schedule.alpha(t_from), schedule.alpha(t_to));
    let (sig_from, sig_to) = (schedule.sigma_ratio(t_from), schedule.sigma_ratio(t_to));
    let y0 = DVector::from_iterator(
        x.data.len() + 1,
        x.data.iter().map(|v| v / a_from).chain([sig_from]),
    );
    let error = RefCell::new(None);
    // One bar for a batch solve; per-sample solves run many at once and draw none.
    let progress = Progress::new(sig_from, sig_to, s.progress && s.mode == Mode::Batch);
    let flow = Flow {
        model,
        schedule,
        d: x.d,
        error: &error,
        progress: &progress,
    };
    let mut stepper = Dop853::new(
        flow,
        sig_from,
        sig_to,
        sig_to - sig_from,
        y0,
        s.rtol,
        s.atol,
    );
    stepper.set_output(OutputType::Sparse);
    let result = stepper.integrate();
    let y_end = stepper.y_out().last().cloned();
    let x_end = stepper.x_out().last().cloned();
    drop(stepper);
    progress.bar.finish_and_clear();
    if let Some(e) = error.into_inner() {
        return Err(e);
    }
    let stats =
        result.map_err(|e| Error::numerical("reference", format!("DOP853 failed: {e:?}")))?;
    let (Some(y), Some(end)) = (y_end, x_end) else {
        return Err(Error::numerical("reference", "DOP853 produced no output"));
    };
    if (end - sig_to).abs() > 1e-12 * sig_from.abs().max(1.0) || y.iter().any(|v| !v.is_finite()) {
        return Err(Error::numerical("reference", format!("integration stopped at σ = {end} before σ = {sig_to} (model error or non-finite state)")));
    }
    let out = Batch {
        n: x.n,
        d: x.d,
        data: y.iter().take(x.data.len()).map(|v| v * a_to).collect(),
    };
    let st = Stats {
        model_calls: stats.num_eval as usize,
        accepted_steps: stats.accepted_steps as usize,
        rejected_steps: stats.rejected_steps as usize,
    };
    Ok((out, st))
}

/// Integrates the probability-flow ODE from `t_from` to `t_to` for every row of `x`.
pub fn solve(
    model: &dyn ScoreModel,
    schedule: &Schedule,
    x: &Batch,
    t_from: f64,
    t_to: f64,
    s: &Settings,
) -> Result<(Batch, Stats)> {
    s.validate()?;
    if !(t_to >= 0.0 && t_to < t_from && t_from <= schedule.t_max() * (1.0 + 1e-12)) {
        return Err(Error::invalid(
            "t_start",
            format!(
                "expected 0 ≤ end < start ≤ {}, got start {t_from}, end {t_to}",
                schedule.t_max()
            ),
        ));
    }
    if x.d != model.dim() {
        return Err(Error::invalid(
            "noise",
            format!("expected dimension {}, got {}", model.dim(), x.d),
        ));
    }
    // A model undefined on clean data is integrated to the first training step, then
    // denoised there exactly (x̂₀ = the σ = 0 end of that last, infinitesimal, step).
    if t_to == 0.0 && !model.defined_at_clean() {
        let t_min = schedule.t_min().min(0.5 * t_from);
        let (x_min, st) = solve(model, schedule, x, t_from, t_min, s)?;
        let x0 = model.data_prediction(&x_min, &Level::at(schedule, t_min))?;
        return Ok((
            x0,
            Stats {
                model_calls: st.model_calls + 1,
                ..st
            },
        ));
    }
    match s.mode {
        Mode::Batch => solve_block(model, schedule, x, t_from, t_to, s),
        Mode::PerSample => {
            let one = |i: usize| {
                let row = Batch {
                    n: 1,
                    d: x.d,
                    data: x.row(i).to_vec(),
                };
                solve_block(model, schedule, &row, t_from, t_to, s)
            };
            let rows = crate::parallel::map_indices(x.n, model.thread_bound(), one);
            let mut data = Vec::with_capacity(x.data.len());
            let mut total = Stats::default();
            for r in rows {
                let (b, st) = r?;
                data.extend_from_slice(&b.data);
                total = total + st;
            }
            Ok((
                Batch {
                    n: x.n,
                    d: x.d,
                    data,
                },
                total,
            ))
        }
    }
}

/// States at each of `times` (strictly decreasing, first ≤ `t_from`), integrating piecewise.
pub fn trajectory(
    model: &dyn ScoreModel,
    schedule: &Schedule,
    x: &Batch,
    t_from: f64,
    times: &[f64],
    s: &Settings,
) -> Result<(Vec<Batch>, Stats)> {
    let mut out = Vec::with_capacity(times.len());
    let (mut cur, mut t) = (x.clone(), t_from);
    let mut total = Stats::default();
    for (k, &tk) in times.iter().enumerate() {
        if tk > t {
            return Err(Error::invalid(
                format!("trajectory[{k}]"),
                format!("times must decrease from the start {t_from}; got {tk} after {t}"),
            ));
        }
        if tk < t {
            let (next, st) = solve(model, schedule, &cur, t, tk, s)?;
            total = total + st;
            cur = next;
            t = tk;
        }
        out.push(cur.clone());
    }
    Ok((out, total))
}
