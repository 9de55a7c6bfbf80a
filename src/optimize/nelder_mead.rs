//! Nelder–Mead simplex minimisation (Nelder & Mead, *Comput. J.* 7, 1965) with the
//! dimension-adapted coefficients of Gao & Han (*Comput. Optim. Appl.* 51, 2012), which keep
//! the simplex from collapsing in the 4–20 dimensions of a step grid. Derivative-free, and
//! deterministic: the same start and function give the same path, bit for bit.

use crate::error::Result;

/// Where a minimisation stopped.
#[derive(Clone, Debug)]
pub struct Minimum {
    pub x: Vec<f64>,
    pub value: f64,
    /// Function evaluations used.
    pub evaluations: usize,
}

/// Minimises `f` from `start`, the first simplex spanned by steps of `scale` along each
/// axis, until the simplex's values agree to `f_tol` (relative) or `max_evals` is spent.
/// `f` may return +∞ (a diverged run): such vertices are simply the worst.
pub fn minimize(
    mut f: impl FnMut(&[f64]) -> Result<f64>,
    start: &[f64],
    scale: f64,
    f_tol: f64,
    max_evals: usize,
) -> Result<Minimum> {
    let n = start.len();
    let nf = n.max(1) as f64;
    let (alpha, beta, gamma, delta) =
        (1.0, 1.0 + 2.0 / nf, 0.75 - 1.0 / (2.0 * nf), 1.0 - 1.0 / nf);
    let mut evals = 0;
    let mut eval = |x: &[f64], evals: &mut usize| -> Result<f64> {
        *evals += 1;
        let v = f(x)?;
        Ok(if v.is_nan() { f64::INFINITY } else { v })
    };
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    simplex.push((start.to_vec(), eval(start, &mut evals)?));
    for i in 0..n {
        let mut x = start.to_vec();
        x[i] += scale;
        let v = eval(&x, &mut evals)?;
        simplex.push((x, v));
    }
    if n == 0 {
        let (x, value) = simplex.remove(0);
        return Ok(Minimum {
            x,
            value,
            evaluations: evals,
        });
    }
    let along = |from: &[f64], to: &[f64], t: f64| -> Vec<f64> {
        from.iter().zip(to).map(|(a, b)| a + t * (b - a)).collect()
    };
    while evals < max_evals {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[n].1);
        if worst.is_finite() && (worst - best).abs() <= f_tol * best.abs().max(1e-300) {
            break;
        }
        let mut centroid = vec![0.0; n];
        for (x, _) in &simplex[..n] {
            for (c, xi) in centroid.iter_mut().zip(x) {
                *c += xi / nf;
            }
        }
        let worst_x = simplex[n].0.clone();
        // Reflect the worst vertex through the centroid of the others.
        let reflected = along(&centroid, &worst_x, -alpha);
        let fr = eval(&reflected, &mut evals)?;
        if fr < best {
            let expanded = along(&centroid, &worst_x, -alpha * beta);
            let fe = eval(&expanded, &mut evals)?;
            simplex[n] = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
            continue;
        }
        if fr < simplex[n - 1].1 {
            simplex[n] = (reflected, fr);
            continue;
        }
        // Contract: outside if the reflection improved on the worst, else inside.
        let (contracted, fc) = if fr < worst {
            let x = along(&centroid, &reflected, gamma);
            let v = eval(&x, &mut evals)?;
            (x, v)
        } else {
            let x = along(&centroid, &worst_x, gamma);
            let v = eval(&x, &mut evals)?;
            (x, v)
        };
        if fc < fr.min(worst) {
            simplex[n] = (contracted, fc);
            continue;
        }
        // Shrink every vertex toward the best.
        let best_x = simplex[0].0.clone();
        for vertex in simplex.iter_mut().skip(1) {
            let x = along(&best_x, &vertex.0, delta);
            let v = eval(&x, &mut evals)?;
            *vertex = (x, v);
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (x, value) = simplex.swap_remove(0);
    Ok(Minimum {
        x,
        value,
        evaluations: evals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_the_rosenbrock_valley_in_four_dimensions() {
        let rosen = |x: &[f64]| -> Result<f64> {
            Ok(x.windows(2)
                .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
                .sum())
        };
        let m = minimize(rosen, &[-1.0, 1.0, -1.0, 1.0], 0.5, 1e-14, 20_000).unwrap();
        for xi in &m.x {
            assert!((xi - 1.0).abs() < 1e-3, "{:?}", m.x);
        }
        assert!(m.value < 1e-6);
    }

    #[test]
    fn an_infinite_region_is_avoided_not_fatal() {
        let f = |x: &[f64]| -> Result<f64> {
            Ok(if x[0] < 0.0 {
                f64::INFINITY
            } else {
                (x[0] - 0.3).powi(2) + x[1] * x[1]
            })
        };
        let m = minimize(f, &[1.0, 1.0], 1.0, 1e-14, 2_000).unwrap();
        assert!(
            (m.x[0] - 0.3).abs() < 1e-4 && m.x[1].abs() < 1e-4,
            "{:?}",
            m.x
        );
    }
}
