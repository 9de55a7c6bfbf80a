//! `direct`: the whole N-NFE solve's objective, minimised by Nelder–Mead over the grid's
//! interior points, from the best fixed grid.
//!
//! Parameterisation: the n steps of a grid from t_max split the span of log-SNR λ between
//! t_max and the first training step into n fractions `softmax(w)`; the interior points sit
//! at their partial sums. For a grid ending on the first training step the last fraction is
//! the last step; for one ending at σ = 0 (λ = ∞) it is the gap left below the last interior
//! point. Any `w` gives a strictly monotone grid inside the schedule with the same first and
//! last point, so the search is unconstrained. The last logit stays fixed (softmax is
//! invariant to a common shift), leaving n − 1 free coordinates.

use super::nelder_mead;
use super::{Judge, Problem};
use crate::error::Result;
use crate::grid::TimeGrid;

/// The smallest fraction a start grid's gap is given: a start grid that ends its interior
/// exactly on the first training step has no gap, and a zero fraction has logit −∞.
const GAP_FLOOR: f64 = 1e-3;

/// The λ coordinates of the searchable span: from the grid's first point to the first
/// training step.
pub struct Span {
    lambda_start: f64,
    lambda_end: f64,
    t_start: f64,
    t_end: f64,
}

impl Span {
    /// The span of `grid`'s problem.
    pub fn of(problem: &Problem, grid: &TimeGrid) -> Self {
        let s = problem.schedule;
        let t_start = grid.times()[0];
        Span {
            lambda_start: s.lambda(t_start),
            lambda_end: s.lambda(s.t_min()),
            t_start,
            t_end: problem.t_end(),
        }
    }

    /// The logits of `grid`'s steps.
    pub fn logits(&self, problem: &Problem, grid: &TimeGrid) -> Vec<f64> {
        let s = problem.schedule;
        let t = grid.times();
        let n = grid.steps();
        let width = self.lambda_end - self.lambda_start;
        let mut at: Vec<f64> = t[1..n]
            .iter()
            .map(|&t| s.lambda(t).clamp(self.lambda_start, self.lambda_end))
            .collect();
        at.insert(0, self.lambda_start);
        at.push(self.lambda_end);
        let floor = GAP_FLOOR * width / n as f64;
        at.windows(2)
            .map(|w| (w[1] - w[0]).max(floor).ln())
            .collect()
    }

    /// The grid of logits `w` (None where round-off makes two points meet).
    pub fn grid(&self, problem: &Problem, w: &[f64]) -> Option<TimeGrid> {
        let s = problem.schedule;
        let top = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = w.iter().map(|&v| (v - top).exp()).collect();
        let total: f64 = e.iter().sum();
        let width = self.lambda_end - self.lambda_start;
        let mut times = vec![self.t_start];
        let mut acc = 0.0;
        for &ek in &e[..e.len() - 1] {
            acc += ek / total;
            times.push(s.t_of_lambda(self.lambda_start + acc * width));
        }
        if times.last().is_some_and(|&t| t > self.t_end) {
            times.push(self.t_end);
        }
        if times.len() != w.len() + 1 {
            return None;
        }
        TimeGrid::new(times, s).ok()
    }
}

/// Minimises `judge`'s objective from the grids `starts` (the best fixed grids, best
/// first, each with its calibration value, already judged): a short Nelder–Mead from each, then the best of those continued with a narrower
/// simplex. Returns the best grid seen (never worse on the calibration batch than any start)
/// and the objective evaluations used.
pub fn search(
    problem: &Problem,
    judge: &Judge,
    starts: &[(&TimeGrid, f64)],
    max_evals: usize,
) -> Result<(TimeGrid, usize)> {
    let span = Span::of(problem, starts[0].0);
    let n = starts[0].0.steps();
    let f = |w: &[f64]| -> Result<f64> {
        match span.grid(problem, &full(w)) {
            Some(g) => judge.value(&g),
            None => Ok(f64::INFINITY),
        }
    };
    let mut evals = 0;
    let mut best: Option<(Vec<f64>, f64, TimeGrid)> = None;
    let consider = |best: &mut Option<(Vec<f64>, f64, TimeGrid)>, w: Vec<f64>, v: f64, g| {
        if best.as_ref().is_none_or(|b| v < b.1) {
            *best = Some((w, v, g));
        }
    };
    // Explore: a wide simplex from every start.
    let explore = (max_evals as f64 * EXPLORE_SHARE / starts.len() as f64) as usize;
    for &(start, v0) in starts {
        // The start's value is an evaluation of the objective the search spends, made by
        // the caller when it judged the fixed grids.
        evals += 1;
        let w0 = free(&span.logits(problem, start));
        consider(&mut best, w0.clone(), v0, start.clone());
        let m = nelder_mead::minimize(&f, &w0, 0.7, 1e-9, explore.max(n + 2))?;
        evals += m.evaluations;
        if let Some(g) = span.grid(problem, &full(&m.x)) {
            consider(&mut best, m.x, m.value, g);
        }
    }
    // Exploit: restart around the best point with a narrower simplex (a restart undoes the
    // collapse Nelder–Mead suffers in higher dimensions).
    let (w, _, _) = best.clone().expect("at least one start");
    let left = max_evals.saturating_sub(evals).max(n + 2);
    let m = nelder_mead::minimize(&f, &w, 0.25, 1e-9, left)?;
    evals += m.evaluations;
    if let Some(g) = span.grid(problem, &full(&m.x)) {
        consider(&mut best, m.x, m.value, g);
    }
    let (_, _, grid) = best.expect("at least one start");
    Ok((grid, evals))
}

/// Share of the evaluations spent exploring from every start.
const EXPLORE_SHARE: f64 = 0.5;

/// The free coordinates of a grid's logits: all but the last, which stays 0 (a common
/// shift of every logit changes nothing).
fn free(w: &[f64]) -> Vec<f64> {
    let last = w[w.len() - 1];
    w[..w.len() - 1].iter().map(|v| v - last).collect()
}

/// All logits from the free ones.
fn full(free: &[f64]) -> Vec<f64> {
    let mut w = free.to_vec();
    w.push(0.0);
    w
}
