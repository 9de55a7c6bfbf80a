//! `pfode score SAMPLES.npy --model M [--reference REF.npy]` gives the numbers a sweep
//! records for the same samples: the same x_T, solver and reference, every metric equal.

mod common;

use pfode::experiment::{score, sweep_text, table};
use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::model::builtin;
use pfode::noise::draw as draw_noise;
use pfode::reference::{solve, Settings};
use pfode::schedule::Schedule;
use pfode::solver::{sample, Solver};
use std::process::Command;

#[test]
fn score_of_a_sample_file_equals_the_sweep_rows_of_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "name = \"s\"\nmodels = [\"ring2d\"]\nspacings = [\"logsnr\"]\nnfe = [10]\nsamples = 300\nseeds = [3]\n[[solvers]]\nname = \"unipc\"\n";
    let opts = common::sweep_options(dir.path().join("out"));
    sweep_text(&dir.path().join("spec.toml"), spec, &opts).unwrap();
    let (rows, _) = table::read(&opts.out.join("results.csv")).unwrap();

    // The same run by hand: x_T of seed 3, UniPC on 10 logsnr steps, the 1e-10 reference.
    let (model, schedule) = (builtin("ring2d").unwrap(), Schedule::ddpm_linear());
    let x_t = draw_noise(300, 2, 3);
    let grid = TimeGrid::build(
        &schedule,
        &Spacing::LogSnr,
        Some(10),
        GridOptions::default(),
    )
    .unwrap();
    let (x0, _) = sample(
        &Solver::named("unipc").unwrap(),
        &model,
        &schedule,
        &grid,
        x_t.clone(),
        3,
    )
    .unwrap();
    let (reference, _) = solve(&model, &schedule, &x_t, 1.0, 0.0, &Settings::default()).unwrap();
    let scores = score("ring2d", &x0, Some(&reference), 3).unwrap();
    let metrics: Vec<&str> = scores.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        metrics,
        [
            "error_mean",
            "error_rms",
            "error_median",
            "error_p95",
            "error_max",
            "frechet",
            "nll",
            "mode_coverage",
            "sliced_wasserstein",
            "mmd",
            "kid"
        ]
    );
    for (name, value) in &scores {
        let row = rows.iter().find(|r| &r.metric == name).unwrap();
        assert_eq!(*value, row.value, "{name}");
    }

    // The command prints the same numbers.
    let (samples_path, reference_path) = (dir.path().join("x0.npy"), dir.path().join("ref.npy"));
    for (path, b) in [(&samples_path, &x0), (&reference_path, &reference)] {
        pfode::npy::write(path, &[b.n, b.d], &b.data, pfode::npy::Dtype::F64).unwrap();
    }
    let o = Command::new(env!("CARGO_BIN_EXE_pfode"))
        .args([
            "score",
            samples_path.to_str().unwrap(),
            "--model",
            "ring2d",
            "--seed",
            "3",
        ])
        .args(["--reference", reference_path.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (name, value) in &scores {
        assert!(
            text.contains(&format!("{name:<20} {value:.6e}")),
            "{name}: {text}"
        );
    }
    // Without a reference there are no error statistics; a wrong shape is an error.
    let plain = score("ring2d", &x0, None, 3).unwrap();
    assert_eq!(plain.len(), scores.len() - 5);
    let e = score("mix16d", &x0, None, 3).unwrap_err().to_string();
    assert!(e.contains("dimension 16"), "{e}");
    let e = score("ring2d", &x0, Some(&draw_noise(5, 2, 0)), 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("reference") && e.contains("[300, 2]"), "{e}");
}
