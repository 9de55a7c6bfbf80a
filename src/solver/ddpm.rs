//! DDPM ancestral sampling (Ho, Jain & Abbeel 2020, Algorithm 2), generalised to any pair of
//! grid points by treating `ᾱ_t / ᾱ_{t'}` as the step's α.

use super::clamp;
use super::options::{Kind, Opt, Resolved, Value};
use super::{Family, Scratch, Ctx, Method, Sampler, SolverInfo};
use crate::batch::Batch;
use crate::error::Result;
use crate::noise::Purpose;

crate::names::named_enum! {
    /// Choice of the reverse-step variance σ².
    pub enum Variance("variance") {
        /// Posterior variance `β̃ = β (1 - ᾱ')/(1 - ᾱ)` (diffusers' "fixed_small").
        BetaTilde = "beta-tilde",
        /// `β` itself (diffusers' "fixed_large").
        Beta = "beta",
    }
}

/// DDPM's reverse variance.
pub const VARIANCE: Opt = Opt {
    name: "variance",
    kind: Kind::Choice(Variance::NAMES),
    default: Value::Choice("beta-tilde"),
    doc: "DDPM's reverse variance: beta-tilde (posterior) or beta",
};

/// The registration.
pub const INFO: SolverInfo = SolverInfo {
    name: "ddpm",
    order: 1.0,
    stochastic: true,
    family: Family::Stochastic,
    options: &[&VARIANCE, &clamp::CLIP_SAMPLE, &clamp::CLIP_SAMPLE_RANGE, &clamp::THRESHOLDING, &clamp::DYNAMIC_THRESHOLDING_RATIO, &clamp::SAMPLE_MAX_VALUE],
    summary: "DDPM ancestral sampling (Ho et al. 2020) between any grid points; weak order 1",
    build,
};

fn build(o: &Resolved) -> Result<Box<dyn Method>> {
    Ok(Box::new(Ddpm {
        variance: o.choice(&VARIANCE),
    }))
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

    fn step(&self, ctx: &Ctx, i: usize, mut x: Scratch, _: ()) -> Result<(Scratch, ())> {
        let (ab, ab_next) = (
            ctx.schedule.alpha_bar(ctx.t(i)),
            ctx.schedule.alpha_bar(ctx.t(i + 1)),
        );
        let alpha = ab / ab_next;
        let beta = 1.0 - alpha;
        let eps = ctx.eps(&x, i)?;
        let (coef, inv_sqrt_alpha) = (beta / (1.0 - ab).sqrt(), 1.0 / alpha.sqrt());
        x.update_with(&eps, |x, e| (x - coef * e) * inv_sqrt_alpha);
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
