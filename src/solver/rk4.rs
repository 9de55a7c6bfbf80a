//! The classical fourth-order Runge–Kutta method on the probability-flow ODE (four NFE per
//! step; onto clean data with a model undefined there, the last step is Euler).

use super::rk::{rk_step, RK4};
use super::options::{Resolved, COORDS};
use super::{Family, Scratch, Ctx, Method, Sampler, SolverInfo};
use crate::batch::Batch;
use crate::error::Result;
use crate::flow::Coords;

/// The registration.
pub const INFO: SolverInfo = SolverInfo {
    name: "rk4",
    order: 4.0,
    stochastic: false,
    family: Family::RungeKutta,
    options: &[&COORDS],
    summary: "classical Runge–Kutta on the PF-ODE",
    build,
};

fn build(o: &Resolved) -> Result<Box<dyn Method>> {
    Ok(Box::new(Rk4 {
        coords: o.choice(&COORDS),
    }))
}

/// RK4 in the chosen coordinates.
#[derive(Clone, Debug)]
pub struct Rk4 {
    pub coords: Coords,
}

impl Sampler for Rk4 {
    type State = ();

    fn init(&self, _: &Ctx, _: &Batch) -> Result<()> {
        Ok(())
    }

    fn step(&self, ctx: &Ctx, i: usize, x: Scratch, _: ()) -> Result<(Scratch, ())> {
        Ok((
            rk_step(ctx, self.coords, &RK4, ctx.t(i), ctx.t(i + 1), x)?,
            (),
        ))
    }
}
