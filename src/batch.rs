//! A row-major `[n, d]` batch of f64 states: the currency of models and samplers.

use crate::error::{Error, Result};
use rayon::prelude::*;

/// Elementwise updates stay on one thread below this size: handing a state-sized update to
/// rayon costs more than the update itself.
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
            zip_update_wide(&mut self.data, &other.data, &f);
            return;
        }
        self.data
            .par_chunks_mut(ELEMENTS_PER_TASK)
            .zip(other.data.par_chunks(ELEMENTS_PER_TASK))
            .for_each(|(a, b)| zip_update_wide(a, b, &f));
    }

    /// In place, `self = c·self + Σ_j c_j·terms_j`, in one sweep over memory (solver
    /// arithmetic is bound by memory traffic): up to five terms in a single fused loop,
    /// more on L1-sized chunks.
    pub fn combine(&mut self, c: f64, terms: &[(f64, &Batch)]) {
        combine_slices(&mut self.data, c, &slices(terms));
    }

    /// Overwrites `self` with `Σ_j c_j·terms_j` (at least one term) in one sweep.
    pub fn set_combination(&mut self, terms: &[(f64, &Batch)]) {
        set_combination_slices(&mut self.data, &slices(terms));
    }

    /// In place, `self[i] = f(self[i])`.
    pub fn map_in_place(&mut self, f: impl Fn(f64) -> f64) {
        map_wide(&mut self.data, &f);
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

fn slices<'a>(terms: &[(f64, &'a Batch)]) -> Vec<(f64, &'a [f64])> {
    terms.iter().map(|t| (t.0, t.1.data.as_slice())).collect()
}

/// The terms with a nonzero coefficient: `terms` itself when every coefficient is nonzero,
/// else a filtered copy made in `kept` (on the stack for the usual few). Solver steps call
/// the combination kernels on every L1-sized chunk, so the copy is avoided when it can be.
fn nonzero<'t, 'a>(
    terms: &'t [(f64, &'a [f64])],
    kept: &'t mut Option<Terms<'a>>,
) -> &'t [(f64, &'a [f64])] {
    if terms.iter().all(|t| t.0 != 0.0) {
        return terms;
    }
    let kept = kept.insert(Terms::default());
    for &t in terms.iter().filter(|t| t.0 != 0.0) {
        kept.push(t);
    }
    kept.as_slice()
}

/// A short list of terms that allocates only beyond eight (solver steps call the
/// combination kernels on every L1-sized chunk of every step).
#[derive(Default)]
struct Terms<'a> {
    inline: [(f64, &'a [f64]); 8],
    len: usize,
    spill: Vec<(f64, &'a [f64])>,
}

impl<'a> Terms<'a> {
    fn push(&mut self, t: (f64, &'a [f64])) {
        if self.len < self.inline.len() {
            self.inline[self.len] = t;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline);
            }
            self.spill.push(t);
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[(f64, &'a [f64])] {
        if self.len > self.inline.len() {
            &self.spill
        } else {
            &self.inline[..self.len]
        }
    }
}

/// [`Batch::combine`] on slices: `v = c·v + Σ_j c_j·terms_j`, zero coefficients skipped.
pub fn combine_slices(v: &mut [f64], c: f64, terms: &[(f64, &[f64])]) {
    let mut kept = None;
    let terms = nonzero(terms, &mut kept);
    // `v = 1·v` (the slope in σ-coordinates is ε̂ itself): nothing to do, same bits.
    if c == 1.0 && terms.is_empty() {
        return;
    }
    combine_wide(v, c, terms);
}

/// [`Batch::set_combination`] on slices: `v = Σ_j c_j·terms_j`, zero coefficients skipped.
pub fn set_combination_slices(v: &mut [f64], terms: &[(f64, &[f64])]) {
    let mut kept = None;
    match nonzero(terms, &mut kept) {
        [] => v.fill(0.0),
        [first, rest @ ..] if rest.len() > 5 => {
            set_combination_wide(v, &[*first]);
            combine_wide(v, 1.0, rest);
        }
        all => set_combination_wide(v, all),
    }
}

/// In place, `a[i] = f(a[i], b[i])` (vectorised for the CPU at run time).
pub fn zip_update<F: Fn(f64, f64) -> f64>(a: &mut [f64], b: &[f64], f: &F) {
    zip_update_wide(a, b, f)
}

/// `out[i] = f(a[i], b[i])` (vectorised for the CPU at run time).
pub fn zip_into<F: Fn(f64, f64) -> f64>(out: &mut [f64], a: &[f64], b: &[f64], f: &F) {
    zip_into_wide(out, a, b, f)
}

crate::simd::wide_simd!(zip_into_wide<F: Fn(f64, f64) -> f64> => zip_into_body(out: &mut [f64], a: &[f64], b: &[f64], f: &F));

#[inline(always)]
fn zip_into_body<F: Fn(f64, f64) -> f64>(out: &mut [f64], a: &[f64], b: &[f64], f: &F) {
    out.iter_mut()
        .zip(a.iter().zip(b))
        .for_each(|(o, (&a, &b))| *o = f(a, b));
}

crate::simd::wide_simd!(zip_update_wide<F: Fn(f64, f64) -> f64> => zip_update_body(a: &mut [f64], b: &[f64], f: &F));
crate::simd::wide_simd!(map_wide<F: Fn(f64) -> f64> => map_body(a: &mut [f64], f: &F));
crate::simd::wide_simd!(combine_wide => combine_body(v: &mut [f64], c: f64, terms: &[(f64, &[f64])]));
crate::simd::wide_simd!(set_combination_wide => set_combination_body(v: &mut [f64], terms: &[(f64, &[f64])]));

#[inline(always)]
fn zip_update_body<F: Fn(f64, f64) -> f64>(a: &mut [f64], b: &[f64], f: &F) {
    a.iter_mut().zip(b).for_each(|(a, &b)| *a = f(*a, b));
}

#[inline(always)]
fn map_body<F: Fn(f64) -> f64>(a: &mut [f64], f: &F) {
    a.iter_mut().for_each(|a| *a = f(*a));
}

/// `v = c·v + Σ_j c_j·terms_j`: up to five terms fused, more on L1-sized chunks. Each
/// element sees the same operations in the same order on every path.
#[inline(always)]
fn combine_body(v: &mut [f64], c: f64, terms: &[(f64, &[f64])]) {
    match *terms {
        [] => v.iter_mut().for_each(|x| *x *= c),
        [(c1, a)] => v.iter_mut().zip(a).for_each(|(x, a)| *x = c * *x + c1 * a),
        [(c1, a), (c2, b)] => v
            .iter_mut()
            .zip(a.iter().zip(b))
            .for_each(|(x, (a, b))| *x = c * *x + c1 * a + c2 * b),
        [(c1, a), (c2, b), (c3, d)] => v
            .iter_mut()
            .zip(a.iter().zip(b).zip(d))
            .for_each(|(x, ((a, b), d))| *x = c * *x + c1 * a + c2 * b + c3 * d),
        [(c1, a), (c2, b), (c3, d), (c4, e)] => v
            .iter_mut()
            .zip(a.iter().zip(b).zip(d.iter().zip(e)))
            .for_each(|(x, ((a, b), (d, e)))| *x = c * *x + c1 * a + c2 * b + c3 * d + c4 * e),
        [(c1, a), (c2, b), (c3, d), (c4, e), (c5, f)] => v
            .iter_mut()
            .zip(a.iter().zip(b).zip(d.iter().zip(e)).zip(f))
            .for_each(|(x, (((a, b), (d, e)), f))| {
                *x = c * *x + c1 * a + c2 * b + c3 * d + c4 * e + c5 * f
            }),
        _ => {
            const CHUNK: usize = 512;
            for (k, chunk) in v.chunks_mut(CHUNK).enumerate() {
                let off = k * CHUNK;
                chunk.iter_mut().for_each(|x| *x *= c);
                for &(cj, b) in terms {
                    let src = &b[off..off + chunk.len()];
                    chunk.iter_mut().zip(src).for_each(|(x, &s)| *x += cj * s);
                }
            }
        }
    }
}

/// `v = Σ_j c_j·terms_j` for one to six terms, in one sweep.
#[inline(always)]
fn set_combination_body(v: &mut [f64], terms: &[(f64, &[f64])]) {
    match *terms {
        [(c1, a)] => v.iter_mut().zip(a).for_each(|(x, a)| *x = c1 * a),
        [(c1, a), (c2, b)] => v
            .iter_mut()
            .zip(a.iter().zip(b))
            .for_each(|(x, (a, b))| *x = c1 * a + c2 * b),
        [(c1, a), (c2, b), (c3, d)] => v
            .iter_mut()
            .zip(a.iter().zip(b).zip(d))
            .for_each(|(x, ((a, b), d))| *x = c1 * a + c2 * b + c3 * d),
        [(c1, a), (c2, b), (c3, d), (c4, e)] => v
            .iter_mut()
            .zip(a.iter().zip(b).zip(d.iter().zip(e)))
            .for_each(|(x, ((a, b), (d, e)))| *x = c1 * a + c2 * b + c3 * d + c4 * e),
        [(c1, a), (c2, b), (c3, d), (c4, e), (c5, f)] => v
            .iter_mut()
            .zip(a.iter().zip(b).zip(d.iter().zip(e)).zip(f))
            .for_each(|(x, (((a, b), (d, e)), f))| *x = c1 * a + c2 * b + c3 * d + c4 * e + c5 * f),
        // Six terms (Dormand–Prince's fifth-order point and error estimate): the same
        // left-to-right sum as setting the first and adding five, in one sweep.
        [(c1, a), (c2, b), (c3, d), (c4, e), (c5, f), (c6, g)] => v
            .iter_mut()
            .zip(a.iter().zip(b).zip(d.iter().zip(e)).zip(f.iter().zip(g)))
            .for_each(|(x, (((a, b), (d, e)), (f, g)))| {
                *x = c1 * a + c2 * b + c3 * d + c4 * e + c5 * f + c6 * g
            }),
        _ => unreachable!("one to six terms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(len: usize, seed: u64) -> Batch {
        let data = crate::noise::normals(seed, crate::noise::Purpose::Other, 0, len);
        Batch::new(len, 1, data).unwrap()
    }

    /// The AVX2 copies of the combination kernels give the baseline build's bits,
    /// for every arity (fused and chunked) and lengths that leave vector remainders.
    #[test]
    fn wide_kernels_equal_the_baseline_bit_for_bit() {
        for len in [1, 7, 517, 1031] {
            let terms: Vec<Batch> = (0..7).map(|k| batch(len, k)).collect();
            let coeffs = [0.3, -1.7, 2.5e-3, 0.9, -0.41, 1.0 / 3.0, 7.0];
            for k in 0..=7 {
                let as_batches: Vec<(f64, &Batch)> =
                    coeffs[..k].iter().cloned().zip(&terms[..k]).collect();
                let as_slices: Vec<(f64, &[f64])> = as_batches
                    .iter()
                    .map(|t| (t.0, t.1.data.as_slice()))
                    .collect();
                let mut wide = batch(len, 99);
                let mut base = wide.data.clone();
                wide.combine(0.7, &as_batches);
                combine_body(&mut base, 0.7, &as_slices);
                assert_eq!(wide.data, base, "combine, {k} terms, length {len}");
                if k == 0 {
                    continue;
                }
                wide.set_combination(&as_batches);
                if k <= 5 {
                    set_combination_body(&mut base, &as_slices);
                } else {
                    set_combination_body(&mut base, &as_slices[..1]);
                    combine_body(&mut base, 1.0, &as_slices[1..]);
                }
                assert_eq!(wide.data, base, "set_combination, {k} terms, length {len}");
            }
            let mut wide = batch(len, 5);
            let mut base = wide.data.clone();
            wide.update_with(&terms[1], |a, b| 0.3 * a - b / 7.0);
            zip_update_body(&mut base, &terms[1].data, &|a: f64, b: f64| {
                0.3 * a - b / 7.0
            });
            assert_eq!(wide.data, base, "update_with, length {len}");
            let mut wide = vec![0.0; len];
            let mut base = vec![0.0; len];
            let mean = |a: f64, b: f64| 0.5 * (a + b);
            zip_into(&mut wide, &terms[2].data, &terms[3].data, &mean);
            zip_into_body(&mut base, &terms[2].data, &terms[3].data, &mean);
            assert_eq!(wide, base, "zip_into, length {len}");
        }
    }
}
