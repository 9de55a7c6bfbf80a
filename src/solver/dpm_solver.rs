//! Singlestep DPM-Solver-2 and -3 with noise prediction (Lu et al. 2022, Algorithms 4–5,
//! r₁ = 1/2 for order 2; r₁ = 1/3, r₂ = 2/3 for order 3).
//!
//! Intermediate points sit at fractions of the step in λ, which is infinite for a step onto
//! clean data: that step is the first-order denoising step x̂₀ (as in DPM-Solver's own
//! reference code, whose grids end at t = ε instead).

use super::exponential::Point;
use super::{Family, Scratch, Ctx, Sampler, SolverInfo};
use crate::batch::Batch;
use crate::error::{Error, Result};

/// The second-order registration.
pub const DPM_SOLVER_2: SolverInfo = SolverInfo {
    name: "dpm-solver-2",
    order: 2.0,
    stochastic: false,
    family: Family::Exponential,
    options: &[],
    summary: "singlestep DPM-Solver-2, noise prediction (Lu et al. 2022)",
    build: |_| Ok(Box::new(DpmSolver::new(2)?)),
};

/// The third-order registration.
pub const DPM_SOLVER_3: SolverInfo = SolverInfo {
    name: "dpm-solver-3",
    order: 3.0,
    stochastic: false,
    family: Family::Exponential,
    options: &[],
    summary: "singlestep DPM-Solver-3, noise prediction (Lu et al. 2022)",
    build: |_| Ok(Box::new(DpmSolver::new(3)?)),
};

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

/// Coefficients of `x_u = (a_u/a_s) x - s_u (e^{r h} - 1) ε̂_s`, the first-order move.
fn first_order(ctx: &Ctx, s: &Point, u: &Point) -> (f64, f64) {
    let ratio = (ctx.schedule.log_alpha(u.t) - ctx.schedule.log_alpha(s.t)).exp();
    (ratio, -u.sigma * (u.lambda - s.lambda).exp_m1())
}

impl Sampler for DpmSolver {
    type State = ();

    fn init(&self, _: &Ctx, _: &Batch) -> Result<()> {
        Ok(())
    }

    fn step(&self, ctx: &Ctx, i: usize, mut x: Scratch, _: ()) -> Result<(Scratch, ())> {
        let sch = ctx.schedule;
        let (s, t) = (Point::at(sch, ctx.t(i)), Point::at(sch, ctx.t(i + 1)));
        if t.t == 0.0 {
            return Ok((ctx.x0_at(&x, s.t)?, ()));
        }
        let h = t.lambda - s.lambda;
        let at = |r: f64| Point::at(sch, sch.t_of_lambda(s.lambda + r * h));
        let eps0 = ctx.eps_at(&x, s.t)?;
        let (ratio, c_eps) = first_order(ctx, &s, &t);
        // Every stage and the result are linear in x and the ε̂'s: one sweep each.
        if self.order == 2 {
            let r1 = 0.5;
            let s1 = at(r1);
            let (ru, cu) = first_order(ctx, &s, &s1);
            let u = ctx.combination(&[(ru, &x), (cu, &eps0)]);
            let eps1 = ctx.eps_at(&u, s1.t)?;
            // x_t = base - s_t/(2 r1) (e^h - 1) (ε̂1 - ε̂0).
            let c = t.sigma / (2.0 * r1) * h.exp_m1();
            x.combine(ratio, &[(c_eps + c, &eps0), (-c, &eps1)]);
        } else {
            let (r1, r2) = (1.0 / 3.0, 2.0 / 3.0);
            let (s1, s2) = (at(r1), at(r2));
            let (ru1, cu1) = first_order(ctx, &s, &s1);
            let u1 = ctx.combination(&[(ru1, &x), (cu1, &eps0)]);
            let eps1 = ctx.eps_at(&u1, s1.t)?;
            let (ru2, cu2) = first_order(ctx, &s, &s2);
            let c2 = s2.sigma * r2 / r1 * ((r2 * h).exp_m1() / (r2 * h) - 1.0);
            // u2 = first order to s2 - c2 (ε̂1 - ε̂0).
            let u2 = ctx.combination(&[(ru2, &x), (cu2 + c2, &eps0), (-c2, &eps1)]);
            let eps2 = ctx.eps_at(&u2, s2.t)?;
            let c = t.sigma / r2 * (h.exp_m1() / h - 1.0);
            x.combine(ratio, &[(c_eps + c, &eps0), (-c, &eps2)]);
        }
        Ok((x, ()))
    }
}
