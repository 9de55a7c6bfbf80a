//! PNDM against Hugging Face diffusers' PNDMScheduler on committed fixtures
//! (tests/fixtures/diffusers_deis_pndm.json, made by scripts/make_deis_pndm_fixtures.py).
//!
//! PNDM steps to `t - T//n`, the next grid point for leading spacing and for trailing when n
//! divides T (the fixtures' cases), and ends on clean data (set_alpha_to_one). Its PRK start
//! evaluates at the step's midpoint in t: diffusers at index `t - (T//n)//2`, which is the
//! midpoint when T//n is even; pfode at the exact midpoint always, so for odd T//n (trailing
//! 40: 25 training steps per step) the two differ by the start's half-index.

mod common;

use common::{fixture, matrix};
use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::model::GaussianMixture;
use pfode::schedule::Schedule;
use pfode::solver::{sample, Solver};
use serde_json::Value;

fn model(f: &Value) -> GaussianMixture {
    common::mixture(f, "mixture3d")
}

#[test]
fn pndm_matches_diffusers_both_with_and_without_its_runge_kutta_start() {
    let f = fixture("diffusers_deis_pndm.json");
    let (m, s, x_t) = (model(&f), Schedule::ddpm_linear(), matrix(&f["noise"]));
    let cases = f["pndm"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for c in cases {
        let skip = c["skip_prk_steps"].as_bool().unwrap();
        let spacing: Spacing = c["spacing"].as_str().unwrap().parse().unwrap();
        let n = c["steps"].as_u64().unwrap() as usize;
        let grid = TimeGrid::build(&s, &spacing, Some(n), GridOptions::default()).unwrap();
        let solver = Solver::with("pndm", &[("skip_prk_steps", &skip.to_string())]).unwrap();
        let (ours, nfe) = sample(&solver, &m, &s, &grid, x_t.clone(), 0).unwrap();
        let diff = ours.max_abs_diff(&matrix(&c["x0_float64_table"]));
        println!("pndm skip_prk_steps={skip} {spacing} {n}: nfe {nfe}, max |pfode - diffusers| = {diff:.2e}");
        // The same model calls: n + 1 with the trapezoidal start, n + 9 with PRK.
        assert_eq!(nfe as u64, c["model_calls"].as_u64().unwrap());
        let odd_half_step = !skip && (1000 / n) % 2 == 1;
        if odd_half_step {
            assert!(diff > 1e-9 && diff < 1e-3, "{spacing} {n}: {diff:e}");
        } else {
            assert!(diff <= 1e-9, "skip {skip} {spacing} {n}: {diff:e}");
        }
    }
}

#[test]
fn pndm_start_costs_the_nfe_diffusers_documents() {
    let s = Schedule::ddpm_linear();
    let grid = TimeGrid::build(&s, &Spacing::Leading, Some(10), GridOptions::default()).unwrap();
    let prk = Solver::named("pndm").unwrap();
    let plms = Solver::with("pndm", &[("skip_prk_steps", "true")]).unwrap();
    assert_eq!(prk.nfe_on(&s, &grid, false).unwrap(), 19);
    assert_eq!(plms.nfe_on(&s, &grid, false).unwrap(), 11);
}

/// PLMS's constant-step weights are what limit PNDM to order 2: on a grid uniform in σ (where
/// its transfer makes it Adams–Bashforth with the right weights) it converges at AB4's order
/// 4 (measured 3.95 from 5 120 to 20 480 steps; its start steps sit near σ = 157, where ε̂
/// barely varies, so their lower order does not show), on a logsnr grid at order 2.
#[test]
fn pndm_is_second_order_because_of_its_constant_step_weights() {
    let g = pfode::model::builtin("gauss2d").unwrap();
    let s = Schedule::ddpm_linear();
    let x_t = pfode::noise::draw(16, 2, 1);
    let top = s.sigma_ratio(s.t_max());
    let bottom = s.sigma_ratio(s.t_min());
    let uniform_sigma = |n: usize| {
        let times = (0..=n)
            .map(|i| match i {
                0 => s.t_max(),
                i if i == n => s.t_min(),
                i => s.t_of_sigma_ratio(top + (bottom - top) * i as f64 / n as f64),
            })
            .collect();
        TimeGrid::new(times, &s).unwrap()
    };
    let logsnr = |n: usize| {
        let opts = GridOptions {
            final_sigma: pfode::grid::FinalSigma::Min,
            rho: 7.0,
        };
        TimeGrid::build(&s, &Spacing::LogSnr, Some(n), opts).unwrap()
    };
    let order = |grid: &dyn Fn(usize) -> TimeGrid, solver: &Solver| {
        let ns = [5120, 10240, 20480];
        let errs: Vec<f64> = ns
            .iter()
            .map(|&n| {
                let grid = grid(n);
                let (first, last) = (grid.times()[0], *grid.times().last().unwrap());
                let exact = g
                    .gaussian_flow(
                        &x_t,
                        &pfode::model::Level::at(&s, first),
                        &pfode::model::Level::at(&s, last),
                    )
                    .unwrap();
                let (out, _) = sample(solver, &g, &s, &grid, x_t.clone(), 0).unwrap();
                out.rms_distance(&exact)
            })
            .collect();
        pfode::convergence::fitted_order(&ns, &errs)
    };
    for skip in ["false", "true"] {
        let pndm = Solver::with("pndm", &[("skip_prk_steps", skip)]).unwrap();
        let (on_sigma, on_logsnr) = (order(&uniform_sigma, &pndm), order(&logsnr, &pndm));
        println!("skip_prk_steps {skip}: order {on_sigma:.2} uniform in σ, {on_logsnr:.2} logsnr");
        assert!((on_logsnr - 2.0).abs() < 0.2, "{on_logsnr}");
        assert!(on_sigma > 3.7, "{on_sigma}");
    }
}
