//! The NFE-counting wrapper: the framework, not each solver, counts model evaluations
//! (and checks that every output is finite).

use super::{Level, ScoreModel};
use crate::batch::Batch;
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Wraps a model, counting batch evaluations and rejecting NaN/Inf outputs.
pub struct Counted<'a> {
    inner: &'a dyn ScoreModel,
    calls: AtomicUsize,
    round_to_f32: bool,
}

impl<'a> Counted<'a> {
    /// Counts calls to `inner`; with `round_to_f32`, outputs are rounded to single precision.
    pub fn new(inner: &'a dyn ScoreModel, round_to_f32: bool) -> Self {
        Counted {
            inner,
            calls: AtomicUsize::new(0),
            round_to_f32,
        }
    }

    /// Number of function evaluations so far (one per batch call).
    pub fn nfe(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// The wrapped model.
    pub fn inner(&self) -> &dyn ScoreModel {
        self.inner
    }
}

impl ScoreModel for Counted<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn describe(&self) -> serde_json::Value {
        self.inner.describe()
    }

    fn eps_into(&self, x: &Batch, level: &Level, out: &mut [f64]) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.eps_into(x, level, out)?;
        if self.round_to_f32 {
            out.iter_mut().for_each(|v| *v = *v as f32 as f64);
        }
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                t: level.t,
                row: i / x.d,
                col: i % x.d,
                value: out[i],
            });
        }
        Ok(())
    }
}
