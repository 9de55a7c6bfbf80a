//! Validated time grids and the step spacings that build them.
//!
//! A grid is a strictly decreasing list of continuous times (see [`crate::schedule`]); a
//! sampler with `n` steps walks its `n + 1` points. The discrete spacings follow Hugging
//! Face diffusers' definitions of which training timesteps are visited, but every step goes
//! to the *next grid point* (diffusers' DDIM steps to `t - T/n` instead, which is not a grid
//! point for `linspace`, nor for `trailing` when `n` does not divide `T`).

use crate::error::{Error, Result};
use crate::schedule::Schedule;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// How the grid points are spaced.
#[derive(Clone, Debug, PartialEq)]
pub enum Spacing {
    /// diffusers "leading": training indices `0, T/n, 2T/n, …` (integer ratio), reversed.
    Leading,
    /// diffusers "trailing": `round(T - k T/n) - 1`, starting at the last training step.
    Trailing,
    /// diffusers "linspace": `round(linspace(0, T - 1, n))`, reversed.
    Linspace,
    /// Uniform in continuous time between `t_max` and `t_min`.
    Uniform,
    /// Quadratic in time, dense near `t_min` (DDIM paper, §D.2).
    Quadratic,
    /// Uniform in log-SNR λ (DPM-Solver's "logSNR" grid).
    LogSnr,
    /// Karras et al. (2022) eq. 5: uniform in `σ^{1/ρ}`, `σ = s/a`.
    Karras,
    /// An explicit list of times from a JSON array or 1-D `.npy` file.
    File(PathBuf),
}

impl FromStr for Spacing {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "leading" => Spacing::Leading,
            "trailing" => Spacing::Trailing,
            "linspace" => Spacing::Linspace,
            "uniform" => Spacing::Uniform,
            "quadratic" => Spacing::Quadratic,
            "logsnr" => Spacing::LogSnr,
            "karras" => Spacing::Karras,
            _ => match s.strip_prefix("file:") {
                Some(p) if !p.is_empty() => Spacing::File(PathBuf::from(p)),
                _ => {
                    return Err(Error::invalid(
                        "spacing",
                        format!(
                            "unknown spacing '{s}' (expected one of {})",
                            SPACINGS.join(", ")
                        ),
                    ))
                }
            },
        })
    }
}

/// Names accepted by `--spacing`.
pub const SPACINGS: &[&str] = &[
    "leading",
    "trailing",
    "linspace",
    "uniform",
    "quadratic",
    "logsnr",
    "karras",
    "file:PATH",
];

impl std::fmt::Display for Spacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spacing::Leading => write!(f, "leading"),
            Spacing::Trailing => write!(f, "trailing"),
            Spacing::Linspace => write!(f, "linspace"),
            Spacing::Uniform => write!(f, "uniform"),
            Spacing::Quadratic => write!(f, "quadratic"),
            Spacing::LogSnr => write!(f, "logsnr"),
            Spacing::Karras => write!(f, "karras"),
            Spacing::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

crate::names::named_enum! {
    /// Where the last step ends.
    pub enum FinalSigma("final_sigma") {
        /// On clean data, ᾱ = 1 (diffusers' `set_alpha_to_one=True`).
        Zero = "zero",
        /// On the first training step (index 0; diffusers' `set_alpha_to_one=False`).
        Min = "min",
    }
}

/// Options that shape a grid besides its spacing and length.
#[derive(Clone, Copy, Debug)]
pub struct GridOptions {
    pub final_sigma: FinalSigma,
    /// Karras ρ.
    pub rho: f64,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            final_sigma: FinalSigma::Zero,
            rho: 7.0,
        }
    }
}

/// A strictly decreasing list of times inside the schedule's range.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeGrid {
    times: Vec<f64>,
}

impl TimeGrid {
    /// Validates `times` against `schedule`.
    pub fn new(times: Vec<f64>, schedule: &Schedule) -> Result<Self> {
        if times.len() < 2 {
            return Err(Error::invalid(
                "grid",
                "expected at least 2 times (one step)",
            ));
        }
        for (i, &t) in times.iter().enumerate() {
            if !t.is_finite() || t < 0.0 || t > schedule.t_max() * (1.0 + 1e-12) {
                return Err(Error::invalid(
                    format!("grid[{i}]"),
                    format!(
                        "time {t} is outside the schedule's range [0, {}]",
                        schedule.t_max()
                    ),
                ));
            }
            if i > 0 && t >= times[i - 1] {
                return Err(Error::invalid(
                    format!("grid[{i}]"),
                    format!(
                        "times must be strictly decreasing, got {} then {t}",
                        times[i - 1]
                    ),
                ));
            }
        }
        Ok(TimeGrid { times })
    }

    /// The grid times, first (noisiest) to last.
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    /// Number of steps (intervals).
    pub fn steps(&self) -> usize {
        self.times.len() - 1
    }

    /// Builds a grid of `steps` steps with the given spacing.
    pub fn build(
        schedule: &Schedule,
        spacing: &Spacing,
        steps: Option<usize>,
        opts: GridOptions,
    ) -> Result<Self> {
        if let Spacing::File(path) = spacing {
            let grid = Self::from_file(path, schedule)?;
            if let Some(n) = steps {
                if n != grid.steps() {
                    return Err(Error::invalid(
                        "steps",
                        format!(
                            "{n} disagrees with the {} steps in {}",
                            grid.steps(),
                            path.display()
                        ),
                    ));
                }
            }
            return Ok(grid);
        }
        let n = steps.ok_or_else(|| Error::invalid("steps", "required for this spacing"))?;
        if n == 0 {
            return Err(Error::invalid("steps", "expected at least 1 step, got 0"));
        }
        let t_min = schedule.t_min();
        let mut times = match spacing {
            Spacing::Leading | Spacing::Trailing | Spacing::Linspace => {
                let d = schedule.discrete().ok_or_else(|| {
                    Error::invalid(
                        "spacing",
                        format!(
                            "'{spacing}' counts training timesteps and needs a discrete schedule; \
                             use uniform, quadratic, logsnr or karras with '{}'",
                            schedule.name()
                        ),
                    )
                })?;
                let big_t = d.num_train_timesteps();
                let idx = diffusers_timesteps(spacing, n, big_t)?;
                idx.iter().map(|&i| (i + 1) as f64 / big_t as f64).collect()
            }
            _ => {
                let m = match opts.final_sigma {
                    FinalSigma::Zero => n,
                    FinalSigma::Min => n + 1,
                };
                continuous_points(schedule, spacing, m, opts.rho)?
            }
        };
        let last = *times.last().unwrap();
        match opts.final_sigma {
            FinalSigma::Zero => times.push(0.0),
            FinalSigma::Min if last > t_min * (1.0 + 1e-12) => times.push(t_min),
            FinalSigma::Min => {}
        }
        Self::new(times, schedule)
    }

    /// Reads an explicit grid: a JSON array of times, a grid file (an object whose `t` is
    /// that array, as `pfode optimize-grid` writes), or a 1-D `.npy` of times.
    pub fn from_file(path: &Path, schedule: &Schedule) -> Result<Self> {
        let times: Vec<f64> = if path.extension().is_some_and(|e| e == "npy") {
            let a = crate::npy::read(path)?;
            if a.shape.len() != 1 {
                return Err(Error::file(
                    path,
                    format!("expected a 1-D array of times, got shape {:?}", a.shape),
                ));
            }
            a.data
        } else {
            // A bare array, or a grid file of `pfode optimize-grid` (`{"t": [...], ...}`).
            let doc: serde_json::Value = crate::io::read_json(path)?;
            let t = match &doc {
                serde_json::Value::Object(o) => o.get("t").ok_or_else(|| {
                    Error::file(
                        path,
                        "expected a JSON array of times or an object with a \"t\" array",
                    )
                })?,
                other => other,
            };
            serde_json::from_value(t.clone()).map_err(|e| {
                Error::file(path, format!("expected an array of times (numbers): {e}"))
            })?
        };
        Self::new(times, schedule).map_err(|e| Error::file(path, e.to_string()))
    }
}

/// diffusers' timestep indices (descending) for `leading`, `trailing`, `linspace`,
/// with `steps_offset = 0`.
pub fn diffusers_timesteps(spacing: &Spacing, n: usize, big_t: usize) -> Result<Vec<usize>> {
    if n > big_t {
        return Err(Error::invalid(
            "steps",
            format!("{n} steps exceed the {big_t} training timesteps of the schedule"),
        ));
    }
    Ok(match spacing {
        Spacing::Leading => {
            let ratio = big_t / n;
            (0..n).rev().map(|i| i * ratio).collect()
        }
        Spacing::Trailing => {
            let ratio = big_t as f64 / n as f64;
            (0..n)
                .map(|i| (big_t as f64 - i as f64 * ratio).round_ties_even() as usize - 1)
                .collect()
        }
        Spacing::Linspace => {
            let last = (big_t - 1) as f64;
            let step = if n > 1 { last / (n - 1) as f64 } else { 0.0 };
            (0..n)
                .rev()
                .map(|i| if i == n - 1 { last } else { i as f64 * step }.round_ties_even() as usize)
                .collect()
        }
        other => {
            return Err(Error::invalid(
                "spacing",
                format!("'{other}' is not a diffusers spacing"),
            ))
        }
    })
}

fn continuous_points(
    schedule: &Schedule,
    spacing: &Spacing,
    m: usize,
    rho: f64,
) -> Result<Vec<f64>> {
    let (hi, lo) = (schedule.t_max(), schedule.t_min());
    if m == 1 {
        return Ok(vec![hi]);
    }
    let u = |j: usize| j as f64 / (m - 1) as f64;
    Ok(match spacing {
        Spacing::Uniform => (0..m).map(|j| hi + u(j) * (lo - hi)).collect(),
        Spacing::Quadratic => (0..m)
            .map(|j| lo + (hi - lo) * (1.0 - u(j)).powi(2))
            .collect(),
        Spacing::LogSnr => {
            let (l0, l1) = (schedule.lambda(hi), schedule.lambda(lo));
            (0..m)
                .map(|j| schedule.t_of_lambda(l0 + u(j) * (l1 - l0)))
                .collect()
        }
        Spacing::Karras => {
            if !(rho.is_finite() && rho > 0.0) {
                return Err(Error::invalid(
                    "karras_rho",
                    format!("expected a positive number, got {rho}"),
                ));
            }
            let (s0, s1) = (
                schedule.sigma_ratio(hi).powf(1.0 / rho),
                schedule.sigma_ratio(lo).powf(1.0 / rho),
            );
            (0..m)
                .map(|j| match j {
                    0 => hi,
                    _ if j == m - 1 => lo,
                    _ => schedule.t_of_sigma_ratio((s0 + u(j) * (s1 - s0)).powf(rho)),
                })
                .collect()
        }
        _ => unreachable!("discrete spacings are handled by diffusers_timesteps"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffusers_index_conventions() {
        assert_eq!(
            diffusers_timesteps(&Spacing::Leading, 4, 1000).unwrap(),
            vec![750, 500, 250, 0]
        );
        assert_eq!(
            diffusers_timesteps(&Spacing::Trailing, 4, 1000).unwrap(),
            vec![999, 749, 499, 249]
        );
        assert_eq!(
            diffusers_timesteps(&Spacing::Linspace, 4, 1000).unwrap(),
            vec![999, 666, 333, 0]
        );
        // Trailing with n not dividing T: round(1000 - k·142.857) - 1.
        assert_eq!(
            diffusers_timesteps(&Spacing::Trailing, 7, 1000).unwrap(),
            vec![999, 856, 713, 570, 428, 285, 142]
        );
    }

    #[test]
    fn every_spacing_gives_a_strictly_decreasing_grid_ending_on_clean_data() {
        let s = Schedule::ddpm_linear();
        // Every named spacing (a file grid is tested on its own).
        for sp in SPACINGS.iter().filter(|s| !s.starts_with("file:")) {
            for n in [1, 2, 7, 50, 1000] {
                let g = TimeGrid::build(&s, &sp.parse().unwrap(), Some(n), GridOptions::default())
                    .unwrap();
                assert_eq!(g.steps(), n, "{sp} {n}");
                assert_eq!(*g.times().last().unwrap(), 0.0);
                assert!(g.times().windows(2).all(|w| w[0] > w[1]));
            }
        }
    }

    #[test]
    fn logsnr_grid_is_uniform_in_lambda_and_karras_in_sigma_root() {
        let s = Schedule::vp_linear();
        let opts = GridOptions {
            final_sigma: FinalSigma::Min,
            rho: 7.0,
        };
        let g = TimeGrid::build(&s, &Spacing::LogSnr, Some(10), opts).unwrap();
        let l: Vec<f64> = g.times().iter().map(|&t| s.lambda(t)).collect();
        let d0 = l[1] - l[0];
        assert!(l.windows(2).all(|w| ((w[1] - w[0]) - d0).abs() < 1e-9));
        let g = TimeGrid::build(&s, &Spacing::Karras, Some(10), opts).unwrap();
        let r: Vec<f64> = g
            .times()
            .iter()
            .map(|&t| s.sigma_ratio(t).powf(1.0 / 7.0))
            .collect();
        let d0 = r[1] - r[0];
        assert!(r.windows(2).all(|w| ((w[1] - w[0]) - d0).abs() < 1e-9));
        assert!((g.times()[10] - s.t_min()).abs() < 1e-15);
    }

    #[test]
    fn final_sigma_min_keeps_the_step_count_and_ends_at_first_training_step() {
        let s = Schedule::ddpm_linear();
        let opts = GridOptions {
            final_sigma: FinalSigma::Min,
            rho: 7.0,
        };
        let g = TimeGrid::build(&s, &Spacing::Trailing, Some(10), opts).unwrap();
        assert_eq!(g.steps(), 10);
        assert_eq!(*g.times().last().unwrap(), 0.001);
        let g = TimeGrid::build(&s, &Spacing::Uniform, Some(10), opts).unwrap();
        assert_eq!(g.steps(), 10);
    }

    #[test]
    fn invalid_grids_are_rejected_with_the_reason() {
        let s = Schedule::ddpm_linear();
        let e =
            TimeGrid::build(&s, &Spacing::Trailing, Some(0), GridOptions::default()).unwrap_err();
        assert!(e.to_string().contains("at least 1"));
        let e = TimeGrid::build(&s, &Spacing::Trailing, Some(1001), GridOptions::default())
            .unwrap_err();
        assert!(e.to_string().contains("exceed the 1000"));
        let e = TimeGrid::new(vec![0.5, 0.6, 0.0], &s).unwrap_err();
        assert!(e.to_string().contains("strictly decreasing"));
        let e = TimeGrid::new(vec![1.5, 0.0], &s).unwrap_err();
        assert!(e.to_string().contains("outside"));
        let e = TimeGrid::build(
            &Schedule::vp_linear(),
            &Spacing::Leading,
            Some(5),
            GridOptions::default(),
        );
        assert!(e.unwrap_err().to_string().contains("discrete schedule"));
        assert!("nope"
            .parse::<Spacing>()
            .unwrap_err()
            .to_string()
            .contains("unknown spacing"));
    }
}
