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
use crate::schedule::Schedule;

/// Euler–Maruyama with Itô (left-point) coefficients.
#[derive(Clone, Debug)]
pub struct EulerMaruyama;

/// The Brownian path and its value at the current grid point.
pub struct PathState {
    tree: BrownianTree,
    clock: TreeClock,
    w_now: std::rc::Rc<Vec<f64>>,
}

/// The tree's time axis. For a discrete schedule it counts training steps (u = t·T) on a
/// root of 2^⌈log₂T⌉ steps, so every training time is an exact dyadic node (depth ≤ 10 for
/// T = 1000): grids of training steps then never bridge inside a leaf and descend fewer
/// levels (about half the normals per step of a root on [0, 1]). Otherwise u = t.
pub struct TreeClock {
    /// Tree time per unit of t.
    pub per_t: f64,
    /// The tree's interval is [0, span].
    pub span: f64,
}

impl TreeClock {
    /// The clock Euler–Maruyama uses under `schedule`.
    pub fn new(schedule: &Schedule) -> Self {
        match schedule.discrete() {
            Some(d) => {
                let n = d.num_train_timesteps();
                TreeClock {
                    per_t: n as f64,
                    span: n.next_power_of_two() as f64,
                }
            }
            None => TreeClock {
                per_t: 1.0,
                span: schedule.t_max(),
            },
        }
    }

    /// Tree time of `t`, snapped to the integer step it represents up to rounding.
    pub fn at(&self, t: f64) -> f64 {
        let u = t * self.per_t;
        if self.per_t > 1.0 && (u - u.round()).abs() < 1e-9 {
            u.round()
        } else {
            u
        }
    }
}

impl Sampler for EulerMaruyama {
    type State = PathState;

    fn init(&self, ctx: &Ctx, x: &Batch) -> Result<PathState> {
        let clock = TreeClock::new(ctx.schedule);
        let mut tree = BrownianTree::new(ctx.seed, x.data.len(), 0.0, clock.span)
            .from_block(ctx.noise_block());
        let w_now = tree.value_shared(clock.at(ctx.t(0)))?;
        Ok(PathState { tree, clock, w_now })
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
        let w_next = st.tree.value_shared(st.clock.at(t_next))?;
        // W(u) has variance u in tree time; in t that is u / per_t.
        let g = (ctx.schedule.diffusion_sq(t) / st.clock.per_t).sqrt();
        for ((v, a), b) in x.data.iter_mut().zip(st.w_now.iter()).zip(w_next.iter()) {
            *v += g * (a - b);
        }
        st.w_now = w_next;
        Ok((x, st))
    }
}
