//! Where a learned model's sampling error comes from: the solver's share (distance to the
//! learned model's own ODE solution) and the network's (that solution's distance to the
//! exact model's), on data whose exact model is known.

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::grid::{GridOptions, Spacing, TimeGrid};
use crate::model::ScoreModel;
use crate::reference::{solve, Settings};
use crate::schedule::Schedule;
use crate::solver::{sample, Solver};

/// One budget of an error decomposition (RMS per-sample L2 distances, same x_T).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Decomposition {
    pub nfe: usize,
    /// (learned model, solver) vs (exact model, reference): what a user gets.
    pub total: f64,
    /// (learned model, solver) vs (learned model, reference): the solver's share.
    pub discretisation: f64,
    /// (learned model, reference) vs (exact model, reference): the network's share.
    pub network: f64,
    /// (exact model, solver) vs (exact model, reference), for comparison.
    pub exact_discretisation: f64,
}

/// Decomposes the error of `solver` on `learned` at each NFE budget, from `x_t`, under DDPM's
/// linear schedule, against references solved at 1e-6.
pub fn decompose(
    learned: &dyn ScoreModel,
    exact: &dyn ScoreModel,
    solver: &Solver,
    spacing: &Spacing,
    budgets: &[usize],
    x_t: &Batch,
    seed: u64,
) -> Result<Vec<Decomposition>> {
    if learned.dim() != exact.dim() {
        return Err(Error::invalid(
            "exact",
            format!(
                "dimension {} differs from the learned model's {}",
                exact.dim(),
                learned.dim()
            ),
        ));
    }
    let schedule = Schedule::ddpm_linear();
    // The learned model's reference ends like its samplers: at the first training step, then
    // its own denoising step (it is not evaluated on clean data).
    let settings = Settings {
        rtol: 1e-6,
        atol: 1e-6,
        ..Default::default()
    };
    let (learned_ref, _) = solve(learned, &schedule, x_t, 1.0, 0.0, &settings)?;
    let (exact_ref, _) = solve(exact, &schedule, x_t, 1.0, 0.0, &settings)?;
    let opts = GridOptions::default();
    budgets
        .iter()
        .map(|&budget| {
            let steps = solver.steps_for_nfe(&schedule, spacing, opts, budget, false)?;
            let grid = TimeGrid::build(&schedule, spacing, Some(steps), opts)?;
            let (ls, nfe) = sample(solver, learned, &schedule, &grid, x_t.clone(), seed)?;
            let (es, _) = sample(solver, exact, &schedule, &grid, x_t.clone(), seed)?;
            Ok(Decomposition {
                nfe,
                total: ls.rms_distance(&exact_ref),
                discretisation: ls.rms_distance(&learned_ref),
                network: learned_ref.rms_distance(&exact_ref),
                exact_discretisation: es.rms_distance(&exact_ref),
            })
        })
        .collect()
}
