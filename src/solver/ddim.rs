//! DDIM (Song, Meng & Ermon 2021, eq. 12), in its textbook discrete form on ᾱ.
//!
//! With η = 0 this is one Euler step of `dy/dσ = ε̂` (docs/math.md §3) — a fact checked
//! against the independent [`super::euler::Euler`] code path, not assumed here.

use super::clamp;
use super::options::{Kind, Opt, Resolved, Value};
use super::{Family, Scratch, Ctx, Method, Sampler, SolverInfo};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::noise::Purpose;

/// DDIM's η: 0 is the ODE sampler, 1 on consecutive steps is DDPM.
pub const ETA: Opt = Opt {
    name: "eta",
    kind: Kind::Float,
    default: Value::Float(0.0),
    doc: "DDIM's η (0: deterministic, the ODE sampler; 1 on consecutive steps: DDPM)",
};

/// With `clip_sample`/`thresholding`: whether the direction term uses ε̂ re-derived from the
/// clamped x̂₀ (GLIDE's choice) or the model's own ε̂ (diffusers' default).
pub const USE_CLIPPED_MODEL_OUTPUT: Opt = Opt {
    name: "use_clipped_model_output",
    kind: Kind::Switch,
    default: Value::Bool(false),
    doc: "with clip_sample/thresholding: re-derive ε̂ from the clamped x̂₀ in DDIM's direction term too (diffusers' use_clipped_model_output)",
};

/// The registration.
pub const INFO: SolverInfo = SolverInfo {
    name: "ddim",
    order: 1.0,
    stochastic: false,
    family: Family::Exponential,
    options: &[&ETA, &USE_CLIPPED_MODEL_OUTPUT, &clamp::CLIP_SAMPLE, &clamp::CLIP_SAMPLE_RANGE, &clamp::THRESHOLDING, &clamp::DYNAMIC_THRESHOLDING_RATIO, &clamp::SAMPLE_MAX_VALUE],
    summary: "DDIM (Song et al. 2021), textbook form; η = 0 is Euler in σ, η = 1 on consecutive steps is DDPM",
    build,
};

fn build(o: &Resolved) -> Result<Box<dyn Method>> {
    let mut ddim = Ddim::new(o.float(&ETA))?;
    ddim.use_clipped_model_output = o.bool(&USE_CLIPPED_MODEL_OUTPUT);
    Ok(Box::new(ddim))
}

/// DDIM with stochasticity η.
#[derive(Clone, Debug)]
pub struct Ddim {
    pub eta: f64,
    /// Where the run clamps x̂₀: use the re-derived ε̂ in the direction term as well.
    pub use_clipped_model_output: bool,
}

impl Ddim {
    /// DDIM with `eta ≥ 0`.
    pub fn new(eta: f64) -> Result<Self> {
        if !(eta.is_finite() && eta >= 0.0) {
            return Err(Error::invalid(
                "eta",
                format!("expected a finite η ≥ 0, got {eta}"),
            ));
        }
        Ok(Ddim {
            eta,
            use_clipped_model_output: false,
        })
    }
}

impl Sampler for Ddim {
    type State = ();

    fn init(&self, _: &Ctx, _: &Batch) -> Result<()> {
        Ok(())
    }

    fn is_stochastic(&self, _: bool) -> bool {
        self.eta > 0.0
    }

    fn step(&self, ctx: &Ctx, i: usize, mut x: Scratch, _: ()) -> Result<(Scratch, ())> {
        let (ab, ab_next) = (
            ctx.schedule.alpha_bar(ctx.t(i)),
            ctx.schedule.alpha_bar(ctx.t(i + 1)),
        );
        let sigma_eta =
            self.eta * ((1.0 - ab_next) / (1.0 - ab)).sqrt() * (1.0 - ab / ab_next).sqrt();
        let dir = (1.0 - ab_next - sigma_eta * sigma_eta).max(0.0).sqrt();
        if let (Some(clamp), false) = (ctx.data_clamp(), self.use_clipped_model_output) {
            // diffusers' default: x' = sqrt(ᾱ') clamp(x̂_0) + dir ε̂ with the model's own ε̂.
            let eps = ctx.eps_unclamped(&x, i)?;
            let mut x0 = ctx.combination(&[(1.0 / ab.sqrt(), &x), (-(1.0 - ab).sqrt() / ab.sqrt(), &eps)]);
            clamp.apply(&mut x0.data, x.d);
            let mut next = ctx.combination(&[(ab_next.sqrt(), &x0), (dir, &eps)]);
            if sigma_eta > 0.0 {
                ctx.add_noise(Purpose::StepNoise, i as u64, sigma_eta, &mut next.data);
            }
            return Ok((next, ()));
        }
        let eps = ctx.eps(&x, i)?;
        // x' = sqrt(ᾱ') x̂_0 + dir ε̂ with x̂_0 = (x - sqrt(1 - ᾱ) ε̂)/sqrt(ᾱ), collected into
        // x' = c_x x + c_ε ε̂ so the update is a single pass.
        let c_x = (ab_next / ab).sqrt();
        let c_eps = dir - c_x * (1.0 - ab).sqrt();
        x.update_with(&eps, |x, e| c_x * x + c_eps * e);
        if sigma_eta > 0.0 {
            ctx.add_noise(Purpose::StepNoise, i as u64, sigma_eta, &mut x.data);
        }
        Ok((x, ()))
    }
}
