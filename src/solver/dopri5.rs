//! Adaptive Dormand–Prince 5(4) (Dormand & Prince 1980; Hairer, Nørsett & Wanner, *Solving
//! ODEs I*, §II.4–5) as a sampler: error-controlled steps between grid points (by default
//! the grid is just start and end), one step size for the whole batch, FSAL. Grid points
//! are stops, not restarts: the step-size controller carries its proposal through them (as
//! DifferentialEquations.jl does at `tstops`) and the FSAL slope carries too, so a finer
//! output grid costs the clipped steps at its points, not a fresh initial-step search and
//! slope per interval.

use super::options::{Kind, Opt, Resolved, Value, COORDS};
use super::rk::step_coords;
use super::{Ctx, Method, Sampler, Scratch, SolverInfo};
use crate::batch::{combine_slices, set_combination_slices, Batch};
use crate::error::{Error, Result};
use crate::flow::{Coords, ProbabilityFlow};
use crate::model::{all_finite, Level, RowEvaluator, ScoreModel};
use rayon::prelude::*;

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
/// Values per chunk of rows in a row-wise attempt: its eight chunk-sized arrays (five
/// slopes, stage point, model input, error) take 16 KiB of L1. Also the error norm's chunk.
const ROW_CHUNK: usize = 256;
/// Rows per chunk at most: the threads finish an attempt within about one chunk's time of
/// each other, and a row of a low-dimensional model costs as much as one of a high one
/// (on ring2d, 128-row chunks left the threads several times further apart per attempt).
const MAX_CHUNK_ROWS: usize = 32;

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

/// One element's share of the error norm: `(e / (atol + rtol·max(|a|, |b|)))²`.
#[inline(always)]
fn scaled_square(e: f64, a: f64, b: f64, rtol: f64, atol: f64) -> f64 {
    (e / (atol + rtol * a.abs().max(b.abs()))).powi(2)
}

/// Partial sums of the error norm in interleaved lanes: element `i` of a chunk goes to lane
/// `i mod LANES`, and a chunk's total adds the lanes in order. Chunk totals are added in
/// chunk order, so chunk-wise and whole-batch attempts get the same bits at any thread
/// count, and it vectorises (a sum in element order is a chain of dependent adds).
const LANES: usize = 16;

#[derive(Clone, Copy, Default)]
struct Squares([f64; LANES]);

impl Squares {
    /// Adds a chunk's elements.
    fn add(&mut self, e: &[f64], a: &[f64], b: &[f64], (rtol, atol): (f64, f64)) {
        add_squares(&mut self.0, e, None, a, b, rtol, atol);
    }

    /// Adds a chunk's elements of the error `e + c·k` (its last term added here, in order).
    #[allow(clippy::too_many_arguments)]
    fn add_error(
        &mut self,
        e: &[f64],
        c: f64,
        k: &[f64],
        a: &[f64],
        b: &[f64],
        (rtol, atol): (f64, f64),
    ) {
        add_squares(&mut self.0, e, Some((c, k)), a, b, rtol, atol);
    }

    fn total(&self) -> f64 {
        self.0.iter().fold(0.0, |s, l| s + l)
    }
}

crate::simd::wide_simd!(add_squares => add_squares_body(lanes: &mut [f64; LANES], e: &[f64], last: Option<(f64, &[f64])>, a: &[f64], b: &[f64], rtol: f64, atol: f64));

#[inline(always)]
fn add_squares_body(
    lanes: &mut [f64; LANES],
    e: &[f64],
    last: Option<(f64, &[f64])>,
    a: &[f64],
    b: &[f64],
    rtol: f64,
    atol: f64,
) {
    match last {
        None => squares::<false>(lanes, e, 0.0, e, a, b, rtol, atol),
        Some((c, k)) => squares::<true>(lanes, e, c, k, a, b, rtol, atol),
    }
}

/// The lanes' sums of the scaled squares of `e` (plus `c·k` if `LAST`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn squares<const LAST: bool>(
    lanes: &mut [f64; LANES],
    e: &[f64],
    c: f64,
    k: &[f64],
    a: &[f64],
    b: &[f64],
    rtol: f64,
    atol: f64,
) {
    let at = |e: f64, k: f64| if LAST { e + c * k } else { e };
    let whole = e.len() / LANES * LANES;
    let (e, e_rest) = e.split_at(whole);
    let (k, k_rest) = k.split_at(whole);
    let (a, a_rest) = a.split_at(whole);
    let (b, b_rest) = b.split_at(whole);
    for (((e, k), a), b) in e
        .chunks_exact(LANES)
        .zip(k.chunks_exact(LANES))
        .zip(a.chunks_exact(LANES))
        .zip(b.chunks_exact(LANES))
    {
        for l in 0..LANES {
            lanes[l] += scaled_square(at(e[l], k[l]), a[l], b[l], rtol, atol);
        }
    }
    let rest = e_rest.iter().zip(k_rest).zip(a_rest).zip(b_rest);
    for (l, (((&e, &k), &a), &b)) in rest.enumerate() {
        lanes[l] += scaled_square(at(e, k), a, b, rtol, atol);
    }
}

/// The error norm of `len` values from the sum of their scaled squares.
fn rms(sum: f64, len: usize) -> f64 {
    (sum / len as f64).sqrt()
}

/// Σ of the scaled squares over chunks of `chunk` elements, chunk totals added in order.
fn chunked_squares(e: &[f64], a: &[f64], b: &[f64], chunk: usize, tol: (f64, f64)) -> f64 {
    e.chunks(chunk)
        .zip(a.chunks(chunk).zip(b.chunks(chunk)))
        .map(|(e, (a, b))| {
            let mut s = Squares::default();
            s.add(e, a, b, tol);
            s.total()
        })
        .fold(0.0, |s, t| s + t)
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

/// The field at one stage's τ for a few rows at a time, when the model has a row evaluator
/// (see [`Field::at`]: the same arithmetic).
struct Stage<'a> {
    scale: f64,
    cu: f64,
    ce: f64,
    model: Box<dyn RowEvaluator + 'a>,
}

impl<'a> Field<'_> {
    fn stage(&self, ctx: &Ctx<'a>, tau: f64) -> Option<Stage<'a>> {
        let t = self.time(tau);
        let (cu, ce) = self.flow.field_coefficients(t);
        Some(Stage {
            scale: self.flow.scale(t),
            cu,
            ce,
            model: ctx.model.row_evaluator(&Level::at(ctx.schedule, t))?,
        })
    }
}

impl Stage<'_> {
    /// `k` = the slope at `u`, with `x` as scratch (unchecked: see `attempt_chunk`).
    fn slope(&self, u: &[f64], x: &mut [f64], k: &mut [f64]) {
        set_combination_slices(x, &[(self.scale, u)]);
        self.slope_at(x, u, k);
    }

    /// `k` = the slope at `u` given the model's input there, `x = scale·u` (`u` is read
    /// only where the slope has a term in it).
    fn slope_at(&self, x: &[f64], u: &[f64], k: &mut [f64]) {
        self.model.eps_rows(x, k);
        combine_slices(k, self.ce, &[(self.cu, u)]);
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
            None => {
                let coords = step_coords(self.coords, stop);
                let flow = ProbabilityFlow {
                    schedule: ctx.schedule,
                    coords,
                };
                // The state in the integration variable, u = x / scale.
                let inv_scale = 1.0 / flow.scale(t0);
                let mut u = x;
                u.map_in_place(|v| v * inv_scale);
                (
                    Span {
                        state: State::new(ctx, u),
                        coords,
                    },
                    true,
                )
            }
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
        let coords = step_coords(self.coords, stop);
        let flow = ProbabilityFlow {
            schedule: ctx.schedule,
            coords,
        };
        // The state in the integration variable, u = x / scale.
        let inv_scale = 1.0 / flow.scale(t0);
        let mut u = x;
        u.map_in_place(|v| v * inv_scale);
        let mut state = State::new(ctx, u);
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
    /// time, the chunks spread over the threads (see [`Dopri5::attempt_in_chunks`]).
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
        // step, which costs one more evaluation.
        let first = stage_at(tau0);
        let slope_at_start = |u: &Batch| -> Result<Scratch> {
            match first.as_ref().and_then(|st| st.slope_of_batch(ctx, u)) {
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
            let stages: Option<Vec<Stage>> = (1..6)
                .map(|j| stage_at(if j == 5 { tau_end } else { tau + C[j] * h }))
                .collect();
            let sum = match stages
                .as_ref()
                .and_then(|st| self.attempt_in_chunks(ctx, st, h, state))
            {
                Some(sum) => sum,
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

    /// [`Dopri5::attempt`] a chunk of rows at a time, the chunks shared out over the
    /// threads in segments (`parallel::map_segments`): all seven stages of a chunk run while
    /// its stage values are in L1, and the threads finish an attempt within about one
    /// chunk's time of each other (whole tiles per thread ended much further apart). Each
    /// element gets the same arithmetic, and the chunks' sums are added in order, so the
    /// result is bit-identical. `None` if a value is not finite: the caller reruns the
    /// attempt stage by stage, which reports a bad model output.
    fn attempt_in_chunks(
        &self,
        ctx: &Ctx,
        stages: &[Stage],
        h: f64,
        state: &mut State,
    ) -> Option<f64> {
        let step = StepSums::new(h)?;
        let (u, k1) = (&state.u, &state.k1);
        let chunk = chunk_len(u.d);
        let (mut u_new, mut k7) = (ctx.batch_like(u), ctx.batch_like(u));
        let chunks: Vec<ChunkRows> = u
            .data
            .chunks(chunk)
            .zip(k1.data.chunks(chunk))
            .zip(u_new.data.chunks_mut(chunk).zip(k7.data.chunks_mut(chunk)))
            .map(|((u, k1), (u_new, k7))| ChunkRows { u, k1, u_new, k7 })
            .collect();
        let sums = crate::parallel::map_segments(chunks, |rows| {
            with_scratch(8 * chunk, |scratch| {
                self.attempt_chunk(stages, &step, rows, scratch)
            })
        });
        let sum = sums.into_iter().try_fold(0.0, |s, t| Some(s + t?));
        if sum.is_some() {
            ctx.model.add_calls(6);
            state.proposal = Some((u_new, k7));
        }
        sum
    }

    /// One chunk's attempt, with `scratch` for its five slopes, a stage point, the model's
    /// input and the error estimate's partial sum: writes the chunk's fifth-order point and
    /// its slope, and returns its share of the error norm's sum, or `None` if a value is
    /// not finite. The model's outputs are not checked one by one: every slope k₁ … k₅
    /// enters the sixth stage's input with a nonzero weight, and k₆, k₇ the error estimate,
    /// so a NaN or infinity in any of them shows in one of those two (checked: the sixth
    /// stage's model input, and the error's sum of squares).
    fn attempt_chunk(
        &self,
        stages: &[Stage],
        sums: &StepSums,
        rows: ChunkRows,
        scratch: &mut [f64],
    ) -> Option<f64> {
        let ChunkRows { u, k1, u_new, k7 } = rows;
        let n = u.len();
        let (ks, rest) = scratch.split_at_mut(5 * n);
        let (uj, rest) = rest.split_at_mut(n);
        let (x, rest) = rest.split_at_mut(n);
        let err = &mut rest[..n];
        for j in 1..6 {
            let (done, next) = ks.split_at_mut((j - 1) * n);
            let mut terms: [&[f64]; 6] = [&[]; 6];
            terms[0] = u;
            terms[1] = k1;
            for (m, t) in terms[2..=j].iter_mut().enumerate() {
                *t = &done[m * n..(m + 1) * n];
            }
            let stage = &stages[j - 1];
            // The stage point itself is needed only where the slope has a term in it.
            let keep = (stage.cu != 0.0).then_some(&mut *uj);
            stage_point(&sums.stage[j - 1][..=j], &terms[..=j], stage.scale, keep, x);
            if j == 5 && !all_finite(x) {
                return None;
            }
            stage.slope_at(x, uj, &mut next[..n]);
        }
        let k = |m: usize| &ks[m * n..(m + 1) * n];
        let terms = [u, k1, k(1), k(2), k(3), k(4)];
        let last = &stages[4];
        step_end(sums, terms, last.scale, u_new, x, err);
        last.slope_at(x, u_new, k7);
        let mut squares = Squares::default();
        squares.add_error(err, sums.err_last, k7, u, u_new, self.tol());
        let sum = squares.total();
        sum.is_finite().then_some(sum)
    }
}

/// One chunk of rows of an attempt: the state and its slope, and where the fifth-order
/// point and its slope go.
struct ChunkRows<'a> {
    u: &'a [f64],
    k1: &'a [f64],
    u_new: &'a mut [f64],
    k7: &'a mut [f64],
}

/// The coefficients of one attempt's sums for a step of size h: each stage's point (the
/// state's, then the slopes'), the fifth-order point (state, k₁, k₃ … k₆: b₂ = 0) and the
/// error estimate (k₁, k₃ … k₆, then k₇: e₂ = 0).
struct StepSums {
    stage: [[f64; 6]; 5],
    end: [f64; 6],
    err: [f64; 5],
    err_last: f64,
}

impl StepSums {
    /// `None` if a coefficient is zero (h underflowed): the combination kernels skip a zero
    /// term, which these sums would not.
    fn new(h: f64) -> Option<Self> {
        let mut stage = [[0.0; 6]; 5];
        for (j, c) in stage.iter_mut().enumerate() {
            c[0] = 1.0;
            for (c, a) in c[1..].iter_mut().zip(A[j + 1]) {
                *c = h * a;
            }
        }
        let slopes = [0, 2, 3, 4, 5];
        let end = [
            1.0,
            h * A[6][0],
            h * A[6][2],
            h * A[6][3],
            h * A[6][4],
            h * A[6][5],
        ];
        let err = slopes.map(|m| h * E[m]);
        let sums = StepSums {
            stage,
            end,
            err,
            err_last: h * E[6],
        };
        let nonzero = sums
            .stage
            .iter()
            .enumerate()
            .all(|(j, c)| c[..j + 2].iter().all(|&c| c != 0.0))
            && sums.end.iter().chain(&sums.err).all(|&c| c != 0.0)
            && sums.err_last != 0.0;
        nonzero.then_some(sums)
    }
}

crate::simd::wide_simd!(stage_point => stage_point_body(c: &[f64], terms: &[&[f64]], scale: f64, keep: Option<&mut [f64]>, x: &mut [f64]));

/// `x = scale·Σ c_m·terms_m` (summed left to right, as the combination kernels do, so the
/// bits are theirs), the sum also into `keep` when given, in one sweep.
#[inline(always)]
fn stage_point_body(
    c: &[f64],
    terms: &[&[f64]],
    scale: f64,
    keep: Option<&mut [f64]>,
    x: &mut [f64],
) {
    match (terms.len(), keep) {
        (2, None) => point::<2, false>(c, terms, scale, &mut [], x),
        (3, None) => point::<3, false>(c, terms, scale, &mut [], x),
        (4, None) => point::<4, false>(c, terms, scale, &mut [], x),
        (5, None) => point::<5, false>(c, terms, scale, &mut [], x),
        (6, None) => point::<6, false>(c, terms, scale, &mut [], x),
        (2, Some(k)) => point::<2, true>(c, terms, scale, k, x),
        (3, Some(k)) => point::<3, true>(c, terms, scale, k, x),
        (4, Some(k)) => point::<4, true>(c, terms, scale, k, x),
        (5, Some(k)) => point::<5, true>(c, terms, scale, k, x),
        (6, Some(k)) => point::<6, true>(c, terms, scale, k, x),
        (n, _) => unreachable!("a stage point of {n} terms"),
    }
}

/// Elements per block of the one-sweep kernels: a block's terms are loaded into arrays
/// first, so the compiler needs no proof that the outputs do not overlap them to keep the
/// block in vector registers (on slices of slices it fell back to a scalar loop).
const UNROLL: usize = 8;

#[inline(always)]
fn point<const N: usize, const KEEP: bool>(
    c: &[f64],
    terms: &[&[f64]],
    scale: f64,
    keep: &mut [f64],
    x: &mut [f64],
) {
    let n = x.len();
    let c: [f64; N] = std::array::from_fn(|m| c[m]);
    let t: [&[f64]; N] = std::array::from_fn(|m| &terms[m][..n]);
    let sum = |i: usize| {
        let mut s = c[0] * t[0][i];
        for m in 1..N {
            s += c[m] * t[m][i];
        }
        s
    };
    let whole = n / UNROLL * UNROLL;
    for start in (0..whole).step_by(UNROLL) {
        let block: [[f64; UNROLL]; N] =
            std::array::from_fn(|m| t[m][start..start + UNROLL].try_into().expect("a block"));
        let mut s = [0.0; UNROLL];
        for l in 0..UNROLL {
            s[l] = c[0] * block[0][l];
            for m in 1..N {
                s[l] += c[m] * block[m][l];
            }
        }
        if KEEP {
            keep[start..start + UNROLL].copy_from_slice(&s);
        }
        for (x, s) in x[start..start + UNROLL].iter_mut().zip(s) {
            *x = scale * s;
        }
    }
    for i in whole..n {
        let s = sum(i);
        if KEEP {
            keep[i] = s;
        }
        x[i] = scale * s;
    }
}

crate::simd::wide_simd!(step_end => step_end_body(sums: &StepSums, terms: [&[f64]; 6], scale: f64, u_new: &mut [f64], x: &mut [f64], err: &mut [f64]));

/// In one sweep: the fifth-order point `u_new` from the state and slopes `terms` (u, k₁,
/// k₃ … k₆), the model's input `x = scale·u_new`, and the error estimate's sum but its
/// last term (k₇'s, added by [`Squares::add_error`]); left to right, as the combination
/// kernels sum.
#[inline(always)]
fn step_end_body(
    sums: &StepSums,
    terms: [&[f64]; 6],
    scale: f64,
    u_new: &mut [f64],
    x: &mut [f64],
    err: &mut [f64],
) {
    let n = u_new.len();
    let [u, k1, k3, k4, k5, k6] = terms.map(|t| &t[..n]);
    let (x, err) = (&mut x[..n], &mut err[..n]);
    let [b0, b1, b3, b4, b5, b6] = sums.end;
    let [e1, e3, e4, e5, e6] = sums.err;
    for i in 0..n {
        let s = b0 * u[i] + b1 * k1[i] + b3 * k3[i] + b4 * k4[i] + b5 * k5[i] + b6 * k6[i];
        u_new[i] = s;
        x[i] = scale * s;
        err[i] = e1 * k1[i] + e3 * k3[i] + e4 * k4[i] + e5 * k5[i] + e6 * k6[i];
    }
}

/// Values per chunk of rows: whole rows, about `ROW_CHUNK` values but at most
/// `MAX_CHUNK_ROWS` rows.
fn chunk_len(d: usize) -> usize {
    (ROW_CHUNK / d.max(1)).clamp(1, MAX_CHUNK_ROWS) * d.max(1)
}

thread_local! {
    /// Each thread's chunk-sized stage arrays (allocating them per chunk was measurable).
    static SCRATCH: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch space of `len` values (on a fresh one if it is in
/// use: a model that runs parallel loops of its own may have this thread take another
/// chunk while it waits).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            if s.len() < len {
                s.resize(len, 0.0);
            }
            f(&mut s[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

impl Stage<'_> {
    /// The slope at every row of `u`, a chunk at a time in parallel; `None` if the model
    /// gave a non-finite output (then nothing was counted).
    fn slope_of_batch(&self, ctx: &Ctx, u: &Batch) -> Option<Scratch> {
        let chunk = chunk_len(u.d);
        let mut k = ctx.batch_like(u);
        u.data
            .par_chunks(chunk)
            .zip(k.data.par_chunks_mut(chunk))
            .for_each(|(u, k)| with_scratch(u.len(), |x| self.slope(u, x, k)));
        if !all_finite(&k.data) {
            return None;
        }
        ctx.model.add_calls(1);
        Some(k)
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
