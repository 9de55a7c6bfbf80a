//! Adaptive Dormand–Prince 5(4) (Dormand & Prince 1980; Hairer, Nørsett & Wanner, *Solving
//! ODEs I*, §II.4–5) as a sampler: error-controlled steps between grid points (by default
//! the grid is just start and end), one step size for the whole batch, FSAL. Grid points
//! are stops, not restarts: the step-size controller carries its proposal through them (as
//! DifferentialEquations.jl does at `tstops`) and the FSAL slope carries too, so a finer
//! output grid costs the clipped steps at its points, not a fresh initial-step search and
//! slope per interval.

use super::rk::step_coords;
use super::{tiles, Ctx, Precision};
use crate::batch::{combine_slices, set_combination_slices, Batch};
use crate::error::{Error, Result};
use crate::flow::{Coords, ProbabilityFlow};
use crate::model::{all_finite, Counted, Level, RowEvaluator, ScoreModel};
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
/// Elements per chunk of rows when a tile's attempt runs a few rows at a time: its eight
/// chunk-sized arrays (five stages, stage point, model input, error) take 16 KiB of L1.
const ROW_CHUNK: usize = 256;
/// Tile-sized buffers a tile's attempt holds at once in row chunks: state, slope, and the
/// proposal with its slope.
const BUFFERS_PER_TILE: usize = 4;

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
        for (name, v) in [("--rtol", rtol), ("--atol", atol)] {
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

/// Partial sums of the error norm in interleaved lanes: element `i` of a block goes to lane
/// `i mod LANES`, and a block's total adds the lanes in order. The order depends on the
/// block alone, so tiled and whole-batch runs get the same bits, and it vectorises (a sum
/// in element order is a chain of dependent adds: 90 µs per 65 536 values).
const LANES: usize = 16;

#[derive(Clone, Copy, Default)]
struct Squares([f64; LANES]);

impl Squares {
    /// Adds the next elements of a block; every piece but a block's last holds a multiple
    /// of `LANES` elements.
    fn add(&mut self, e: &[f64], a: &[f64], b: &[f64], (rtol, atol): (f64, f64)) {
        add_squares(&mut self.0, e, a, b, rtol, atol);
    }

    fn total(&self) -> f64 {
        self.0.iter().fold(0.0, |s, l| s + l)
    }
}

crate::simd::wide_simd!(add_squares => add_squares_body(lanes: &mut [f64; LANES], e: &[f64], a: &[f64], b: &[f64], rtol: f64, atol: f64));

#[inline(always)]
fn add_squares_body(
    lanes: &mut [f64; LANES],
    e: &[f64],
    a: &[f64],
    b: &[f64],
    rtol: f64,
    atol: f64,
) {
    let whole = e.len() / LANES * LANES;
    let (e, e_rest) = e.split_at(whole);
    let (a, a_rest) = a.split_at(whole);
    let (b, b_rest) = b.split_at(whole);
    for ((e, a), b) in e
        .chunks_exact(LANES)
        .zip(a.chunks_exact(LANES))
        .zip(b.chunks_exact(LANES))
    {
        for l in 0..LANES {
            lanes[l] += scaled_square(e[l], a[l], b[l], rtol, atol);
        }
    }
    for (l, ((&e, &a), &b)) in e_rest.iter().zip(a_rest).zip(b_rest).enumerate() {
        lanes[l] += scaled_square(e, a, b, rtol, atol);
    }
}

/// The error norm of `len` values from the sum of their scaled squares.
fn rms(sum: f64, len: usize) -> f64 {
    (sum / len as f64).sqrt()
}

/// Σ of the scaled squares over blocks of `block` elements, block totals added in order.
fn blocked_squares(e: &[f64], a: &[f64], b: &[f64], block: usize, tol: (f64, f64)) -> f64 {
    e.chunks(block)
        .zip(a.chunks(block).zip(b.chunks(block)))
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

    /// The slope at (τ, u), in a recycled buffer: ε̂ at x = scale·u, turned into the slope.
    fn at(&self, ctx: &Ctx, tau: f64, u: &Batch) -> Result<Batch> {
        let t = self.time(tau);
        let scale = self.flow.scale(t);
        let x = ctx.combination(&[(scale, u)]);
        let mut k = ctx.eps_at(&x, t)?;
        ctx.recycle(x);
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
    /// `k` = the slope at `u`, with `x` as scratch (unchecked: see `attempt_in_rows`).
    fn slope(&self, u: &[f64], x: &mut [f64], k: &mut [f64]) {
        set_combination_slices(x, &[(self.scale, u)]);
        self.model.eps_rows(x, k);
        combine_slices(k, self.ce, &[(self.cu, u)]);
    }
}

/// The rows one context integrates: the state, its slope (FSAL), and the last attempted
/// step's fifth-order point and slope there.
struct Part {
    u: Batch,
    k1: Batch,
    proposal: Option<(Batch, Batch)>,
    /// Chunk-sized stage arrays for the row-chunked attempt.
    chunks: Vec<f64>,
}

/// The controller's proposal for the next step, in the integration variable of `coords`.
#[derive(Clone, Copy, Debug)]
struct Carry {
    h: f64,
    coords: Coords,
}

impl Dopri5 {
    /// Integrates over the context's grid. Grid points in one coordinate system form a
    /// span: its state stays in the tiles, and the FSAL slope and the step proposal carry
    /// through its points. The step proposal also carries into the next span when the
    /// coordinates agree. In f32 runs every interval is a span, and the state is rounded to
    /// f32 at every grid point, as for the other solvers.
    pub fn run(&self, ctx: &Ctx, mut x: Batch, precision: Precision) -> Result<Batch> {
        let steps = ctx.grid.steps();
        // A model undefined on clean data is integrated to the first training step, then
        // denoised (the Euler step in σ onto σ = 0).
        let denoise_last = ctx.t(steps) == 0.0 && !ctx.model.defined_at_clean();
        // Grid points i < end share a span with point i + 1.
        let joins = |end: usize| {
            precision == Precision::F64
                && end < steps
                && !(denoise_last && end + 1 == steps)
                && step_coords(self.coords, ctx.t(end + 1)) == step_coords(self.coords, ctx.t(end))
        };
        let mut carry = None;
        let mut i = 0;
        while i < steps {
            let t0 = ctx.t(i);
            let mut end = i + 1;
            if denoise_last && end == steps {
                let t_min = ctx.schedule.t_min().min(t0 * 0.5);
                let (xm, _) = self.integrate(ctx, t0, &[t_min], x, carry)?;
                x = ctx.x0_at(&xm, t_min)?;
                ctx.recycle(xm);
            } else {
                while joins(end) {
                    end += 1;
                }
                let stops: Vec<f64> = (i + 1..=end).map(|k| ctx.t(k)).collect();
                (x, carry) = self.integrate(ctx, t0, &stops, x, carry)?;
            }
            if precision == Precision::F32 {
                x.round_to_f32();
            }
            i = end;
        }
        Ok(x)
    }
}

/// The parts of one integration and where they run: row tiles in parallel, each with its
/// own context and call-counting model, or the whole batch on the run's context.
struct Parts<'c, 'a> {
    ctx: &'c Ctx<'a>,
    ctxs: Vec<Ctx<'c>>,
    models: &'c [Counted<'a>],
    parts: Vec<Part>,
    /// Rows per tile, which is also the error norm's block (tiled or not).
    rows: usize,
}

impl Parts<'_, '_> {
    /// The state `x = scale·u` of all parts as one batch of `len` values; the parts'
    /// buffers go back to their pools.
    fn join(&mut self, scale: f64, len: usize) -> Batch {
        if self.ctxs.is_empty() {
            let mut u = self.parts.pop().expect("one part").u;
            u.map_in_place(|v| v * scale);
            return u;
        }
        let mut x = Batch {
            n: self.parts.iter().map(|p| p.u.n).sum(),
            d: self.parts[0].u.d,
            data: self.ctx.buffer(len),
        };
        let tile_len = self.rows * x.d;
        for ((rows, p), c) in x
            .data
            .chunks_mut(tile_len)
            .zip(self.parts.drain(..))
            .zip(&self.ctxs)
        {
            set_combination_slices(rows, &[(scale, &p.u.data)]);
            c.recycle(p.u);
            c.recycle(p.k1);
        }
        x
    }

    /// Runs `f` on every part and adds up what it returns in row order; on failure, the
    /// error a whole-batch run would have stopped on.
    fn each<const N: usize>(
        &mut self,
        f: impl Fn(&Ctx, &mut Part) -> Result<[f64; N]> + Sync,
    ) -> Result<[f64; N]> {
        if self.ctxs.is_empty() {
            return f(self.ctx, &mut self.parts[0]);
        }
        let results: Vec<Result<[f64; N]>> = self
            .ctxs
            .par_iter_mut()
            .zip(self.parts.par_iter_mut())
            .map(|(c, p)| f(c, p))
            .collect();
        let mut errors = Vec::new();
        let mut sum = [0.0; N];
        for (k, r) in results.into_iter().enumerate() {
            match r {
                Ok(s) => sum.iter_mut().zip(s).for_each(|(sum, s)| *sum += s),
                Err(e) => errors.push((k * self.rows, self.models[k].nfe(), e)),
            }
        }
        match tiles::first_error(errors) {
            Some(e) => Err(e),
            None => Ok(sum),
        }
    }
}

impl Dopri5 {
    fn tol(&self) -> (f64, f64) {
        (self.rtol, self.atol)
    }

    /// Integrates from `t0` through `stops` (in one coordinate system), starting from the
    /// carried step proposal when it is in these coordinates; returns the state at the last
    /// stop and the proposal for a step beyond it.
    fn integrate(
        &self,
        ctx: &Ctx,
        t0: f64,
        stops: &[f64],
        x: Batch,
        carry: Option<Carry>,
    ) -> Result<(Batch, Option<Carry>)> {
        let t_end = *stops.last().expect("at least one stop");
        let coords = step_coords(self.coords, t_end);
        let flow = ProbabilityFlow {
            schedule: ctx.schedule,
            coords,
        };
        let len = x.data.len();
        // Rows independent (exact models): the interval runs on row tiles, in parallel, each
        // attempt a few rows at a time (see `attempt_in_rows`); only the error norm couples
        // rows, and it is summed per tile-sized block either way.
        let rows = tiles::tile_rows(x.n, x.d);
        let tiled = tiles::rows_separate(ctx, &x);
        let tile_len = rows * x.d;
        let models = tiles::models(ctx, if tiled { x.n.div_ceil(rows) } else { 0 });
        // The tiles' contexts borrow the buffers of the last interval's tiles, and give
        // them back at the end (fresh ones cost a zeroing pass and page faults each time).
        let ctxs: Vec<Ctx> = models
            .iter()
            .zip(x.data.chunks(tile_len))
            .map(|(m, rows)| {
                let c = Ctx::new(m, ctx.schedule, ctx.grid, ctx.seed);
                c.borrow_buffers(ctx, rows.len(), BUFFERS_PER_TILE);
                c
            })
            .collect();
        // The state in the integration variable, u = x / scale.
        let inv_scale = 1.0 / flow.scale(t0);
        let parts: Vec<Part> = if tiled {
            let parts = ctxs
                .iter()
                .zip(x.data.chunks(tile_len))
                .map(|(c, rows)| {
                    let mut u = Batch {
                        n: rows.len() / x.d,
                        d: x.d,
                        data: c.buffer(rows.len()),
                    };
                    set_combination_slices(&mut u.data, &[(inv_scale, rows)]);
                    Part::new(u)
                })
                .collect();
            ctx.recycle(x);
            parts
        } else {
            let mut u = x;
            u.map_in_place(|v| v * inv_scale);
            vec![Part::new(u)]
        };
        let mut parts = Parts {
            ctx,
            ctxs,
            models: &models,
            parts,
            rows,
        };
        let mut h = carry.filter(|c| c.coords == coords).map(|c| c.h);
        let mut result = Ok(());
        let mut t = t0;
        for (k, &stop) in stops.iter().enumerate() {
            let field = Field {
                flow,
                tau1: flow.variable(stop),
                t1: stop,
            };
            match self.solve(&mut parts, &field, t, len, h, k == 0) {
                Ok(next) => h = Some(next),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            t = stop;
        }
        let x = result.map(|()| parts.join(flow.scale(t_end), len));
        for c in &parts.ctxs {
            c.move_buffers(ctx);
        }
        // Every tile made the same calls: count one tile's.
        if let Some(m) = models.first() {
            ctx.model.add_calls(m.nfe());
        }
        Ok((x?, h.map(|h| Carry { h, coords })))
    }

    /// The error-controlled steps from `t0` to the field's end, on `parts`, the first one of
    /// size `carried` (clipped to the interval) when given, else chosen as Hairer et al. do.
    /// `fresh`: the parts hold a new state, whose slope is still to be evaluated (else it is
    /// the last accepted step's FSAL slope). Returns the proposal for a step beyond the end.
    fn solve(
        &self,
        parts: &mut Parts,
        field: &Field,
        t0: f64,
        len: usize,
        carried: Option<f64>,
        fresh: bool,
    ) -> Result<f64> {
        let (tau0, tau1) = (field.flow.variable(t0), field.tau1);
        let span = tau1 - tau0;
        let dir = span.signum();
        let block = parts.rows * parts.parts[0].u.d;
        let fused = !parts.ctxs.is_empty();
        let stage_at =
            |tau: f64| -> Option<Stage> { fused.then(|| field.stage(parts.ctx, tau)).flatten() };
        // The state's slope; the first step is the carried proposal, else Hairer's initial
        // step, which costs one more evaluation.
        let first = stage_at(tau0);
        let slope_at_start = |c: &Ctx, p: &mut Part| -> Result<()> {
            p.k1 = match first.as_ref().and_then(|st| st.slope_of_batch(c, &p.u)) {
                Some(k1) => k1,
                None => field.at(c, tau0, &p.u)?,
            };
            Ok(())
        };
        let mut h = match carried.filter(|h| h * dir > 0.0) {
            Some(h) if !fresh => h,
            Some(h) => {
                parts.each(|c, p| slope_at_start(c, p).map(|()| []))?;
                h
            }
            None => self.initial_step(parts, field, tau0, span, len, &stage_at, &slope_at_start)?,
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
            // Tiles run each attempt a few rows at a time, where the model allows.
            let stages: Option<Vec<Stage>> = (1..6)
                .map(|j| stage_at(if j == 5 { tau_end } else { tau + C[j] * h }))
                .collect();
            let [sum] = parts.each(|c, p| {
                let in_rows = stages
                    .as_ref()
                    .and_then(|st| self.attempt_in_rows(c, st, h, block, p));
                match in_rows {
                    Some(sum) => Ok([sum]),
                    None => Ok([self.attempt(c, field, tau, h, tau_end, block, p)?]),
                }
            })?;
            let norm = rms(sum, len);
            if !norm.is_finite() {
                return Err(Error::invalid(
                    "dopri5",
                    format!("error estimate is not finite at τ = {tau}"),
                ));
            }
            let accept = norm <= 1.0;
            for (k, p) in parts.parts.iter_mut().enumerate() {
                p.settle(parts.ctxs.get(k).unwrap_or(parts.ctx), accept);
            }
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
        Err(Error::invalid(
            "dopri5",
            format!("no convergence within {MAX_STEPS} steps; loosen --rtol/--atol"),
        ))
    }

    /// The initial step of Hairer et al. (§II.4): from the state's and its slope's norms,
    /// with one more evaluation at a probe step. Also leaves the slope at `τ0` in each part.
    #[allow(clippy::too_many_arguments)]
    fn initial_step<'s>(
        &self,
        parts: &mut Parts,
        field: &Field,
        tau0: f64,
        span: f64,
        len: usize,
        stage_at: &impl Fn(f64) -> Option<Stage<'s>>,
        slope_at_start: &(impl Fn(&Ctx, &mut Part) -> Result<()> + Sync),
    ) -> Result<f64> {
        let dir = span.signum();
        let block = parts.rows * parts.parts[0].u.d;
        let [d0, d1] = parts.each(|c, p| {
            slope_at_start(c, p)?;
            let (u, k1) = (&p.u.data, &p.k1.data);
            Ok([
                blocked_squares(u, u, u, block, self.tol()),
                blocked_squares(k1, u, u, block, self.tol()),
            ])
        })?;
        let (d0, d1) = (rms(d0, len), rms(d1, len));
        let h0 = if d0 < 1e-5 || d1 < 1e-5 {
            1e-6
        } else {
            0.01 * d0 / d1
        }
        .min(span.abs());
        let probe_stage = stage_at(tau0 + h0 * dir);
        let [d2] = parts.each(|c, p| {
            let probe = c.combination(&[(1.0, &p.u), (h0 * dir, &p.k1)]);
            let k_probe = match probe_stage
                .as_ref()
                .and_then(|st| st.slope_of_batch(c, &probe))
            {
                Some(k) => k,
                None => field.at(c, tau0 + h0 * dir, &probe)?,
            };
            let diff = c.combination(&[(1.0, &k_probe), (-1.0, &p.k1)]);
            let sum = blocked_squares(&diff.data, &p.u.data, &p.u.data, block, self.tol());
            for b in [probe, k_probe, diff] {
                c.recycle(b);
            }
            Ok([sum])
        })?;
        let d2 = rms(d2, len) / h0;
        let h1 = if d1.max(d2) <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).powf(0.2)
        };
        Ok((100.0 * h0).min(h1).min(span.abs()) * dir)
    }

    /// One Dormand–Prince step of size `h` from `τ` on `part`'s rows, stage by stage:
    /// stores the fifth-order point and its slope (FSAL) as the part's proposal, and
    /// returns the part's share of the error norm's sum.
    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        ctx: &Ctx,
        field: &Field,
        tau: f64,
        h: f64,
        tau_end: f64,
        block: usize,
        part: &mut Part,
    ) -> Result<f64> {
        let (u, k1) = (&part.u, &part.k1);
        let mut ks: Vec<Batch> = Vec::with_capacity(7);
        for j in 1..6 {
            let mut terms: Vec<(f64, &Batch)> = vec![(1.0, u), (h * A[j][0], k1)];
            terms.extend(ks.iter().zip(&A[j][1..]).map(|(k, &a)| (h * a, k)));
            let uj = ctx.combination(&terms);
            let tau_j = if j == 5 { tau_end } else { tau + C[j] * h };
            ks.push(field.at(ctx, tau_j, &uj)?);
            ctx.recycle(uj);
        }
        // The fifth-order solution; its slope is the seventh stage (FSAL).
        let mut terms: Vec<(f64, &Batch)> = vec![(1.0, u), (h * A[6][0], k1)];
        terms.extend(ks.iter().zip(&A[6][1..]).map(|(k, &a)| (h * a, k)));
        let u_new = ctx.combination(&terms);
        let k7 = field.at(ctx, tau_end, &u_new)?;
        let mut terms: Vec<(f64, &Batch)> = vec![(h * E[0], k1)];
        terms.extend(ks.iter().zip(&E[1..6]).map(|(k, &e)| (h * e, k)));
        terms.push((h * E[6], &k7));
        let err = ctx.combination(&terms);
        let sum = blocked_squares(&err.data, &u.data, &u_new.data, block, self.tol());
        ctx.recycle(err);
        for k in ks {
            ctx.recycle(k);
        }
        part.proposal = Some((u_new, k7));
        Ok(sum)
    }

    /// [`Dopri5::attempt`] a chunk of rows at a time: all seven stages of a chunk run while
    /// its stage values are in L1 (stage by stage, a tile's passes ran at L2 speed). Each
    /// element gets the same arithmetic, so the result is bit-identical. `None` if a value
    /// is not finite: the caller reruns the attempt stage by stage, which reports a bad
    /// model output. The model's outputs are not checked one by one: every slope k₁ … k₅
    /// enters the sixth stage's input with a nonzero weight, and k₆, k₇ the error estimate,
    /// so a NaN or infinity in any of them shows in one of those two (checked: the sixth
    /// input, and the error's sum of squares).
    fn attempt_in_rows(
        &self,
        ctx: &Ctx,
        stages: &[Stage],
        h: f64,
        block: usize,
        part: &mut Part,
    ) -> Option<f64> {
        let (u, k1) = (&part.u, &part.k1);
        let len = u.data.len();
        debug_assert!(len <= block, "a tile is one block of the error norm");
        let chunk = chunk_len(u.d);
        let (mut u_new, mut k7) = (ctx.batch_like(u), ctx.batch_like(u));
        part.chunks.resize(8 * chunk, 0.0);
        let (ks, rest) = part.chunks.split_at_mut(5 * chunk);
        let (uj, rest) = rest.split_at_mut(chunk);
        let (x, err) = rest.split_at_mut(chunk);
        let mut squares = Squares::default();
        let mut finite = true;
        let mut start = 0;
        while start < len && finite {
            let end = (start + chunk).min(len);
            let n = end - start;
            let (u_c, k1_c) = (&u.data[start..end], &k1.data[start..end]);
            for j in 1..6 {
                let (done, next) = ks.split_at_mut((j - 1) * chunk);
                let mut terms: [(f64, &[f64]); 7] = [(0.0, &[]); 7];
                terms[0] = (1.0, u_c);
                terms[1] = (h * A[j][0], k1_c);
                for (m, &a) in A[j][1..].iter().enumerate() {
                    terms[2 + m] = (h * a, &done[m * chunk..m * chunk + n]);
                }
                set_combination_slices(&mut uj[..n], &terms[..1 + A[j].len()]);
                if j == 5 {
                    finite &= all_finite(&uj[..n]);
                }
                stages[j - 1].slope(&uj[..n], &mut x[..n], &mut next[..n]);
            }
            let ks = &*ks;
            let stage = |m: usize| &ks[m * chunk..m * chunk + n];
            let mut terms: [(f64, &[f64]); 7] = [(0.0, &[]); 7];
            terms[0] = (1.0, u_c);
            terms[1] = (h * A[6][0], k1_c);
            for (m, &a) in A[6][1..].iter().enumerate() {
                terms[2 + m] = (h * a, stage(m));
            }
            let u_new_c = &mut u_new.data[start..end];
            set_combination_slices(u_new_c, &terms);
            let k7_c = &mut k7.data[start..end];
            stages[4].slope(u_new_c, &mut x[..n], k7_c);
            terms[0] = (h * E[0], k1_c);
            for m in 0..5 {
                terms[1 + m] = (h * E[1 + m], stage(m));
            }
            terms[6] = (h * E[6], k7_c);
            set_combination_slices(&mut err[..n], &terms);
            squares.add(&err[..n], u_c, u_new_c, self.tol());
            start = end;
        }
        let sum = squares.total();
        if !(finite && sum.is_finite()) {
            ctx.recycle(u_new);
            ctx.recycle(k7);
            return None;
        }
        ctx.model.add_calls(6);
        part.proposal = Some((u_new, k7));
        Some(sum)
    }
}

/// Elements per chunk of rows: about `ROW_CHUNK`, whole rows, and a multiple of the error
/// norm's `LANES` so that the chunks feed its lanes in element order.
fn chunk_len(d: usize) -> usize {
    let rows_per_lane_cycle = LANES / tiles::gcd(d, LANES);
    let rows = (ROW_CHUNK / d).max(1).div_ceil(rows_per_lane_cycle) * rows_per_lane_cycle;
    rows * d
}

impl Stage<'_> {
    /// The slope at every row of `u`, a chunk at a time; `None` if the model gave a
    /// non-finite output (then nothing was counted).
    fn slope_of_batch(&self, ctx: &Ctx, u: &Batch) -> Option<Batch> {
        let chunk = chunk_len(u.d);
        let mut k = ctx.batch_like(u);
        let mut x = vec![0.0; chunk.min(u.data.len())];
        for (u, k) in u.data.chunks(chunk).zip(k.data.chunks_mut(chunk)) {
            self.slope(u, &mut x[..u.len()], k);
        }
        if !all_finite(&k.data) {
            ctx.recycle(k);
            return None;
        }
        ctx.model.add_calls(1);
        Some(k)
    }
}

impl Part {
    fn new(u: Batch) -> Self {
        Part {
            k1: Batch {
                n: 0,
                d: u.d,
                data: Vec::new(),
            },
            u,
            proposal: None,
            chunks: Vec::new(),
        }
    }

    /// Takes the proposal as the new state if the step was accepted, else drops it.
    fn settle(&mut self, ctx: &Ctx, accept: bool) {
        if let Some((u_new, k7)) = self.proposal.take() {
            if accept {
                ctx.recycle(std::mem::replace(&mut self.u, u_new));
                ctx.recycle(std::mem::replace(&mut self.k1, k7));
            } else {
                ctx.recycle(u_new);
                ctx.recycle(k7);
            }
        }
    }
}
