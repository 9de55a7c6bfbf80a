//! Heun's method (Karras et al. 2022, Algorithm 1), with EDM's stochastic churn
//! (Algorithm 2) in σ-coordinates.
//!
//! A step onto clean data is Euler when the model is not defined at σ = 0 (as in the
//! paper), and a full Heun step for exact models, so the method keeps its order there.

use super::rk::{rk_step, HEUN};
use super::options::{Kind, Opt, Resolved, Value, COORDS};
use super::{Family, Scratch, Ctx, Method, Sampler, SolverInfo};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::flow::Coords;
use crate::noise::Purpose;

/// EDM's S_churn: 0 is deterministic Heun.
pub const S_CHURN: Opt = Opt {
    name: "s_churn",
    kind: Kind::Float,
    default: Value::Float(0.0),
    doc: "EDM churn S_churn of stochastic Heun (0: deterministic)",
};
/// Churn applies for σ ≥ S_tmin.
pub const S_TMIN: Opt = Opt {
    name: "s_tmin",
    kind: Kind::Float,
    default: Value::Float(0.0),
    doc: "EDM churn applies for σ = s/a ≥ S_tmin",
};
/// Churn applies for σ ≤ S_tmax.
pub const S_TMAX: Opt = Opt {
    name: "s_tmax",
    kind: Kind::Float,
    default: Value::Float(f64::INFINITY),
    doc: "EDM churn applies for σ = s/a ≤ S_tmax",
};
/// EDM's S_noise.
pub const S_NOISE: Opt = Opt {
    name: "s_noise",
    kind: Kind::Float,
    default: Value::Float(1.0),
    doc: "EDM S_noise, the scale of the churn's fresh noise",
};

/// The registration.
pub const INFO: SolverInfo = SolverInfo {
    name: "heun",
    order: 2.0,
    stochastic: false,
    family: Family::RungeKutta,
    options: &[&COORDS, &S_CHURN, &S_TMIN, &S_TMAX, &S_NOISE],
    summary: "Heun (Karras et al. 2022, Alg. 1), EDM churn (Alg. 2) with `s_churn` > 0",
    build,
};

fn build(o: &Resolved) -> Result<Box<dyn Method>> {
    let churn = Churn {
        s_churn: o.float(&S_CHURN),
        s_tmin: o.float(&S_TMIN),
        s_tmax: o.float(&S_TMAX),
        s_noise: o.float(&S_NOISE),
    };
    Ok(Box::new(Heun::new(o.choice(&COORDS), churn)?))
}

/// EDM churn parameters (`S_churn`, `S_tmin`, `S_tmax`, `S_noise`), in σ = s/a units.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Churn {
    pub s_churn: f64,
    pub s_tmin: f64,
    pub s_tmax: f64,
    pub s_noise: f64,
}

impl Default for Churn {
    fn default() -> Self {
        Churn {
            s_churn: 0.0,
            s_tmin: 0.0,
            s_tmax: f64::INFINITY,
            s_noise: 1.0,
        }
    }
}

/// Heun's method, deterministic unless `churn.s_churn > 0`.
#[derive(Clone, Debug)]
pub struct Heun {
    pub coords: Coords,
    pub churn: Churn,
}

impl Heun {
    /// Validates the combination of coordinates and churn.
    pub fn new(coords: Coords, churn: Churn) -> Result<Self> {
        let c = churn;
        if !(c.s_churn.is_finite() && c.s_churn >= 0.0) {
            return Err(Error::invalid(
                "s_churn",
                format!("expected a finite value ≥ 0, got {}", c.s_churn),
            ));
        }
        if !(c.s_noise.is_finite() && c.s_noise >= 0.0) {
            return Err(Error::invalid(
                "s_noise",
                format!("expected a finite value ≥ 0, got {}", c.s_noise),
            ));
        }
        if !(c.s_tmin >= 0.0 && c.s_tmin <= c.s_tmax) {
            return Err(Error::invalid(
                "s_tmin/s_tmax",
                format!(
                    "expected 0 ≤ s_tmin ≤ s_tmax, got {} and {}",
                    c.s_tmin, c.s_tmax
                ),
            ));
        }
        if c.s_churn > 0.0 && coords != Coords::Sigma {
            return Err(Error::invalid(
                "s_churn",
                "churn is defined in σ-coordinates: use `coords` sigma",
            ));
        }
        Ok(Heun { coords, churn })
    }
}

impl Sampler for Heun {
    type State = ();

    fn init(&self, _: &Ctx, _: &Batch) -> Result<()> {
        Ok(())
    }

    fn is_stochastic(&self, _: bool) -> bool {
        self.churn.s_churn > 0.0
    }

    fn step(&self, ctx: &Ctx, i: usize, mut x: Scratch, _: ()) -> Result<(Scratch, ())> {
        let (mut t, t_next) = (ctx.t(i), ctx.t(i + 1));
        let s = ctx.schedule;
        let sigma = s.sigma_ratio(t);
        let c = self.churn;
        if c.s_churn > 0.0 && c.s_tmin <= sigma && sigma <= c.s_tmax {
            // Raise the noise level to σ̂ = σ(1 + γ) by adding fresh noise (in y = x/a).
            let gamma = (c.s_churn / ctx.grid.steps() as f64).min(std::f64::consts::SQRT_2 - 1.0);
            let sigma_hat = (sigma * (1.0 + gamma)).min(s.sigma_ratio(s.t_max()));
            let t_hat = s.t_of_sigma_ratio(sigma_hat);
            let (a, a_hat) = (s.alpha(t), s.alpha(t_hat));
            x.map_in_place(|x| x / a);
            let sd = (sigma_hat * sigma_hat - sigma * sigma).max(0.0).sqrt() * c.s_noise;
            ctx.add_noise(Purpose::StepNoise, i as u64, sd, &mut x.data);
            x.map_in_place(|y| y * a_hat);
            t = t_hat;
        }
        Ok((rk_step(ctx, self.coords, &HEUN, t, t_next, x)?, ()))
    }
}
