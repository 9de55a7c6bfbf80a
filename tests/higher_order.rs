//! Exact equivalences between solver families, adaptive and stochastic options, `--nfe`,
//! and option errors of the higher-order solvers.

use pfode::flow::Coords;
use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::model::{builtin, Level};
use pfode::noise::draw as draw_noise;
use pfode::schedule::Schedule;
use pfode::solver::{sample, Given, Solver, SOLVERS};
use pfode::Batch;
use std::process::Command;

fn build(name: &str) -> Solver {
    Solver::named(name).unwrap()
}

fn one_step(solver: &Solver, t: f64, t_next: f64, x: &Batch) -> Batch {
    let s = Schedule::ddpm_linear();
    let grid = TimeGrid::new(vec![t, t_next], &s).unwrap();
    sample(solver, &builtin("mix16d").unwrap(), &s, &grid, x.clone(), 0)
        .unwrap()
        .0
}

/// The first step of every multistep exponential integrator is first order, and the
/// first-order exponential integrator in λ is DDIM — in either noise or data prediction.
#[test]
fn first_order_exponential_steps_equal_ddim() {
    let x = draw_noise(32, 16, 1);
    let ddim = build("ddim");
    for (t, t_next) in [(1.0, 0.7), (0.6, 0.58), (0.3, 0.01), (0.2, 0.0)] {
        let reference = one_step(&ddim, t, t_next, &x);
        for name in ["dpm-solver-1", "dpm-solver++2m", "unipc"] {
            let diff = one_step(&build(name), t, t_next, &x).max_abs_diff(&reference);
            assert!(diff <= 1e-11, "{name} {t}->{t_next}: {diff:e}");
        }
        let opts = Given::from_pairs(&[("no_corrector", "true")]).unwrap();
        let diff = one_step(&Solver::build("unipc", &opts).unwrap(), t, t_next, &x)
            .max_abs_diff(&reference);
        assert!(diff <= 1e-11);
    }
    // Onto clean data the exponential integrators take the denoising step, which is DDIM's.
    for name in ["dpm-solver-2", "dpm-solver-3", "dpm-solver++3m"] {
        let diff =
            one_step(&build(name), 0.2, 0.0, &x).max_abs_diff(&one_step(&ddim, 0.2, 0.0, &x));
        assert!(diff <= 1e-11, "{name}: {diff:e}");
    }
}

#[test]
fn dopri5_error_and_nfe_follow_its_tolerance() {
    let s = Schedule::ddpm_linear();
    let g = builtin("gauss2d").unwrap();
    let x = draw_noise(64, 2, 2);
    let exact = g
        .gaussian_flow(&x, &Level::at(&s, 1.0), &Level::at(&s, 0.0))
        .unwrap();
    let grid = TimeGrid::build(&s, &Spacing::Trailing, Some(1), GridOptions::default()).unwrap();
    let mut last = (f64::INFINITY, 0);
    for tol in [1e-3, 1e-5, 1e-7, 1e-9] {
        let solver = Solver::build(
            "dopri5",
            &Given::from_pairs(&[("rtol", &tol.to_string()), ("atol", &tol.to_string())]).unwrap(),
        )
        .unwrap();
        let (out, nfe) = sample(&solver, &g, &s, &grid, x.clone(), 0).unwrap();
        let err = out.rms_distance(&exact);
        println!("dopri5 tol {tol:e}: error {err:.2e}, nfe {nfe}");
        assert!(
            err < last.0 && nfe > last.1,
            "tol {tol}: error {err}, nfe {nfe}, before {last:?}"
        );
        last = (err, nfe);
    }
    assert!(last.0 < 1e-6);
}

/// Grid points are stops, not restarts: the controller carries its step proposal across
/// them, so a 20-interval grid costs about what the bare interval does (without the carry
/// it was 1.8× on mix16d) and stays within the tolerance's error.
#[test]
fn dopri5_carries_its_step_size_across_grid_points() {
    let s = Schedule::ddpm_linear();
    let m = builtin("mix16d").unwrap();
    let x = draw_noise(256, 16, 1);
    let solver = build("dopri5");
    let run = |steps: usize| {
        let grid =
            TimeGrid::build(&s, &Spacing::Trailing, Some(steps), GridOptions::default()).unwrap();
        sample(&solver, &m, &s, &grid, x.clone(), 0).unwrap()
    };
    let tight = Solver::build(
        "dopri5",
        &Given::from_pairs(&[("rtol", "1e-10"), ("atol", "1e-10")]).unwrap(),
    )
    .unwrap();
    let grid = TimeGrid::build(&s, &Spacing::Trailing, Some(1), GridOptions::default()).unwrap();
    let reference = sample(&tight, &m, &s, &grid, x.clone(), 0).unwrap().0;
    let ((one, nfe_one), (twenty, nfe_twenty)) = (run(1), run(20));
    let (e1, e20) = (
        one.rms_distance(&reference),
        twenty.rms_distance(&reference),
    );
    println!(
        "dopri5 on 1 / 20 intervals: NFE {nfe_one} / {nfe_twenty}, RMS error {e1:.2e} / {e20:.2e}"
    );
    assert!(
        (nfe_twenty as f64) < 1.2 * nfe_one as f64,
        "NFE {nfe_twenty} on 20 intervals vs {nfe_one} on one"
    );
    assert!(e1 < 1e-3 && e20 < 1e-3, "{e1} {e20}");
}

#[test]
fn heun_churn_is_seeded_noise_and_zero_churn_is_deterministic_heun() {
    let s = Schedule::ddpm_linear();
    let m = builtin("ring2d").unwrap();
    let x = draw_noise(64, 2, 3);
    let grid = TimeGrid::build(&s, &Spacing::Karras, Some(20), GridOptions::default()).unwrap();
    let churn = |c: f64| {
        Given::from_pairs(&[
            ("s_churn", &c.to_string()),
            ("s_tmin", "0.05"),
            ("s_tmax", "50.0"),
        ])
        .unwrap()
    };
    let run = |o: &Given, seed| {
        sample(
            &Solver::build("heun", o).unwrap(),
            &m,
            &s,
            &grid,
            x.clone(),
            seed,
        )
        .unwrap()
    };
    let (plain, _) = sample(&build("heun"), &m, &s, &grid, x.clone(), 0).unwrap();
    assert_eq!(run(&churn(0.0), 5).0, plain);
    let (a, nfe) = run(&churn(40.0), 5);
    assert_eq!(
        nfe, 40,
        "2 per step, including a full Heun step onto σ = 0 (exact model)"
    );
    assert_eq!(a, run(&churn(40.0), 5).0);
    assert!(a.max_abs_diff(&run(&churn(40.0), 6).0) > 1e-3);
    assert!(a.max_abs_diff(&plain) > 1e-3);
    assert!(Solver::build("heun", &churn(40.0)).unwrap().is_stochastic());
}

#[test]
fn nfe_budget_picks_the_most_steps_that_fit_and_the_sidecar_reports_real_nfe() {
    let s = Schedule::ddpm_linear();
    for info in SOLVERS.iter().filter(|i| i.name != "dopri5") {
        let solver = build(info.name);
        for budget in [10, 15, 20] {
            let steps = solver
                .steps_for_nfe(&s, &Spacing::Karras, GridOptions::default(), budget, true)
                .unwrap();
            let grid =
                |n| TimeGrid::build(&s, &Spacing::Karras, Some(n), GridOptions::default()).unwrap();
            let nfe = solver.nfe_on(&s, &grid(steps), true).unwrap();
            let more = solver.nfe_on(&s, &grid(steps + 1), true).unwrap();
            assert!(
                nfe <= budget && more > budget,
                "{}: budget {budget}, {steps} steps use {nfe}, one more {more}",
                info.name
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npy");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "sample",
            "--model",
            "ring2d",
            "--n",
            "4",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_pfode"))
            .args(&args)
            .output()
            .unwrap()
    };
    let o = run(&[
        "--solver",
        "dpm-solver-3",
        "--nfe",
        "10",
        "--spacing",
        "logsnr",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(side["nfe_budget"], 10);
    assert!(
        side["nfe"].as_u64().unwrap() <= 10 && side["nfe"].as_u64().unwrap() >= 8,
        "{}",
        side["nfe"]
    );
    std::fs::remove_file(&out).unwrap();
    for (args, expect) in [
        (vec!["--solver", "rk4", "--nfe", "3"], "at least 4"),
        (vec!["--solver", "dopri5", "--nfe", "10"], "--rtol"),
        (
            vec![
                "--solver",
                "dpm-solver++2m",
                "--steps",
                "5",
                "--coords",
                "t",
            ],
            "--coords",
        ),
        (
            vec!["--solver", "unipc", "--steps", "5", "--eta", "0.5"],
            "--eta",
        ),
        (vec!["--solver", "dopri5", "--rtol", "0"], "--rtol"),
        (
            vec![
                "--solver",
                "heun",
                "--steps",
                "5",
                "--s-churn",
                "1",
                "--coords",
                "t",
            ],
            "σ-coordinates",
        ),
        (
            vec!["--solver", "ddim", "--steps", "5", "--nfe", "5"],
            "cannot be used with",
        ),
    ] {
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(expect),
            "{args:?}: {err}"
        );
        assert!(!out.exists(), "{args:?} wrote output");
    }
}

#[test]
fn generic_integrators_accept_every_coordinate_system() {
    let s = Schedule::vp_linear();
    let m = builtin("ring2d").unwrap();
    let x = draw_noise(16, 2, 4);
    let grid = TimeGrid::build(&s, &Spacing::LogSnr, Some(40), GridOptions::default()).unwrap();
    let (reference, _) =
        pfode::reference::solve(&m, &s, &x, s.t_max(), 0.0, &Default::default()).unwrap();
    for name in ["heun", "midpoint", "rk4", "dopri5"] {
        for coords in [Coords::T, Coords::Sigma, Coords::Lambda] {
            let solver = Solver::build(
                name,
                &Given::from_pairs(&[("coords", coords.as_str())]).unwrap(),
            )
            .unwrap();
            let err = sample(&solver, &m, &s, &grid, x.clone(), 0)
                .unwrap()
                .0
                .rms_distance(&reference);
            assert!(err < 0.05, "{name} in {coords}: RMS error {err}");
        }
    }
}
