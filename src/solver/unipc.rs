//! UniPC (Zhao et al. 2023): the UniP-p predictor with the UniC corrector, B(h) = e^{h} - 1
//! ("bh2"), data prediction. The corrector reuses the model output at the predicted point,
//! so it raises the order by one without extra evaluations: order 3 for p = 2.

use super::dpm_solver_pp::multistep_order;
use super::exponential::Point;
use super::{in_l1_chunks, Ctx, Sampler};
use crate::batch::{set_combination_slices, zip_update, Batch};
use crate::error::{Error, Result};
use nalgebra::{DMatrix, DVector};

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
        if !(1..=3).contains(&order) {
            return Err(Error::invalid(
                "order",
                format!("UniPC predictor order must be 1..=3, got {order}"),
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
    hist: Vec<(f64, Batch)>,
    last: Option<(Batch, f64, usize)>,
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
        Error::invalid(
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

impl Sampler for UniPc {
    type State = State;

    fn init(&self, _: &Ctx, _: &Batch) -> Result<State> {
        Ok(State {
            hist: Vec::new(),
            last: None,
        })
    }

    /// One model call, then one sweep (in L1-sized chunks) that turns ε̂ into x̂₀, corrects
    /// the point it was evaluated at (UniC, from the previous step's start) and predicts the
    /// next point (UniP) from the corrected one.
    fn step(&self, ctx: &Ctx, i: usize, mut x: Batch, mut st: State) -> Result<(Batch, State)> {
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
        in_l1_chunks(x.data.len(), |r| {
            let hist = |j: usize| &st.hist[j].1.data[r.clone()];
            let m = &mut m.data[r.clone()];
            zip_update(m, &x.data[r.clone()], &|e, x| cx0 * x + ce0 * e);
            let x = &mut x.data[r.clone()];
            // At most 1 + 3 + 1 terms (order ≤ 3), kept on the stack.
            let mut terms = [(0.0, &[][..]); 5];
            if let (Some(((cxp, wc), k_prev)), Some(x_prev)) = (&correction, x_prev) {
                terms[0] = (*cxp, &x_prev.data[r.clone()]);
                for j in 0..*k_prev {
                    terms[j + 1] = (wc[j], hist(j));
                }
                terms[k_prev + 1] = (wc[*k_prev], &*m);
                set_combination_slices(x, &terms[..k_prev + 2]);
            }
            terms[0] = (cx, &*x);
            terms[1] = (w[0], &*m);
            for j in 1..k {
                terms[j + 1] = (w[j], hist(j - 1));
            }
            set_combination_slices(&mut out.data[r], &terms[..k + 1]);
        });
        if let Some((x_prev, _, _)) = st.last.take() {
            ctx.recycle(x_prev);
        }
        st.hist.insert(0, (s.lambda, m));
        if st.hist.len() > self.order {
            let (_, old) = st.hist.pop().unwrap();
            ctx.recycle(old);
        }
        st.last = Some((x, s.t, k));
        Ok((out, st))
    }
}
