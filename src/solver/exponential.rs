//! Quantities shared by the exponential integrators in λ (Lu et al. 2022a/b; Zhao et al.
//! 2023): the semi-linear PF-ODE is solved exactly in its linear part, and only the model
//! term is approximated.

use crate::model::Level;
use crate::schedule::Schedule;

/// A [`Level`] (time, `a`, `s`) with its log-SNR `λ = log(a/s)` (`+∞` on clean data), the
/// variable the exponential integrators step in.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub level: Level,
    pub lambda: f64,
}

impl Point {
    /// The level of `schedule` at `t`, and its λ.
    pub fn at(schedule: &Schedule, t: f64) -> Self {
        Point {
            level: Level::at(schedule, t),
            lambda: schedule.lambda(t),
        }
    }
}

impl std::ops::Deref for Point {
    type Target = Level;
    fn deref(&self) -> &Level {
        &self.level
    }
}
