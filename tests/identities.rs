//! The exact identities of math.md §3–4, checked between independent code paths.

use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::model::builtin;
use pfode::noise::draw as draw_noise;
use pfode::schedule::Schedule;
use pfode::solver::{sample, Solver};
use pfode::Batch;

const GRIDS: [&str; 5] = ["trailing", "leading", "linspace", "logsnr", "karras"];

fn run(solver: &Solver, model: &str, grid: &TimeGrid, x: &Batch, seed: u64) -> Batch {
    let m = builtin(model).unwrap();
    sample(solver, &m, &Schedule::ddpm_linear(), grid, x.clone(), seed)
        .unwrap()
        .0
}

fn grid(spacing: &str, n: usize) -> TimeGrid {
    TimeGrid::build(
        &Schedule::ddpm_linear(),
        &spacing.parse().unwrap(),
        Some(n),
        GridOptions::default(),
    )
    .unwrap()
}

#[test]
fn ddim_equals_euler_in_sigma_on_mixtures_for_every_grid() {
    let ddim = Solver::with("ddim", &[("eta", "0.0")]).unwrap();
    let euler = Solver::with("euler", &[("coords", "sigma")]).unwrap();
    for (model, dim) in [("ring2d", 2), ("mix16d", 16)] {
        let x = draw_noise(64, dim, 2);
        for spacing in GRIDS {
            for n in [10, 50] {
                let g = grid(spacing, n);
                let diff =
                    run(&ddim, model, &g, &x, 0).max_abs_diff(&run(&euler, model, &g, &x, 0));
                assert!(diff <= 1e-11, "{model} {spacing} {n}: {diff:e}");
            }
        }
    }
}

#[test]
fn ddim_equals_first_order_exponential_integrator_in_lambda() {
    let ddim = Solver::with("ddim", &[("eta", "0.0")]).unwrap();
    let dpm1 = Solver::named("dpm-solver-1").unwrap();
    for (model, dim) in [("ring2d", 2), ("mix16d", 16)] {
        let x = draw_noise(64, dim, 3);
        for spacing in GRIDS {
            let g = grid(spacing, 20);
            let diff = run(&ddim, model, &g, &x, 0).max_abs_diff(&run(&dpm1, model, &g, &x, 0));
            assert!(diff <= 1e-11, "{model} {spacing}: {diff:e}");
        }
    }
}

#[test]
fn ddim_eta_one_on_consecutive_training_steps_is_ddpm_with_posterior_variance() {
    let g = grid("trailing", 1000); // every training step, then clean data
    let x = draw_noise(32, 2, 4);
    let ddim = run(
        &Solver::with("ddim", &[("eta", "1.0")]).unwrap(),
        "ring2d",
        &g,
        &x,
        7,
    );
    let tilde = run(
        &Solver::with("ddpm", &[("variance", "beta-tilde")]).unwrap(),
        "ring2d",
        &g,
        &x,
        7,
    );
    let beta = run(
        &Solver::with("ddpm", &[("variance", "beta")]).unwrap(),
        "ring2d",
        &g,
        &x,
        7,
    );
    let diff = ddim.max_abs_diff(&tilde);
    println!("DDIM η = 1 vs DDPM β̃ over 1000 steps: {diff:.2e}");
    assert!(diff <= 1e-10, "DDIM η=1 vs DDPM β̃: {diff:e}");
    // Not a vacuous comparison: the other variance choice, and η = 0, land elsewhere.
    assert!(ddim.max_abs_diff(&beta) > 1e-3);
    let det = run(
        &Solver::with("ddim", &[("eta", "0.0")]).unwrap(),
        "ring2d",
        &g,
        &x,
        7,
    );
    assert!(ddim.max_abs_diff(&det) > 1e-1);
}

#[test]
fn euler_in_t_is_a_different_first_order_method_converging_to_ddim() {
    let ddim = Solver::with("ddim", &[("eta", "0.0")]).unwrap();
    let euler_t = Solver::with("euler", &[("coords", "t")]).unwrap();
    let x = draw_noise(64, 2, 5);
    let gaps: Vec<f64> = [25, 50, 100, 200]
        .iter()
        .map(|&n| {
            let g = grid("trailing", n);
            run(&ddim, "ring2d", &g, &x, 0).rms_distance(&run(&euler_t, "ring2d", &g, &x, 0))
        })
        .collect();
    assert!(gaps[0] > 1e-2, "{gaps:?}");
    for w in gaps.windows(2) {
        let ratio = w[0] / w[1];
        assert!(
            (1.7..2.3).contains(&ratio),
            "gap should halve with the step: {gaps:?}"
        );
    }
}

#[test]
fn stochastic_samplers_are_reproducible_from_their_seed() {
    let g = grid("trailing", 20);
    let x = draw_noise(16, 2, 6);
    for solver in [
        Solver::with("ddim", &[("eta", "0.5")]).unwrap(),
        Solver::with("ddpm", &[("variance", "beta")]).unwrap(),
        Solver::named("euler-maruyama").unwrap(),
    ] {
        let a = run(&solver, "ring2d", &g, &x, 11);
        assert_eq!(a, run(&solver, "ring2d", &g, &x, 11));
        assert!(a.max_abs_diff(&run(&solver, "ring2d", &g, &x, 12)) > 1e-2);
    }
}

#[test]
fn an_explicit_grid_file_reproduces_the_built_grid_bit_for_bit() {
    // Spacing::File round trip: an explicit grid gives the same samples as the built one.
    let dir = tempfile::tempdir().unwrap();
    let g = grid("karras", 12);
    let path = dir.path().join("grid.json");
    std::fs::write(&path, serde_json::to_string(g.times()).unwrap()).unwrap();
    let from_file = TimeGrid::build(
        &Schedule::ddpm_linear(),
        &Spacing::File(path),
        None,
        GridOptions::default(),
    )
    .unwrap();
    assert_eq!(from_file, g);
}
