//! The explicit midpoint method on the probability-flow ODE (second order, two NFE per step,
//! never evaluates the model at the step's end).

use super::rk::{rk_step, MIDPOINT};
use super::options::{Resolved, COORDS};
use super::{Family, Scratch, Ctx, Method, Sampler, SolverInfo};
use crate::batch::Batch;
use crate::error::Result;
use crate::flow::Coords;

/// The registration.
pub const INFO: SolverInfo = SolverInfo {
    name: "midpoint",
    order: 2.0,
    stochastic: false,
    family: Family::RungeKutta,
    options: &[&COORDS],
    summary: "explicit midpoint on the PF-ODE",
    build,
};

fn build(o: &Resolved) -> Result<Box<dyn Method>> {
    Ok(Box::new(Midpoint {
        coords: o.choice(&COORDS),
    }))
}

/// Midpoint in the chosen coordinates.
#[derive(Clone, Debug)]
pub struct Midpoint {
    pub coords: Coords,
}

impl Sampler for Midpoint {
    type State = ();

    fn init(&self, _: &Ctx, _: &Batch) -> Result<()> {
        Ok(())
    }

    fn step(&self, ctx: &Ctx, i: usize, x: Scratch, _: ()) -> Result<(Scratch, ())> {
        Ok((
            rk_step(ctx, self.coords, &MIDPOINT, ctx.t(i), ctx.t(i + 1), x)?,
            (),
        ))
    }
}
