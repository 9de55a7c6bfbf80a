//! Standard normals 64 at a time, for the noise solvers inject at every step.
//!
//! The ziggurat of Marsaglia & Tsang (2000) with 2 048 layers, in the symmetric form of
//! Doornik (2005), on 32-bit words: a word's low 11 bits pick a layer `i`, its top 21 bits
//! `m` (signed) the uniform `u = (2m + 1)/2²¹ ∈ (−1, 1)`, and the draw is `x = u·X[i]` when
//! `|x| < X[i+1]` (99.77 % of draws). Each 64-bit output of 32 Xoshiro256++ lanes
//! (Blackman & Vigna 2021) gives two words, so one generator step yields 64 draws; the
//! rectangle test is an integer comparison, `|2m + 1| < K[i]`, against a table that packs
//! `K[i]` with `X[i]/2²¹` (as an f32) into one 64-bit entry: one gathered load per draw.
//! The rare rest — the wedge test, the tail beyond R, or a fresh draw after a rejection —
//! finishes on a scalar generator, in element order, after every 2 048 values, so the
//! vector loop has no data-dependent branch.
//!
//! The normals are f32 values, as `torch.randn`'s are: f32 products of 21-bit uniforms, 8
//! to a vector, faster than f64 products of 52-bit uniforms with two gathered loads a draw.
//! (An AVX-512 copy drew faster alone, but lowered the core's clock for the model calls that
//! follow, and whole runs were slower; see `simd` and docs/performance.md.)
//! The law is the ziggurat's up to that resolution: the uniform sits on a grid of 2⁻²⁰,
//! and each layer's box is `X[i]` rounded up to the f32 grid (at most 6·10⁻⁸ wider, which
//! only adds to the rejections the wedge test resolves). The hand-written AVX2 kernel,
//! chosen at run time, does the same IEEE operations as the portable code in the same
//! order, so the numbers are bit-identical on every instruction set (tested).
//! Layers: with the usual 256, the rejected draws (1.49 %, each a branch misprediction, an
//! `exp` and a scalar draw) cost a third of the time; 2 048 layers reject 0.23 %, and the
//! 16 KiB table stays in L1.

use rand::{Rng, RngCore};
use rand_distr::{Distribution, Open01, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::sync::OnceLock;

/// Generator lanes stepped together.
pub const LANES: usize = 32;
/// Draws per generator step: two 32-bit words from each lane's 64-bit output.
const CHUNK: usize = 2 * LANES;
/// Chunks whose rejected draws are finished together (2 048 values).
const SPAN: usize = 32;

/// Layers of the ziggurat.
const LAYERS: usize = 2048;
/// Start of the tail: with V, the R for which 2 048 layers of area V close at the top,
/// `X[2047]·(1 − f(X[2047])) = V` (found by bisection; checked by a test).
const R: f64 = 4.216_370_409_511_896;
/// Area of each layer (and of the base strip with the tail): `R·f(R) + ∫_R^∞ f`.
const V: f64 = 0.000_612_606_517_624_048_5;

/// The layer index: the low 11 bits of a word (the uniform takes the top 21).
const INDEX_BITS: u32 = 11;
const INDEX_MASK: u32 = LAYERS as u32 - 1;
const _: () = assert!(LAYERS == 1 << INDEX_BITS);
/// Denominator of the uniform `(2m + 1)/2²¹`.
const UNIFORM_DENOMINATOR: f64 = (1u64 << (32 - INDEX_BITS)) as f64;

/// `F[i] = f(X[i])` at the layer edges, `f(x) = exp(−x²/2)`, and the fast path's packed
/// entries.
struct Tables {
    f: [f64; LAYERS + 1],
    /// Per layer: the low half `w[i]`, the bits of the f32 nearest above `X[i]/2²¹`; the
    /// high half `K[i]`, the least integer with `K[i]·w[i] ≥ X[i+1]`, so that
    /// `|2m + 1| < K[i]` exactly when `|(2m + 1)·w[i]| < X[i+1]`.
    packed: [u64; LAYERS],
}

fn pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp()
}

/// Layer edges `X[0] = V/f(R) > X[1] = R > … > X[2048] = 0`.
fn edges() -> [f64; LAYERS + 1] {
    let mut x = [0.0; LAYERS + 1];
    x[0] = V / pdf(R);
    x[1] = R;
    for i in 2..LAYERS {
        // Each layer has area V: X[i] solves f(X[i]) = f(X[i-1]) + V / X[i-1].
        x[i] = (-2.0 * (pdf(x[i - 1]) + V / x[i - 1]).ln()).sqrt();
    }
    x[LAYERS] = 0.0;
    x
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let x = edges();
        let f = std::array::from_fn(|i| pdf(x[i]));
        let packed = std::array::from_fn(|i| {
            let exact = x[i] / UNIFORM_DENOMINATOR;
            let mut w = exact as f32;
            if f64::from(w) < exact {
                w = f32::from_bits(w.to_bits() + 1);
            }
            let w64 = f64::from(w);
            // k·w is exact in f64 (k < 2²³, w has 24 significant bits).
            let mut k = (x[i + 1] / w64).ceil() as u64;
            while k > 0 && (k - 1) as f64 * w64 >= x[i + 1] {
                k -= 1;
            }
            while (k as f64) * w64 < x[i + 1] {
                k += 1;
            }
            u64::from(w.to_bits()) | k << 32
        });
        Tables { f, packed }
    })
}

/// The lanes' Xoshiro256++ states, lane-major per state word, and the scalar generator
/// that finishes rejected draws.
pub struct Lanes {
    s: [[u64; LANES]; 4],
    scalar: Xoshiro256PlusPlus,
}

impl Lanes {
    /// Lanes seeded from `scalar`, which then finishes the rare draws the fast test rejects.
    pub fn new(mut scalar: Xoshiro256PlusPlus) -> Self {
        let mut s = [[0u64; LANES]; 4];
        for l in 0..LANES {
            for w in s.iter_mut() {
                w[l] = scalar.next_u64();
            }
            if (0..4).all(|w| s[w][l] == 0) {
                s[0][l] = 1;
            }
        }
        Lanes { s, scalar }
    }
}

/// Runs the fast path over the whole chunks of `out` (a multiple of `CHUNK` values, at most
/// a span): steps the lanes once per chunk, keeps the chunk's outputs in `bits`, adds
/// `scale·z` for the accepted draws, and sets bit j of the chunk's `rejected` mask for each
/// element j left to finish (element `2l + h` is half h of lane l's output).
type SpanKernel = unsafe fn(
    s: &mut [[u64; LANES]; 4],
    t: &Tables,
    scale: f64,
    out: &mut [f64],
    bits: &mut [[u64; LANES]],
    rejected: &mut [u64],
);

/// The widest kernel this CPU runs.
fn kernel() -> SpanKernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            return x86::span_avx2;
        }
    }
    span_portable
}

/// `out[i] += scale · z_i` for the next `out.len()` normals of the lanes (any length; a call
/// that ends inside a chunk of 64 draws discards the rest of that chunk, so calls continue
/// one another's numbers when every call but the last covers whole chunks).
pub fn add_scaled(lanes: &mut Lanes, scale: f64, out: &mut [f64]) {
    add_scaled_with(kernel(), lanes, scale, out)
}

/// [`add_scaled`] with a given kernel, which must be one this CPU runs.
fn add_scaled_with(kernel: SpanKernel, lanes: &mut Lanes, scale: f64, out: &mut [f64]) {
    let t = tables();
    let mut bits = [[0u64; LANES]; SPAN];
    let mut rejected = [0u64; SPAN];
    for span in out.chunks_mut(SPAN * CHUNK) {
        let whole = span.len() / CHUNK;
        let (full, rest) = span.split_at_mut(whole * CHUNK);
        // SAFETY: callers pass an x86 kernel only where the CPU has its features (`kernel()`
        // and the tests check).
        unsafe { kernel(&mut lanes.s, t, scale, full, &mut bits, &mut rejected) };
        let mut chunks = whole;
        if !rest.is_empty() {
            // A short last chunk runs padded: the lanes step once for it, as for any chunk.
            let mut pad = [0.0; CHUNK];
            pad[..rest.len()].copy_from_slice(rest);
            let (b, r) = (&mut bits[whole..], &mut rejected[whole..]);
            // SAFETY: as above.
            unsafe { kernel(&mut lanes.s, t, scale, &mut pad, b, r) };
            rest.copy_from_slice(&pad[..rest.len()]);
            rejected[whole] &= (1u64 << rest.len()) - 1;
            chunks += 1;
        }
        let pending = (0..chunks).filter(|&c| rejected[c] != 0);
        for c in pending {
            let mut mask = rejected[c];
            while mask != 0 {
                let j = mask.trailing_zeros() as usize;
                let z = finish(t, word(&bits[c], j), &mut lanes.scalar);
                span[c * CHUNK + j] += scale * z;
                mask &= mask - 1;
            }
        }
    }
}

/// Element j of a chunk: half `j % 2` of lane `j / 2`'s output.
fn word(bits: &[u64; LANES], j: usize) -> u32 {
    (bits[j / 2] >> (32 * (j % 2))) as u32
}

/// One Xoshiro256++ step of every lane, the outputs into `bits`.
#[inline(always)]
fn step_lanes(s: &mut [[u64; LANES]; 4], bits: &mut [u64; LANES]) {
    for l in 0..LANES {
        let [s0, s1, s2, s3] = [s[0][l], s[1][l], s[2][l], s[3][l]];
        bits[l] = s0.wrapping_add(s3).rotate_left(23).wrapping_add(s0);
        let x = s1 << 17;
        let s2 = s2 ^ s0;
        let s3 = s3 ^ s1;
        let s1 = s1 ^ s2;
        let s0 = s0 ^ s3;
        let s2 = s2 ^ x;
        let s3 = s3.rotate_left(45);
        (s[0][l], s[1][l], s[2][l], s[3][l]) = (s0, s1, s2, s3);
    }
}

/// The odd integer `2m + 1` for the signed top 21 bits `m` of a word.
#[inline(always)]
fn odd_uniform(word: u32) -> i32 {
    ((word as i32) >> (INDEX_BITS - 1)) | 1
}

/// The rectangle test of one word: the draw as an f32 (0 when rejected), and acceptance.
#[inline(always)]
fn fast(t: &Tables, word: u32) -> (f32, bool) {
    let entry = t.packed[(word & INDEX_MASK) as usize];
    let m = odd_uniform(word);
    let ok = m.unsigned_abs() < (entry >> 32) as u32;
    let x = m as f32 * f32::from_bits(entry as u32);
    (if ok { x } else { 0.0 }, ok)
}

/// The reference kernel (see [`SpanKernel`]); the x86 kernels reproduce it bit for bit.
fn span_portable(
    s: &mut [[u64; LANES]; 4],
    t: &Tables,
    scale: f64,
    out: &mut [f64],
    bits: &mut [[u64; LANES]],
    rejected: &mut [u64],
) {
    for ((chunk, bits), rejected) in out.chunks_exact_mut(CHUNK).zip(bits).zip(rejected) {
        step_lanes(s, bits);
        *rejected = 0;
        for (j, o) in chunk.iter_mut().enumerate() {
            let (z, ok) = fast(t, word(bits, j));
            *o += scale * f64::from(z);
            *rejected |= u64::from(!ok) << j;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The fast path with explicit vector instructions: the portable code's operations on
    //! 8 words at once, the lanes' states held in registers.
    use super::{Tables, CHUNK, INDEX_BITS, INDEX_MASK, LANES};
    use std::arch::x86_64::*;

    /// `x` rotated left by `K` bits, in each 64-bit lane (AVX2 has no rotate).
    #[inline(always)]
    fn rotl<const K: i32, const L: i32>(x: __m256i) -> __m256i {
        // SAFETY: called only from `span_avx2`, which requires AVX2.
        unsafe { _mm256_or_si256(_mm256_slli_epi64::<K>(x), _mm256_srli_epi64::<L>(x)) }
    }

    /// [`super::SpanKernel`] on AVX2: a vector of four lanes' outputs is 8 words, the
    /// chunk's elements 8q … 8q + 7.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn span_avx2(
        s: &mut [[u64; LANES]; 4],
        t: &Tables,
        scale: f64,
        out: &mut [f64],
        bits: &mut [[u64; LANES]],
        rejected: &mut [u64],
    ) {
        const V: usize = LANES / 4;
        let load = |w: &[u64; LANES]| -> [__m256i; V] {
            // SAFETY: each load reads 4 of the word's 32 lanes.
            std::array::from_fn(|q| unsafe { _mm256_loadu_si256(w[4 * q..].as_ptr().cast()) })
        };
        let mut st = [load(&s[0]), load(&s[1]), load(&s[2]), load(&s[3])];
        let table = t.packed.as_ptr().cast::<i64>();
        let index_mask = _mm256_set1_epi32(INDEX_MASK as i32);
        let one = _mm256_set1_epi32(1);
        let scale = _mm256_set1_pd(scale);
        for ((chunk, bits), rejected) in out.chunks_exact_mut(CHUNK).zip(bits).zip(rejected) {
            let mut mask = 0u64;
            for q in 0..V {
                let [s0, s1, s2, s3] = [st[0][q], st[1][q], st[2][q], st[3][q]];
                let w = _mm256_add_epi64(rotl::<23, 41>(_mm256_add_epi64(s0, s3)), s0);
                let x = _mm256_slli_epi64::<17>(s1);
                let s2 = _mm256_xor_si256(s2, s0);
                let s3 = _mm256_xor_si256(s3, s1);
                let s1 = _mm256_xor_si256(s1, s2);
                let s0 = _mm256_xor_si256(s0, s3);
                let s2 = _mm256_xor_si256(s2, x);
                let s3 = rotl::<45, 19>(s3);
                (st[0][q], st[1][q], st[2][q], st[3][q]) = (s0, s1, s2, s3);
                // SAFETY: writes lanes 4q … 4q + 3 of the chunk's 32.
                unsafe { _mm256_storeu_si256(bits[4 * q..].as_mut_ptr().cast(), w) };
                let index = _mm256_and_si256(w, index_mask);
                let m = _mm256_or_si256(_mm256_srai_epi32::<{ INDEX_BITS as i32 - 1 }>(w), one);
                // SAFETY: indices are below LAYERS, the table's length.
                let (e0, e1) = unsafe {
                    (
                        _mm256_i32gather_epi64::<8>(table, _mm256_castsi256_si128(index)),
                        _mm256_i32gather_epi64::<8>(table, _mm256_extracti128_si256::<1>(index)),
                    )
                };
                // Even 32-bit halves (widths) and odd ones (bounds) of the 8 entries, in
                // order: the in-lane shuffle leaves 64-bit blocks 0, 2, 1, 3.
                let (e0, e1) = (_mm256_castsi256_ps(e0), _mm256_castsi256_ps(e1));
                let unshuffle = |v: __m256| {
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
                };
                let width = unshuffle(_mm256_shuffle_ps::<0b10_00_10_00>(e0, e1));
                let bound =
                    _mm256_castps_si256(unshuffle(_mm256_shuffle_ps::<0b11_01_11_01>(e0, e1)));
                // Bounds are below 2²³, so the signed comparison is the unsigned one.
                let ok = _mm256_cmpgt_epi32(bound, _mm256_abs_epi32(m));
                let z = _mm256_mul_ps(_mm256_cvtepi32_ps(m), width);
                let z = _mm256_and_ps(z, _mm256_castsi256_ps(ok));
                let z_low = _mm256_cvtps_pd(_mm256_castps256_ps128(z));
                let z_high = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(z));
                let o = chunk[8 * q..8 * q + 8].as_mut_ptr();
                // SAFETY: two vectors of 4 within the 8 elements of `o`.
                unsafe {
                    let sum = _mm256_add_pd(_mm256_loadu_pd(o), _mm256_mul_pd(scale, z_low));
                    _mm256_storeu_pd(o, sum);
                    let o = o.add(4);
                    let sum = _mm256_add_pd(_mm256_loadu_pd(o), _mm256_mul_pd(scale, z_high));
                    _mm256_storeu_pd(o, sum);
                }
                let accepted = _mm256_movemask_ps(_mm256_castsi256_ps(ok)) as u64;
                mask |= (!accepted & 0xFF) << (8 * q);
            }
            *rejected = mask;
        }
        for (w, v) in s.iter_mut().zip(&st) {
            for (q, v) in v.iter().enumerate() {
                // SAFETY: writes 4 of the word's 32 lanes.
                unsafe { _mm256_storeu_si256(w[4 * q..].as_mut_ptr().cast(), *v) };
            }
        }
    }
}

/// The rest of a draw whose rectangle test failed: the tail for the base layer, the wedge
/// test otherwise, and on rejection a fresh draw (any exact normal continues the law);
/// rounded to f32 like the fast path's draws.
#[cold]
fn finish(t: &Tables, word: u32, rng: &mut Xoshiro256PlusPlus) -> f64 {
    let i = (word & INDEX_MASK) as usize;
    let m = odd_uniform(word);
    // Exact: 22 bits times 24.
    let x = f64::from(m) * f64::from(f32::from_bits(t.packed[i] as u32));
    let z = if i == 0 {
        // Marsaglia's tail: x = R + E₁/R with E₂ ≥ E₁²/2 … in log form.
        loop {
            let a: f64 = Open01.sample(rng);
            let a = a.ln() / R;
            let b: f64 = Open01.sample(rng);
            if -2.0 * b.ln() >= a * a {
                break if m < 0 { a - R } else { R - a };
            }
        }
    } else if t.f[i + 1] + (t.f[i] - t.f[i + 1]) * rng.random::<f64>() < pdf(x) {
        x
    } else {
        StandardNormal.sample(rng)
    };
    f64::from(z as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The constants R and V make a ziggurat: the base strip (rectangle to R plus the tail)
    /// has area V, and the layers built from it close at the top (`X[2048] = 0` with the
    /// last layer's area V), each layer of area V.
    #[test]
    fn the_layer_table_tiles_the_density_into_equal_areas() {
        let (t, x) = (tables(), edges());
        // ∫_R^∞ f by Simpson's rule on [R, R + 10] (the rest is below 1e-20).
        let (n, h) = (20_000, 10.0 / 20_000.0);
        let tail: f64 = (0..=n)
            .map(|k| {
                let w = if k == 0 || k == n {
                    1.0
                } else if k % 2 == 1 {
                    4.0
                } else {
                    2.0
                };
                w * pdf(R + k as f64 * h)
            })
            .sum::<f64>()
            * h
            / 3.0;
        assert!(
            (R * pdf(R) + tail - V).abs() < 1e-13,
            "{}",
            R * pdf(R) + tail - V
        );
        assert!((x[0] * t.f[1] - V).abs() < 1e-15 && x[1] == R);
        for (i, (edge, f)) in x
            .iter()
            .zip(t.f.windows(2))
            .enumerate()
            .skip(1)
            .take(LAYERS - 1)
        {
            let area = edge * (f[1] - f[0]);
            assert!(
                (area / V - 1.0).abs() < 1e-9,
                "layer {i}: area {area} vs {V}"
            );
        }
        assert!(x[LAYERS] == 0.0 && t.f[LAYERS] == 1.0);
        assert!(x.windows(2).all(|w| w[0] > w[1]));
        // The packed entries: the box width X[i] rounded up to an f32 grid point of the
        // uniform, and the least integer bound for the rectangle test.
        for i in 0..LAYERS {
            let (w, k) = (
                f64::from(f32::from_bits(t.packed[i] as u32)),
                (t.packed[i] >> 32) as f64,
            );
            let box_width = w * UNIFORM_DENOMINATOR;
            assert!(box_width >= x[i] && box_width <= x[i] * (1.0 + 2f64.powi(-23)));
            assert!(
                k * w >= x[i + 1] && (k == 0.0 || (k - 1.0) * w < x[i + 1]),
                "{i}"
            );
        }
    }

    /// The ziggurat one draw at a time, each rejection finished at once: what the span-wise
    /// kernels must reproduce.
    fn one_by_one(lanes: &mut Lanes, scale: f64, out: &mut [f64]) {
        let t = tables();
        for chunk in out.chunks_mut(CHUNK) {
            let mut bits = [0u64; LANES];
            step_lanes(&mut lanes.s, &mut bits);
            for (j, o) in chunk.iter_mut().enumerate() {
                let (z, ok) = fast(t, word(&bits, j));
                let z = if ok {
                    f64::from(z)
                } else {
                    finish(t, word(&bits, j), &mut lanes.scalar)
                };
                *o += scale * z;
            }
        }
    }

    /// Finishing rejected draws after each span of chunks gives the numbers of finishing
    /// each draw at once, for lengths that end mid-chunk and mid-span.
    #[test]
    fn span_wise_finishing_gives_the_draw_by_draw_numbers() {
        for len in [1, 63, 65, SPAN * CHUNK, SPAN * CHUNK + 7, 8192, 20_003] {
            let mut a = Lanes::new(Xoshiro256PlusPlus::seed_from_u64(9));
            let mut b = Lanes::new(Xoshiro256PlusPlus::seed_from_u64(9));
            let (mut x, mut y) = (vec![0.5; len], vec![0.5; len]);
            add_scaled(&mut a, 0.75, &mut x);
            one_by_one(&mut b, 0.75, &mut y);
            assert!(
                x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
                "length {len}"
            );
        }
    }

    /// Calls that cover whole chunks continue one another: 64·31 values then 3 001 are the
    /// first 5 005 values of one call.
    #[test]
    fn calls_of_whole_chunks_continue_one_another() {
        let mut a = Lanes::new(Xoshiro256PlusPlus::seed_from_u64(4));
        let mut b = Lanes::new(Xoshiro256PlusPlus::seed_from_u64(4));
        let (mut x, mut y) = (vec![0.0; 5005], vec![0.0; 5005]);
        add_scaled(&mut a, 1.0, &mut x);
        let (first, rest) = y.split_at_mut(64 * 31);
        add_scaled(&mut b, 1.0, first);
        add_scaled(&mut b, 1.0, rest);
        assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()));
    }

    /// Every kernel this CPU can run gives the portable kernel's bits, over calls that
    /// leave the lanes mid-span (the state carries between calls), with either sign of scale.
    #[test]
    fn every_kernel_gives_the_portable_kernels_bits() {
        let mut kernels: Vec<(&str, SpanKernel)> = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                kernels.push(("avx2", x86::span_avx2));
            }
        }
        for (name, kernel) in kernels {
            let mut a = Lanes::new(Xoshiro256PlusPlus::seed_from_u64(5));
            let mut b = Lanes::new(Xoshiro256PlusPlus::seed_from_u64(5));
            for (len, scale) in [(20_003, 1.5), (777, -0.25), (4096, 2.0)] {
                let (mut x, mut y) = (vec![0.25; len], vec![0.25; len]);
                add_scaled_with(kernel, &mut a, scale, &mut x);
                add_scaled_with(span_portable, &mut b, scale, &mut y);
                assert!(
                    x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{name}, length {len}"
                );
            }
        }
    }

    /// The normals are f32 values, the fast path's on the grid (2m + 1)·w[i], and the tail
    /// beyond R (drawn by the finishing code) is reached.
    #[test]
    fn normals_are_f32_values() {
        let mut lanes = Lanes::new(Xoshiro256PlusPlus::seed_from_u64(11));
        let mut z = vec![0.0; 200_000];
        add_scaled(&mut lanes, 1.0, &mut z);
        assert!(z.iter().all(|&v| f64::from(v as f32) == v));
        assert!(z.iter().any(|v| v.abs() > R));
        let distinct: std::collections::HashSet<u64> = z.iter().map(|v| v.to_bits()).collect();
        assert!(distinct.len() > 199_000, "{}", distinct.len());
    }
}
