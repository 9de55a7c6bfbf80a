//! Quantities shared by the exponential integrators in λ (Lu et al. 2022a/b; Zhao et al.
//! 2023): the semi-linear PF-ODE is solved exactly in its linear part, and only the model
//! term is approximated.

use crate::schedule::Schedule;

/// Scales at one time: `a`, `s`, and `λ = log(a/s)` (`+∞` on clean data).
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub t: f64,
    pub alpha: f64,
    pub sigma: f64,
    pub lambda: f64,
}

impl Point {
    /// The scales of `schedule` at `t`.
    pub fn at(schedule: &Schedule, t: f64) -> Self {
        Point {
            t,
            alpha: schedule.alpha(t),
            sigma: schedule.sigma(t),
            lambda: schedule.lambda(t),
        }
    }
}
