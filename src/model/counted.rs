//! The NFE-counting wrapper: the framework, not each solver, counts model evaluations
//! (and checks that every output is finite).

use super::{Level, RowEvaluator, RowModel, ScoreModel};
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

    /// True if outputs are rounded to single precision.
    pub fn rounds_to_f32(&self) -> bool {
        self.round_to_f32
    }

    /// True if the wrapped model's rows are independent (see [`ScoreModel::rows`]).
    pub fn rows_independent(&self) -> bool {
        self.inner.rows().is_some()
    }

    /// An evaluator for one pass over the batch's rows at `level` (a few rows at a time,
    /// see [`RowModel::row_evaluator`]), counted as one model evaluation; `None`, and
    /// nothing counted, if the wrapped model has none.
    pub fn row_pass(&self, level: &Level) -> Option<Box<dyn RowEvaluator + '_>> {
        let rows = RowModel::row_evaluator(self, level)?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        Some(rows)
    }

    /// Counts `n` evaluations made through another wrapper (one per row tile's run).
    pub fn add_calls(&self, n: usize) {
        self.calls.fetch_add(n, Ordering::Relaxed);
    }
}

impl ScoreModel for Counted<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn describe(&self) -> serde_json::Value {
        self.inner.describe()
    }

    fn thread_bound(&self) -> bool {
        self.inner.thread_bound()
    }

    fn defined_at_clean(&self) -> bool {
        self.inner.defined_at_clean()
    }

    fn rows(&self) -> Option<&dyn RowModel> {
        self.inner.rows().map(|_| self as &dyn RowModel)
    }

    fn eps_into(&self, x: &Batch, level: &Level, out: &mut [f64]) -> Result<()> {
        crate::interrupt::check()?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.eps_into(x, level, out)?;
        if self.round_to_f32 {
            out.iter_mut().for_each(|v| *v = *v as f32 as f64);
        }
        let checked = self.inner.rows().is_some_and(|r| r.checks_finite_output());
        if checked && !self.round_to_f32 {
            return Ok(());
        }
        check_finite(out, x.d, level.t)
    }
}

impl RowModel for Counted<'_> {
    /// The inner model's evaluator, rounding to single precision like `eps_into`, not
    /// counted ([`Counted::row_pass`] counts a pass).
    fn row_evaluator(&self, level: &Level) -> Option<Box<dyn RowEvaluator + '_>> {
        let inner = self.inner.rows()?.row_evaluator(level)?;
        if !self.round_to_f32 {
            return Some(inner);
        }
        Some(Box::new(Rounded(inner)))
    }

    fn checks_finite_output(&self) -> bool {
        true
    }
}

/// An error naming the first non-finite value of `out` (rows of `d` values, the model's
/// outputs at time `t`), if any: one vectorised test, then a scan only on failure.
pub(crate) fn check_finite(out: &[f64], d: usize, t: f64) -> Result<()> {
    if all_finite(out) {
        return Ok(());
    }
    match out.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::NonFinite {
            t,
            row: i / d.max(1),
            col: i % d.max(1),
            value: out[i],
        }),
        None => Ok(()),
    }
}

/// A row evaluator whose outputs are rounded to f32 (runs in single precision).
struct Rounded<'a>(Box<dyn RowEvaluator + 'a>);

impl RowEvaluator for Rounded<'_> {
    fn eps_rows(&self, x: &[f64], out: &mut [f64]) {
        self.0.eps_rows(x, out);
        out.iter_mut().for_each(|v| *v = *v as f32 as f64);
    }
}

/// Independent partial sums in [`all_finite`]: eight AVX2 vectors, so the adds overlap.
const FINITE_LANES: usize = 32;

/// True when no value is NaN or ±Inf: `v · 0` is 0 for finite v and NaN otherwise, summed in
/// independent lanes so the loop vectorises (a branchy scan does not).
pub(crate) fn all_finite(values: &[f64]) -> bool {
    let mut lanes = [0.0f64; FINITE_LANES];
    zero_lanes(values, &mut lanes);
    lanes.iter().all(|l| *l == 0.0)
}

crate::simd::wide_simd!(zero_lanes => zero_lanes_body(values: &[f64], lanes: &mut [f64; FINITE_LANES]));

/// `lanes[j] += v · 0` over `values`, element i into lane i mod `FINITE_LANES`.
#[inline(always)]
fn zero_lanes_body(values: &[f64], lanes: &mut [f64; FINITE_LANES]) {
    let chunks = values.chunks_exact(FINITE_LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..FINITE_LANES {
            lanes[j] += c[j] * 0.0;
        }
    }
    for (j, v) in rest.iter().enumerate() {
        lanes[j] += v * 0.0;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_finite_finds_nan_and_infinities_anywhere() {
        let mut v = vec![1.5; 37];
        assert!(super::all_finite(&v));
        for (i, bad) in [(0, f64::NAN), (17, f64::INFINITY), (36, f64::NEG_INFINITY)] {
            let keep = v[i];
            v[i] = bad;
            assert!(!super::all_finite(&v), "{i}");
            v[i] = keep;
        }
        assert!(super::all_finite(&[f64::MAX, -f64::MAX, 0.0]));
    }
}
