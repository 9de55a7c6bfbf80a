//! Explicit Euler on the probability-flow ODE, in t, σ or λ coordinates (see [`crate::flow`]).

use super::{Ctx, Sampler};
use crate::batch::Batch;
use crate::error::Result;
use crate::flow::{Coords, ProbabilityFlow};

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

    fn step(&self, ctx: &Ctx, i: usize, x: Batch, _: ()) -> Result<(Batch, ())> {
        let (t, t_next) = (ctx.t(i), ctx.t(i + 1));
        // λ = +∞ at clean data: the λ-step there has infinite length, so the last step is
        // taken in σ instead (the denoising step x̂_0, as k-diffusion does).
        let coords = if self.coords == Coords::Lambda && t_next == 0.0 { Coords::Sigma } else { self.coords };
        let flow = ProbabilityFlow { model: ctx.model, schedule: ctx.schedule, coords };
        let u = flow.to_state(&x, t);
        let eps = ctx.eps(&x, i)?;
        let du = flow.field_from_eps(t, &u, &eps);
        let h = flow.variable(t_next) - flow.variable(t);
        let u_next = u.zip_map(&du, |u, d| u + h * d);
        Ok((flow.to_x(&u_next, t_next), ()))
    }
}
