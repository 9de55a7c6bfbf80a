//! Adaptive Dormand–Prince 5(4) (Dormand & Prince 1980; Hairer, Nørsett & Wanner, *Solving
//! ODEs I*, §II.4–5) as a sampler: error-controlled steps between grid points (by default
//! the grid is just start and end), one step size for the whole batch, FSAL.

use super::rk::step_coords;
use super::{tiles, Ctx, Sampler};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::flow::{Coords, ProbabilityFlow};
use crate::model::ScoreModel;
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
/// Buffers a tile's step holds at once: state, slope, five stages, stage point, model
/// output, proposal and its slope, error.
const BUFFERS_PER_TILE: usize = 12;

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
fn scaled_square(e: f64, a: f64, b: f64, rtol: f64, atol: f64) -> f64 {
    (e / (atol + rtol * a.abs().max(b.abs()))).powi(2)
}

/// RMS of `err / (atol + rtol·max(|u|, |v|))`.
fn error_norm(err: &Batch, u: &Batch, v: &Batch, rtol: f64, atol: f64) -> f64 {
    let sum: f64 = err
        .data
        .iter()
        .zip(u.data.iter().zip(&v.data))
        .map(|(&e, (&a, &b))| scaled_square(e, a, b, rtol, atol))
        .sum();
    (sum / err.data.len() as f64).sqrt()
}

/// The probability-flow slope in the integration variable τ, toward `t1`.
struct Field<'a> {
    flow: ProbabilityFlow<'a>,
    tau1: f64,
    t1: f64,
}

impl Field<'_> {
    /// The slope at (τ, u), in a recycled buffer: ε̂ at x = scale·u, turned into the slope.
    fn at(&self, ctx: &Ctx, tau: f64, u: &Batch) -> Result<Batch> {
        let t = if tau == self.tau1 {
            self.t1
        } else {
            self.flow.time_of(tau)
        };
        let scale = self.flow.scale(t);
        let x = ctx.combination(&[(scale, u)]);
        let mut k = ctx.eps_at(&x, t)?;
        ctx.recycle(x);
        let (cu, ce) = self.flow.field_coefficients(t);
        k.combine(ce, &[(cu, u)]);
        Ok(k)
    }
}

/// The rows one context integrates: the state, its slope (FSAL), and the last attempted
/// step's fifth-order point and slope there.
struct Part {
    u: Batch,
    k1: Batch,
    proposal: Option<(Batch, Batch)>,
}

impl Sampler for Dopri5 {
    type State = ();

    fn init(&self, _: &Ctx, _: &Batch) -> Result<()> {
        Ok(())
    }

    fn step(&self, ctx: &Ctx, i: usize, x: Batch, _: ()) -> Result<(Batch, ())> {
        let (t0, t1) = (ctx.t(i), ctx.t(i + 1));
        // A model undefined on clean data is integrated to the first training step, then
        // denoised (the Euler step in σ onto σ = 0).
        if t1 == 0.0 && !ctx.model.defined_at_clean() {
            let t_min = ctx.schedule.t_min().min(t0 * 0.5);
            let x = self.integrate(ctx, t0, t_min, x)?;
            let x0 = ctx.x0_at(&x, t_min)?;
            return Ok((x0, ()));
        }
        Ok((self.integrate(ctx, t0, t1, x)?, ()))
    }
}

impl Dopri5 {
    fn integrate(&self, ctx: &Ctx, t0: f64, t1: f64, x: Batch) -> Result<Batch> {
        let flow = ProbabilityFlow {
            schedule: ctx.schedule,
            coords: step_coords(self.coords, t1),
        };
        let (tau0, tau1) = (flow.variable(t0), flow.variable(t1));
        let field = Field { flow, tau1, t1 };
        let span = tau1 - tau0;
        let dir = span.signum();
        let u = ctx.combination(&[(1.0 / field.flow.scale(t0), &x)]);
        ctx.recycle(x);
        let mut tau = tau0;
        let k1 = field.at(ctx, tau, &u)?;
        // Initial step (Hairer et al., §II.4): one extra evaluation.
        let scale_norm = |v: &Batch| error_norm(v, &u, &u, self.rtol, self.atol);
        let (d0, d1) = (scale_norm(&u), scale_norm(&k1));
        let h0 = if d0 < 1e-5 || d1 < 1e-5 {
            1e-6
        } else {
            0.01 * d0 / d1
        }
        .min(span.abs());
        let probe = ctx.combination(&[(1.0, &u), (h0 * dir, &k1)]);
        let k_probe = field.at(ctx, tau + h0 * dir, &probe)?;
        let diff = ctx.combination(&[(1.0, &k_probe), (-1.0, &k1)]);
        let d2 = scale_norm(&diff) / h0;
        for b in [probe, k_probe, diff] {
            ctx.recycle(b);
        }
        let h1 = if d1.max(d2) <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).powf(0.2)
        };
        let mut h = (100.0 * h0).min(h1).min(span.abs()) * dir;
        // The stages run on row tiles when that changes nothing (see `tiles`): only the
        // error norm couples rows, and it is summed in row order all the same.
        let rows = tiles::tile_rows(u.n, u.d);
        let mut parts = if tiles::rows_separate(ctx, &u) {
            let parts = tiles::split(&u, rows)
                .into_iter()
                .zip(tiles::split(&k1, rows))
                .map(|(u, k1)| Part::new(u, k1))
                .collect();
            ctx.recycle(u);
            ctx.recycle(k1);
            parts
        } else {
            vec![Part::new(u, k1)]
        };
        let models = tiles::models(ctx, if parts.len() > 1 { parts.len() } else { 0 });
        // The tiles' contexts borrow the buffers of the last interval's tiles, and give
        // them back at the end (fresh ones cost a zeroing pass and page faults each time).
        let mut ctxs: Vec<Ctx> = models
            .iter()
            .zip(&parts)
            .map(|(m, p)| {
                let c = Ctx::new(m, ctx.schedule, ctx.grid, ctx.seed);
                c.borrow_buffers(ctx, p.u.data.len(), BUFFERS_PER_TILE);
                c
            })
            .collect();
        let len: usize = parts.iter().map(|p| p.u.data.len()).sum();
        let mut run = || -> Result<Batch> {
            for _ in 0..MAX_STEPS {
                if (tau1 - tau) * dir <= 0.0 {
                    let mut u = tiles::join(parts.drain(..).map(|p| p.u).collect());
                    let scale = field.flow.scale(t1);
                    u.map_in_place(|v| v * scale);
                    return Ok(u);
                }
                let last = (tau + h - tau1) * dir >= 0.0;
                if last {
                    h = tau1 - tau;
                }
                let tau_end = if last { tau1 } else { tau + h };
                let attempt = |c: &Ctx, p: &mut Part| self.attempt(c, &field, tau, h, tau_end, p);
                let results: Vec<Result<Batch>> = if ctxs.is_empty() {
                    vec![attempt(ctx, &mut parts[0])]
                } else {
                    ctxs.par_iter_mut()
                        .zip(parts.par_iter_mut())
                        .map(|(c, p)| attempt(c, p))
                        .collect()
                };
                let mut errors = Vec::new();
                let mut squares = Vec::with_capacity(results.len());
                for (k, r) in results.into_iter().enumerate() {
                    match r {
                        Ok(q) => squares.push(q),
                        Err(e) => {
                            let calls = models.get(k).map_or(0, |m| m.nfe());
                            errors.push((k * rows, calls, e));
                        }
                    }
                }
                if let Some(e) = tiles::first_error(errors) {
                    return Err(e);
                }
                // Summed in row order across the tiles, as over the whole batch.
                let sum: f64 = squares.iter().flat_map(|q| q.data.iter()).sum();
                let norm = (sum / len as f64).sqrt();
                if !norm.is_finite() {
                    return Err(Error::invalid(
                        "dopri5",
                        format!("error estimate is not finite at τ = {tau}"),
                    ));
                }
                let accept = norm <= 1.0;
                for (k, (p, q)) in parts.iter_mut().zip(squares).enumerate() {
                    let c = ctxs.get(k).unwrap_or(ctx);
                    c.recycle(q);
                    p.settle(c, accept);
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
            }
            Err(Error::invalid(
                "dopri5",
                format!("no convergence within {MAX_STEPS} steps; loosen --rtol/--atol"),
            ))
        };
        let result = run();
        for c in &ctxs {
            c.move_buffers(ctx);
        }
        // Every tile made the same calls: count one tile's.
        if let Some(m) = models.first() {
            ctx.model.add_calls(m.nfe());
        }
        result
    }

    /// One Dormand–Prince step of size `h` from `τ` on `part`'s rows: stores the fifth-order
    /// point and its slope (FSAL) as the part's proposal, and returns each element's share of
    /// the error norm.
    fn attempt(
        &self,
        ctx: &Ctx,
        field: &Field,
        tau: f64,
        h: f64,
        tau_end: f64,
        part: &mut Part,
    ) -> Result<Batch> {
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
        let mut err = ctx.combination(&terms);
        for ((e, &a), &b) in err.data.iter_mut().zip(&u.data).zip(&u_new.data) {
            *e = scaled_square(*e, a, b, self.rtol, self.atol);
        }
        for k in ks {
            ctx.recycle(k);
        }
        part.proposal = Some((u_new, k7));
        Ok(err)
    }
}

impl Part {
    fn new(u: Batch, k1: Batch) -> Self {
        Part {
            u,
            k1,
            proposal: None,
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
