//! A row-major `[n, d]` batch of f64 states: the currency of models and samplers.

use crate::error::{Error, Result};
use rayon::prelude::*;

/// Elementwise updates stay on one thread below this size: measured on 2 cores, handing a
/// 65 536-element update to rayon costs more (≈ 20 µs) than the update itself (≈ 12 µs).
const PARALLEL_ABOVE: usize = 1 << 20;
const ELEMENTS_PER_TASK: usize = 1 << 16;

/// `n` samples of dimension `d`, stored row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub n: usize,
    pub d: usize,
    pub data: Vec<f64>,
}

impl Batch {
    /// Wraps `data`, checking that it holds `n · d` values.
    pub fn new(n: usize, d: usize, data: Vec<f64>) -> Result<Self> {
        if data.len() != n * d {
            return Err(Error::invalid(
                "batch",
                format!("expected {n}×{d} = {} values, got {}", n * d, data.len()),
            ));
        }
        Ok(Batch { n, d, data })
    }

    /// A batch of zeros.
    pub fn zeros(n: usize, d: usize) -> Self {
        Batch {
            n,
            d,
            data: vec![0.0; n * d],
        }
    }

    /// A batch shaped like `self` with values `f(self[i], other[i])`.
    pub fn zip_map(&self, other: &Batch, f: impl Fn(f64, f64) -> f64) -> Batch {
        debug_assert_eq!(self.data.len(), other.data.len());
        Batch {
            n: self.n,
            d: self.d,
            data: self
                .data
                .iter()
                .zip(&other.data)
                .map(|(&a, &b)| f(a, b))
                .collect(),
        }
    }

    /// In place, `self[i] = f(self[i], other[i])`; parallel for large batches, and
    /// bit-identical at any thread count (each element is computed independently).
    pub fn update_with(&mut self, other: &Batch, f: impl Fn(f64, f64) -> f64 + Sync) {
        debug_assert_eq!(self.data.len(), other.data.len());
        if self.data.len() < PARALLEL_ABOVE {
            self.data
                .iter_mut()
                .zip(&other.data)
                .for_each(|(a, &b)| *a = f(*a, b));
            return;
        }
        self.data
            .par_chunks_mut(ELEMENTS_PER_TASK)
            .zip(other.data.par_chunks(ELEMENTS_PER_TASK))
            .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, &b)| *a = f(*a, b)));
    }

    /// In place, `self = c·self + Σ_j c_j·terms_j`, in one sweep over memory (solver
    /// arithmetic is bound by memory traffic): up to four terms in a single fused loop,
    /// more on L1-sized chunks.
    pub fn combine(&mut self, c: f64, terms: &[(f64, &Batch)]) {
        if terms.iter().any(|t| t.0 == 0.0) {
            let nonzero: Vec<(f64, &Batch)> =
                terms.iter().filter(|t| t.0 != 0.0).cloned().collect();
            return self.combine(c, &nonzero);
        }
        let v = &mut self.data;
        match terms {
            [] => v.iter_mut().for_each(|x| *x *= c),
            [(c1, a)] => v
                .iter_mut()
                .zip(&a.data)
                .for_each(|(x, a)| *x = c * *x + c1 * a),
            [(c1, a), (c2, b)] => v
                .iter_mut()
                .zip(a.data.iter().zip(&b.data))
                .for_each(|(x, (a, b))| *x = c * *x + c1 * a + c2 * b),
            [(c1, a), (c2, b), (c3, d)] => v
                .iter_mut()
                .zip(a.data.iter().zip(&b.data).zip(&d.data))
                .for_each(|(x, ((a, b), d))| *x = c * *x + c1 * a + c2 * b + c3 * d),
            [(c1, a), (c2, b), (c3, d), (c4, e)] => v
                .iter_mut()
                .zip(a.data.iter().zip(&b.data).zip(d.data.iter().zip(&e.data)))
                .for_each(|(x, ((a, b), (d, e)))| *x = c * *x + c1 * a + c2 * b + c3 * d + c4 * e),
            [(c1, a), (c2, b), (c3, d), (c4, e), (c5, f)] => v
                .iter_mut()
                .zip(
                    a.data
                        .iter()
                        .zip(&b.data)
                        .zip(d.data.iter().zip(&e.data))
                        .zip(&f.data),
                )
                .for_each(|(x, (((a, b), (d, e)), f))| {
                    *x = c * *x + c1 * a + c2 * b + c3 * d + c4 * e + c5 * f
                }),
            _ => {
                const CHUNK: usize = 512;
                for (k, chunk) in v.chunks_mut(CHUNK).enumerate() {
                    let off = k * CHUNK;
                    chunk.iter_mut().for_each(|x| *x *= c);
                    for &(cj, b) in terms {
                        let src = &b.data[off..off + chunk.len()];
                        chunk.iter_mut().zip(src).for_each(|(x, &s)| *x += cj * s);
                    }
                }
            }
        }
    }

    /// Overwrites `self` with `Σ_j c_j·terms_j` (at least one term) in one sweep.
    pub fn set_combination(&mut self, terms: &[(f64, &Batch)]) {
        let terms: Vec<(f64, &Batch)> = terms.iter().filter(|t| t.0 != 0.0).cloned().collect();
        match terms.as_slice() {
            [] => self.data.fill(0.0),
            [(c1, a)] => self
                .data
                .iter_mut()
                .zip(&a.data)
                .for_each(|(x, a)| *x = c1 * a),
            [(c1, a), rest @ ..] => {
                // x = c1·a + rest: fold the first term into the sweep as "self" after a copy
                // would cost a pass; instead treat a as self's source.
                match rest {
                    [(c2, b)] => self
                        .data
                        .iter_mut()
                        .zip(a.data.iter().zip(&b.data))
                        .for_each(|(x, (a, b))| *x = c1 * a + c2 * b),
                    [(c2, b), (c3, d)] => self
                        .data
                        .iter_mut()
                        .zip(a.data.iter().zip(&b.data).zip(&d.data))
                        .for_each(|(x, ((a, b), d))| *x = c1 * a + c2 * b + c3 * d),
                    _ => {
                        self.data
                            .iter_mut()
                            .zip(&a.data)
                            .for_each(|(x, a)| *x = c1 * a);
                        self.combine(1.0, rest);
                    }
                }
            }
        }
    }

    /// In place, `self[i] = f(self[i])`.
    pub fn map_in_place(&mut self, f: impl Fn(f64) -> f64) {
        self.data.iter_mut().for_each(|a| *a = f(*a));
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.d..(i + 1) * self.d]
    }

    /// Largest absolute elementwise difference.
    pub fn max_abs_diff(&self, other: &Batch) -> f64 {
        self.data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    }

    /// Largest absolute value.
    pub fn max_abs(&self) -> f64 {
        self.data.iter().map(|a| a.abs()).fold(0.0, f64::max)
    }

    /// Root-mean-square per-sample L2 distance to `other`.
    pub fn rms_distance(&self, other: &Batch) -> f64 {
        let sq: f64 = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        (sq / self.n as f64).sqrt()
    }

    /// Rounds every value to the nearest f32 (emulates single-precision storage).
    pub fn round_to_f32(&mut self) {
        for v in &mut self.data {
            *v = *v as f32 as f64;
        }
    }
}
