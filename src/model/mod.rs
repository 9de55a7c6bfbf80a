//! Score models: noise prediction is the primitive; data, velocity and score are derived
//! here, in one place (docs/math.md §1).

mod counted;
mod mixture;
pub mod mlp;
pub mod train;

pub use counted::Counted;
pub(crate) use counted::{all_finite, check_finite};
pub use mixture::{builtin, resolve, GaussianMixture, BUILTINS};

use crate::batch::Batch;
use crate::error::Result;
use crate::schedule::Schedule;

/// What a model sees at one noise level: the continuous time and the VP scales there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Level {
    /// Continuous time (the schedule's convention).
    pub t: f64,
    /// Signal scale a(t).
    pub alpha: f64,
    /// Noise scale s(t).
    pub sigma: f64,
}

impl Level {
    /// The level of `schedule` at time `t`.
    pub fn at(schedule: &Schedule, t: f64) -> Self {
        Level {
            t,
            alpha: schedule.alpha(t),
            sigma: schedule.sigma(t),
        }
    }
}

/// A noise-prediction model `ε̂(x_t, t)` on batches `[n, dim]`.
pub trait ScoreModel: Send + Sync {
    /// Data dimension D.
    fn dim(&self) -> usize;

    /// Short description for sidecars.
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"kind": "custom", "dim": self.dim()})
    }

    /// Writes `ε̂(x, level)` for the rows of `x` into `out` (both `[n, dim]`).
    fn eps_into(&self, x: &Batch, level: &Level, out: &mut [f64]) -> Result<()>;

    /// True if the model can be evaluated on clean data (`s = 0`), where exact models give
    /// `ε̂ = 0`; learned models are not, and solvers then avoid a stage at `σ = 0`.
    fn defined_at_clean(&self) -> bool {
        false
    }

    /// True if the model must be called on the thread that started the run, never on a
    /// worker of the thread pool: a Python callable (signals such as Ctrl-C reach only the
    /// main thread, and a pool worker must not attach to the interpreter). Runs then stay
    /// on the calling thread; pfode's own parallel loops still use the pool.
    fn thread_bound(&self) -> bool {
        false
    }

    /// The model's row-wise fast paths, if each output row depends only on the same input
    /// row, bit for bit, whatever the rest of the batch (exact models): samplers may then run
    /// the batch in row tiles small enough to keep their state in cache (`solver::tiles`).
    /// `None` by default: a model needs only `dim`, `describe` and `eps_into`.
    fn rows(&self) -> Option<&dyn RowModel> {
        None
    }

    /// `ε̂(x, level)`.
    fn eps(&self, x: &Batch, level: &Level) -> Result<Batch> {
        let mut out = vec![0.0; x.data.len()];
        self.eps_into(x, level, &mut out)?;
        Batch::new(x.n, x.d, out)
    }

    /// Data prediction `x̂_0 = (x - s ε̂)/a`.
    fn data_prediction(&self, x: &Batch, level: &Level) -> Result<Batch> {
        Ok(x0_from_eps(x, &self.eps(x, level)?, level))
    }

    /// Velocity `v̂ = a ε̂ - s x̂_0`.
    fn velocity(&self, x: &Batch, level: &Level) -> Result<Batch> {
        Ok(velocity_from_eps(x, &self.eps(x, level)?, level))
    }

    /// Score `∇ log p_t(x) = -ε̂ / s`.
    fn score(&self, x: &Batch, level: &Level) -> Result<Batch> {
        Ok(score_from_eps(&self.eps(x, level)?, level))
    }
}

/// The optional fast paths of a model whose rows are independent (see [`ScoreModel::rows`]).
pub trait RowModel: Sync {
    /// An evaluator of ε̂ at `level` that takes a few rows at a time, bit for bit as
    /// [`ScoreModel::eps_into`] computes them, its per-level set-up done once: a solver can
    /// then run its per-row arithmetic and the model on the same rows while they are in L1
    /// (dopri5's stages). `None` by default.
    fn row_evaluator(&self, _level: &Level) -> Option<Box<dyn RowEvaluator + '_>> {
        None
    }

    /// True if [`ScoreModel::eps_into`] itself returns [`crate::Error::NonFinite`] for any
    /// NaN/Inf it would output, so [`Counted`] need not scan the output again (the mixture
    /// checks each row while it is still in registers).
    fn checks_finite_output(&self) -> bool {
        false
    }
}

/// ε̂ at one noise level, a slice of whole rows at a time (see
/// [`RowModel::row_evaluator`]). Shared by the threads of a run.
pub trait RowEvaluator: Sync {
    /// Writes ε̂ for the rows of `x` (whole rows, row-major) into `out`, unchecked: the
    /// caller checks what it derives from the outputs (a NaN or infinity propagates into
    /// it) and reruns the call through [`ScoreModel::eps_into`] to report a bad one.
    fn eps_rows(&self, x: &[f64], out: &mut [f64]);
}

/// Any model from a `--model` argument: a learned checkpoint (`.safetensors`, with its
/// `.json`), a mixture JSON file, or a built-in name.
pub fn load(spec: &str) -> Result<Box<dyn ScoreModel>> {
    if spec.ends_with(".safetensors") {
        return Ok(Box::new(mlp::Mlp::load(std::path::Path::new(spec))?));
    }
    Ok(Box::new(resolve(spec)?))
}

/// [`load`] of a model a spec names: a built-in name as it is, a file relative to `dir`
/// (the spec's folder).
pub fn load_in(spec: &str, dir: &std::path::Path) -> Result<Box<dyn ScoreModel>> {
    if builtin(spec).is_some() {
        return load(spec);
    }
    load(&dir.join(spec).to_string_lossy())
}

/// A model that predicts ε̂ = 0 everywhere: free to evaluate, used to count the NFE a
/// solver needs on a grid by a dry run, and to time a solver's own cost in benchmarks.
pub struct ZeroModel {
    pub dim: usize,
    pub defined_at_clean: bool,
}

impl ScoreModel for ZeroModel {
    fn dim(&self) -> usize {
        self.dim
    }
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"kind": "zero"})
    }
    fn eps_into(&self, _: &Batch, _: &Level, out: &mut [f64]) -> Result<()> {
        out.fill(0.0);
        Ok(())
    }
    fn defined_at_clean(&self) -> bool {
        self.defined_at_clean
    }
    fn rows(&self) -> Option<&dyn RowModel> {
        Some(self)
    }
}

impl RowModel for ZeroModel {
    fn checks_finite_output(&self) -> bool {
        true
    }
}

/// `x̂_0 = (x - s ε̂)/a`.
pub fn x0_from_eps(x: &Batch, eps: &Batch, l: &Level) -> Batch {
    x.zip_map(eps, |x, e| (x - l.sigma * e) / l.alpha)
}

/// `v̂ = a ε̂ - s x̂_0`.
pub fn velocity_from_eps(x: &Batch, eps: &Batch, l: &Level) -> Batch {
    x.zip_map(eps, |x, e| {
        l.alpha * e - l.sigma * (x - l.sigma * e) / l.alpha
    })
}

/// `∇ log p = -ε̂ / s`.
pub fn score_from_eps(eps: &Batch, l: &Level) -> Batch {
    eps.zip_map(eps, |e, _| -e / l.sigma)
}

/// `ε̂ = (x - a x̂_0)/s`, for data-predicting models.
pub fn eps_from_x0(x: &Batch, x0: &Batch, l: &Level) -> Batch {
    x.zip_map(x0, |x, x0| (x - l.alpha * x0) / l.sigma)
}

/// `ε̂ = s x + a v̂`, for velocity-predicting models.
pub fn eps_from_velocity(x: &Batch, v: &Batch, l: &Level) -> Batch {
    x.zip_map(v, |x, v| l.sigma * x + l.alpha * v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prediction_conversions_invert_each_other() {
        let l = Level {
            t: 0.3,
            alpha: 0.8,
            sigma: 0.6,
        };
        let x = Batch::new(1, 3, vec![0.5, -1.0, 2.0]).unwrap();
        let eps = Batch::new(1, 3, vec![0.1, 0.7, -0.4]).unwrap();
        let x0 = x0_from_eps(&x, &eps, &l);
        let v = velocity_from_eps(&x, &eps, &l);
        assert!(eps_from_x0(&x, &x0, &l).max_abs_diff(&eps) < 1e-15);
        assert!(eps_from_velocity(&x, &v, &l).max_abs_diff(&eps) < 1e-15);
        // x = a x̂_0 + s ε̂ reconstructs the input.
        let back = x0.zip_map(&eps, |x0, e| l.alpha * x0 + l.sigma * e);
        assert!(back.max_abs_diff(&x) < 1e-15);
        assert!((score_from_eps(&eps, &l).data[1] + 0.7 / 0.6).abs() < 1e-15);
    }
}
