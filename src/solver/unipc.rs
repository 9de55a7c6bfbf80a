//! UniPC (Zhao et al. 2023): the UniP-p predictor with the UniC corrector, B(h) = e^{h} - 1
//! ("bh2"), data prediction. The corrector reuses the model output at the predicted point,
//! so it raises the order by one without extra evaluations: order 3 for p = 2.

use super::dpm_solver_pp::multistep_order;
use super::exponential::Point;
use super::clamp;
use super::options::{Kind, Opt, Resolved, Value, LOWER_ORDER_FINAL};
use super::kernels::unipc::{Update, MAX_ORDER};
use super::{Family, Ctx, Method, Sampler, Scratch, SolverInfo};
use crate::batch::Batch;
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
    family: Family::Multistep,
    options: &[&LOWER_ORDER_FINAL, &NO_CORRECTOR, &clamp::CLIP_SAMPLE, &clamp::CLIP_SAMPLE_RANGE, &clamp::THRESHOLDING, &clamp::DYNAMIC_THRESHOLDING_RATIO, &clamp::SAMPLE_MAX_VALUE],
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
