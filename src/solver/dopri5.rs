//! Adaptive Dormand–Prince 5(4) (Dormand & Prince 1980; Hairer, Nørsett & Wanner, *Solving
//! ODEs I*, §II.4–5) as a sampler: error-controlled steps between grid points (by default
//! the grid is just start and end), one step size for the whole batch, FSAL.

use super::rk::step_coords;
use super::{Ctx, Sampler};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::flow::{Coords, ProbabilityFlow};
use crate::model::ScoreModel;

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

fn rms_norm(v: &Batch, scale: &[f64]) -> f64 {
    let s: f64 = v
        .data
        .iter()
        .zip(scale)
        .map(|(e, sc)| (e / sc).powi(2))
        .sum();
    (s / v.data.len() as f64).sqrt()
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
            model: ctx.model,
            schedule: ctx.schedule,
            coords: step_coords(self.coords, t1),
        };
        let (tau0, tau1) = (flow.variable(t0), flow.variable(t1));
        let span = tau1 - tau0;
        let field = |tau: f64, u: &Batch| -> Result<Batch> {
            let t = if tau == tau1 { t1 } else { flow.time_of(tau) };
            let scale = flow.scale(t);
            let x = u.zip_map(u, |u, _| u * scale);
            let eps = ctx.eps_at(&x, t)?;
            Ok(flow.field_from_eps(t, u, &eps))
        };
        let mut u = flow.to_state(&x, t0);
        let mut tau = tau0;
        let mut k1 = field(tau, &u)?;
        let tol = |u: &Batch, v: &Batch| -> Vec<f64> {
            u.data
                .iter()
                .zip(&v.data)
                .map(|(a, b)| self.atol + self.rtol * a.abs().max(b.abs()))
                .collect()
        };
        // Initial step (Hairer et al., §II.4): one extra evaluation.
        let sc = tol(&u, &u);
        let (d0, d1) = (rms_norm(&u, &sc), rms_norm(&k1, &sc));
        let h0 = if d0 < 1e-5 || d1 < 1e-5 {
            1e-6
        } else {
            0.01 * d0 / d1
        }
        .min(span.abs());
        let mut probe = u.clone();
        probe.update_with(&k1, |u, k| u + h0 * span.signum() * k);
        let k_probe = field(tau + h0 * span.signum(), &probe)?;
        let d2 = rms_norm(&k_probe.zip_map(&k1, |a, b| a - b), &sc) / h0;
        let h1 = if d1.max(d2) <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).powf(0.2)
        };
        let mut h = (100.0 * h0).min(h1).min(span.abs()) * span.signum();
        for _ in 0..MAX_STEPS {
            if (tau1 - tau) * span.signum() <= 0.0 {
                return Ok(flow.to_x(&u, t1));
            }
            if (tau + h - tau1) * span.signum() > 0.0 {
                h = tau1 - tau;
            }
            let mut ks = vec![k1.clone()];
            for j in 1..7 {
                let mut uj = u.clone();
                for (k, &a) in ks.iter().zip(A[j]) {
                    if a != 0.0 {
                        uj.update_with(k, |u, k| u + h * a * k);
                    }
                }
                let tau_j = if j >= 5 { tau + h } else { tau + C[j] * h };
                ks.push(field(
                    if j >= 5 && tau + h == tau1 {
                        tau1
                    } else {
                        tau_j
                    },
                    &uj,
                )?);
            }
            // Stage 7 was evaluated at the 5th-order solution: that is u_new (FSAL).
            let mut u_new = u.clone();
            for (k, &a) in ks.iter().zip(A[6]) {
                if a != 0.0 {
                    u_new.update_with(k, |u, k| u + h * a * k);
                }
            }
            let mut err = Batch::zeros(u.n, u.d);
            for (k, &e) in ks.iter().zip(&E) {
                if e != 0.0 {
                    err.update_with(k, |r, k| r + h * e * k);
                }
            }
            let norm = rms_norm(&err, &tol(&u, &u_new));
            if !norm.is_finite() {
                return Err(Error::invalid(
                    "dopri5",
                    format!("error estimate is not finite at τ = {tau}"),
                ));
            }
            if norm <= 1.0 {
                tau = if (tau + h - tau1).abs() <= 1e-15 * tau1.abs().max(1.0) {
                    tau1
                } else {
                    tau + h
                };
                u = u_new;
                k1 = ks.pop().unwrap();
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
    }
}
