//! The probability-flow ODE and the reverse SDE as vector fields (docs/math.md §2–3).
//!
//! Generic integrators know nothing about diffusion: they advance a state `u` in an
//! integration variable `τ`. This module turns (schedule, coordinates) into that field,
//! which is linear in the state and in `ε̂` (`du/dτ = c_u u + c_ε ε̂`); solvers evaluate
//! `ε̂` through their context, which counts NFE. In σ-coordinates (`u = x/a`, `τ = σ = s/a`)
//! the field is `ε̂` itself, and one Euler step is DDIM exactly.

use crate::schedule::Schedule;

crate::names::named_enum! {
    /// The coordinates a generic integrator works in.
    pub enum Coords("coords") {
        /// State x, variable t: `dx/dt = f x + g² ε̂ / (2 s)`.
        T = "t",
        /// State y = x/a, variable σ = s/a: `dy/dσ = ε̂`.
        Sigma = "sigma",
        /// State y = x/a, variable λ = log(a/s): `dy/dλ = -σ ε̂`.
        Lambda = "lambda",
    }
}

/// The probability-flow ODE under a schedule, in chosen coordinates.
#[derive(Clone, Copy)]
pub struct ProbabilityFlow<'a> {
    pub schedule: &'a Schedule,
    pub coords: Coords,
}

impl ProbabilityFlow<'_> {
    /// The integration variable τ at time t (σ and λ may be 0 and +∞ at t = 0).
    pub fn variable(&self, t: f64) -> f64 {
        match self.coords {
            Coords::T => t,
            Coords::Sigma => self.schedule.sigma_ratio(t),
            Coords::Lambda => self.schedule.lambda(t),
        }
    }

    /// The time at which the variable equals τ (exact inverse of [`Self::variable`]).
    pub fn time_of(&self, tau: f64) -> f64 {
        match self.coords {
            Coords::T => tau,
            Coords::Sigma => self.schedule.t_of_sigma_ratio(tau),
            Coords::Lambda => self.schedule.t_of_lambda(tau),
        }
    }

    /// `x = scale(t) · u`: 1 in t-coordinates, `a(t)` in σ and λ.
    pub fn scale(&self, t: f64) -> f64 {
        match self.coords {
            Coords::T => 1.0,
            _ => self.schedule.alpha(t),
        }
    }

    /// `(c_u, c_ε)` with `du/dτ = c_u u + c_ε ε̂` at time t: the field is linear in the
    /// state and the noise prediction in all three coordinates, which lets solvers fuse a
    /// step into one pass.
    pub fn field_coefficients(&self, t: f64) -> (f64, f64) {
        match self.coords {
            Coords::T => {
                let s = self.schedule;
                (s.drift(t), s.diffusion_sq(t) / (2.0 * s.sigma(t)))
            }
            Coords::Sigma => (0.0, 1.0),
            Coords::Lambda => (0.0, -self.schedule.sigma_ratio(t)),
        }
    }
}

/// `(c_x, c_ε)` of the reverse SDE's drift in forward-time form,
/// `f x - g² ∇log p = f x + (g²/s) ε̂ = c_x x + c_ε ε̂`.
pub fn reverse_sde_coefficients(schedule: &Schedule, t: f64) -> (f64, f64) {
    (
        schedule.drift(t),
        schedule.diffusion_sq(t) / schedule.sigma(t),
    )
}
