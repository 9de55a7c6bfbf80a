//! Explicit Euler on the probability-flow ODE, in t, σ or λ coordinates (see [`crate::flow`]).

use super::options::{Resolved, COORDS};
use super::{Family, Scratch, Ctx, Method, Sampler, SolverInfo};
use crate::batch::Batch;
use crate::error::Result;
use crate::flow::{Coords, ProbabilityFlow};

/// The registration.
pub const INFO: SolverInfo = SolverInfo {
    name: "euler",
    order: 1.0,
    stochastic: false,
    family: Family::RungeKutta,
    options: &[&COORDS],
    summary: "explicit Euler on the PF-ODE in t, σ or λ",
    build,
};

fn build(o: &Resolved) -> Result<Box<dyn Method>> {
    Ok(Box::new(Euler {
        coords: o.choice(&COORDS),
    }))
}

/// Euler's method in the chosen coordinates.
#[derive(Clone, Debug)]
pub struct Euler {
    pub coords: Coords,
}

impl Sampler for Euler {
    type State = ();

    fn init(&self, _: &Ctx, _: &Batch) -> Result<()> {
        Ok(())
    }

    fn step(&self, ctx: &Ctx, i: usize, mut x: Scratch, _: ()) -> Result<(Scratch, ())> {
        let (t, t_next) = (ctx.t(i), ctx.t(i + 1));
        // λ = +∞ at clean data: the λ-step there has infinite length, so the last step is
        // taken in σ instead (the denoising step x̂_0, as k-diffusion does).
        let coords = if self.coords == Coords::Lambda && t_next == 0.0 {
            Coords::Sigma
        } else {
            self.coords
        };
        let flow = ProbabilityFlow {
            schedule: ctx.schedule,
            coords,
        };
        let eps = ctx.eps(&x, i)?;
        let (to_u, to_x) = (1.0 / flow.scale(t), flow.scale(t_next));
        let (cu, ce) = flow.field_coefficients(t);
        let h = flow.variable(t_next) - flow.variable(t);
        // u' = u + h (c_u u + c_ε ε̂), with u = x / scale(t) and x' = scale(t') u', fused
        // into x' = A x + B ε̂.
        let (a, b) = (to_x * to_u * (1.0 + h * cu), to_x * h * ce);
        x.update_with(&eps, |x, e| a * x + b * e);
        Ok((x, ()))
    }
}
