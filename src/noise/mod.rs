//! Seeded, counter-based Gaussian noise.
//!
//! candle's CPU RNG cannot be seeded, so every random number in pfode comes from
//! Xoshiro256++ seeded by a hash of (seed, purpose, stream, block), with an independent
//! stream per use (step index, tree node…). A draw therefore never depends on which draws
//! came before it, nor on thread count. (Xoshiro256++ rather than ChaCha: noise generation
//! dominates stochastic samplers' cost beyond the model.) Noise drawn once per run (x_T,
//! data) uses `rand_distr`'s ziggurat; noise drawn at every step uses the faster vector
//! ziggurat of [`wide`] (f32-valued normals, as `torch.randn`'s; figures in
//! docs/performance.md).

pub mod wide;

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

/// Normals per independently keyed block: blocks are generated in parallel, and the
/// block structure (not the thread count) fixes which numbers land where.
pub const BLOCK: usize = 1 << 13;

/// What a stream of noise is for; part of the key so uses never share numbers.
#[derive(Clone, Copy, Debug)]
pub enum Purpose {
    /// The initial state x_T.
    InitialNoise = 1,
    /// Fresh noise injected by an ancestral / η > 0 step.
    StepNoise = 2,
    /// Midpoints of the virtual Brownian tree.
    BrownianNode = 3,
    /// Bridge samples below the tree's finest level.
    BrownianBridge = 4,
    /// Anything else a test or experiment needs (data sets, built-in models).
    Other = 5,
}

impl Purpose {
    /// Noise drawn at every solver step (not once per run) comes from the vector
    /// ziggurat of [`wide`], faster per normal: these draws are what stochastic samplers
    /// add to each model call.
    fn per_step(self) -> bool {
        matches!(
            self,
            Purpose::StepNoise | Purpose::BrownianNode | Purpose::BrownianBridge
        )
    }
}

/// The generator for (`seed`, `purpose`, `stream`).
pub fn rng(seed: u64, purpose: Purpose, stream: u64) -> Xoshiro256PlusPlus {
    block_rng(seed, purpose, stream, 0)
}

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn block_rng(seed: u64, purpose: Purpose, stream: u64, block: u64) -> Xoshiro256PlusPlus {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let key = [seed, purpose as u64, stream, block]
        .iter()
        .fold(0u64, |h, &v| mix(h.wrapping_add(GOLDEN) ^ mix(v)));
    Xoshiro256PlusPlus::seed_from_u64(key)
}

/// Standard-normal x_T for `n` samples of dimension `dim` from `seed`.
pub fn draw(n: usize, dim: usize, seed: u64) -> crate::Batch {
    crate::Batch {
        n,
        d: dim,
        data: normals(seed, Purpose::InitialNoise, 0, n * dim),
    }
}

/// `len` standard normals from (`seed`, `purpose`, `stream`).
pub fn normals(seed: u64, purpose: Purpose, stream: u64, len: usize) -> Vec<f64> {
    let mut out = vec![0.0; len];
    add_scaled_normals(seed, purpose, stream, 1.0, &mut out);
    out
}

/// `out[i] += scale · z_i` with the normals of [`normals`], without allocating them.
pub fn add_scaled_normals(seed: u64, purpose: Purpose, stream: u64, scale: f64, out: &mut [f64]) {
    if out.len() <= BLOCK {
        // One block: handing it to the thread pool costs more than drawing it.
        return add_scaled_normals_here(seed, purpose, stream, scale, out);
    }
    out.par_chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(b, chunk)| add_block(seed, purpose, stream, b, scale, chunk));
}

/// [`add_scaled_normals`] on the calling thread: the same numbers, without waking the
/// thread pool (which costs more than it saves for calls made many times per step).
pub fn add_scaled_normals_here(
    seed: u64,
    purpose: Purpose,
    stream: u64,
    scale: f64,
    out: &mut [f64],
) {
    add_scaled_normals_at(seed, purpose, stream, scale, 0, out);
}

/// [`add_scaled_normals_here`] for the part of a longer draw that starts at block
/// `first_block` (element `first_block · BLOCK`): a row tile draws exactly the numbers the
/// whole batch would give its rows.
pub fn add_scaled_normals_at(
    seed: u64,
    purpose: Purpose,
    stream: u64,
    scale: f64,
    first_block: usize,
    out: &mut [f64],
) {
    out.chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(b, chunk)| add_block(seed, purpose, stream, first_block + b, scale, chunk));
}

/// [`add_scaled_normals`] for elements `offset..offset + out.len()` of a longer draw, at
/// any offset: blocks the range starts or ends inside are drawn whole and sliced.
pub fn add_scaled_normals_from(
    seed: u64,
    purpose: Purpose,
    stream: u64,
    scale: f64,
    offset: usize,
    out: &mut [f64],
) {
    if offset.is_multiple_of(BLOCK) {
        return add_scaled_normals_at(seed, purpose, stream, scale, offset / BLOCK, out);
    }
    let (first, end) = (offset / BLOCK, (offset + out.len()).div_ceil(BLOCK));
    let mut z = vec![0.0; (end - first) * BLOCK];
    add_scaled_normals_at(seed, purpose, stream, 1.0, first, &mut z);
    let z = &z[offset - first * BLOCK..][..out.len()];
    out.iter_mut().zip(z).for_each(|(v, z)| *v += scale * z);
}

fn add_block(seed: u64, purpose: Purpose, stream: u64, b: usize, scale: f64, chunk: &mut [f64]) {
    let mut r = block_rng(seed, purpose, stream, b as u64);
    if purpose.per_step() {
        wide::add_scaled(&mut wide::Lanes::new(r), scale, chunk);
        return;
    }
    for v in chunk {
        let z: f64 = StandardNormal.sample(&mut r);
        *v += scale * z;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-step (vector) and once-per-run (`rand_distr`) ziggurats draw the same law:
    /// two-sample Kolmogorov–Smirnov on 10⁶ each, the moments to four, the 3σ and 4.2σ
    /// (beyond R: the tail code) frequencies.
    #[test]
    fn per_step_normals_have_the_law_of_the_scalar_ziggurat() {
        let n = 1_000_000;
        let mut a = normals(3, Purpose::StepNoise, 1, n);
        let mut b = normals(3, Purpose::Other, 1, n);
        let m = a.iter().sum::<f64>() / n as f64;
        let v = a.iter().map(|z| (z - m).powi(2)).sum::<f64>() / n as f64;
        let k = a.iter().map(|z| (z - m).powi(4)).sum::<f64>() / n as f64 / (v * v);
        let share = |c: f64| a.iter().filter(|z| z.abs() > c).count() as f64 / n as f64;
        // Standard errors: mean 1e-3, variance 1.4e-3, kurtosis 5e-3.
        assert!(
            m.abs() < 5e-3 && (v - 1.0).abs() < 7e-3 && (k - 3.0).abs() < 0.03,
            "{m} {v} {k}"
        );
        // P(|z| > 3) = 2.70e-3 (s.e. 5e-5); P(|z| > R) = 2.48e-5 (s.e. 5e-6), R = 4.216.
        assert!((share(3.0) - 2.70e-3).abs() < 2.5e-4, "{}", share(3.0));
        let beyond_r = share(4.216_370_409_511_896);
        assert!((beyond_r - 2.48e-5).abs() < 1.5e-5, "{beyond_r}");
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let (mut i, mut j, mut d) = (0, 0, 0.0f64);
        while i < n && j < n {
            if a[i] <= b[j] {
                i += 1;
            } else {
                j += 1;
            }
            d = d.max((i as f64 - j as f64).abs() / n as f64);
        }
        // 1 % critical value of the two-sample statistic: 1.63 · sqrt(2/n) = 2.3e-3.
        assert!(d < 2.3e-3, "KS distance {d}");
        assert_ne!(
            normals(3, Purpose::StepNoise, 1, 5),
            normals(3, Purpose::StepNoise, 2, 5)
        );
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a = normals(7, Purpose::StepNoise, 3, 1000);
        assert_eq!(a, normals(7, Purpose::StepNoise, 3, 1000));
        assert_ne!(a, normals(7, Purpose::StepNoise, 4, 1000));
        assert_ne!(a, normals(7, Purpose::InitialNoise, 3, 1000));
        let mean = a.iter().sum::<f64>() / 1000.0;
        let var = a.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 999.0;
        assert!(
            mean.abs() < 0.12 && (var - 1.0).abs() < 0.12,
            "{mean} {var}"
        );
    }
}
