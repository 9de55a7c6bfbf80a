//! PNDM (Liu, Ren, Lin & Zhao 2022, "Pseudo Numerical Methods for Diffusion Models on
//! Manifolds"), as diffusers' `PNDMScheduler` runs it: a linear multistep rule on ε̂ whose
//! "transfer" from t to t' is DDIM's update, eq. (9),
//!
//! `φ(x, ε, t → t') = sqrt(ᾱ'/ᾱ) x - (ᾱ' - ᾱ) ε / (ᾱ sqrt(1 - ᾱ') + sqrt(ᾱ (1 - ᾱ) ᾱ'))`.
//!
//! PLMS (eq. 12) feeds φ the fourth-order Adams–Bashforth combination of the last four ε̂
//! with its constant-step weights `(55, -59, 37, -9)/24`. The start is PRK (eq. 13): three
//! steps of a pseudo-Runge–Kutta rule on φ with stages at the step's midpoint in t (4 NFE
//! each), or with `skip_prk_steps` diffusers' cheaper start: the first step trapezoidal
//! (`(ε̂(x, t) + ε̂(φ(x, ε̂, t → t'), t'))/2`, 2 NFE), then AB2 and AB3 until four values exist.
//!
//! Its order: φ is exact in σ = s/a (`y' = y + (σ' - σ) ε`), so PLMS is Adams–Bashforth in σ
//! with weights for equal steps. On a grid that is not uniform in σ (every diffusers grid, and
//! every grid of pfode's order tests) those weights are off by O(h) at each step, a local
//! error O(h³): PNDM is a second-order method there, whatever its start. (iPNDM, with
//! variable-step weights, is the fourth-order method.)

use super::options::{Kind, Opt, Resolved, Value};
use super::{Family, Scratch, Ctx, History, Method, Sampler, SolverInfo};
use crate::batch::Batch;
use crate::error::Result;
use crate::model::ScoreModel;

/// diffusers' `skip_prk_steps`.
pub const SKIP_PRK_STEPS: Opt = Opt {
    name: "skip_prk_steps",
    kind: Kind::Bool,
    default: Value::Bool(false),
    doc: "PNDM without its Runge–Kutta start: a trapezoidal first step, then AB2, AB3 (diffusers' skip_prk_steps)",
};

/// The registration.
pub const INFO: SolverInfo = SolverInfo {
    name: "pndm",
    order: 2.0,
    stochastic: false,
    family: Family::Multistep,
    options: &[&SKIP_PRK_STEPS],
    summary: "PNDM/PLMS (Liu et al. 2022) as diffusers' PNDMScheduler: constant-step Adams–Bashforth on ε̂ through DDIM's update, PRK start; order 2 on grids not uniform in σ",
    build,
};

fn build(o: &Resolved) -> Result<Box<dyn Method>> {
    Ok(Box::new(Pndm {
        skip_prk_steps: o.bool(&SKIP_PRK_STEPS),
    }))
}

/// Steps taken by the pseudo-Runge–Kutta start.
const PRK_STEPS: usize = 3;

/// PNDM with the PRK or the PLMS start.
#[derive(Clone, Debug)]
pub struct Pndm {
    pub skip_prk_steps: bool,
}

/// DDIM's update from ᾱ to ᾱ' with noise `eps` (PNDM's transfer φ), into `out`.
fn transfer(out: &mut Batch, x: &Batch, eps: &Batch, ab: f64, ab_next: f64) {
    let c_x = (ab_next / ab).sqrt();
    let c_eps =
        -(ab_next - ab) / (ab * (1.0 - ab_next).sqrt() + (ab * (1.0 - ab) * ab_next).sqrt());
    out.set_combination(&[(c_x, x), (c_eps, eps)]);
}

impl Pndm {
    /// The pseudo-Runge–Kutta step (eq. 13): stages through φ at the midpoint and the end,
    /// combined with weights 1/6, 1/3, 1/3, 1/6.
    fn prk_step(&self, ctx: &Ctx, i: usize, x: &Batch, e1: &Batch) -> Result<Scratch> {
        let (t, t_next) = (ctx.t(i), ctx.t(i + 1));
        let t_mid = 0.5 * (t + t_next);
        let ab = |t| ctx.schedule.alpha_bar(t);
        let mut stage = ctx.batch_like(x);
        transfer(&mut stage, x, e1, ab(t), ab(t_mid));
        let e2 = ctx.eps_at(&stage, t_mid)?;
        transfer(&mut stage, x, &e2, ab(t), ab(t_mid));
        let e3 = ctx.eps_at(&stage, t_mid)?;
        transfer(&mut stage, x, &e3, ab(t), ab(t_next));
        let e4 = ctx.eps_at(&stage, t_next)?;
        let e = ctx.combination(&[
            (1.0 / 6.0, e1),
            (1.0 / 3.0, &e2),
            (1.0 / 3.0, &e3),
            (1.0 / 6.0, &e4),
        ]);
        transfer(&mut stage, x, &e, ab(t), ab(t_next));
        Ok(stage)
    }
}

impl Sampler for Pndm {
    type State = History;

    fn init(&self, _: &Ctx, _: &Batch) -> Result<History> {
        Ok(History::default())
    }

    fn step(&self, ctx: &Ctx, i: usize, x: Scratch, mut hist: History) -> Result<(Scratch, History)> {
        let (t, t_next) = (ctx.t(i), ctx.t(i + 1));
        let (ab, ab_next) = (ctx.schedule.alpha_bar(t), ctx.schedule.alpha_bar(t_next));
        let eps = ctx.eps(&x, i)?;
        // PRK evaluates at the step's end: not onto clean data for a model undefined there.
        let end_defined = t_next > 0.0 || ctx.model.defined_at_clean();
        let out = if !self.skip_prk_steps && i < PRK_STEPS && end_defined {
            self.prk_step(ctx, i, &x, &eps)?
        } else if self.skip_prk_steps && i == 0 && end_defined {
            let mut next = ctx.batch_like(&x);
            transfer(&mut next, &x, &eps, ab, ab_next);
            let e_next = ctx.eps_at(&next, t_next)?;
            let e = ctx.combination(&[(0.5, &eps), (0.5, &e_next)]);
            transfer(&mut next, &x, &e, ab, ab_next);
            next
        } else {
            // PLMS: Adams–Bashforth with constant-step weights on the newest values.
            let weights: &[f64] = match hist.0.len() + 1 {
                1 => &[1.0],
                2 => &[3.0 / 2.0, -1.0 / 2.0],
                3 => &[23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0],
                _ => &[55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0],
            };
            let mut terms: Vec<(f64, &Batch)> = vec![(weights[0], &eps)];
            terms.extend(weights[1..].iter().zip(&hist.0).map(|(w, (_, e))| (*w, &**e)));
            let e = ctx.combination(&terms);
            let mut next = ctx.batch_like(&x);
            transfer(&mut next, &x, &e, ab, ab_next);
            next
        };
        hist.push(t, eps, 3);
        Ok((out, hist))
    }
}
