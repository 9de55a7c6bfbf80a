//! dopri5's row-chunked attempts: the same arithmetic as `Dopri5::attempt`, the readable
//! stage-by-stage step in `solver/dopri5.rs`, run a chunk of rows at a time through the
//! model's row evaluator, with each stage point summed and scaled into the model's input in
//! one sweep and the error norm summed in interleaved lanes. Every element gets the same
//! operations in the same order, so the result is bit-identical to the readable step
//! (tested in `tests/tiles.rs` and below).

use super::super::{Ctx, Scratch};
use crate::batch::{combine_slices, set_combination_slices, Batch};
use crate::model::{all_finite, RowEvaluator};
use rayon::prelude::*;

/// The Dormand–Prince tableau the sums are built from (`a[j]`: stage j's weights; `e`: the
/// error estimate's).
#[derive(Clone, Copy)]
pub struct Tableau {
    pub a: [&'static [f64]; 7],
    pub e: [f64; 7],
}

/// Values per chunk of rows in a row-wise attempt: its eight chunk-sized arrays (five
/// slopes, stage point, model input, error) take 16 KiB of L1. Also the error norm's chunk.
pub(crate) const ROW_CHUNK: usize = 256;
/// Rows per chunk at most: the threads finish an attempt within about one chunk's time of
/// each other, and a row of a low-dimensional model costs as much as one of a high one
/// (on ring2d, 128-row chunks left the threads several times further apart per attempt).
pub(crate) const MAX_CHUNK_ROWS: usize = 32;

/// One element's share of the error norm: `(e / (atol + rtol·max(|a|, |b|)))²`.
#[inline(always)]
fn scaled_square(e: f64, a: f64, b: f64, rtol: f64, atol: f64) -> f64 {
    (e / (atol + rtol * a.abs().max(b.abs()))).powi(2)
}

/// Partial sums of the error norm in interleaved lanes: element `i` of a chunk goes to lane
/// `i mod LANES`, and a chunk's total adds the lanes in order. Chunk totals are added in
/// chunk order, so chunk-wise and whole-batch attempts get the same bits at any thread
/// count, and it vectorises (a sum in element order is a chain of dependent adds).
const LANES: usize = 16;

#[derive(Clone, Copy, Default)]
struct Squares([f64; LANES]);

impl Squares {
    /// Adds a chunk's elements.
    fn add(&mut self, e: &[f64], a: &[f64], b: &[f64], (rtol, atol): (f64, f64)) {
        add_squares(&mut self.0, e, None, a, b, rtol, atol);
    }

    /// Adds a chunk's elements of the error `e + c·k` (its last term added here, in order).
    #[allow(clippy::too_many_arguments)]
    fn add_error(
        &mut self,
        e: &[f64],
        c: f64,
        k: &[f64],
        a: &[f64],
        b: &[f64],
        (rtol, atol): (f64, f64),
    ) {
        add_squares(&mut self.0, e, Some((c, k)), a, b, rtol, atol);
    }

    fn total(&self) -> f64 {
        self.0.iter().fold(0.0, |s, l| s + l)
    }
}

crate::simd::wide_simd!(add_squares => add_squares_body(lanes: &mut [f64; LANES], e: &[f64], last: Option<(f64, &[f64])>, a: &[f64], b: &[f64], rtol: f64, atol: f64));

#[inline(always)]
fn add_squares_body(
    lanes: &mut [f64; LANES],
    e: &[f64],
    last: Option<(f64, &[f64])>,
    a: &[f64],
    b: &[f64],
    rtol: f64,
    atol: f64,
) {
    match last {
        None => squares::<false>(lanes, e, 0.0, e, a, b, rtol, atol),
        Some((c, k)) => squares::<true>(lanes, e, c, k, a, b, rtol, atol),
    }
}

/// The lanes' sums of the scaled squares of `e` (plus `c·k` if `LAST`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn squares<const LAST: bool>(
    lanes: &mut [f64; LANES],
    e: &[f64],
    c: f64,
    k: &[f64],
    a: &[f64],
    b: &[f64],
    rtol: f64,
    atol: f64,
) {
    let at = |e: f64, k: f64| if LAST { e + c * k } else { e };
    let whole = e.len() / LANES * LANES;
    let (e, e_rest) = e.split_at(whole);
    let (k, k_rest) = k.split_at(whole);
    let (a, a_rest) = a.split_at(whole);
    let (b, b_rest) = b.split_at(whole);
    for (((e, k), a), b) in e
        .chunks_exact(LANES)
        .zip(k.chunks_exact(LANES))
        .zip(a.chunks_exact(LANES))
        .zip(b.chunks_exact(LANES))
    {
        for l in 0..LANES {
            lanes[l] += scaled_square(at(e[l], k[l]), a[l], b[l], rtol, atol);
        }
    }
    let rest = e_rest.iter().zip(k_rest).zip(a_rest).zip(b_rest);
    for (l, (((&e, &k), &a), &b)) in rest.enumerate() {
        lanes[l] += scaled_square(at(e, k), a, b, rtol, atol);
    }
}

/// The error norm of `len` values from the sum of their scaled squares.
pub fn rms(sum: f64, len: usize) -> f64 {
    (sum / len as f64).sqrt()
}

/// Σ of the scaled squares over chunks of `chunk` elements, chunk totals added in order.
pub fn chunked_squares(e: &[f64], a: &[f64], b: &[f64], chunk: usize, tol: (f64, f64)) -> f64 {
    e.chunks(chunk)
        .zip(a.chunks(chunk).zip(b.chunks(chunk)))
        .map(|(e, (a, b))| {
            let mut s = Squares::default();
            s.add(e, a, b, tol);
            s.total()
        })
        .fold(0.0, |s, t| s + t)
}

/// The field at one stage's τ for a few rows at a time, when the model has a row evaluator
/// (the same arithmetic as `Field::at` in `solver/dopri5.rs`).
pub struct Stage<'a> {
    pub scale: f64,
    pub cu: f64,
    pub ce: f64,
    pub model: Box<dyn RowEvaluator + 'a>,
}

impl Stage<'_> {
    /// `k` = the slope at `u`, with `x` as scratch (unchecked: see `attempt_chunk`).
    fn slope(&self, u: &[f64], x: &mut [f64], k: &mut [f64]) {
        set_combination_slices(x, &[(self.scale, u)]);
        self.slope_at(x, u, k);
    }

    /// `k` = the slope at `u` given the model's input there, `x = scale·u` (`u` is read
    /// only where the slope has a term in it).
    fn slope_at(&self, x: &[f64], u: &[f64], k: &mut [f64]) {
        self.model.eps_rows(x, k);
        combine_slices(k, self.ce, &[(self.cu, u)]);
    }
}

/// `Dopri5::attempt` a chunk of rows at a time, the chunks shared out over the
/// threads in segments (`parallel::map_segments`): all seven stages of a chunk run while
/// its stage values are in L1, and the threads finish an attempt within about one
/// chunk's time of each other (whole tiles per thread ended much further apart). Each
/// element gets the same arithmetic, and the chunks' sums are added in order, so the
/// result is bit-identical. `None` if a value is not finite: the caller reruns the
/// attempt stage by stage, which reports a bad model output.
///
/// `stage_at(τ)` makes the stage evaluator at τ (each counts one model evaluation, so they are
/// made only once the attempt can run chunked): one for each of the six evaluations at `taus`.
pub fn attempt_in_chunks<'a>(
    ctx: &Ctx,
    tableau: Tableau,
    stage_at: &impl Fn(f64) -> Option<Stage<'a>>,
    taus: [f64; 6],
    h: f64,
    tol: (f64, f64),
    (u, k1): (&Batch, &Batch),
) -> Option<(f64, Scratch, Scratch)> {
    let step = StepSums::new(tableau, h)?;
    let stages: Vec<Stage> = taus
        .iter()
        .map(|&tau| stage_at(tau))
        .collect::<Option<_>>()?;
    let stages = &stages[..];
    let chunk = chunk_len(u.d);
    let (mut u_new, mut k7) = (ctx.batch_like(u), ctx.batch_like(u));
    let chunks: Vec<ChunkRows> = u
        .data
        .chunks(chunk)
        .zip(k1.data.chunks(chunk))
        .zip(u_new.data.chunks_mut(chunk).zip(k7.data.chunks_mut(chunk)))
        .map(|((u, k1), (u_new, k7))| ChunkRows { u, k1, u_new, k7 })
        .collect();
    let sums = crate::parallel::map_segments(chunks, |rows| {
        with_scratch(8 * chunk, |scratch| {
            attempt_chunk(stages, &step, tol, rows, scratch)
        })
    });
    let sum = sums.into_iter().try_fold(0.0, |s, t| Some(s + t?))?;
    Some((sum, u_new, k7))
}

/// One chunk's attempt, with `scratch` for its five slopes, a stage point, the model's
/// input and the error estimate's partial sum: writes the chunk's fifth-order point and
/// its slope, and returns its share of the error norm's sum, or `None` if a value is
/// not finite. The model's outputs are not checked one by one: every slope k₁ … k₅
/// enters the sixth stage's input with a nonzero weight, and k₆, k₇ the error estimate,
/// so a NaN or infinity in any of them shows in one of those two (checked: the sixth
/// stage's model input, and the error's sum of squares).
fn attempt_chunk(
    stages: &[Stage],
    sums: &StepSums,
    tol: (f64, f64),
    rows: ChunkRows,
    scratch: &mut [f64],
) -> Option<f64> {
    let ChunkRows { u, k1, u_new, k7 } = rows;
    let n = u.len();
    let (ks, rest) = scratch.split_at_mut(5 * n);
    let (uj, rest) = rest.split_at_mut(n);
    let (x, rest) = rest.split_at_mut(n);
    let err = &mut rest[..n];
    for j in 1..6 {
        let (done, next) = ks.split_at_mut((j - 1) * n);
        let mut terms: [&[f64]; 6] = [&[]; 6];
        terms[0] = u;
        terms[1] = k1;
        for (m, t) in terms[2..=j].iter_mut().enumerate() {
            *t = &done[m * n..(m + 1) * n];
        }
        let stage = &stages[j - 1];
        // The stage point itself is needed only where the slope has a term in it.
        let keep = (stage.cu != 0.0).then_some(&mut *uj);
        stage_point(&sums.stage[j - 1][..=j], &terms[..=j], stage.scale, keep, x);
        if j == 5 && !all_finite(x) {
            return None;
        }
        stage.slope_at(x, uj, &mut next[..n]);
    }
    let k = |m: usize| &ks[m * n..(m + 1) * n];
    let terms = [u, k1, k(1), k(2), k(3), k(4)];
    // The new point's slope (FSAL) has its own evaluator, at the step's end.
    let fsal = &stages[5];
    step_end(sums, terms, fsal.scale, u_new, x, err);
    fsal.slope_at(x, u_new, k7);
    let mut squares = Squares::default();
    squares.add_error(err, sums.err_last, k7, u, u_new, tol);
    let sum = squares.total();
    sum.is_finite().then_some(sum)
}

/// One chunk of rows of an attempt: the state and its slope, and where the fifth-order
/// point and its slope go.
struct ChunkRows<'a> {
    u: &'a [f64],
    k1: &'a [f64],
    u_new: &'a mut [f64],
    k7: &'a mut [f64],
}

/// The coefficients of one attempt's sums for a step of size h: each stage's point (the
/// state's, then the slopes'), the fifth-order point (state, k₁, k₃ … k₆: b₂ = 0) and the
/// error estimate (k₁, k₃ … k₆, then k₇: e₂ = 0).
struct StepSums {
    stage: [[f64; 6]; 5],
    end: [f64; 6],
    err: [f64; 5],
    err_last: f64,
}

impl StepSums {
    /// `None` if a coefficient is zero (h underflowed): the combination kernels skip a zero
    /// term, which these sums would not.
    fn new(Tableau { a, e }: Tableau, h: f64) -> Option<Self> {
        let mut stage = [[0.0; 6]; 5];
        for (j, c) in stage.iter_mut().enumerate() {
            c[0] = 1.0;
            for (c, w) in c[1..].iter_mut().zip(a[j + 1]) {
                *c = h * w;
            }
        }
        let slopes = [0, 2, 3, 4, 5];
        let end = [
            1.0,
            h * a[6][0],
            h * a[6][2],
            h * a[6][3],
            h * a[6][4],
            h * a[6][5],
        ];
        let err = slopes.map(|m| h * e[m]);
        let sums = StepSums {
            stage,
            end,
            err,
            err_last: h * e[6],
        };
        let nonzero = sums
            .stage
            .iter()
            .enumerate()
            .all(|(j, c)| c[..j + 2].iter().all(|&c| c != 0.0))
            && sums.end.iter().chain(&sums.err).all(|&c| c != 0.0)
            && sums.err_last != 0.0;
        nonzero.then_some(sums)
    }
}

crate::simd::wide_simd!(stage_point => stage_point_body(c: &[f64], terms: &[&[f64]], scale: f64, keep: Option<&mut [f64]>, x: &mut [f64]));

/// `x = scale·Σ c_m·terms_m` (summed left to right, as the combination kernels do, so the
/// bits are theirs), the sum also into `keep` when given, in one sweep.
#[inline(always)]
fn stage_point_body(
    c: &[f64],
    terms: &[&[f64]],
    scale: f64,
    keep: Option<&mut [f64]>,
    x: &mut [f64],
) {
    match (terms.len(), keep) {
        (2, None) => point::<2, false>(c, terms, scale, &mut [], x),
        (3, None) => point::<3, false>(c, terms, scale, &mut [], x),
        (4, None) => point::<4, false>(c, terms, scale, &mut [], x),
        (5, None) => point::<5, false>(c, terms, scale, &mut [], x),
        (6, None) => point::<6, false>(c, terms, scale, &mut [], x),
        (2, Some(k)) => point::<2, true>(c, terms, scale, k, x),
        (3, Some(k)) => point::<3, true>(c, terms, scale, k, x),
        (4, Some(k)) => point::<4, true>(c, terms, scale, k, x),
        (5, Some(k)) => point::<5, true>(c, terms, scale, k, x),
        (6, Some(k)) => point::<6, true>(c, terms, scale, k, x),
        (n, _) => unreachable!("a stage point of {n} terms"),
    }
}

/// Elements per block of the one-sweep kernels: a block's terms are loaded into arrays
/// first, so the compiler needs no proof that the outputs do not overlap them to keep the
/// block in vector registers (on slices of slices it fell back to a scalar loop).
const UNROLL: usize = 8;

#[inline(always)]
fn point<const N: usize, const KEEP: bool>(
    c: &[f64],
    terms: &[&[f64]],
    scale: f64,
    keep: &mut [f64],
    x: &mut [f64],
) {
    let n = x.len();
    let c: [f64; N] = std::array::from_fn(|m| c[m]);
    let t: [&[f64]; N] = std::array::from_fn(|m| &terms[m][..n]);
    let sum = |i: usize| {
        let mut s = c[0] * t[0][i];
        for m in 1..N {
            s += c[m] * t[m][i];
        }
        s
    };
    let whole = n / UNROLL * UNROLL;
    for start in (0..whole).step_by(UNROLL) {
        let block: [[f64; UNROLL]; N] =
            std::array::from_fn(|m| t[m][start..start + UNROLL].try_into().expect("a block"));
        let mut s = [0.0; UNROLL];
        for l in 0..UNROLL {
            s[l] = c[0] * block[0][l];
            for m in 1..N {
                s[l] += c[m] * block[m][l];
            }
        }
        if KEEP {
            keep[start..start + UNROLL].copy_from_slice(&s);
        }
        for (x, s) in x[start..start + UNROLL].iter_mut().zip(s) {
            *x = scale * s;
        }
    }
    for i in whole..n {
        let s = sum(i);
        if KEEP {
            keep[i] = s;
        }
        x[i] = scale * s;
    }
}

crate::simd::wide_simd!(step_end => step_end_body(sums: &StepSums, terms: [&[f64]; 6], scale: f64, u_new: &mut [f64], x: &mut [f64], err: &mut [f64]));

/// In one sweep: the fifth-order point `u_new` from the state and slopes `terms` (u, k₁,
/// k₃ … k₆), the model's input `x = scale·u_new`, and the error estimate's sum but its
/// last term (k₇'s, added by [`Squares::add_error`]); left to right, as the combination
/// kernels sum.
#[inline(always)]
fn step_end_body(
    sums: &StepSums,
    terms: [&[f64]; 6],
    scale: f64,
    u_new: &mut [f64],
    x: &mut [f64],
    err: &mut [f64],
) {
    let n = u_new.len();
    let [u, k1, k3, k4, k5, k6] = terms.map(|t| &t[..n]);
    let (x, err) = (&mut x[..n], &mut err[..n]);
    let [b0, b1, b3, b4, b5, b6] = sums.end;
    let [e1, e3, e4, e5, e6] = sums.err;
    for i in 0..n {
        let s = b0 * u[i] + b1 * k1[i] + b3 * k3[i] + b4 * k4[i] + b5 * k5[i] + b6 * k6[i];
        u_new[i] = s;
        x[i] = scale * s;
        err[i] = e1 * k1[i] + e3 * k3[i] + e4 * k4[i] + e5 * k5[i] + e6 * k6[i];
    }
}

/// Values per chunk of rows: whole rows, about `ROW_CHUNK` values but at most
/// `MAX_CHUNK_ROWS` rows.
pub fn chunk_len(d: usize) -> usize {
    (ROW_CHUNK / d.max(1)).clamp(1, MAX_CHUNK_ROWS) * d.max(1)
}

thread_local! {
    /// Each thread's chunk-sized stage arrays (allocating them per chunk was measurable).
    static SCRATCH: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch space of `len` values (on a fresh one if it is in
/// use: a model that runs parallel loops of its own may have this thread take another
/// chunk while it waits).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            if s.len() < len {
                s.resize(len, 0.0);
            }
            f(&mut s[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

impl Stage<'_> {
    /// The slope at every row of `u`, a chunk at a time in parallel; `None` if the model
    /// gave a non-finite output.
    pub fn slope_of_batch(&self, ctx: &Ctx, u: &Batch) -> Option<Scratch> {
        let chunk = chunk_len(u.d);
        let mut k = ctx.batch_like(u);
        u.data
            .par_chunks(chunk)
            .zip(k.data.par_chunks_mut(chunk))
            .for_each(|(u, k)| with_scratch(u.len(), |x| self.slope(u, x, k)));
        all_finite(&k.data).then_some(k)
    }
}
