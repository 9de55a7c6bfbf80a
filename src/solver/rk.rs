//! Explicit Runge–Kutta steps over the probability-flow field, with Butcher tableaus as
//! data; shared by `heun`, `midpoint`, `rk4` and iPNDM's warm start.
//!
//! Every stage is one fused sweep: the stage point `x_j = scale(t_j)·(u + h Σ a_jl k_l)`
//! is formed directly from x and the stored slopes, and the slope `k_j = c_u u_j + c_ε ε̂_j`
//! overwrites the model output in place, so a step allocates nothing after the first.

use super::{Ctx, Scratch};
use crate::batch::Batch;
use crate::error::Result;
use crate::flow::{Coords, ProbabilityFlow};
use crate::model::ScoreModel;

/// A Butcher tableau (explicit: `a` is strictly lower triangular).
pub struct Tableau {
    pub a: &'static [&'static [f64]],
    pub b: &'static [f64],
    pub c: &'static [f64],
}

/// The coordinates a step into `t_next` is taken in: a step onto clean data is taken in σ,
/// where it has finite length (λ = ∞ there) and the field is smooth (in t it is not).
pub fn step_coords(coords: Coords, t_next: f64) -> Coords {
    if t_next == 0.0 {
        Coords::Sigma
    } else {
        coords
    }
}

/// True if a stage of `tab` would evaluate the model on clean data, which a model not
/// defined there cannot do (the step then falls back to Euler, as Karras et al. do).
pub fn needs_clean_stage(ctx: &Ctx, tab: &Tableau, t_next: f64) -> bool {
    t_next == 0.0 && !ctx.model.defined_at_clean() && tab.c.contains(&1.0)
}

/// One step of `tab` from `t` to `t_next` in `coords`.
pub fn rk_step(
    ctx: &Ctx,
    coords: Coords,
    tab: &Tableau,
    t: f64,
    t_next: f64,
    x: Scratch,
) -> Result<Scratch> {
    rk_step_from(ctx, coords, tab, t, t_next, x, None)
}

/// [`rk_step`] reusing `eps_start`, the model output at `(x, t)`, if the caller has it.
pub fn rk_step_from(
    ctx: &Ctx,
    coords: Coords,
    tab: &Tableau,
    t: f64,
    t_next: f64,
    mut x: Scratch,
    mut eps_start: Option<Scratch>,
) -> Result<Scratch> {
    if needs_clean_stage(ctx, tab, t_next) {
        return rk_step_from(ctx, coords, &EULER, t, t_next, x, eps_start);
    }
    let coords = step_coords(coords, t_next);
    let flow = ProbabilityFlow {
        schedule: ctx.schedule,
        coords,
    };
    let (tau, tau_next) = (flow.variable(t), flow.variable(t_next));
    let h = tau_next - tau;
    // u = x / scale(t): folded into the coefficient of x in every sweep.
    let to_u = 1.0 / flow.scale(t);
    let mut ks: Vec<Scratch> = Vec::with_capacity(tab.b.len());
    for (j, &c) in tab.c.iter().enumerate() {
        let tj = match c {
            0.0 => t,
            1.0 => t_next,
            _ => flow.time_of(tau + c * h),
        };
        let scale = flow.scale(tj);
        let (cu, ce) = flow.field_coefficients(tj);
        let mut k = match eps_start.take().filter(|_| j == 0) {
            Some(e) => e,
            None if j == 0 => ctx.eps_at(&x, tj)?,
            None => {
                let mut terms: Vec<(f64, &Batch)> = vec![(scale * to_u, &x)];
                terms.extend(ks.iter().zip(tab.a[j]).map(|(k, &a)| (scale * h * a, &**k)));
                let xj = ctx.combination(&terms);
                let mut eps = ctx.eps_at(&xj, tj)?;
                if cu != 0.0 {
                    // k = c_u u_j + c_ε ε̂ with u_j = x_j / scale.
                    eps.combine(ce, &[(cu / scale, &xj)]);
                } else if ce != 1.0 {
                    eps.map_in_place(|e| ce * e);
                }
                ks.push(eps);
                continue;
            }
        };
        if cu != 0.0 {
            k.combine(ce, &[(cu * to_u, &x)]);
        } else if ce != 1.0 {
            k.map_in_place(|e| ce * e);
        }
        ks.push(k);
    }
    // x' = scale(t')·(u + h Σ b_j k_j), in place.
    let scale = flow.scale(t_next);
    let terms: Vec<(f64, &Batch)> = ks
        .iter()
        .zip(tab.b)
        .map(|(k, &b)| (scale * h * b, &**k))
        .collect();
    x.combine(scale * to_u, &terms);
    Ok(x)
}

/// Forward Euler as a tableau.
pub const EULER: Tableau = Tableau {
    a: &[&[]],
    b: &[1.0],
    c: &[0.0],
};

/// Heun's second-order method (explicit trapezoid).
pub const HEUN: Tableau = Tableau {
    a: &[&[], &[1.0]],
    b: &[0.5, 0.5],
    c: &[0.0, 1.0],
};

/// The explicit midpoint method.
pub const MIDPOINT: Tableau = Tableau {
    a: &[&[], &[0.5]],
    b: &[0.0, 1.0],
    c: &[0.0, 0.5],
};

/// Kutta's third-order method.
pub const RK3: Tableau = Tableau {
    a: &[&[], &[0.5], &[-1.0, 2.0]],
    b: &[1.0 / 6.0, 2.0 / 3.0, 1.0 / 6.0],
    c: &[0.0, 0.5, 1.0],
};

/// The classical fourth-order Runge–Kutta method.
pub const RK4: Tableau = Tableau {
    a: &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
    b: &[1.0 / 6.0, 2.0 / 3.0 / 2.0, 1.0 / 3.0, 1.0 / 6.0],
    c: &[0.0, 0.5, 0.5, 1.0],
};
