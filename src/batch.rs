//! A row-major `[n, d]` batch of f64 states: the currency of models and samplers.

use crate::error::{Error, Result};

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
