//! Variance-preserving noise schedules in f64.
//!
//! Every schedule is described by `log a(t)` on a continuous time `t ∈ [0, t_max]`, with
//! `t = 0` clean data (`a = 1`, `s = 0`). Then `s = sqrt(1 - a²)`, `λ = log(a/s)`, and the
//! inverse `t(λ)` is exact (docs/math.md §1).
//!
//! Discrete DDPM schedules put training index `i` (diffusers' timestep, `0..T-1`) at
//! `t = (i + 1)/T` and interpolate `log a` linearly between those points and the clean point
//! `t = 0`, as the DPM-Solver reference implementation does (Lu et al. 2022, App. D), with
//! the clean end added so that a final step onto `ᾱ = 1` is part of the same schedule.

use crate::error::{Error, Result};
use serde_json::json;
use std::f64::consts::FRAC_PI_2;
use std::path::Path;

/// A discrete DDPM schedule given by its betas.
#[derive(Clone, Debug)]
pub struct Discrete {
    name: String,
    betas: Vec<f64>,
    /// `log a` at `t = k/T`, `k = 0..=T` (`log_alpha[0] = 0`).
    log_alpha: Vec<f64>,
}

impl Discrete {
    /// Builds a schedule from betas `β_1..β_T`, each in (0, 1).
    pub fn from_betas(name: &str, betas: Vec<f64>) -> Result<Self> {
        if betas.is_empty() {
            return Err(Error::invalid("betas", "expected at least one beta"));
        }
        if let Some((i, b)) = betas
            .iter()
            .enumerate()
            .find(|(_, b)| !(b.is_finite() && **b > 0.0 && **b < 1.0))
        {
            return Err(Error::invalid(
                format!("betas[{i}]"),
                format!("expected a value in (0, 1), got {b}"),
            ));
        }
        let mut log_alpha = Vec::with_capacity(betas.len() + 1);
        let mut acc = 0.0;
        log_alpha.push(0.0);
        for b in &betas {
            acc += 0.5 * (-b).ln_1p();
            log_alpha.push(acc);
        }
        Ok(Discrete {
            name: name.to_string(),
            betas,
            log_alpha,
        })
    }

    /// DDPM's linear betas from `start` to `end` (Ho et al. 2020: 1e-4 → 0.02, T = 1000).
    pub fn linear(start: f64, end: f64, steps: usize) -> Result<Self> {
        Self::from_betas("linear", linspace(start, end, steps)?)
    }

    /// Latent-diffusion "scaled_linear": linear in sqrt(β).
    pub fn scaled_linear(start: f64, end: f64, steps: usize) -> Result<Self> {
        let roots = linspace(start.sqrt(), end.sqrt(), steps)?;
        Self::from_betas("scaled-linear", roots.iter().map(|r| r * r).collect())
    }

    /// Improved-DDPM cosine ("squaredcos_cap_v2", Nichol & Dhariwal 2021), β capped at 0.999.
    pub fn cosine(steps: usize) -> Result<Self> {
        if steps == 0 {
            return Err(Error::invalid("num_train_timesteps", "expected ≥ 1"));
        }
        let alpha_bar = |t: f64| ((t + 0.008) / 1.008 * FRAC_PI_2).cos().powi(2);
        let n = steps as f64;
        let betas = (0..steps)
            .map(|i| {
                let (t1, t2) = (i as f64 / n, (i + 1) as f64 / n);
                (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999)
            })
            .collect();
        Self::from_betas("cosine", betas)
    }

    /// Reads betas from a 1-D `.npy` or a JSON array.
    pub fn from_file(path: &Path) -> Result<Self> {
        let is_npy = path.extension().is_some_and(|e| e == "npy");
        let betas: Vec<f64> = if is_npy {
            let a = crate::npy::read(path)?;
            if a.shape.len() != 1 {
                return Err(Error::file(
                    path,
                    format!("expected a 1-D array of betas, got shape {:?}", a.shape),
                ));
            }
            a.data
        } else {
            crate::io::read_json(path)?
        };
        Self::from_betas(&format!("file:{}", path.display()), betas)
            .map_err(|e| Error::file(path, e.to_string()))
    }

    /// Number of training steps `T`.
    pub fn num_train_timesteps(&self) -> usize {
        self.betas.len()
    }

    /// The betas `β_1..β_T`.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// `ᾱ_i` for training index `i` in `0..T` (diffusers' `alphas_cumprod[i]`).
    pub fn alpha_bar(&self, i: usize) -> f64 {
        (2.0 * self.log_alpha[i + 1]).exp()
    }

    fn log_alpha_at(&self, t: f64) -> f64 {
        let n = self.betas.len();
        let u = (t * n as f64).clamp(0.0, n as f64);
        let k = (u.floor() as usize).min(n - 1);
        let frac = u - k as f64;
        self.log_alpha[k] + frac * (self.log_alpha[k + 1] - self.log_alpha[k])
    }

    fn slope_at(&self, t: f64) -> f64 {
        // The segment a backward step through t traverses: (k/T, (k+1)/T] holds t.
        let n = self.betas.len();
        let k = ((t * n as f64).ceil() as usize).clamp(1, n) - 1;
        (self.log_alpha[k + 1] - self.log_alpha[k]) * n as f64
    }

    fn t_of_log_alpha(&self, la: f64) -> f64 {
        let n = self.betas.len();
        if la >= 0.0 {
            return 0.0;
        }
        if la <= self.log_alpha[n] {
            return 1.0;
        }
        // log_alpha is strictly decreasing: find k with log_alpha[k] ≥ la > log_alpha[k+1].
        let k = self.log_alpha.partition_point(|&v| v >= la) - 1;
        let frac = (la - self.log_alpha[k]) / (self.log_alpha[k + 1] - self.log_alpha[k]);
        (k as f64 + frac) / n as f64
    }
}

fn linspace(start: f64, end: f64, steps: usize) -> Result<Vec<f64>> {
    if steps == 0 {
        return Err(Error::invalid("num_train_timesteps", "expected ≥ 1"));
    }
    if steps == 1 {
        return Ok(vec![start]);
    }
    let step = (end - start) / (steps - 1) as f64;
    Ok((0..steps).map(|i| start + step * i as f64).collect())
}

crate::names::named_enum! {
    /// The schedules pfode knows by name.
    pub enum ScheduleName("schedule") {
        /// Discrete linear betas (DDPM).
        Linear = "linear",
        /// Discrete, linear in sqrt(beta) (latent diffusion).
        ScaledLinear = "scaled-linear",
        /// Discrete squaredcos_cap_v2 (improved DDPM).
        Cosine = "cosine",
        /// Continuous VP, beta_min 0.1, beta_max 20.
        VpLinear = "vp-linear",
        /// Continuous cosine, t_max 0.9946.
        VpCosine = "vp-cosine",
    }
}

/// A schedule as a caller describes it: a name with diffusers' parameters, or betas from a
/// file.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleConfig {
    pub name: ScheduleName,
    /// Training steps T of a discrete schedule.
    pub num_train_timesteps: usize,
    /// First beta [default: 1e-4 for linear, 0.00085 for scaled-linear].
    pub beta_start: Option<f64>,
    /// Last beta [default: 0.02 for linear, 0.012 for scaled-linear].
    pub beta_end: Option<f64>,
    /// Discrete betas from a file (1-D .npy or JSON array); overrides `name`.
    pub betas: Option<std::path::PathBuf>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            name: ScheduleName::Linear,
            num_train_timesteps: 1000,
            beta_start: None,
            beta_end: None,
            betas: None,
        }
    }
}

impl ScheduleConfig {
    /// Builds the schedule this describes.
    pub fn build(&self) -> Result<Schedule> {
        if let Some(path) = &self.betas {
            return Ok(Schedule::Discrete(Discrete::from_file(path)?));
        }
        let t = self.num_train_timesteps;
        let discrete_only = self.beta_start.is_some() || self.beta_end.is_some();
        Ok(match self.name {
            ScheduleName::Linear => Schedule::Discrete(Discrete::linear(
                self.beta_start.unwrap_or(1e-4),
                self.beta_end.unwrap_or(0.02),
                t,
            )?),
            ScheduleName::ScaledLinear => Schedule::Discrete(Discrete::scaled_linear(
                self.beta_start.unwrap_or(0.00085),
                self.beta_end.unwrap_or(0.012),
                t,
            )?),
            ScheduleName::Cosine | ScheduleName::VpLinear | ScheduleName::VpCosine
                if discrete_only =>
            {
                return Err(Error::invalid(
                    "beta_start/beta_end",
                    "only apply to the linear and scaled-linear schedules",
                ))
            }
            ScheduleName::Cosine => Schedule::Discrete(Discrete::cosine(t)?),
            ScheduleName::VpLinear => Schedule::vp_linear(),
            ScheduleName::VpCosine => Schedule::vp_cosine(),
        })
    }
}

/// A VP noise schedule: discrete (DDPM) or continuous.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Discrete betas, interpolated in `log a`.
    Discrete(Discrete),
    /// Continuous VP (Song et al. 2021): `β(t) = β_min + t (β_max - β_min)`, t ∈ [0, 1].
    VpLinear { beta_min: f64, beta_max: f64 },
    /// Continuous cosine (Nichol & Dhariwal 2021), truncated at `t_max` as in DPM-Solver.
    VpCosine { s: f64, t_max: f64 },
}

impl Schedule {
    /// The schedule called `name` with its default parameters (T = 1000 when discrete).
    pub fn named(name: &str) -> Result<Self> {
        let name: ScheduleName = name.parse()?;
        ScheduleConfig {
            name,
            ..Default::default()
        }
        .build()
    }

    /// DDPM's default: linear betas 1e-4 → 0.02 over T = 1000.
    pub fn ddpm_linear() -> Self {
        Schedule::Discrete(Discrete::linear(1e-4, 0.02, 1000).expect("valid defaults"))
    }

    /// Continuous VP with β_min = 0.1, β_max = 20.
    pub fn vp_linear() -> Self {
        Schedule::VpLinear {
            beta_min: 0.1,
            beta_max: 20.0,
        }
    }

    /// Continuous cosine with s = 0.008, t_max = 0.9946 (DPM-Solver's choice, keeps λ finite).
    pub fn vp_cosine() -> Self {
        Schedule::VpCosine {
            s: 0.008,
            t_max: 0.9946,
        }
    }

    /// Short name used in sidecars and tables.
    pub fn name(&self) -> String {
        match self {
            Schedule::Discrete(d) => d.name.clone(),
            Schedule::VpLinear { .. } => "vp-linear".into(),
            Schedule::VpCosine { .. } => "vp-cosine".into(),
        }
    }

    /// The discrete schedule, if this is one.
    pub fn discrete(&self) -> Option<&Discrete> {
        match self {
            Schedule::Discrete(d) => Some(d),
            _ => None,
        }
    }

    /// Largest time (pure-noise end).
    pub fn t_max(&self) -> f64 {
        match self {
            Schedule::VpCosine { t_max, .. } => *t_max,
            _ => 1.0,
        }
    }

    /// Smallest positive time a model was trained at: the first training step `1/T`
    /// for discrete schedules, `1e-3` for continuous ones (Song et al. 2021; Lu et al. 2022).
    pub fn t_min(&self) -> f64 {
        match self {
            Schedule::Discrete(d) => 1.0 / d.num_train_timesteps() as f64,
            _ => 1e-3,
        }
    }

    /// `log a(t)`.
    pub fn log_alpha(&self, t: f64) -> f64 {
        match self {
            Schedule::Discrete(d) => d.log_alpha_at(t),
            Schedule::VpLinear { beta_min, beta_max } => {
                -0.25 * t * t * (beta_max - beta_min) - 0.5 * t * beta_min
            }
            Schedule::VpCosine { s, .. } => {
                let phase = |t: f64| ((t + s) / (1.0 + s) * FRAC_PI_2).cos().ln();
                phase(t) - phase(0.0)
            }
        }
    }

    /// Signal scale `a(t) = sqrt(ᾱ(t))`.
    pub fn alpha(&self, t: f64) -> f64 {
        self.log_alpha(t).exp()
    }

    /// Noise scale `s(t) = sqrt(1 - ᾱ(t))`.
    pub fn sigma(&self, t: f64) -> f64 {
        (-(2.0 * self.log_alpha(t)).exp_m1()).sqrt()
    }

    /// `ᾱ(t) = a(t)²`.
    pub fn alpha_bar(&self, t: f64) -> f64 {
        (2.0 * self.log_alpha(t)).exp()
    }

    /// Log-SNR `λ(t) = log(a/s)`; `+∞` at `t = 0`.
    pub fn lambda(&self, t: f64) -> f64 {
        let la = self.log_alpha(t);
        la - 0.5 * (-(2.0 * la).exp_m1()).ln()
    }

    /// `σ(t) = s/a = exp(-λ)`, the noise level in the `y = x/a` coordinates.
    pub fn sigma_ratio(&self, t: f64) -> f64 {
        (-self.lambda(t)).exp()
    }

    /// Exact inverse of [`Schedule::lambda`].
    pub fn t_of_lambda(&self, lambda: f64) -> f64 {
        // log a = -½ log(1 + e^{-2λ}), written to avoid overflow for very negative λ.
        let la = if lambda > 0.0 {
            -0.5 * (-2.0 * lambda).exp().ln_1p()
        } else {
            lambda - 0.5 * (2.0 * lambda).exp().ln_1p()
        };
        self.t_of_log_alpha(la)
    }

    /// Exact inverse of `σ(t) = s/a` (σ = 0 gives t = 0).
    pub fn t_of_sigma_ratio(&self, sigma: f64) -> f64 {
        if sigma <= 0.0 {
            0.0
        } else {
            self.t_of_lambda(-sigma.ln())
        }
    }

    /// Exact inverse of `log a(t)`.
    pub fn t_of_log_alpha(&self, la: f64) -> f64 {
        match self {
            Schedule::Discrete(d) => d.t_of_log_alpha(la),
            Schedule::VpLinear { beta_min, beta_max } => {
                // Root of (Δ/4)t² + (β_min/2)t + la = 0 in the cancellation-free form.
                let b = 0.5 * beta_min;
                -2.0 * la / (b + (b * b - (beta_max - beta_min) * la).sqrt())
            }
            Schedule::VpCosine { s, .. } => {
                let c0 = (s / (1.0 + s) * FRAC_PI_2).cos().ln();
                (la + c0).exp().acos() / FRAC_PI_2 * (1.0 + s) - s
            }
        }
    }

    /// Drift coefficient of the forward SDE, `f(t) = d log a / dt`.
    pub fn drift(&self, t: f64) -> f64 {
        match self {
            Schedule::Discrete(d) => d.slope_at(t),
            Schedule::VpLinear { beta_min, beta_max } => {
                -0.5 * (beta_min + t * (beta_max - beta_min))
            }
            Schedule::VpCosine { s, .. } => {
                -((t + s) / (1.0 + s) * FRAC_PI_2).tan() * FRAC_PI_2 / (1.0 + s)
            }
        }
    }

    /// Squared diffusion `g²(t) = d s²/dt - 2 f s²`, which is `-2f = β(t)` for VP.
    pub fn diffusion_sq(&self, t: f64) -> f64 {
        -2.0 * self.drift(t)
    }

    /// The model's own time input at `t`: the (fractional) training index `tT - 1` for
    /// discrete schedules, `t` itself for continuous ones.
    pub fn model_time(&self, t: f64) -> f64 {
        match self {
            Schedule::Discrete(d) => t * d.num_train_timesteps() as f64 - 1.0,
            _ => t,
        }
    }

    /// Description for sidecars.
    pub fn describe(&self) -> serde_json::Value {
        match self {
            Schedule::Discrete(d) => json!({
                "name": d.name,
                "kind": "discrete",
                "num_train_timesteps": d.num_train_timesteps(),
                "beta_first": d.betas[0],
                "beta_last": d.betas[d.betas.len() - 1],
                "time": "t = (i + 1)/T for training index i; t = 0 is clean data",
            }),
            Schedule::VpLinear { beta_min, beta_max } => json!({
                "name": "vp-linear", "kind": "continuous", "beta_min": beta_min, "beta_max": beta_max,
            }),
            Schedule::VpCosine { s, t_max } => json!({
                "name": "vp-cosine", "kind": "continuous", "s": s, "t_max": t_max,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Schedule> {
        vec![
            Schedule::ddpm_linear(),
            Schedule::Discrete(Discrete::scaled_linear(0.00085, 0.012, 1000).unwrap()),
            Schedule::Discrete(Discrete::cosine(1000).unwrap()),
            Schedule::vp_linear(),
            Schedule::vp_cosine(),
        ]
    }

    #[test]
    fn lambda_inverse_recovers_time_on_every_schedule() {
        for s in all() {
            for k in 1..=400 {
                let t = s.t_max() * k as f64 / 400.0;
                let back = s.t_of_lambda(s.lambda(t));
                assert!((back - t).abs() < 1e-11, "{}: t={t} back={back}", s.name());
            }
        }
    }

    #[test]
    fn discrete_nodes_are_the_cumulative_products() {
        let Schedule::Discrete(d) = Schedule::ddpm_linear() else {
            unreachable!()
        };
        let mut prod = 1.0;
        for i in 0..1000 {
            prod *= 1.0 - d.betas()[i];
            let t = (i + 1) as f64 / 1000.0;
            let s = Schedule::Discrete(d.clone());
            assert!((s.alpha_bar(t) - prod).abs() < 1e-14 * prod.max(1e-3));
        }
        // Between nodes, log a is linear: midpoint is the mean of the neighbours.
        let s = Schedule::Discrete(d);
        let mid = s.log_alpha(0.0105);
        assert!((mid - 0.5 * (s.log_alpha(0.010) + s.log_alpha(0.011))).abs() < 1e-15);
        assert_eq!(s.alpha(0.0), 1.0);
        assert_eq!(s.sigma(0.0), 0.0);
    }

    #[test]
    fn vp_linear_matches_closed_form_and_drift_is_minus_half_beta() {
        let s = Schedule::vp_linear();
        let t: f64 = 0.37;
        let expected = (-0.25 * t * t * 19.9 - 0.05 * t).exp();
        assert!((s.alpha(t) - expected).abs() < 1e-15);
        assert!((s.diffusion_sq(t) - (0.1 + t * 19.9)).abs() < 1e-12);
        // f = d log a / dt, checked by central differences on every schedule.
        for s in all() {
            // Discrete schedules are piecewise linear: differentiate inside a segment.
            for &t in &[0.2004, 0.5004, 0.8004] {
                let h = 1e-6;
                let fd = (s.log_alpha(t + h) - s.log_alpha(t - h)) / (2.0 * h);
                assert!(
                    (s.drift(t) - fd).abs() < 1e-6 * fd.abs().max(1.0),
                    "{}",
                    s.name()
                );
            }
        }
    }

    #[test]
    fn alpha_and_sigma_are_variance_preserving() {
        for s in all() {
            for k in 0..=50 {
                let t = s.t_max() * k as f64 / 50.0;
                let (a, sg) = (s.alpha(t), s.sigma(t));
                assert!((a * a + sg * sg - 1.0).abs() < 1e-14, "{}", s.name());
                if t > 0.0 {
                    assert!((s.lambda(t) - (a / sg).ln()).abs() < 1e-9 * (1.0 + s.lambda(t).abs()));
                }
            }
        }
    }

    #[test]
    fn cosine_discrete_betas_follow_squaredcos_cap_v2() {
        let d = Discrete::cosine(1000).unwrap();
        let ab = |t: f64| ((t + 0.008) / 1.008 * FRAC_PI_2).cos().powi(2);
        // Before the 0.999 cap binds, ᾱ_i telescopes to ab((i+1)/T)/ab(0).
        let i = 500;
        assert!((d.alpha_bar(i) - ab(0.501) / ab(0.0)).abs() < 1e-12);
        assert_eq!(d.betas()[999], 0.999);
    }

    #[test]
    fn rejects_invalid_betas_naming_the_index() {
        let e = Discrete::from_betas("x", vec![0.1, 1.5])
            .unwrap_err()
            .to_string();
        assert!(e.contains("betas[1]") && e.contains("(0, 1)"), "{e}");
    }
}
