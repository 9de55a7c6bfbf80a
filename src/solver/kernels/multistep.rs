//! The update of DPM-Solver++'s multistep steps (and SDE-DPM-Solver++(2M)'s) after their
//! model call, fused: the ε̂ → x̂₀ conversion and the multistep combination, whose
//! coefficients `solver/dpm_solver_pp.rs` computes, in one sweep per element.

use super::super::in_l1_chunks;
use crate::batch::{combine_slices, zip_update};

/// The update of a multistep data-prediction step after its model call: `m0` (holding ε̂)
/// becomes x̂₀ = cx0·x + ce0·ε̂, then `x = ratio·x + Σ_j weights_j·m_j`, m_0 the new x̂₀ and
/// the rest `history`, newest first (at most two).
pub struct MultistepUpdate<'a> {
    /// x̂₀ = cx0·x + ce0·ε̂.
    pub to_x0: (f64, f64),
    pub ratio: f64,
    pub weights: &'a [f64],
    pub history: &'a [&'a [f64]],
}

impl MultistepUpdate<'_> {
    /// One sweep per element where every coefficient is nonzero, else pass by pass on
    /// L1-sized chunks (the combination kernels drop zero terms, which changes the sum's
    /// order); the same bits either way.
    pub fn apply(&self, x: &mut [f64], m0: &mut [f64]) {
        debug_assert_eq!(self.weights.len(), self.history.len() + 1);
        if self.weights.iter().all(|w| *w != 0.0) {
            multistep_update_wide(self, x, m0)
        } else {
            self.in_passes(x, m0)
        }
    }

    /// The update as a conversion pass and a combination pass per L1-sized chunk.
    pub fn in_passes(&self, x: &mut [f64], m0: &mut [f64]) {
        let (cx0, ce0) = self.to_x0;
        in_l1_chunks(x.len(), |r| {
            let m0 = &mut m0[r.clone()];
            zip_update(m0, &x[r.clone()], &|e, x| cx0 * x + ce0 * e);
            let mut terms = [(0.0, &[][..]); 3];
            terms[0] = (self.weights[0], &*m0);
            let past = self.weights[1..].iter().zip(self.history);
            for (t, (w, m)) in terms[1..].iter_mut().zip(past) {
                *t = (*w, &m[r.clone()]);
            }
            combine_slices(&mut x[r], self.ratio, &terms[..self.weights.len()]);
        });
    }
}

crate::simd::wide_simd!(multistep_update_wide => multistep_update_body(u: &MultistepUpdate, x: &mut [f64], m0: &mut [f64]));

#[inline(always)]
fn multistep_update_body(u: &MultistepUpdate, x: &mut [f64], m0: &mut [f64]) {
    match u.history.len() {
        0 => sweep::<0>(u, x, m0),
        1 => sweep::<1>(u, x, m0),
        2 => sweep::<2>(u, x, m0),
        n => unreachable!("a multistep update with {n} past outputs"),
    }
}

/// [`MultistepUpdate::apply`]'s arithmetic for `H` past outputs, element by element: the same
/// operations in the same order as the conversion and the combination kernel.
#[inline(always)]
fn sweep<const H: usize>(u: &MultistepUpdate, x: &mut [f64], m0: &mut [f64]) {
    let n = x.len();
    let m0 = &mut m0[..n];
    let ((cx0, ce0), ratio, w0) = (u.to_x0, u.ratio, u.weights[0]);
    let w: [f64; H] = std::array::from_fn(|j| u.weights[j + 1]);
    let past: [&[f64]; H] = std::array::from_fn(|j| &u.history[j][..n]);
    for i in 0..n {
        let m = cx0 * x[i] + ce0 * m0[i];
        m0[i] = m;
        let mut s = ratio * x[i] + w0 * m;
        for j in 0..H {
            s += w[j] * past[j][i];
        }
        x[i] = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::{normals, Purpose};

    /// The one-sweep multistep update gives the pass-by-pass bits for one, two and three
    /// stored outputs, onto clean data (ratio 0) too, over a length that ends mid-chunk.
    #[test]
    fn the_one_sweep_multistep_update_gives_the_pass_by_pass_bits() {
        let len = 2 * 1024 + 13;
        let a: Vec<Vec<f64>> = (0..4).map(|k| normals(2, Purpose::Other, k, len)).collect();
        for (weights, ratio) in [
            (&[0.8][..], 0.9),
            (&[0.7, -0.2][..], 0.6),
            (&[1.1, -0.4, 0.15][..], 0.3),
            (&[0.5, -0.1][..], 0.0),
        ] {
            let history: Vec<&[f64]> = a[2..1 + weights.len()].iter().map(|v| &v[..]).collect();
            let update = MultistepUpdate {
                to_x0: (1.3, -0.7),
                ratio,
                weights,
                history: &history,
            };
            super::super::assert_fused_equals_passes(
                &format!("{weights:?}, ratio {ratio}"),
                &a[..2],
                |v| {
                    let (x, m) = v.split_at_mut(1);
                    update.apply(&mut x[0], &mut m[0])
                },
                |v| {
                    let (x, m) = v.split_at_mut(1);
                    update.in_passes(&mut x[0], &mut m[0])
                },
            );
        }
    }
}
