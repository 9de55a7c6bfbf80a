//! Euler–Maruyama on the reverse SDE (math.md §4), driven by a [`BrownianTree`] so that
//! runs at different step counts share one Brownian path.
//!
//! The reverse SDE's noise is additive (g depends on t only), so EM coincides with
//! Milstein and has strong order 1 (Kloeden & Platen 1992, §10.3), not the generic 0.5.

use super::{Ctx, Sampler};
use crate::batch::Batch;
use crate::brownian::BrownianTree;
use crate::error::Result;
use crate::flow::reverse_sde_coefficients;

/// Euler–Maruyama with Itô (left-point) coefficients.
#[derive(Clone, Debug)]
pub struct EulerMaruyama;

/// The Brownian path and its value at the current grid point.
pub struct PathState {
    tree: BrownianTree,
    w_now: Vec<f64>,
}

impl Sampler for EulerMaruyama {
    type State = PathState;

    fn init(&self, ctx: &Ctx, x: &Batch) -> Result<PathState> {
        let mut tree = BrownianTree::new(ctx.seed, x.data.len(), 0.0, ctx.schedule.t_max());
        let w_now = tree.value(ctx.t(0))?;
        Ok(PathState { tree, w_now })
    }

    fn step(
        &self,
        ctx: &Ctx,
        i: usize,
        mut x: Batch,
        mut st: PathState,
    ) -> Result<(Batch, PathState)> {
        let (t, t_next) = (ctx.t(i), ctx.t(i + 1));
        let h = t - t_next;
        let eps = ctx.eps(&x, i)?;
        let (cx, ce) = reverse_sde_coefficients(ctx.schedule, t);
        x.update_with(&eps, |x, e| x - h * (cx * x + ce * e));
        ctx.recycle(eps);
        // Reverse time: the increment over [t', t] enters as W(t) - W(t').
        let w_next = st.tree.value(t_next)?;
        let g = ctx.schedule.diffusion_sq(t).sqrt();
        for ((v, a), b) in x.data.iter_mut().zip(&st.w_now).zip(&w_next) {
            *v += g * (a - b);
        }
        st.w_now = w_next;
        Ok((x, st))
    }
}
