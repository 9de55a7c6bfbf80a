//! UniPC (Zhao et al. 2023): the UniP-p predictor with the UniC corrector, B(h) = e^{h} - 1
//! ("bh2"), data prediction. The corrector reuses the model output at the predicted point,
//! so it raises the order by one without extra evaluations: order 3 for p = 2.

use super::dpm_solver_pp::multistep_order;
use super::exponential::Point;
use super::options::{Kind, Opt, Resolved, Value, LOWER_ORDER_FINAL};
use super::{Scratch, in_l1_chunks, Ctx, Method, Sampler, SolverInfo};
use crate::batch::{set_combination_slices, zip_update, Batch};
use crate::error::{Error, Result};
use nalgebra::{DMatrix, DVector};

/// UniPC without its corrector: UniP-2 alone.
pub const NO_CORRECTOR: Opt = Opt {
    name: "no_corrector",
    kind: Kind::Switch,
    default: Value::Bool(false),
    doc: "UniPC without its corrector (UniP-2 alone, order 2)",
};

/// The registration.
pub const INFO: SolverInfo = SolverInfo {
    name: "unipc",
    order: 3.0,
    stochastic: false,
    options: &[&LOWER_ORDER_FINAL, &NO_CORRECTOR],
    summary: "UniPC: UniP-2 + UniC, bh2 (Zhao et al. 2023); order 2 with `no_corrector`",
    build,
};

fn build(o: &Resolved) -> Result<Box<dyn Method>> {
    Ok(Box::new(UniPc::new(
        2,
        !o.bool(&NO_CORRECTOR),
        o.bool(&LOWER_ORDER_FINAL),
    )?))
}

/// UniPC with predictor order `order` (1..=3) and optional corrector.
#[derive(Clone, Debug)]
pub struct UniPc {
    pub order: usize,
    pub corrector: bool,
    pub lower_order_final: bool,
}

impl UniPc {
    /// Predictor order 1..=3.
    pub fn new(order: usize, corrector: bool, lower_order_final: bool) -> Result<Self> {
        if !(1..=MAX_ORDER).contains(&order) {
            return Err(Error::invalid(
                "order",
                format!("UniPC predictor order must be 1..={MAX_ORDER}, got {order}"),
            ));
        }
        Ok(UniPc {
            order,
            corrector,
            lower_order_final,
        })
    }

    /// Convergence order: the predictor's, plus one with the corrector.
    pub fn convergence_order(&self) -> usize {
        self.order + usize::from(self.corrector)
    }
}

/// Per-run state: past (λ, x̂₀) newest first, and the last predictor's start.
pub struct State {
    hist: Vec<(f64, Scratch)>,
    last: Option<(Scratch, f64, usize)>,
}

/// The coefficients `rhos` of UniP (`predictor = true`, system without its last row and
/// column) or UniC (full system) for ratios `rks` (last entry 1) and step `h`.
fn rhos(rks: &[f64], h: f64, predictor: bool) -> Result<Vec<f64>> {
    let k = rks.len();
    let hh = -h;
    let b_h = hh.exp_m1();
    let mut h_phi_k = hh.exp_m1() / hh - 1.0;
    let mut factorial = 1.0;
    let mut b = Vec::with_capacity(k);
    for i in 1..=k {
        b.push(h_phi_k * factorial / b_h);
        factorial *= (i + 1) as f64;
        h_phi_k = h_phi_k / hh - 1.0 / factorial;
    }
    let n = if predictor { k - 1 } else { k };
    if n == 1 {
        return Ok(vec![0.5]);
    }
    let r = DMatrix::from_fn(n, n, |row, col| rks[col].powi(row as i32));
    let rhs = DVector::from_column_slice(&b[..n]);
    let sol = r.lu().solve(&rhs).ok_or_else(|| {
        Error::numerical(
            "unipc",
            "singular coefficient system (repeated λ in the grid?)",
        )
    })?;
    Ok(sol.iter().cloned().collect())
}

/// Coefficients of `(σ_t/σ_s) x - a_t (e^{-h} - 1) m₀ - a_t B(h) Σ ρ_j D_j`, the shared
/// update, with `D_j = (m_j - m₀)/r_j` from the outputs at `lambdas` (newest first) and, for
/// the corrector, the new output `m_t` (`D = m_t - m₀`): returned as weights on x, then on
/// m₀, m₁…, then m_t.
fn weights(
    s: &Point,
    t: &Point,
    lambdas: &[f64],
    k: usize,
    corrector: bool,
) -> Result<(f64, Vec<f64>)> {
    let h = t.lambda - s.lambda;
    let mut w = vec![0.0; k + usize::from(corrector)];
    w[0] = -t.alpha * (-h).exp_m1();
    let mut rks: Vec<f64> = lambdas[1..k].iter().map(|l| (l - s.lambda) / h).collect();
    rks.push(1.0);
    if k - 1 + usize::from(corrector) > 0 {
        let rho = rhos(&rks, h, !corrector)?;
        let b_h = (-h).exp_m1();
        for j in 0..k - 1 {
            let c = t.alpha * b_h * rho[j] / rks[j];
            w[j + 1] -= c;
            w[0] += c;
        }
        if corrector {
            let c = t.alpha * b_h * rho[k - 1];
            w[k] -= c;
            w[0] += c;
        }
    }
    Ok((t.sigma / s.sigma, w))
}

/// Highest predictor order.
const MAX_ORDER: usize = 3;

/// A step's arithmetic after its model call, per element: ε̂ → x̂₀ (in place), the
/// corrector's x_s (in place, when there is a corrector step), and the predictor's x_t.
struct Update<'a> {
    /// x̂₀ = cx0·x + ce0·ε̂.
    to_x0: (f64, f64),
    /// The corrector's terms but x̂₀'s: x_prev, then the history it used; none without a
    /// correction.
    corrector: &'a [(f64, &'a [f64])],
    /// The corrector's coefficient of x̂₀.
    corrector_m: f64,
    /// The predictor: `cx·x_s + w0·x̂₀ + Σ predictor`.
    cx: f64,
    w0: f64,
    predictor: &'a [(f64, &'a [f64])],
}

impl Update<'_> {
    /// Runs the update in one sweep where every coefficient is nonzero (the general
    /// combinations drop zero terms, which changes the sums' order), else pass by pass on
    /// L1-sized chunks; both give the same bits.
    fn apply(&self, x: &mut [f64], m: &mut [f64], out: &mut [f64]) {
        if self.fuses() {
            update_wide(self, x, m, out);
        } else {
            self.in_passes(x, m, out);
        }
    }

    /// True when every coefficient is nonzero: the update then runs in one sweep.
    fn fuses(&self) -> bool {
        let coefficients = [self.corrector_m, self.cx, self.w0];
        (self.corrector.iter().chain(self.predictor))
            .map(|t| t.0)
            .chain(coefficients)
            .all(|c| c != 0.0)
    }

    /// The update as three passes (x̂₀, corrector, predictor) per L1-sized chunk.
    fn in_passes(&self, x: &mut [f64], m: &mut [f64], out: &mut [f64]) {
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

impl Sampler for UniPc {
    type State = State;

    fn order(&self, _: f64) -> f64 {
        self.convergence_order() as f64
    }

    fn init(&self, _: &Ctx, _: &Batch) -> Result<State> {
        Ok(State {
            hist: Vec::new(),
            last: None,
        })
    }

    /// One model call, then one sweep (in L1-sized chunks) that turns ε̂ into x̂₀, corrects
    /// the point it was evaluated at (UniC, from the previous step's start) and predicts the
    /// next point (UniP) from the corrected one.
    fn step(&self, ctx: &Ctx, i: usize, mut x: Scratch, mut st: State) -> Result<(Scratch, State)> {
        let sch = ctx.schedule;
        let (s, t) = (Point::at(sch, ctx.t(i)), Point::at(sch, ctx.t(i + 1)));
        let mut m = ctx.eps_at(&x, s.t)?;
        let (cx0, ce0) = (1.0 / s.alpha, -s.sigma / s.alpha);
        let old: Vec<f64> = st.hist.iter().map(|(l, _)| *l).collect();
        let correction = match &st.last {
            Some((_, t_prev, k_prev)) if self.corrector => Some((
                weights(&Point::at(sch, *t_prev), &s, &old, *k_prev, true)?,
                *k_prev,
            )),
            _ => None,
        };
        let kept = self.order.min(old.len() + 1);
        let lambdas: Vec<f64> = std::iter::once(s.lambda).chain(old).take(kept).collect();
        let k = multistep_order(ctx, i, self.order, kept, self.lower_order_final);
        let (cx, w) = weights(&s, &t, &lambdas, k, false)?;
        let mut out = ctx.batch_like(&x);
        let x_prev = st.last.as_ref().map(|l| &l.0);
        let hist = |j: usize| &st.hist[j].1.data[..];
        // The corrector: x_prev and the history it used, then x̂₀ (coefficient apart).
        let mut corrector = [(0.0, &[][..]); MAX_ORDER + 1];
        let mut corrector_len = 0;
        let mut corrector_m = 0.0;
        if let (Some(((cxp, wc), k_prev)), Some(x_prev)) = (&correction, x_prev) {
            corrector[0] = (*cxp, &x_prev.data[..]);
            for j in 0..*k_prev {
                corrector[j + 1] = (wc[j], hist(j));
            }
            corrector_len = k_prev + 1;
            corrector_m = wc[*k_prev];
        }
        let mut predictor = [(0.0, &[][..]); MAX_ORDER - 1];
        for j in 1..k {
            predictor[j - 1] = (w[j], hist(j - 1));
        }
        let update = Update {
            to_x0: (cx0, ce0),
            corrector: &corrector[..corrector_len],
            corrector_m,
            cx,
            w0: w[0],
            predictor: &predictor[..k - 1],
        };
        update.apply(&mut x.data, &mut m.data, &mut out.data);
        st.hist.insert(0, (s.lambda, m));
        st.hist.truncate(self.order);
        st.last = Some((x, s.t, k));
        Ok((out, st))
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
                let (mut x1, mut m1, mut o1) =
                    (arrays[4].clone(), arrays[5].clone(), vec![0.0; len]);
                let (mut x2, mut m2, mut o2) = (x1.clone(), m1.clone(), o1.clone());
                assert!(update.fuses());
                update.apply(&mut x1, &mut m1, &mut o1);
                update.in_passes(&mut x2, &mut m2, &mut o2);
                let same =
                    |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(
                    same(&x1, &x2) && same(&m1, &m2) && same(&o1, &o2),
                    "corrector {corrector_len}, predictor {predictor_len}"
                );
                assert!(corrector_len == 0 || !same(&x1, &arrays[4]));
            }
        }
    }
}
