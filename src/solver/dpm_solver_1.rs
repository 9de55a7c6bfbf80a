//! DPM-Solver-1 (Lu et al. 2022, eq. 3.7 with k = 1): the first-order exponential
//! integrator of the semi-linear PF-ODE in λ, `x' = (a'/a) x - s' (e^h - 1) ε̂`.

use super::options::Resolved;
use super::{Family, Scratch, Ctx, Method, Sampler, SolverInfo};
use crate::batch::Batch;
use crate::error::Result;

/// The registration.
pub const INFO: SolverInfo = SolverInfo {
    name: "dpm-solver-1",
    order: 1.0,
    stochastic: false,
    family: Family::Exponential,
    options: &[],
    summary: "first-order exponential integrator in λ (Lu et al. 2022); equals DDIM",
    build,
};

fn build(_: &Resolved) -> Result<Box<dyn Method>> {
    Ok(Box::new(DpmSolver1))
}

/// First-order exponential integrator with noise prediction.
#[derive(Clone, Debug)]
pub struct DpmSolver1;

impl Sampler for DpmSolver1 {
    type State = ();

    fn init(&self, _: &Ctx, _: &Batch) -> Result<()> {
        Ok(())
    }

    fn step(&self, ctx: &Ctx, i: usize, mut x: Scratch, _: ()) -> Result<(Scratch, ())> {
        let (t, t_next) = (ctx.t(i), ctx.t(i + 1));
        let s = ctx.schedule;
        let eps = ctx.eps(&x, i)?;
        let ratio = (s.log_alpha(t_next) - s.log_alpha(t)).exp();
        // s'(e^h - 1) with h = λ' - λ; onto clean data (λ' = ∞, s' = 0) its limit is a' s / a.
        let phi = if t_next == 0.0 {
            s.sigma(t) / s.alpha(t)
        } else {
            s.sigma(t_next) * (s.lambda(t_next) - s.lambda(t)).exp_m1()
        };
        x.update_with(&eps, |x, e| ratio * x - phi * e);
        Ok((x, ()))
    }
}
