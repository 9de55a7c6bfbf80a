//! SDE-DPM-Solver++(2M) (Lu et al. 2022b, §5; the "midpoint" form used by diffusers and
//! k-diffusion): the multistep data-prediction solver of the reverse SDE, with fresh noise
//! of variance `s_t² (1 - e^{-2h})` per step.

use super::dpm_solver_pp::multistep_order;
use super::kernels::multistep::MultistepUpdate;
use super::exponential::Point;
use super::clamp;
use super::options::{Resolved, LOWER_ORDER_FINAL};
use super::{Family, Scratch, Ctx, History, Method, Sampler, SolverInfo};
use crate::batch::Batch;
use crate::error::Result;
use crate::noise::Purpose;

/// The registration.
pub const INFO: SolverInfo = SolverInfo {
    name: "dpm-solver++2m-sde",
    order: 1.0,
    stochastic: true,
    family: Family::Stochastic,
    options: &[&LOWER_ORDER_FINAL, &clamp::CLIP_SAMPLE, &clamp::CLIP_SAMPLE_RANGE, &clamp::THRESHOLDING, &clamp::DYNAMIC_THRESHOLDING_RATIO, &clamp::SAMPLE_MAX_VALUE],
    summary: "SDE-DPM-Solver++(2M), data prediction (Lu et al. 2022b)",
    build,
};

fn build(o: &Resolved) -> Result<Box<dyn Method>> {
    Ok(Box::new(DpmSolverPpSde {
        lower_order_final: o.bool(&LOWER_ORDER_FINAL),
    }))
}

/// SDE-DPM-Solver++(2M).
#[derive(Clone, Debug)]
pub struct DpmSolverPpSde {
    pub lower_order_final: bool,
}

impl Sampler for DpmSolverPpSde {
    type State = History;

    fn init(&self, _: &Ctx, _: &Batch) -> Result<History> {
        Ok(History::default())
    }

    fn step(
        &self,
        ctx: &Ctx,
        i: usize,
        mut x: Scratch,
        mut hist: History,
    ) -> Result<(Scratch, History)> {
        let sch = ctx.schedule;
        let (s, t) = (Point::at(sch, ctx.t(i)), Point::at(sch, ctx.t(i + 1)));
        // ε̂ now, turned into x̂₀ = (x - s ε̂)/a in the same sweep as the update below.
        let mut m0 = ctx.eps_at(&x, s.t)?;
        let (cx0, ce0) = (1.0 / s.alpha, -s.sigma / s.alpha);
        let k = multistep_order(ctx, i, 2, (hist.0.len() + 1).min(2), self.lower_order_final);
        let h = t.lambda - s.lambda;
        let decay = (-2.0 * h).exp(); // e^{-2h}, 0 onto clean data
        let (ratio, c0) = (t.sigma / s.sigma * (-h).exp(), t.alpha * (1.0 - decay));
        // x_t = ratio·x + c0·m0, plus ½ a_t (1 - e^{-2h}) (m0 - m1)/r0 at second order.
        let weights = if k == 2 {
            let c = 0.5 * c0 * h / (s.lambda - hist.0[0].0);
            [c0 + c, -c]
        } else {
            [c0, 0.0]
        };
        let update = MultistepUpdate {
            to_x0: (cx0, ce0),
            ratio,
            weights: &weights[..k],
            history: &hist.newest(k - 1),
        };
        update.apply(&mut x.data, &mut m0.data);
        hist.push(s.lambda, m0, 2);
        let sd = t.sigma * (1.0 - decay).max(0.0).sqrt();
        if sd > 0.0 {
            ctx.add_noise(Purpose::StepNoise, i as u64, sd, &mut x.data);
        }
        Ok((x, hist))
    }
}
