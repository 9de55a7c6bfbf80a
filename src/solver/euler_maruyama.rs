//! Euler–Maruyama on the reverse SDE (docs/math.md §4).
//!
//! The Brownian increments come from one of two paths ([`Brownian`]): fresh per-step
//! normals (the default, as DDPM's noise and k-diffusion's ancestral samplers), which give
//! the exact law of the path on the run's grid, or a [`BrownianTree`], the same path at
//! every resolution, for strong-error studies across step counts.
//!
//! The reverse SDE's noise is additive (g depends on t only), so EM coincides with
//! Milstein and has strong order 1 (Kloeden & Platen 1992, §10.3), not the generic 0.5.

use super::options::{Kind, Opt, Resolved, Value};
use super::{Family, Scratch, Ctx, Method, Sampler, SolverInfo};
use crate::batch::Batch;
use crate::brownian::BrownianTree;
use crate::error::Result;
use crate::flow::reverse_sde_coefficients;
use crate::noise::Purpose;
use crate::schedule::Schedule;

crate::names::named_enum! {
    /// Where Euler–Maruyama's Brownian increments come from.
    pub enum Brownian("brownian") {
        /// Independent N(0, h) increments keyed by step index: one normal per value and
        /// step. Runs at different step counts see different paths.
        Steps = "steps",
        /// A virtual Brownian tree: one path per seed at every resolution, so errors
        /// against a finer run on the same seed are strong errors. A walk with spacing s
        /// draws about 1 + log₂ s node arrays per step.
        Tree = "tree",
    }
}


/// Euler–Maruyama's Brownian path.
pub const BROWNIAN: Opt = Opt {
    name: "brownian",
    kind: Kind::Choice(Brownian::NAMES),
    default: Value::Choice("steps"),
    doc: "Euler–Maruyama's Brownian increments: steps (fresh per step) or tree (the same path at every step count, for strong errors)",
};

/// The registration.
pub const INFO: SolverInfo = SolverInfo {
    name: "euler-maruyama",
    order: 1.0,
    stochastic: true,
    family: Family::Stochastic,
    options: &[&BROWNIAN],
    summary: "Euler–Maruyama on the reverse SDE, per-step increments or a Brownian tree; strong order 1 (additive noise)",
    build,
};

fn build(o: &Resolved) -> Result<Box<dyn Method>> {
    Ok(Box::new(EulerMaruyama {
        brownian: o.choice(&BROWNIAN),
    }))
}

/// Euler–Maruyama with Itô (left-point) coefficients.
#[derive(Clone, Debug)]
pub struct EulerMaruyama {
    pub brownian: Brownian,
}

/// The Brownian tree and its value at the current grid point (`None` for per-step noise).
pub struct PathState(Option<TreePath>);

/// A tree path's state.
pub struct TreePath {
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

    fn draws_step_noise_only(&self) -> bool {
        self.brownian == Brownian::Steps
    }

    fn shares_brownian_path(&self) -> bool {
        self.brownian == Brownian::Tree
    }

    fn init(&self, ctx: &Ctx, x: &Batch) -> Result<PathState> {
        if self.brownian == Brownian::Steps {
            return Ok(PathState(None));
        }
        let clock = TreeClock::new(ctx.schedule);
        let mut tree = BrownianTree::new(ctx.seed, x.data.len(), 0.0, clock.span)
            .from_block(ctx.noise_block());
        let w_now = tree.value_shared(clock.at(ctx.t(0)))?;
        Ok(PathState(Some(TreePath { tree, clock, w_now })))
    }

    fn step(
        &self,
        ctx: &Ctx,
        i: usize,
        mut x: Scratch,
        mut st: PathState,
    ) -> Result<(Scratch, PathState)> {
        let (t, t_next) = (ctx.t(i), ctx.t(i + 1));
        let h = t - t_next;
        let eps = ctx.eps(&x, i)?;
        let (cx, ce) = reverse_sde_coefficients(ctx.schedule, t);
        x.update_with(&eps, |x, e| x - h * (cx * x + ce * e));
        let g_sq = ctx.schedule.diffusion_sq(t);
        let Some(path) = st.0.as_mut() else {
            // g · ΔW with ΔW ~ N(0, h).
            ctx.add_noise(Purpose::StepNoise, i as u64, (g_sq * h).sqrt(), &mut x.data);
            return Ok((x, st));
        };
        // Reverse time: the increment over [t', t] enters as W(t) - W(t').
        let w_next = path.tree.value_shared(path.clock.at(t_next))?;
        // W(u) has variance u in tree time; in t that is u / per_t.
        let g = (g_sq / path.clock.per_t).sqrt();
        for ((v, a), b) in x.data.iter_mut().zip(path.w_now.iter()).zip(w_next.iter()) {
            *v += g * (a - b);
        }
        path.w_now = w_next;
        Ok((x, st))
    }
}
