//! UniPC's update after its model call, fused: the ε̂ → x̂₀ conversion, the corrector's
//! x_s and the predictor's x_t, whose coefficients `solver/unipc.rs` computes, in one sweep
//! per element.

use super::super::in_l1_chunks;
use crate::batch::{set_combination_slices, zip_update};

/// Highest predictor order: the one-sweep update is built for shapes up to it.
pub const MAX_ORDER: usize = 3;

/// A step's arithmetic after its model call, per element: ε̂ → x̂₀ (in place), the
/// corrector's x_s (in place, when there is a corrector step), and the predictor's x_t.
pub struct Update<'a> {
    /// x̂₀ = cx0·x + ce0·ε̂.
    pub to_x0: (f64, f64),
    /// The corrector's terms but x̂₀'s: x_prev, then the history it used; none without a
    /// correction.
    pub corrector: &'a [(f64, &'a [f64])],
    /// The corrector's coefficient of x̂₀.
    pub corrector_m: f64,
    /// The predictor: `cx·x_s + w0·x̂₀ + Σ predictor`.
    pub cx: f64,
    pub w0: f64,
    pub predictor: &'a [(f64, &'a [f64])],
}

impl Update<'_> {
    /// Runs the update in one sweep where every coefficient is nonzero (the general
    /// combinations drop zero terms, which changes the sums' order), else pass by pass on
    /// L1-sized chunks; both give the same bits.
    pub fn apply(&self, x: &mut [f64], m: &mut [f64], out: &mut [f64]) {
        if self.fuses() {
            update_wide(self, x, m, out);
        } else {
            self.in_passes(x, m, out);
        }
    }

    /// True when every coefficient is nonzero: the update then runs in one sweep.
    pub fn fuses(&self) -> bool {
        let coefficients = [self.corrector_m, self.cx, self.w0];
        (self.corrector.iter().chain(self.predictor))
            .map(|t| t.0)
            .chain(coefficients)
            .all(|c| c != 0.0)
    }

    /// The update as three passes (x̂₀, corrector, predictor) per L1-sized chunk.
    pub fn in_passes(&self, x: &mut [f64], m: &mut [f64], out: &mut [f64]) {
        let (cx0, ce0) = self.to_x0;
        in_l1_chunks(x.len(), |r| {
            let m = &mut m[r.clone()];
            zip_update(m, &x[r.clone()], &|e, x| cx0 * x + ce0 * e);
            let x = &mut x[r.clone()];
            let mut terms = [(0.0, &[][..]); MAX_ORDER + 2];
            if !self.corrector.is_empty() {
                for (t, &(c, a)) in terms.iter_mut().zip(self.corrector) {
                    *t = (c, &a[r.clone()]);
                }
                terms[self.corrector.len()] = (self.corrector_m, &*m);
                set_combination_slices(x, &terms[..self.corrector.len() + 1]);
            }
            terms[0] = (self.cx, &*x);
            terms[1] = (self.w0, &*m);
            for (t, &(c, a)) in terms[2..].iter_mut().zip(self.predictor) {
                *t = (c, &a[r.clone()]);
            }
            set_combination_slices(&mut out[r], &terms[..self.predictor.len() + 2]);
        });
    }
}

crate::simd::wide_simd!(update_wide => update_body(u: &Update, x: &mut [f64], m: &mut [f64], out: &mut [f64]));

/// [`Update::in_passes`]'s arithmetic, element by element in one sweep: `C` corrector terms
/// besides x̂₀ (0: no correction), `P` history terms in the predictor.
#[inline(always)]
fn update_body(u: &Update, x: &mut [f64], m: &mut [f64], out: &mut [f64]) {
    match (u.corrector.len(), u.predictor.len()) {
        (0, 0) => sweep::<0, 0>(u, x, m, out),
        (0, 1) => sweep::<0, 1>(u, x, m, out),
        (0, 2) => sweep::<0, 2>(u, x, m, out),
        (2, 0) => sweep::<2, 0>(u, x, m, out),
        (2, 1) => sweep::<2, 1>(u, x, m, out),
        (2, 2) => sweep::<2, 2>(u, x, m, out),
        (3, 0) => sweep::<3, 0>(u, x, m, out),
        (3, 1) => sweep::<3, 1>(u, x, m, out),
        (3, 2) => sweep::<3, 2>(u, x, m, out),
        (4, 0) => sweep::<4, 0>(u, x, m, out),
        (4, 1) => sweep::<4, 1>(u, x, m, out),
        (4, 2) => sweep::<4, 2>(u, x, m, out),
        shape => unreachable!("UniPC update of shape {shape:?}"),
    }
}

#[inline(always)]
fn sweep<const C: usize, const P: usize>(
    u: &Update,
    x: &mut [f64],
    m: &mut [f64],
    out: &mut [f64],
) {
    let n = x.len();
    let (m, out) = (&mut m[..n], &mut out[..n]);
    let (cx0, ce0) = u.to_x0;
    let cc: [f64; C] = std::array::from_fn(|j| u.corrector[j].0);
    let cs: [&[f64]; C] = std::array::from_fn(|j| &u.corrector[j].1[..n]);
    let pc: [f64; P] = std::array::from_fn(|j| u.predictor[j].0);
    let ps: [&[f64]; P] = std::array::from_fn(|j| &u.predictor[j].1[..n]);
    for i in 0..n {
        let m_i = cx0 * x[i] + ce0 * m[i];
        m[i] = m_i;
        // Left to right, as the combination kernels sum.
        if C > 0 {
            let mut s = cc[0] * cs[0][i];
            for j in 1..C {
                s += cc[j] * cs[j][i];
            }
            x[i] = s + u.corrector_m * m_i;
        }
        let mut s = u.cx * x[i] + u.w0 * m_i;
        for j in 0..P {
            s += pc[j] * ps[j][i];
        }
        out[i] = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::{normals, Purpose};

    /// The one-sweep update gives the pass-by-pass bits for every shape a step can take
    /// (no corrector or one using 1–3 history terms; predictor orders 1–3), over lengths
    /// that end mid-chunk and mid-vector.
    #[test]
    fn the_one_sweep_update_gives_the_pass_by_pass_bits() {
        let len = 2 * 1024 + 13;
        let arrays: Vec<Vec<f64>> = (0..6).map(|k| normals(1, Purpose::Other, k, len)).collect();
        let coefficient =
            |k: u64| 0.3 + 0.07 * k as f64 * if k.is_multiple_of(2) { 1.0 } else { -1.0 };
        for corrector_len in [0, 2, 3, 4] {
            for predictor_len in 0..MAX_ORDER {
                let corrector: Vec<(f64, &[f64])> = (0..corrector_len)
                    .map(|j| (coefficient(j as u64), &arrays[j][..]))
                    .collect();
                let predictor: Vec<(f64, &[f64])> = (0..predictor_len)
                    .map(|j| (coefficient(7 + j as u64), &arrays[1 + j][..]))
                    .collect();
                let update = Update {
                    to_x0: (1.7, -0.9),
                    corrector: &corrector,
                    corrector_m: 0.45,
                    cx: 0.8,
                    w0: 0.35,
                    predictor: &predictor,
                };
                assert!(update.fuses());
                let state = [arrays[4].clone(), arrays[5].clone(), vec![0.0; len]];
                let run = |v: &mut [Vec<f64>], fused: bool| {
                    let (x, rest) = v.split_at_mut(1);
                    let (m, out) = rest.split_at_mut(1);
                    if fused {
                        update.apply(&mut x[0], &mut m[0], &mut out[0]);
                    } else {
                        update.in_passes(&mut x[0], &mut m[0], &mut out[0]);
                    }
                };
                super::super::assert_fused_equals_passes(
                    &format!("corrector {corrector_len}, predictor {predictor_len}"),
                    &state,
                    |v| run(v, true),
                    |v| run(v, false),
                );
            }
        }
    }
}
