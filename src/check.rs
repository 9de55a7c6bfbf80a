//! `pfode check ddim-euler`: DDIM (η = 0) against Euler in σ-coordinates, side by side.

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::grid::{GridOptions, Spacing, TimeGrid};
use crate::model::ScoreModel;
use crate::schedule::Schedule;
use crate::solver::{sample, Solver};

/// Largest allowed difference between DDIM and Euler-in-σ (and DPM-Solver-1).
pub const TOLERANCE: f64 = 1e-11;

/// One grid's comparison.
#[derive(Debug, Clone)]
pub struct CheckRow {
    pub spacing: String,
    pub steps: usize,
    pub euler_sigma_abs: f64,
    pub euler_sigma_rel: f64,
    pub dpm1_abs: f64,
    /// Euler in t vs DDIM: first-order different, shrinking with steps.
    pub euler_t_abs: f64,
}

/// Runs the comparison from `x_t` on every grid of `steps` steps (trailing, leading,
/// linspace, logsnr and karras on discrete schedules; uniform, logsnr and karras on
/// continuous ones); `rel` is max abs difference over max |DDIM|.
pub fn ddim_euler(
    model: &dyn ScoreModel,
    schedule: &Schedule,
    x_t: &Batch,
    steps: &[usize],
) -> Result<Vec<CheckRow>> {
    if steps.is_empty() {
        return Err(Error::invalid("steps", "expected at least one step count"));
    }
    let spacings: Vec<Spacing> = if schedule.discrete().is_some() {
        vec![
            Spacing::Trailing,
            Spacing::Leading,
            Spacing::Linspace,
            Spacing::LogSnr,
            Spacing::Karras,
        ]
    } else {
        vec![Spacing::Uniform, Spacing::LogSnr, Spacing::Karras]
    };
    let ddim = Solver::with("ddim", &[("eta", "0")])?;
    let euler_sigma = Solver::with("euler", &[("coords", "sigma")])?;
    let euler_t = Solver::with("euler", &[("coords", "t")])?;
    let dpm1 = Solver::named("dpm-solver-1")?;
    let mut rows = Vec::new();
    for spacing in &spacings {
        for &n in steps {
            let grid = TimeGrid::build(schedule, spacing, Some(n), GridOptions::default())?;
            let run = |s: &Solver| sample(s, model, schedule, &grid, x_t.clone(), 0).map(|r| r.0);
            let reference = run(&ddim)?;
            let es = run(&euler_sigma)?;
            let abs = reference.max_abs_diff(&es);
            rows.push(CheckRow {
                spacing: spacing.to_string(),
                steps: n,
                euler_sigma_abs: abs,
                euler_sigma_rel: abs / reference.max_abs(),
                dpm1_abs: reference.max_abs_diff(&run(&dpm1)?),
                euler_t_abs: reference.max_abs_diff(&run(&euler_t)?),
            });
        }
    }
    Ok(rows)
}

/// Table text.
pub fn format_rows(rows: &[CheckRow]) -> String {
    let mut s = format!(
        "{:<10} {:>6}  {:>14} {:>14} {:>14}   {:>16}\n",
        "spacing", "steps", "|DDIM-Eulerσ|", "rel", "|DDIM-DPM1|", "|DDIM-Euler_t|"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<10} {:>6}  {:>14.3e} {:>14.3e} {:>14.3e}   {:>16.3e}\n",
            r.spacing, r.steps, r.euler_sigma_abs, r.euler_sigma_rel, r.dpm1_abs, r.euler_t_abs
        ));
    }
    s
}

/// The largest difference between DDIM and Euler in σ or DPM-Solver-1, absolute or
/// relative, or an error if it exceeds [`TOLERANCE`].
pub fn verdict(rows: &[CheckRow]) -> Result<f64> {
    let worst = rows
        .iter()
        .map(|r| r.euler_sigma_abs.max(r.euler_sigma_rel).max(r.dpm1_abs))
        .fold(0.0, f64::max);
    if worst.is_nan() || worst > TOLERANCE {
        return Err(Error::Check(format!(
            "DDIM and Euler in σ (or DPM-Solver-1) differ by {worst:.3e} > {TOLERANCE:.0e}"
        )));
    }
    Ok(worst)
}
