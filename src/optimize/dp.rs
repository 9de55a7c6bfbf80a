//! `dp`: the best path through a fine candidate grid for an additive cost, found exactly by
//! dynamic programming (GITS, Chen et al., ICML 2024).
//!
//! The candidates are uniform in log-SNR λ from t_max to the first training step (then
//! σ = 0, where the grid ends there). The reference trajectory of the calibration batch is
//! solved once, through every candidate. The cost of a step from candidate i to j is the RMS
//! distance between the solver's step from the reference state at i and the reference state
//! at j: the local error. The path of exactly n steps from the first to the last candidate
//! with the least total cost is the grid.
//!
//! History: a step is costed by running the solver on the one-step grid (t_i, t_j), so a
//! multistep solver (iPNDM, DPM-Solver++(2M), UniPC, DEIS, PNDM) is costed by its start-up
//! step, which has no history (for these, a DDIM-like first-order step). The costs are then
//! those of the solver's single-step core, as GITS costs every solver by its DDIM step; the
//! error the history terms remove is not seen, which is what `direct` measures instead.

use super::Problem;
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::grid::TimeGrid;
use crate::reference::{self, Settings};

crate::names::named_enum! {
    /// What a step costs.
    pub enum Cost("dp_cost") {
        /// The step's error carried to the grid's end along the reference ODE: the step's
        /// own contribution to the end-point error (to first order the end-point error is
        /// the sum of these as vectors, so their summed norms bound it).
        Propagated = "propagated",
        /// The step's local error where it lands (GITS's cost), blind to how the flow
        /// amplifies or damps it on the way to the data.
        Local = "local",
    }
}

/// Tolerance of the solves that carry step results to the end.
pub const PROPAGATION_TOLERANCE: f64 = 1e-7;

/// The candidate times of a search: `m` points uniform in λ from the problem's t_max to
/// its first training step, then σ = 0 where the grid ends there.
pub fn candidates(problem: &Problem, m: usize) -> Vec<f64> {
    let s = problem.schedule;
    let (hi, lo) = (s.t_max(), s.t_min());
    let (l0, l1) = (s.lambda(hi), s.lambda(lo));
    let mut t: Vec<f64> = (0..m)
        .map(|j| match j {
            0 => hi,
            _ if j == m - 1 => lo,
            _ => s.t_of_lambda(l0 + (l1 - l0) * j as f64 / (m - 1) as f64),
        })
        .collect();
    if problem.t_end() < lo {
        t.push(problem.t_end());
    }
    t
}

/// The least-cost path of `steps` steps; returns the grid, the one-step solves used and the
/// reference's model calls.
pub fn search(
    problem: &Problem,
    x_t: &Batch,
    steps: usize,
    m: usize,
    kind: Cost,
    settings: &Settings,
) -> Result<(TimeGrid, usize, usize)> {
    // Carrying a step's result on needs the differences between nearby solutions, not
    // their absolute accuracy: a looser tolerance serves.
    let propagation = Settings {
        rtol: settings.rtol.max(PROPAGATION_TOLERANCE),
        atol: settings.atol.max(PROPAGATION_TOLERANCE),
        progress: false,
        ..*settings
    };
    let times = candidates(problem, m);
    let k = times.len();
    if steps > k - 1 {
        return Err(Error::invalid(
            "candidates",
            format!(
                "{m} candidates cannot hold a grid of {steps} steps; give at least {}",
                steps + 1
            ),
        ));
    }
    let (states, stats) = reference::trajectory(
        problem.model,
        problem.schedule,
        x_t,
        times[0],
        &times,
        settings,
    )?;
    // The solver's step from every candidate's reference state to every later candidate.
    let step = |i: usize, j: usize| -> Result<Option<Batch>> {
        let grid = TimeGrid::new(vec![times[i], times[j]], problem.schedule)?;
        problem.finite_run(&grid, states[i].clone())
    };
    let end = &states[k - 1];
    let t_end = times[k - 1];
    let mut cost = vec![vec![f64::INFINITY; k]; k];
    let mut propagation_calls = 0;
    for j in 1..k {
        let outs: Vec<Option<Batch>> =
            crate::parallel::map_indices(j, problem.model.thread_bound(), |i| step(i, j))
                .into_iter()
                .collect::<Result<_>>()?;
        match kind {
            Cost::Local => {
                for (i, out) in outs.iter().enumerate() {
                    if let Some(out) = out {
                        cost[i][j] = out.rms_distance(&states[j]);
                    }
                }
            }
            Cost::Propagated => {
                // Carry every step's result on to the grid's end along the model's own ODE,
                // all of them as one batch, and measure each against the reference end.
                let live: Vec<usize> = (0..j).filter(|&i| outs[i].is_some()).collect();
                if live.is_empty() {
                    continue;
                }
                let d = x_t.d;
                let mut data = Vec::with_capacity(live.len() * x_t.n * d);
                for &i in &live {
                    data.extend_from_slice(&outs[i].as_ref().unwrap().data);
                }
                let batch = Batch::new(live.len() * x_t.n, d, data)?;
                let carried = if times[j] > t_end {
                    let (r, st) = reference::solve(
                        problem.model,
                        problem.schedule,
                        &batch,
                        times[j],
                        t_end,
                        &propagation,
                    )?;
                    propagation_calls += st.model_calls;
                    r
                } else {
                    batch
                };
                let block = x_t.n * d;
                for (b, &i) in live.iter().enumerate() {
                    let part =
                        Batch::new(x_t.n, d, carried.data[b * block..(b + 1) * block].to_vec())?;
                    let e = part.rms_distance(end);
                    cost[i][j] = if e.is_finite() { e } else { f64::INFINITY };
                }
            }
        }
    }
    let path = least_path(&cost, steps).ok_or_else(|| Error::Numerical {
        method: "optimize-grid dp".into(),
        msg: format!("no finite-cost path of {steps} steps through the {k} candidates"),
    })?;
    let grid = TimeGrid::new(path.iter().map(|&i| times[i]).collect(), problem.schedule)?;
    Ok((grid, k * (k - 1) / 2, stats.model_calls + propagation_calls))
}

/// The path 0 → last through `cost[i][j]` (i < j) with exactly `steps` steps and the least
/// summed cost, as candidate indices; `None` if every such path has infinite cost.
pub fn least_path(cost: &[Vec<f64>], steps: usize) -> Option<Vec<usize>> {
    let k = cost.len();
    // best[s][j]: least cost of reaching j in s steps; from[s][j]: the point before j.
    let mut best = vec![vec![f64::INFINITY; k]; steps + 1];
    let mut from = vec![vec![usize::MAX; k]; steps + 1];
    best[0][0] = 0.0;
    for s in 1..=steps {
        for j in 1..k {
            for i in 0..j {
                let c = best[s - 1][i] + cost[i][j];
                if c < best[s][j] {
                    best[s][j] = c;
                    from[s][j] = i;
                }
            }
        }
    }
    if !best[steps][k - 1].is_finite() {
        return None;
    }
    let mut path = vec![k - 1];
    for s in (1..=steps).rev() {
        path.push(from[s][*path.last().unwrap()]);
    }
    path.reverse();
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_path_is_the_one_a_brute_force_search_finds() {
        // Costs convex in the step length favour even steps: with 7 points and 3 steps the
        // best path is 0, 2, 4, 6; a cheap shortcut 0 → 5 changes it to 0, 5, ?, 6 only
        // where the sum is lower, which brute force decides.
        let k = 7;
        let mut cost = vec![vec![f64::INFINITY; k]; k];
        for (i, row) in cost.iter_mut().enumerate() {
            for (j, c) in row.iter_mut().enumerate().skip(i + 1) {
                *c = ((j - i) as f64).powi(2) + 0.1 * i as f64;
            }
        }
        cost[0][5] = 1.5;
        let path = least_path(&cost, 3).unwrap();
        let mut brute = (f64::INFINITY, vec![]);
        for a in 1..k {
            for b in a + 1..k - 1 {
                let c = cost[0][a] + cost[a][b] + cost[b][k - 1];
                if c < brute.0 {
                    brute = (c, vec![0, a, b, k - 1]);
                }
            }
        }
        assert_eq!(path, brute.1);
        assert_eq!(path.len(), 4);
        assert!(path.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn no_path_is_reported_when_every_route_is_infinite() {
        let cost = vec![vec![f64::INFINITY; 4]; 4];
        assert!(least_path(&cost, 2).is_none());
    }
}
