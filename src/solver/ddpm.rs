//! DDPM ancestral sampling (Ho, Jain & Abbeel 2020, Algorithm 2), generalised to any pair of
//! grid points by treating `ᾱ_t / ᾱ_{t'}` as the step's α.

use super::{Ctx, Sampler};
use crate::batch::Batch;
use crate::error::Result;
use crate::noise::Purpose;

/// Choice of the reverse-step variance σ².
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variance {
    /// Posterior variance `β̃ = β (1 - ᾱ')/(1 - ᾱ)` (diffusers' "fixed_small").
    BetaTilde,
    /// `β` itself (diffusers' "fixed_large").
    Beta,
}

/// Ancestral DDPM.
#[derive(Clone, Debug)]
pub struct Ddpm {
    pub variance: Variance,
}

impl Sampler for Ddpm {
    type State = ();

    fn init(&self, _: &Ctx, _: &Batch) -> Result<()> {
        Ok(())
    }

    fn step(&self, ctx: &Ctx, i: usize, mut x: Batch, _: ()) -> Result<(Batch, ())> {
        let (ab, ab_next) = (
            ctx.schedule.alpha_bar(ctx.t(i)),
            ctx.schedule.alpha_bar(ctx.t(i + 1)),
        );
        let alpha = ab / ab_next;
        let beta = 1.0 - alpha;
        let eps = ctx.eps(&x, i)?;
        let (coef, inv_sqrt_alpha) = (beta / (1.0 - ab).sqrt(), 1.0 / alpha.sqrt());
        x.update_with(&eps, |x, e| (x - coef * e) * inv_sqrt_alpha);
        ctx.recycle(eps);
        // No noise on the step onto clean data (as in Ho et al.: z = 0 at t = 1).
        if ctx.t(i + 1) > 0.0 {
            let var = match self.variance {
                Variance::BetaTilde => beta * (1.0 - ab_next) / (1.0 - ab),
                Variance::Beta => beta,
            };
            ctx.add_noise(Purpose::StepNoise, i as u64, var.sqrt(), &mut x.data);
        }
        Ok((x, ()))
    }
}
