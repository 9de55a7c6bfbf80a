//! The committed ring2d checkpoint (models/ring2d.safetensors, trained by
//! `pfode train --data ring2d --out models/ring2d.safetensors`): its noise prediction is
//! close to the exact mixture's, and DDIM samples from it cover the modes in proportion.

mod common;

use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::metrics::mode_fractions;
use pfode::model::mlp::Mlp;
use pfode::model::{builtin, Level, ScoreModel};
use pfode::noise::draw as draw_noise;
use pfode::schedule::Schedule;
use pfode::solver::{sample, Solver};

fn checkpoint() -> Mlp {
    Mlp::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/ring2d.safetensors"
    )))
    .unwrap()
}

#[test]
fn learned_ring2d_noise_prediction_is_close_to_the_exact_one() {
    let (net, exact, s) = (
        checkpoint(),
        builtin("ring2d").unwrap(),
        Schedule::ddpm_linear(),
    );
    let mut report = Vec::new();
    let mut total = 0.0;
    let times = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9];
    for (k, &t) in times.iter().enumerate() {
        // Points from p_t itself: x_t = a x0 + s ε.
        let l = Level::at(&s, t);
        let x0 = exact.sample(2000, 10 + k as u64);
        let z = draw_noise(2000, 2, 20 + k as u64);
        let xt = x0.zip_map(&z, |x, e| l.alpha * x + l.sigma * e);
        let gap = net
            .eps(&xt, &l)
            .unwrap()
            .rms_distance(&exact.eps(&xt, &l).unwrap())
            / 2f64.sqrt();
        report.push(format!("t={t}: {gap:.3}"));
        total += gap / times.len() as f64;
    }
    println!(
        "RMS gap per coordinate between learned and exact ε̂: {} (mean {total:.3})",
        report.join(", ")
    );
    assert!(total < 0.25, "{report:?}");
}

#[test]
fn ddim_samples_of_the_learned_model_cover_the_modes_within_two_points() {
    let (net, exact, s) = (
        checkpoint(),
        builtin("ring2d").unwrap(),
        Schedule::ddpm_linear(),
    );
    let grid = TimeGrid::build(&s, &Spacing::Trailing, Some(100), GridOptions::default()).unwrap();
    let ddim = Solver::named("ddim").unwrap();
    let (x, nfe) = sample(&ddim, &net, &s, &grid, draw_noise(8000, 2, 1), 0).unwrap();
    assert_eq!(nfe, 100);
    let fr = mode_fractions(&exact, &x);
    let gap = fr.iter().map(|f| (f - 0.125).abs()).fold(0.0, f64::max);
    println!("mode fractions {fr:.3?}, max gap {gap:.4}");
    assert!(gap < 0.02, "{fr:?}");
}

#[test]
fn error_decomposition_separates_the_solver_from_the_network() {
    let rows = pfode::decompose::decompose(
        &checkpoint(),
        &builtin("ring2d").unwrap(),
        &Solver::named("ddim").unwrap(),
        &Spacing::Trailing,
        &[10, 50],
        &draw_noise(200, 2, 3),
        3,
    )
    .unwrap();
    for r in &rows {
        println!("{r:?}");
        // RMS distances obey the triangle inequality through the learned reference.
        assert!(r.total <= r.discretisation + r.network + 1e-12);
        assert!(r.total + 1e-12 >= (r.network - r.discretisation).abs());
    }
    // The solver's share falls ~linearly with NFE (DDIM is first order); the network's does not move.
    assert!(
        rows[0].discretisation > 3.0 * rows[1].discretisation,
        "{rows:?}"
    );
    assert_eq!(rows[0].network, rows[1].network);
    assert!(
        rows[1].network > rows[1].discretisation,
        "at 50 NFE the network dominates: {rows:?}"
    );
}

/// The committed swissroll checkpoint against held-out swissroll data: the sliced
/// Wasserstein distance and MMD of its DDIM samples are a fraction of a standard normal's.
#[test]
fn swissroll_samples_are_close_to_held_out_data() {
    use pfode::metrics::{mmd2_unbiased, sliced_wasserstein, Kernel};
    let net = Mlp::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/swissroll.safetensors"
    )))
    .unwrap();
    let s = Schedule::ddpm_linear();
    let grid = TimeGrid::build(&s, &Spacing::Trailing, Some(100), GridOptions::default()).unwrap();
    let ddim = Solver::named("ddim").unwrap();
    let (x, _) = sample(&ddim, &net, &s, &grid, draw_noise(2000, 2, 7), 0).unwrap();
    // Held out: the training data used seed 0; this draw uses another seed.
    let held_out = pfode::model::train::procedural("swissroll", 2000, 99).unwrap();
    let noise = draw_noise(2000, 2, 8);
    let sw = sliced_wasserstein(&x, &held_out, 64, 1).unwrap();
    let sw_noise = sliced_wasserstein(&noise, &held_out, 64, 1).unwrap();
    let first = |b: &pfode::Batch| pfode::Batch {
        n: 500,
        d: 2,
        data: b.data[..1000].to_vec(),
    };
    let mmd = mmd2_unbiased(
        &first(&x),
        &first(&held_out),
        Kernel::Rbf { bandwidth: 0.5 },
    )
    .unwrap();
    let mmd_noise = mmd2_unbiased(
        &first(&noise),
        &first(&held_out),
        Kernel::Rbf { bandwidth: 0.5 },
    )
    .unwrap();
    println!("swissroll: sliced W2 {sw:.4} (standard normal {sw_noise:.4}), MMD² {mmd:.5} (standard normal {mmd_noise:.5})");
    assert!(sw < 0.3 * sw_noise && mmd < 0.1 * mmd_noise);
}

/// References of learned models default to 1e-7, of exact ones to 1e-10; a learned-model
/// sweep without a `[reference]` section uses the former and records it.
#[test]
fn learned_model_references_default_to_the_f32_tolerance_and_sweeps_record_it() {
    use pfode::reference::{default_tolerance, EXACT_TOLERANCE, LEARNED_TOLERANCE};
    assert_eq!(default_tolerance(&checkpoint()), LEARNED_TOLERANCE);
    assert_eq!(
        default_tolerance(&builtin("ring2d").unwrap()),
        EXACT_TOLERANCE
    );
    assert_eq!((LEARNED_TOLERANCE, EXACT_TOLERANCE), (1e-7, 1e-10));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let spec = format!(
        "name = \"no_reference\"\nmodels = [\"{}\", \"ring2d\"]\nspacings = [\"logsnr\"]\nnfe = [10]\nsamples = 500\nmetrics = [\"error\"]\n[[solvers]]\nname = \"dpm-solver++2m\"\n",
        root.join("models/swissroll.safetensors").display()
    );
    let opts = common::sweep_options(dir.path().join("out"));
    let spec_path = dir.path().join("spec.toml");
    let r = pfode::experiment::sweep_text(&spec_path, &spec, &opts).unwrap();
    assert_eq!(r.runs_done_now, 2);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(opts.out.join("meta.json")).unwrap())
            .unwrap();
    let tol = &meta["reference_tolerances"];
    let swiss = tol
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.contains("swissroll"));
    let swiss = &swiss.unwrap().1;
    assert_eq!(
        (swiss["rtol"].as_f64(), swiss["atol"].as_f64()),
        (Some(1e-7), Some(1e-7))
    );
    assert_eq!(swiss["from"], "the default for learned models");
    assert_eq!(tol["ring2d"]["rtol"].as_f64(), Some(1e-10));
    // Both runs measured a real error against their references.
    let (rows, _) = pfode::experiment::table::read(&opts.out.join("results.csv")).unwrap();
    let errors: Vec<f64> = rows
        .iter()
        .filter(|r| r.metric == "error_rms")
        .map(|r| r.value)
        .collect();
    assert!(
        errors.len() == 2 && errors.iter().all(|&e| e > 1e-4 && e < 1.0),
        "{errors:?}"
    );
}
