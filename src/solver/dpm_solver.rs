//! Singlestep DPM-Solver-2 and -3 with noise prediction (Lu et al. 2022, Algorithms 4–5,
//! r₁ = 1/2 for order 2; r₁ = 1/3, r₂ = 2/3 for order 3).
//!
//! Intermediate points sit at fractions of the step in λ, which is infinite for a step onto
//! clean data: that step is the first-order denoising step x̂₀ (as in DPM-Solver's own
//! reference code, whose grids end at t = ε instead).

use super::exponential::Point;
use super::{Ctx, Sampler};
use crate::batch::Batch;
use crate::error::{Error, Result};

/// Singlestep DPM-Solver of order 2 or 3.
#[derive(Clone, Debug)]
pub struct DpmSolver {
    pub order: usize,
}

impl DpmSolver {
    /// Order 2 or 3.
    pub fn new(order: usize) -> Result<Self> {
        if !(2..=3).contains(&order) {
            return Err(Error::invalid(
                "order",
                format!("singlestep DPM-Solver has order 2 or 3, got {order}"),
            ));
        }
        Ok(DpmSolver { order })
    }
}

/// `x_u = (a_u/a_s) x - s_u (e^{r h} - 1) ε̂_s`: the first-order move from s to u.
fn first_order(ctx: &Ctx, s: &Point, u: &Point, x: &Batch, eps: &Batch) -> Batch {
    let ratio = (ctx.schedule.log_alpha(u.t) - ctx.schedule.log_alpha(s.t)).exp();
    let phi = u.sigma * (u.lambda - s.lambda).exp_m1();
    x.zip_map(eps, |x, e| ratio * x - phi * e)
}

impl Sampler for DpmSolver {
    type State = ();

    fn init(&self, _: &Ctx, _: &Batch) -> Result<()> {
        Ok(())
    }

    fn step(&self, ctx: &Ctx, i: usize, x: Batch, _: ()) -> Result<(Batch, ())> {
        let sch = ctx.schedule;
        let (s, t) = (Point::at(sch, ctx.t(i)), Point::at(sch, ctx.t(i + 1)));
        if t.t == 0.0 {
            return Ok((ctx.x0_at(&x, s.t)?, ()));
        }
        let h = t.lambda - s.lambda;
        let at = |r: f64| Point::at(sch, sch.t_of_lambda(s.lambda + r * h));
        let eps0 = ctx.eps_at(&x, s.t)?;
        let base = first_order(ctx, &s, &t, &x, &eps0);
        let out = if self.order == 2 {
            let r1 = 0.5;
            let s1 = at(r1);
            let u = first_order(ctx, &s, &s1, &x, &eps0);
            let eps1 = ctx.eps_at(&u, s1.t)?;
            let c = t.sigma / (2.0 * r1) * h.exp_m1();
            let mut out = base;
            out.update_with(&eps1.zip_map(&eps0, |a, b| a - b), |x, d| x - c * d);
            out
        } else {
            let (r1, r2) = (1.0 / 3.0, 2.0 / 3.0);
            let (s1, s2) = (at(r1), at(r2));
            let u1 = first_order(ctx, &s, &s1, &x, &eps0);
            let d1 = ctx.eps_at(&u1, s1.t)?.zip_map(&eps0, |a, b| a - b);
            let mut u2 = first_order(ctx, &s, &s2, &x, &eps0);
            let c2 = s2.sigma * r2 / r1 * ((r2 * h).exp_m1() / (r2 * h) - 1.0);
            u2.update_with(&d1, |u, d| u - c2 * d);
            let d2 = ctx.eps_at(&u2, s2.t)?.zip_map(&eps0, |a, b| a - b);
            let c = t.sigma / r2 * (h.exp_m1() / h - 1.0);
            let mut out = base;
            out.update_with(&d2, |x, d| x - c * d);
            out
        };
        ctx.recycle(eps0);
        Ok((out, ()))
    }
}
