//! Explicit Runge–Kutta steps over the probability-flow field, with Butcher tableaus as
//! data; shared by `heun`, `midpoint` and `rk4`.

use super::Ctx;
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
    x: Batch,
) -> Result<Batch> {
    rk_step_from(ctx, coords, tab, t, t_next, x, None)
}

/// [`rk_step`] reusing `eps_start`, the model output at `(x, t)`, if the caller has it.
pub fn rk_step_from(
    ctx: &Ctx,
    coords: Coords,
    tab: &Tableau,
    t: f64,
    t_next: f64,
    x: Batch,
    mut eps_start: Option<Batch>,
) -> Result<Batch> {
    if needs_clean_stage(ctx, tab, t_next) {
        return rk_step_from(ctx, coords, &EULER, t, t_next, x, eps_start);
    }
    let coords = step_coords(coords, t_next);
    let flow = ProbabilityFlow {
        model: ctx.model,
        schedule: ctx.schedule,
        coords,
    };
    let (tau, tau_next) = (flow.variable(t), flow.variable(t_next));
    let h = tau_next - tau;
    let u = flow.to_state(&x, t);
    ctx.recycle(x);
    let mut ks: Vec<Batch> = Vec::with_capacity(tab.b.len());
    for (j, &c) in tab.c.iter().enumerate() {
        let tj = match c {
            0.0 => t,
            1.0 => t_next,
            _ => flow.time_of(tau + c * h),
        };
        let mut uj = u.clone();
        for (k, &a) in ks.iter().zip(tab.a[j]) {
            if a != 0.0 {
                uj.update_with(k, |u, k| u + h * a * k);
            }
        }
        let eps = match eps_start.take() {
            Some(e) if j == 0 => e,
            _ => {
                let scale = flow.scale(tj);
                let xj = uj.zip_map(&uj, |u, _| u * scale);
                let eps = ctx.eps_at(&xj, tj)?;
                ctx.recycle(xj);
                eps
            }
        };
        ks.push(flow.field_from_eps(tj, &uj, &eps));
        ctx.recycle(eps);
    }
    let mut u_next = u;
    for (k, &b) in ks.iter().zip(tab.b) {
        if b != 0.0 {
            u_next.update_with(k, |u, k| u + h * b * k);
        }
    }
    let scale = flow.scale(t_next);
    u_next.map_in_place(|u| u * scale);
    Ok(u_next)
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
    b: &[1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
    c: &[0.0, 0.5, 0.5, 1.0],
};
