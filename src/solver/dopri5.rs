//! Adaptive Dormand–Prince 5(4) (Dormand & Prince 1980; Hairer, Nørsett & Wanner, *Solving
//! ODEs I*, §II.4–5) as a sampler: error-controlled steps between grid points (by default
//! the grid is just start and end), one step size for the whole batch, FSAL. Grid points
//! are stops, not restarts: the step-size controller carries its proposal through them (as
//! DifferentialEquations.jl does at `tstops`) and the FSAL slope carries too, so a finer
//! output grid costs the clipped steps at its points, not a fresh initial-step search and
//! slope per interval.

use super::kernels::dopri5::{
    attempt_in_chunks, chunk_len, chunked_squares, rms, Stage, Tableau,
};
use super::options::{Kind, Opt, Resolved, Value, COORDS};
use super::rk::step_coords;
use super::{Family, Ctx, Method, Sampler, Scratch, SolverInfo};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::flow::{Coords, ProbabilityFlow};
use crate::model::{Level, ScoreModel};

const C: [f64; 7] = [0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0];
const A: [&[f64]; 7] = [
    &[],
    &[0.2],
    &[3.0 / 40.0, 9.0 / 40.0],
    &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
    &[
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
    ],
    &[
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
    ],
    &[
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
];
/// Fifth-order weights minus the embedded fourth-order ones: the error estimate.
const E: [f64; 7] = [
    71.0 / 57600.0,
    0.0,
    -71.0 / 16695.0,
    71.0 / 1920.0,
    -17253.0 / 339200.0,
    22.0 / 525.0,
    -1.0 / 40.0,
];
const MAX_STEPS: usize = 100_000;
/// The tableau as the row-chunked kernels take it.
const TABLEAU: Tableau = Tableau { a: A, e: E };
/// dopri5's relative tolerance.
pub const RTOL: Opt = Opt {
    name: "rtol",
    kind: Kind::Float,
    default: Value::Float(1e-4),
    doc: "relative tolerance of dopri5",
};
/// dopri5's absolute tolerance.
pub const ATOL: Opt = Opt {
    name: "atol",
    kind: Kind::Float,
    default: Value::Float(1e-4),
    doc: "absolute tolerance of dopri5",
};

/// The registration.
pub const INFO: SolverInfo = SolverInfo {
    name: "dopri5",
    order: 5.0,
    stochastic: false,
    family: Family::RungeKutta,
    options: &[&COORDS, &RTOL, &ATOL],
    summary: "adaptive Dormand–Prince 5(4); NFE set by the tolerances",
    build,
};

fn build(o: &Resolved) -> Result<Box<dyn Method>> {
    Ok(Box::new(Dopri5::new(
        o.choice(&COORDS),
        o.float(&RTOL),
        o.float(&ATOL),
    )?))
}

/// Dormand–Prince 5(4) with tolerances `rtol`, `atol` on the state in `coords`.
#[derive(Clone, Debug)]
pub struct Dopri5 {
    pub coords: Coords,
    pub rtol: f64,
    pub atol: f64,
}

impl Dopri5 {
    /// Validates the tolerances.
    pub fn new(coords: Coords, rtol: f64, atol: f64) -> Result<Self> {
        for (name, v) in [("rtol", rtol), ("atol", atol)] {
            if !(v.is_finite() && v > 0.0 && v < 1.0) {
                return Err(Error::invalid(
                    name,
                    format!("expected a tolerance in (0, 1), got {v}"),
                ));
            }
        }
        Ok(Dopri5 { coords, rtol, atol })
    }
}

/// The probability-flow slope in the integration variable τ, toward `t1`.
struct Field<'a> {
    flow: ProbabilityFlow<'a>,
    tau1: f64,
    t1: f64,
}

impl Field<'_> {
    fn time(&self, tau: f64) -> f64 {
        if tau == self.tau1 {
            self.t1
        } else {
            self.flow.time_of(tau)
        }
    }

    /// The slope at (τ, u), in a pooled buffer: ε̂ at x = scale·u, turned into the slope.
    fn at(&self, ctx: &Ctx, tau: f64, u: &Batch) -> Result<Scratch> {
        let t = self.time(tau);
        let scale = self.flow.scale(t);
        let x = ctx.combination(&[(scale, u)]);
        let mut k = ctx.eps_at(&x, t)?;
        let (cu, ce) = self.flow.field_coefficients(t);
        k.combine(ce, &[(cu, u)]);
        Ok(k)
    }
}

impl<'a> Field<'_> {
    /// The field at `tau` as a chunked stage, when the model has a row evaluator.
    fn stage(&self, ctx: &Ctx<'a>, tau: f64) -> Option<Stage<'a>> {
        // A requested stop is reported by the checked path this falls back to.
        if crate::interrupt::requested() {
            return None;
        }
        let t = self.time(tau);
        let (cu, ce) = self.flow.field_coefficients(t);
        Some(Stage {
            scale: self.flow.scale(t),
            cu,
            ce,
            model: ctx.model.row_pass(&Level::at(ctx.schedule, t))?,
        })
    }
}

/// The rows being integrated: the state, its slope (FSAL), and the last attempted step's
/// fifth-order point and slope there.
struct State {
    u: Scratch,
    k1: Scratch,
    proposal: Option<(Scratch, Scratch)>,
}

/// The controller's proposal for the next step, in the integration variable of `coords`.
#[derive(Clone, Copy, Debug)]
struct Carry {
    h: f64,
    coords: Coords,
}

/// A span of grid points in one coordinate system that is being integrated: its state and
/// FSAL slope carry through its points.
pub struct Span {
    state: State,
    coords: Coords,
}

impl Span {
    /// A span from `x` at `t0` toward `stop`, in the coordinates a step toward `stop` takes:
    /// the state in the integration variable, u = x / scale, its slope still to be evaluated.
    fn open(ctx: &Ctx, coords: Coords, x: Scratch, t0: f64, stop: f64) -> Span {
        let coords = step_coords(coords, stop);
        let flow = ProbabilityFlow {
            schedule: ctx.schedule,
            coords,
        };
        let inv_scale = 1.0 / flow.scale(t0);
        let mut u = x;
        u.map_in_place(|v| v * inv_scale);
        Span {
            state: State::new(ctx, u),
            coords,
        }
    }
}

/// dopri5's per-run state: the span under way, and the step-size controller's proposal.
#[derive(Default)]
pub struct Progress {
    span: Option<Span>,
    carry: Option<Carry>,
}

impl Sampler for Dopri5 {
    type State = Progress;

    fn init(&self, _: &Ctx, _: &Batch) -> Result<Progress> {
        Ok(Progress::default())
    }

    fn is_adaptive(&self) -> bool {
        true
    }

    /// Integrates from grid point `i` to `i + 1`. Grid points in one coordinate system form
    /// a span: its state, its FSAL slope and the step proposal carry through its points,
    /// and the state returned at an inner point is a copy (the next step continues from the
    /// span's own). The step proposal also carries into the next span when the coordinates
    /// agree. In f32 runs (the model's outputs rounded) every interval is a span, its end
    /// rounded to f32 by the integration loop, as for the other solvers.
    fn step(&self, ctx: &Ctx, i: usize, x: Scratch, p: Progress) -> Result<(Scratch, Progress)> {
        let steps = ctx.grid.steps();
        let t0 = ctx.t(i);
        // A model undefined on clean data is integrated to the first training step, then
        // denoised (the Euler step in σ onto σ = 0).
        let denoise_last = ctx.t(steps) == 0.0 && !ctx.model.defined_at_clean();
        if denoise_last && i + 1 == steps {
            let t_min = ctx.schedule.t_min().min(t0 * 0.5);
            let (xm, carry) = self.integrate(ctx, t0, t_min, x, p.carry)?;
            return Ok((ctx.x0_at(&xm, t_min)?, Progress { span: None, carry }));
        }
        // Point `end` joins the span of the step before it.
        let joins = |end: usize| {
            !ctx.model.rounds_to_f32()
                && end < steps
                && !(denoise_last && end + 1 == steps)
                && step_coords(self.coords, ctx.t(end + 1)) == step_coords(self.coords, ctx.t(end))
        };
        let stop = ctx.t(i + 1);
        let (mut span, fresh) = match p.span {
            // The span's own state continues; `x` was a copy of it.
            Some(span) => (span, false),
            None => (Span::open(ctx, self.coords, x, t0, stop), true),
        };
        let coords = span.coords;
        let flow = ProbabilityFlow {
            schedule: ctx.schedule,
            coords,
        };
        let carried = p.carry.filter(|c| c.coords == coords).map(|c| c.h);
        let field = Field {
            flow,
            tau1: flow.variable(stop),
            t1: stop,
        };
        let h = self.solve(ctx, &mut span.state, &field, t0, carried, fresh)?;
        let carry = Some(Carry { h, coords });
        let scale = flow.scale(stop);
        if joins(i + 1) {
            let x = ctx.combination(&[(scale, &span.state.u)]);
            return Ok((
                x,
                Progress {
                    span: Some(span),
                    carry,
                },
            ));
        }
        let mut x = span.state.u;
        x.map_in_place(|v| v * scale);
        Ok((x, Progress { span: None, carry }))
    }
}

impl Dopri5 {
    fn tol(&self) -> (f64, f64) {
        (self.rtol, self.atol)
    }

    /// Integrates `x` from `t0` to `stop` as a span of its own, starting from the carried
    /// step proposal when it is in this span's coordinates; returns the state at `stop` and
    /// the proposal for a step beyond it.
    fn integrate(
        &self,
        ctx: &Ctx,
        t0: f64,
        stop: f64,
        x: Scratch,
        carry: Option<Carry>,
    ) -> Result<(Scratch, Option<Carry>)> {
        let Span { mut state, coords } = Span::open(ctx, self.coords, x, t0, stop);
        let flow = ProbabilityFlow {
            schedule: ctx.schedule,
            coords,
        };
        let carried = carry.filter(|c| c.coords == coords).map(|c| c.h);
        let field = Field {
            flow,
            tau1: flow.variable(stop),
            t1: stop,
        };
        let h = self.solve(ctx, &mut state, &field, t0, carried, true)?;
        let scale = flow.scale(stop);
        let mut x = state.u;
        x.map_in_place(|v| v * scale);
        Ok((x, Some(Carry { h, coords })))
    }

    /// The error-controlled steps from `t0` to the field's end, the first one of size
    /// `carried` (clipped to the interval) when given, else chosen as Hairer et al. do.
    /// `fresh`: the state is new, its slope still to be evaluated (else `k1` is the last
    /// accepted step's FSAL slope). Returns the proposal for a step beyond the end.
    ///
    /// Where the model evaluates rows independently, each attempt runs a chunk of rows at a
    /// time, the chunks spread over the threads (see `kernels::dopri5::attempt_in_chunks`).
    fn solve(
        &self,
        ctx: &Ctx,
        state: &mut State,
        field: &Field,
        t0: f64,
        carried: Option<f64>,
        fresh: bool,
    ) -> Result<f64> {
        let (tau0, tau1) = (field.flow.variable(t0), field.tau1);
        let span = tau1 - tau0;
        let dir = span.signum();
        let len = state.u.data.len();
        let chunk = chunk_len(state.u.d);
        let in_chunks = ctx.model.rows_independent();
        let stage_at =
            |tau: f64| -> Option<Stage> { in_chunks.then(|| field.stage(ctx, tau)).flatten() };
        // The state's slope; the first step is the carried proposal, else Hairer's initial
        // step, which costs one more evaluation. (A stage is made only to be used: making
        // one counts a model evaluation.)
        let slope_at_start = |u: &Batch| -> Result<Scratch> {
            match stage_at(tau0).and_then(|st| st.slope_of_batch(ctx, u)) {
                Some(k1) => Ok(k1),
                None => field.at(ctx, tau0, u),
            }
        };
        let mut h = match carried.filter(|h| h * dir > 0.0) {
            Some(h) if !fresh => h,
            Some(h) => {
                state.set_slope(slope_at_start(&state.u)?);
                h
            }
            None => {
                state.set_slope(slope_at_start(&state.u)?);
                self.initial_step(ctx, state, field, tau0, span, &stage_at)?
            }
        };
        let mut tau = tau0;
        for _ in 0..MAX_STEPS {
            if (tau1 - tau) * dir <= 0.0 {
                return Ok(h);
            }
            let last = (tau + h - tau1) * dir >= 0.0;
            let unclipped = h;
            if last {
                h = tau1 - tau;
            }
            let tau_end = if last { tau1 } else { tau + h };
            // The six evaluations' τ: stages 2 … 6, then the new point's slope (FSAL).
            let taus: [f64; 6] =
                std::array::from_fn(|j| if j >= 4 { tau_end } else { tau + C[j + 1] * h });
            let chunked = in_chunks
                .then(|| {
                    let rows: (&Batch, &Batch) = (&state.u, &state.k1);
                    attempt_in_chunks(ctx, TABLEAU, &stage_at, taus, h, self.tol(), rows)
                })
                .flatten();
            let sum = match chunked {
                Some((sum, u_new, k7)) => {
                    state.proposal = Some((u_new, k7));
                    sum
                }
                None => self.attempt(ctx, field, tau, h, tau_end, chunk, state)?,
            };
            let norm = rms(sum, len);
            if !norm.is_finite() {
                return Err(Error::numerical(
                    "dopri5",
                    format!("error estimate is not finite at τ = {tau}"),
                ));
            }
            let accept = norm <= 1.0;
            state.settle(accept);
            if accept {
                tau = tau_end;
            }
            let factor = if norm == 0.0 {
                5.0
            } else {
                (0.9 * norm.powf(-0.2)).clamp(0.2, 5.0)
            };
            h *= factor;
            // A step shortened to land on the interval's end says little about the next
            // one: unless it asked for a smaller step, the proposal before the clip stands.
            if accept && last && factor >= 1.0 && unclipped.abs() > h.abs() {
                h = unclipped;
            }
        }
        Err(Error::numerical(
            "dopri5",
            format!("no convergence within {MAX_STEPS} steps; loosen `rtol`/`atol`"),
        ))
    }

    /// The initial step of Hairer et al. (§II.4): from the state's and its slope's norms,
    /// with one more evaluation at a probe step.
    fn initial_step<'s>(
        &self,
        ctx: &Ctx,
        state: &State,
        field: &Field,
        tau0: f64,
        span: f64,
        stage_at: &impl Fn(f64) -> Option<Stage<'s>>,
    ) -> Result<f64> {
        let dir = span.signum();
        let (u, k1) = (&state.u, &state.k1);
        let (len, chunk) = (u.data.len(), chunk_len(u.d));
        let norm = |e: &Batch| {
            rms(
                chunked_squares(&e.data, &u.data, &u.data, chunk, self.tol()),
                len,
            )
        };
        let (d0, d1) = (norm(u), norm(k1));
        let h0 = if d0 < 1e-5 || d1 < 1e-5 {
            1e-6
        } else {
            0.01 * d0 / d1
        }
        .min(span.abs());
        let probe = ctx.combination(&[(1.0, u), (h0 * dir, k1)]);
        let k_probe = match stage_at(tau0 + h0 * dir).and_then(|st| st.slope_of_batch(ctx, &probe))
        {
            Some(k) => k,
            None => field.at(ctx, tau0 + h0 * dir, &probe)?,
        };
        let diff = ctx.combination(&[(1.0, &k_probe), (-1.0, k1)]);
        let d2 = norm(&diff) / h0;
        let h1 = if d1.max(d2) <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).powf(0.2)
        };
        Ok((100.0 * h0).min(h1).min(span.abs()) * dir)
    }

    /// One Dormand–Prince step of size `h` from `τ`, stage by stage on the whole batch:
    /// stores the fifth-order point and its slope (FSAL) as the state's proposal, and
    /// returns the error norm's sum over chunks of `chunk` values.
    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        ctx: &Ctx,
        field: &Field,
        tau: f64,
        h: f64,
        tau_end: f64,
        chunk: usize,
        state: &mut State,
    ) -> Result<f64> {
        let (u, k1) = (&state.u, &state.k1);
        let mut ks: Vec<Scratch> = Vec::with_capacity(7);
        for j in 1..6 {
            let mut terms: Vec<(f64, &Batch)> = vec![(1.0, u), (h * A[j][0], k1)];
            terms.extend(ks.iter().zip(&A[j][1..]).map(|(k, &a)| (h * a, &**k)));
            let uj = ctx.combination(&terms);
            let tau_j = if j == 5 { tau_end } else { tau + C[j] * h };
            ks.push(field.at(ctx, tau_j, &uj)?);
        }
        // The fifth-order solution; its slope is the seventh stage (FSAL).
        let mut terms: Vec<(f64, &Batch)> = vec![(1.0, u), (h * A[6][0], k1)];
        terms.extend(ks.iter().zip(&A[6][1..]).map(|(k, &a)| (h * a, &**k)));
        let u_new = ctx.combination(&terms);
        let k7 = field.at(ctx, tau_end, &u_new)?;
        let mut terms: Vec<(f64, &Batch)> = vec![(h * E[0], k1)];
        terms.extend(ks.iter().zip(&E[1..6]).map(|(k, &e)| (h * e, &**k)));
        terms.push((h * E[6], &k7));
        let err = ctx.combination(&terms);
        let sum = chunked_squares(&err.data, &u.data, &u_new.data, chunk, self.tol());
        state.proposal = Some((u_new, k7));
        Ok(sum)
    }

}

impl State {
    /// A fresh state, its slope still to be evaluated.
    fn new(ctx: &Ctx, u: Scratch) -> Self {
        let no_slope = Batch {
            n: 0,
            d: u.d,
            data: Vec::new(),
        };
        State {
            k1: ctx.adopt(no_slope),
            u,
            proposal: None,
        }
    }

    /// Sets the slope at the state (a fresh start).
    fn set_slope(&mut self, k1: Scratch) {
        self.k1 = k1;
    }

    /// Takes the proposal as the new state if the step was accepted, else drops it.
    fn settle(&mut self, accept: bool) {
        if let Some((u_new, k7)) = self.proposal.take().filter(|_| accept) {
            self.u = u_new;
            self.k1 = k7;
        }
    }
}
