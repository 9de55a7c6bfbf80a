//! DEIS with the time-based Adams–Bashforth rule, tAB-k (Zhang & Chen 2022, "Fast Sampling
//! of Diffusion Models with Exponential Integrator", §4), in the variables of diffusers'
//! `DEISMultistepScheduler`: in `y = x/a` and `ρ = σ = s/a` the PF-ODE is `dy/dρ = ε̂`
//! exactly (the exponential integrator's change of variables absorbs the linear part), and
//! ε̂ is extrapolated by the Lagrange polynomial through its last k values in `u = log ρ`,
//! integrated exactly:
//!
//! `y' = y + Σ_j ε̂_j ∫_ρ^ρ' ℓ_j(log r) dr`, with `dr = e^u du`, so every weight is a sum
//! of `∫ u^p e^u du = e^u Σ_q (-1)^q p!/(p-q)! u^(p-q)`.
//!
//! A first-order first step caps a multistep method at global order 2, so tAB3 takes its
//! first step by third-order Runge–Kutta in σ (`warm_start = rk3`, +2 NFE, order 3); the
//! `multistep` start (tAB1, tAB2, then tAB3, as diffusers does) has order 2. A step onto
//! clean data is first order (the denoising step), as for the other exponential integrators.

use super::dpm_solver_pp::multistep_order;
use super::options::{Resolved, WarmStart, LOWER_ORDER_FINAL, WARM_START};
use super::rk::{rk_step_from, RK3};
use super::{Family, Scratch, Ctx, History, Method, Sampler, SolverInfo};
use crate::batch::Batch;
use crate::error::Result;
use crate::flow::Coords;

/// tAB1: one Euler step in σ, which is DDIM.
pub const DEIS_1: SolverInfo = SolverInfo {
    name: "deis-1",
    order: 1.0,
    stochastic: false,
    family: Family::Exponential,
    options: &[],
    summary: "DEIS-tAB1 (Zhang & Chen 2022): Euler in σ, equals DDIM",
    build: |_| Ok(Box::new(Deis::new(1, WarmStart::Multistep, true))),
};

/// tAB2.
pub const DEIS_2: SolverInfo = SolverInfo {
    name: "deis-2",
    order: 2.0,
    stochastic: false,
    family: Family::Multistep,
    options: &[&LOWER_ORDER_FINAL],
    summary: "DEIS-tAB2 (Zhang & Chen 2022): exponential Adams–Bashforth, ε̂ interpolated in log σ",
    build: |o: &Resolved| {
        Ok(Box::new(Deis::new(
            2,
            WarmStart::Multistep,
            o.bool(&LOWER_ORDER_FINAL),
        )))
    },
};

/// tAB3.
pub const DEIS_3: SolverInfo = SolverInfo {
    name: "deis-3",
    order: 3.0,
    stochastic: false,
    family: Family::Multistep,
    options: &[&LOWER_ORDER_FINAL, &WARM_START],
    summary: "DEIS-tAB3 (Zhang & Chen 2022); RK3 first step (order 3) or multistep start as diffusers (order 2)",
    build,
};

fn build(o: &Resolved) -> Result<Box<dyn Method>> {
    Ok(Box::new(Deis::new(
        3,
        o.choice(&WARM_START),
        o.bool(&LOWER_ORDER_FINAL),
    )))
}

/// DEIS-tAB of order 1..=3.
#[derive(Clone, Debug)]
pub struct Deis {
    pub order: usize,
    pub warm_start: WarmStart,
    pub lower_order_final: bool,
}

impl Deis {
    fn new(order: usize, warm_start: WarmStart, lower_order_final: bool) -> Self {
        Deis {
            order,
            warm_start,
            lower_order_final,
        }
    }

    /// True if step `i` is the Runge–Kutta first step.
    fn runge_kutta_first(&self, ctx: &Ctx, i: usize) -> bool {
        self.order == 3 && self.warm_start == WarmStart::Rk3 && i == 0 && ctx.t(1) > 0.0
    }
}

/// `∫_{ρ0}^{ρ1} ℓ_j(log r) dr` for the Lagrange basis on `nodes` (values of log ρ, the
/// first one `log ρ0`), with `ρ1 > 0` unless there is one node.
///
/// Written relative to the step, `r = ρ0 e^{z s}` with `z = log(ρ1/ρ0)` and `s ∈ [0, 1]`, the
/// basis has nodes `s_j = (u_j - u_0)/z` of order one and the weight is
/// `ρ0 z Σ_p c_p ψ_p(z)`, `ψ_p(z) = ∫_0^1 s^p e^{zs} ds`: no difference of large terms (an
/// antiderivative in `log r` itself loses digits to cancellation as steps shrink).
pub fn weights(nodes: &[f64], rho0: f64, rho1: f64) -> Vec<f64> {
    if nodes.len() == 1 {
        return vec![rho1 - rho0];
    }
    let z = (rho1 / rho0).ln();
    let s: Vec<f64> = nodes.iter().map(|u| (u - nodes[0]) / z).collect();
    let psi: Vec<f64> = (0..nodes.len()).map(|p| psi(p, z)).collect();
    (0..nodes.len())
        .map(|j| {
            // ℓ_j(s) = Π_{m≠j} (s - s_m)/(s_j - s_m), as coefficients of 1, s, s², …
            let mut poly = vec![1.0];
            for (_, &sm) in s.iter().enumerate().filter(|&(m, _)| m != j) {
                let scale = 1.0 / (s[j] - sm);
                let mut next = vec![0.0; poly.len() + 1];
                for (p, c) in poly.iter().enumerate() {
                    next[p + 1] += c * scale;
                    next[p] -= c * sm * scale;
                }
                poly = next;
            }
            rho0 * z * poly.iter().zip(&psi).map(|(c, q)| c * q).sum::<f64>()
        })
        .collect()
}

/// `ψ_p(z) = ∫_0^1 s^p e^{zs} ds`: its Taylor series `Σ_k z^k / (k! (p + k + 1))` for
/// `|z| < 1`, else the recurrence `ψ_p = (e^z - p ψ_{p-1})/z` from `ψ_0 = (e^z - 1)/z`
/// (stable there: each step shrinks errors by `p/|z|` at most twice over for p ≤ 2).
fn psi(p: usize, z: f64) -> f64 {
    if z.abs() < 1.0 {
        let (mut sum, mut term) = (0.0, 1.0);
        for k in 0..40 {
            sum += term / (p + k + 1) as f64;
            term *= z / (k + 1) as f64;
            if term.abs() < 1e-18 {
                break;
            }
        }
        return sum;
    }
    let mut v = z.exp_m1() / z;
    for q in 1..=p {
        v = (z.exp() - q as f64 * v) / z;
    }
    v
}

impl Sampler for Deis {
    type State = History;

    fn order(&self, declared: f64) -> f64 {
        if self.order == 3 && self.warm_start == WarmStart::Multistep {
            2.0
        } else {
            declared
        }
    }

    fn init(&self, _: &Ctx, _: &Batch) -> Result<History> {
        Ok(History::default())
    }

    fn step(
        &self,
        ctx: &Ctx,
        i: usize,
        mut x: Scratch,
        mut hist: History,
    ) -> Result<(Scratch, History)> {
        let s = ctx.schedule;
        let (t, t_next) = (ctx.t(i), ctx.t(i + 1));
        let (rho, rho_next) = (s.sigma_ratio(t), s.sigma_ratio(t_next));
        let eps = ctx.eps(&x, i)?;
        if self.runge_kutta_first(ctx, i) {
            hist.push(rho.ln(), eps.clone(), self.order);
            let x = rk_step_from(ctx, Coords::Sigma, &RK3, t, t_next, x, Some(eps))?;
            return Ok((x, hist));
        }
        let k = multistep_order(
            ctx,
            i,
            self.order,
            hist.0.len() + 1,
            self.lower_order_final,
        );
        hist.push(rho.ln(), eps, self.order);
        let nodes: Vec<f64> = hist.0[..k].iter().map(|(u, _)| *u).collect();
        let w = weights(&nodes, rho, rho_next);
        // x' = a' (x/a + Σ w_j ε̂_j): one sweep.
        let (a, a_next) = (s.alpha(t), s.alpha(t_next));
        let terms: Vec<(f64, &Batch)> = hist.0[..k]
            .iter()
            .zip(&w)
            .map(|((_, e), &wj)| (a_next * wj, &**e))
            .collect();
        x.combine(a_next / a, &terms);
        Ok((x, hist))
    }
}

#[cfg(test)]
mod tests {
    use super::weights;

    #[test]
    fn weights_integrate_polynomials_in_log_sigma_exactly() {
        // A polynomial of degree < k in u = log ρ is reproduced by its Lagrange
        // interpolant, so Σ_j w_j f(u_j) = ∫ f(log r) dr; checked by midpoint quadrature.
        let nodes = [0.4f64.ln(), 0.7f64.ln(), 1.3f64.ln()];
        let f = |u: f64| 0.3 - 1.2 * u + 0.5 * u * u;
        let (r0, r1) = (0.4, 0.15);
        let w = weights(&nodes, r0, r1);
        let got: f64 = w.iter().zip(&nodes).map(|(w, &u)| w * f(u)).sum();
        let n = 200_000;
        let h = (r1 - r0) / n as f64;
        let exact: f64 = (0..n)
            .map(|i| f((r0 + (i as f64 + 0.5) * h).ln()) * h)
            .sum();
        assert!((got - exact).abs() < 1e-9, "{got} vs {exact}");
        // One node: the weight is the step in σ (Euler, i.e. DDIM), onto σ = 0 too.
        assert_eq!(weights(&[0.5f64.ln()], 0.5, 0.2), vec![0.2 - 0.5]);
        assert_eq!(weights(&[0.5f64.ln()], 0.5, 0.0), vec![-0.5]);
    }

    #[test]
    fn psi_series_and_recurrence_agree_where_they_meet() {
        for p in 0..3 {
            for z in [-0.999_999, 0.999_999] {
                let (series, recurrence) = (super::psi(p, z), {
                    let mut v = z.exp_m1() / z;
                    for q in 1..=p {
                        v = (z.exp() - q as f64 * v) / z;
                    }
                    v
                });
                assert!((series - recurrence).abs() < 1e-14, "p {p} z {z}");
            }
        }
        // ψ_0(z) = (e^z - 1)/z and ψ_p(0) = 1/(p + 1).
        assert!((super::psi(0, -3.0) - (-3f64).exp_m1() / -3.0).abs() < 1e-16);
        assert_eq!(super::psi(2, 0.0), 1.0 / 3.0);
    }
}
