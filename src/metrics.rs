//! Sample-quality metrics, each checked on cases with known answers: errors to a
//! reference, the Fréchet distance to an exact mixture (the FID-proxy of analytic models),
//! sliced Wasserstein, MMD and KID, negative log-likelihood, and mode coverage.

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::model::{GaussianMixture, ScoreModel};
use crate::noise::{self, Purpose};
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// Summary of per-sample L2 distances to a reference.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ErrorStats {
    pub mean: f64,
    pub rms: f64,
    pub median: f64,
    pub p95: f64,
    pub max: f64,
}

fn check_same_shape(a: &Batch, b: &Batch, what: &str) -> Result<()> {
    if a.n != b.n || a.d != b.d {
        return Err(Error::invalid(
            what,
            format!("shapes differ: [{}, {}] vs [{}, {}]", a.n, a.d, b.n, b.d),
        ));
    }
    if a.n == 0 {
        return Err(Error::invalid(what, "expected at least one sample"));
    }
    Ok(())
}

/// Per-sample L2 distances between `samples` and `reference`, summarised.
pub fn error_stats(samples: &Batch, reference: &Batch) -> Result<ErrorStats> {
    check_same_shape(samples, reference, "reference")?;
    let mut dist: Vec<f64> = (0..samples.n)
        .map(|i| {
            samples
                .row(i)
                .iter()
                .zip(reference.row(i))
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    dist.sort_by(f64::total_cmp);
    let n = dist.len();
    let quantile = |q: f64| {
        let pos = q * (n - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        dist[lo] + (pos - lo as f64) * (dist[hi] - dist[lo])
    };
    Ok(ErrorStats {
        mean: dist.iter().sum::<f64>() / n as f64,
        rms: (dist.iter().map(|d| d * d).sum::<f64>() / n as f64).sqrt(),
        median: quantile(0.5),
        p95: quantile(0.95),
        max: dist[n - 1],
    })
}

/// Mean and covariance of a Gaussian (or of a sample).
#[derive(Clone, Debug)]
pub struct Moments {
    pub mean: DVector<f64>,
    pub cov: DMatrix<f64>,
}

/// The exact mean and covariance of a mixture:
/// `m = Σ w μ`, `C = Σ w (diag(c²) + μ μᵀ) - m mᵀ`.
pub fn mixture_moments(m: &GaussianMixture) -> Moments {
    let d = m.dim();
    let mut mean = DVector::zeros(d);
    let mut second = DMatrix::zeros(d, d);
    for k in 0..m.components() {
        let w = m.weights()[k];
        let mu = DVector::from_column_slice(m.mean_of(k));
        mean += w * &mu;
        second += w * (&mu * mu.transpose());
        for (j, c) in m.std_of(k).iter().enumerate() {
            second[(j, j)] += w * c * c;
        }
    }
    let cov = second - &mean * mean.transpose();
    Moments { mean, cov }
}

/// Sample mean and unbiased covariance.
pub fn sample_moments(x: &Batch) -> Result<Moments> {
    if x.n < 2 {
        return Err(Error::invalid(
            "samples",
            format!("need at least 2 samples for a covariance, got {}", x.n),
        ));
    }
    let m = DMatrix::from_row_slice(x.n, x.d, &x.data);
    let mean = DVector::from_iterator(x.d, (0..x.d).map(|j| m.column(j).mean()));
    let centered = DMatrix::from_fn(x.n, x.d, |i, j| m[(i, j)] - mean[j]);
    let cov = centered.transpose() * &centered / (x.n - 1) as f64;
    Ok(Moments { mean, cov })
}

/// Square root of a symmetric positive semi-definite matrix (negative eigenvalues from
/// round-off are clipped to zero).
fn sqrt_psd(a: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (a + a.transpose()) * 0.5;
    let eig = SymmetricEigen::new(sym);
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&roots) * eig.eigenvectors.transpose()
}

/// Fréchet distance `‖m₁ - m₂‖² + tr(C₁ + C₂ - 2 (C₁^{½} C₂ C₁^{½})^{½})` between two
/// Gaussians (Dowson & Landau 1982), with symmetric eigendecompositions.
pub fn frechet(a: &Moments, b: &Moments) -> f64 {
    let s1 = sqrt_psd(&a.cov);
    let cross = sqrt_psd(&(&s1 * &b.cov * &s1));
    (&a.mean - &b.mean).norm_squared() + a.cov.trace() + b.cov.trace() - 2.0 * cross.trace()
}

/// Fréchet distance of samples to a mixture's exact moments (no second sample needed).
pub fn frechet_to_mixture(x: &Batch, m: &GaussianMixture) -> Result<f64> {
    if x.d != m.dim() {
        return Err(Error::invalid(
            "samples",
            format!("dimension {} vs model {}", x.d, m.dim()),
        ));
    }
    Ok(frechet(&sample_moments(x)?, &mixture_moments(m)))
}

/// Sliced 2-Wasserstein distance between equally sized samples: the root mean, over
/// `projections` seeded random directions, of the squared 1-D W2 between projections.
pub fn sliced_wasserstein(x: &Batch, y: &Batch, projections: usize, seed: u64) -> Result<f64> {
    check_same_shape(x, y, "samples")?;
    let mut total = 0.0;
    for p in 0..projections {
        let mut dir = noise::normals(seed, Purpose::Other, 1000 + p as u64, x.d);
        let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
        dir.iter_mut().for_each(|v| *v /= norm);
        let project = |b: &Batch| {
            let mut v: Vec<f64> = (0..b.n)
                .map(|i| b.row(i).iter().zip(&dir).map(|(a, d)| a * d).sum())
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let (px, py) = (project(x), project(y));
        total += px
            .iter()
            .zip(&py)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / x.n as f64;
    }
    Ok((total / projections as f64).sqrt())
}

/// Kernel of an MMD estimate.
#[derive(Clone, Copy, Debug)]
pub enum Kernel {
    /// `exp(-‖x - y‖² / (2 h²))`.
    Rbf { bandwidth: f64 },
    /// `(xᵀy / d + 1)³`, the KID kernel (Bińkowski et al. 2018).
    Cubic,
}

impl Kernel {
    fn eval(&self, a: &[f64], b: &[f64]) -> f64 {
        match *self {
            Kernel::Rbf { bandwidth } => {
                let d2: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
                (-d2 / (2.0 * bandwidth * bandwidth)).exp()
            }
            Kernel::Cubic => {
                let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                (dot / a.len() as f64 + 1.0).powi(3)
            }
        }
    }
}

/// Unbiased estimate of MMD² between the distributions of `x` and `y` (Gretton et al.
/// 2012, eq. 3): within-sample sums exclude the diagonal. KID is this with [`Kernel::Cubic`].
pub fn mmd2_unbiased(x: &Batch, y: &Batch, kernel: Kernel) -> Result<f64> {
    if x.d != y.d || x.n < 2 || y.n < 2 {
        return Err(Error::invalid(
            "samples",
            "need two sample sets of the same dimension, each with ≥ 2 samples",
        ));
    }
    let within = |b: &Batch| {
        let mut s = 0.0;
        for i in 0..b.n {
            for j in 0..b.n {
                if i != j {
                    s += kernel.eval(b.row(i), b.row(j));
                }
            }
        }
        s / (b.n * (b.n - 1)) as f64
    };
    let mut cross = 0.0;
    for i in 0..x.n {
        for j in 0..y.n {
            cross += kernel.eval(x.row(i), y.row(j));
        }
    }
    Ok(within(x) + within(y) - 2.0 * cross / (x.n * y.n) as f64)
}

/// Mean negative log-likelihood of samples under the mixture's exact density.
pub fn nll(x: &Batch, m: &GaussianMixture) -> Result<f64> {
    if x.d != m.dim() || x.n == 0 {
        return Err(Error::invalid(
            "samples",
            format!("expected [N ≥ 1, {}], got [{}, {}]", m.dim(), x.n, x.d),
        ));
    }
    Ok(-m.log_density(x).iter().sum::<f64>() / x.n as f64)
}

/// Fraction of samples whose most probable component (at t = 0) is each component.
pub fn mode_fractions(m: &GaussianMixture, x: &Batch) -> Vec<f64> {
    let mut counts = vec![0usize; m.components()];
    for i in 0..x.n {
        let row = x.row(i);
        let best = (0..m.components())
            .map(|k| {
                let q: f64 = row
                    .iter()
                    .zip(m.mean_of(k).iter().zip(m.std_of(k)))
                    .map(|(x, (mu, c))| ((x - mu) / c).powi(2) + 2.0 * c.ln())
                    .sum();
                m.weights()[k].ln() - 0.5 * q
            })
            .enumerate()
            .fold(
                (0, f64::NEG_INFINITY),
                |acc, (k, v)| if v > acc.1 { (k, v) } else { acc },
            );
        counts[best.0] += 1;
    }
    counts
        .iter()
        .map(|&c| c as f64 / x.n.max(1) as f64)
        .collect()
}

/// Largest gap between a component's sample fraction and its weight.
pub fn mode_coverage_gap(m: &GaussianMixture, x: &Batch) -> f64 {
    mode_fractions(m, x)
        .iter()
        .zip(m.weights())
        .map(|(f, w)| (f - w).abs())
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builtin;

    fn gaussian_moments(mean: &[f64], cov: DMatrix<f64>) -> Moments {
        Moments {
            mean: DVector::from_column_slice(mean),
            cov,
        }
    }

    #[test]
    fn frechet_of_identical_moments_is_zero_and_of_two_gaussians_matches_closed_form() {
        let m = mixture_moments(&builtin("mix16d").unwrap());
        assert!(frechet(&m, &m).abs() < 1e-9, "{}", frechet(&m, &m));
        // Diagonal covariances: ‖Δm‖² + Σ (s₁ - s₂)².
        let a = gaussian_moments(
            &[0.0, 1.0],
            DMatrix::from_diagonal(&DVector::from_vec(vec![4.0, 1.0])),
        );
        let b = gaussian_moments(
            &[1.0, -1.0],
            DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 9.0])),
        );
        let expected = 1.0 + 4.0 + (2.0f64 - 1.0).powi(2) + (1.0f64 - 3.0).powi(2);
        assert!((frechet(&a, &b) - expected).abs() < 1e-12);
        // Non-commuting covariances: the distance is symmetric.
        let c = gaussian_moments(
            &[0.0, 0.0],
            DMatrix::from_row_slice(2, 2, &[2.0, 0.9, 0.9, 1.0]),
        );
        let d = gaussian_moments(
            &[0.5, 0.0],
            DMatrix::from_row_slice(2, 2, &[1.0, -0.3, -0.3, 3.0]),
        );
        assert!((frechet(&c, &d) - frechet(&d, &c)).abs() < 1e-12);
        assert!(frechet(&c, &d) > 0.25);
    }

    #[test]
    fn exact_mixture_samples_have_small_frechet_distance_to_the_exact_moments() {
        let m = builtin("ring2d").unwrap();
        let fd = frechet_to_mixture(&m.sample(20_000, 1), &m).unwrap();
        // Sampling error of mean and covariance: O(d·tr C / n) ≈ 2·16/20000.
        assert!(fd < 0.02, "{fd}");
        // A shift v moves only the mean: FD grows by |v|² + 2 (m̂ - m)·v, exactly.
        let x = m.sample(20_000, 1);
        let shifted = x.zip_map(&x, |a, _| a + 0.5);
        let fd_shift = frechet_to_mixture(&shifted, &m).unwrap();
        let dm = sample_moments(&x).unwrap().mean - mixture_moments(&m).mean;
        let expected = fd + 0.5 + 2.0 * 0.5 * dm.sum();
        assert!(
            (fd_shift - expected).abs() < 1e-9,
            "{fd_shift} vs {expected}"
        );
    }

    #[test]
    fn sliced_wasserstein_of_a_shift_is_its_length_over_root_d() {
        let x = crate::noise::draw(2000, 4, 3);
        let y = x.zip_map(&x, |a, _| a + 1.0); // shift by (1, 1, 1, 1): |v| = 2
        let sw = sliced_wasserstein(&x, &y, 400, 7).unwrap();
        assert!((sw - 1.0).abs() < 0.07, "E[(θ·v)²] = |v|²/d = 1: {sw}");
        assert_eq!(sliced_wasserstein(&x, &x, 50, 7).unwrap(), 0.0);
    }

    #[test]
    fn kid_and_mmd_are_unbiased_on_same_distribution_and_positive_on_different() {
        let (mut kid_same, mut mmd_same) = (0.0, 0.0);
        let reps = 20;
        for r in 0..reps {
            let a = crate::noise::draw(100, 2, 100 + r);
            let b = crate::noise::draw(100, 2, 200 + r);
            kid_same += mmd2_unbiased(&a, &b, Kernel::Cubic).unwrap() / reps as f64;
            mmd_same +=
                mmd2_unbiased(&a, &b, Kernel::Rbf { bandwidth: 1.0 }).unwrap() / reps as f64;
        }
        let a = crate::noise::draw(100, 2, 1);
        let far = crate::noise::draw(100, 2, 2).zip_map(&Batch::zeros(100, 2), |v, _| v + 1.0);
        let kid_far = mmd2_unbiased(&a, &far, Kernel::Cubic).unwrap();
        let mmd_far = mmd2_unbiased(&a, &far, Kernel::Rbf { bandwidth: 1.0 }).unwrap();
        // Unbiased: the average over independent repeats sits at 0 within a few standard
        // errors of the far case's scale; a biased (V-statistic) estimate would be ≈ +0.02.
        assert!(kid_same.abs() < 0.05 * kid_far, "{kid_same} vs {kid_far}");
        assert!(mmd_same.abs() < 0.05 * mmd_far, "{mmd_same} vs {mmd_far}");
        assert!(kid_far > 0.5 && mmd_far > 0.1, "{kid_far} {mmd_far}");
    }

    #[test]
    fn nll_of_standard_normal_samples_is_the_entropy() {
        let g = GaussianMixture::gaussian("n", vec![0.0], vec![1.0]).unwrap();
        let x = crate::noise::draw(50_000, 1, 9);
        let expected = 0.5 * (2.0 * std::f64::consts::PI).ln() + 0.5;
        assert!((nll(&x, &g).unwrap() - expected).abs() < 0.01);
    }

    #[test]
    fn exact_samples_cover_modes_in_proportion_to_weights() {
        let m = builtin("ring2d").unwrap();
        assert!(mode_coverage_gap(&m, &m.sample(40_000, 2)) < 0.006);
        let one_mode = Batch::new(3, 2, vec![4.0, 0.0, 4.1, 0.1, 3.9, -0.1]).unwrap();
        assert!((mode_fractions(&m, &one_mode)[0] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn error_stats_quantiles_on_a_known_set() {
        let r = Batch::zeros(5, 1);
        let x = Batch::new(5, 1, vec![1.0, -2.0, 3.0, 4.0, 5.0]).unwrap();
        let s = error_stats(&x, &r).unwrap();
        assert_eq!((s.mean, s.median, s.max), (3.0, 3.0, 5.0));
        assert!((s.rms - 11f64.sqrt()).abs() < 1e-12);
        assert!((s.p95 - 4.8).abs() < 1e-12);
        assert!(error_stats(&x, &Batch::zeros(4, 1)).is_err());
    }
}
