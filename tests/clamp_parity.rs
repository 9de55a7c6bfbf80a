//! `clip_sample` and dynamic `thresholding` follow diffusers: DDIM (ε and v prediction,
//! with and without `use_clipped_model_output`), DPM-Solver++(2M) and UniPC on an exact
//! mixture whose x̂₀ leaves [-1, 1] match diffusers' schedulers run with float64 ᾱ tables
//! (fixtures by scripts/make_clamp_fixtures.py), where the clamps move the samples by
//! more than 1.

mod common;

use common::{fixture, matrix, mixture};
use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::schedule::Schedule;
use pfode::solver::{sample, Given, Solver};
use serde_json::Value;

fn solver(name: &str, options: &Value) -> Solver {
    let mut given = Given::new();
    for (k, v) in options.as_object().unwrap() {
        given.set_json(k, v).unwrap();
    }
    Solver::build(name, &given).unwrap()
}

#[test]
fn clamped_samplers_match_diffusers_schedulers() {
    let f = fixture("diffusers_clamp.json");
    let model = mixture(&f, "mixture3d");
    let schedule = Schedule::ddpm_linear();
    let x_t = matrix(&f["noise"]);
    for case in f["cases"].as_array().unwrap() {
        let spacing: Spacing = case["spacing"].as_str().unwrap().parse().unwrap();
        let steps = case["steps"].as_u64().unwrap() as usize;
        let grid =
            TimeGrid::build(&schedule, &spacing, Some(steps), GridOptions::default()).unwrap();
        let name = case["solver"].as_str().unwrap();
        let label = format!("{name} {} {}", case["prediction"], case["options"]);
        let run = |s: &Solver| {
            sample(s, &model, &schedule, &grid, x_t.clone(), 0)
                .unwrap()
                .0
        };
        let ours = run(&solver(name, &case["options"]));
        let theirs = matrix(&case["x0"]);
        let diff = ours.max_abs_diff(&theirs);
        let plain = run(&Solver::named(name).unwrap());
        let plain_diff = plain.max_abs_diff(&matrix(&case["x0_unclamped"]));
        // DDIM's step uses only ᾱ (float64 here); DPM-Solver++ and UniPC keep their σ and λ
        // tables in float32 whatever ᾱ's dtype, and their unclamped runs differ as much.
        let tolerance = if name == "ddim" { 1e-9 } else { 1e-6 };
        assert!(diff <= tolerance, "{label}: {diff:e}");
        assert!(plain_diff <= tolerance, "{label}: unclamped {plain_diff:e}");
        // The clamp acted: the unclamped run ends far away, as diffusers' does.
        assert!(plain.max_abs_diff(&ours) > 0.5, "{label}");
    }
}

#[test]
fn clamp_options_are_validated() {
    let bad = [
        (
            vec![("clip_sample", "true"), ("thresholding", "true")],
            "not both",
        ),
        (
            vec![("clip_sample", "true"), ("clip_sample_range", "0")],
            "clip_sample_range",
        ),
        (
            vec![
                ("thresholding", "true"),
                ("dynamic_thresholding_ratio", "1.5"),
            ],
            "quantile",
        ),
        (
            vec![("thresholding", "true"), ("sample_max_value", "0.5")],
            "≥ 1",
        ),
    ];
    for (opts, words) in bad {
        let e = Solver::with("unipc", &opts).unwrap_err().to_string();
        assert!(e.contains(words), "{opts:?}: {e}");
    }
    let e = Solver::with("heun", &[("clip_sample", "true")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("does not take `clip_sample`") && e.contains("ddim"),
        "{e}"
    );
    assert!(Solver::with("ddim", &[("clip_sample", "true")])
        .unwrap()
        .clamps_data());
    assert!(!Solver::named("ddim").unwrap().clamps_data());
}

#[test]
fn orders_leave_out_clamped_runs_and_list_them() {
    use pfode::experiment::{orders, sweep_text};
    let dir = tempfile::tempdir().unwrap();
    let spec = r#"
name = "clamped"
models = ["ring2d"]
spacings = ["logsnr"]
nfe = [10, 20, 40]
samples = 50
metrics = ["error"]
[[solvers]]
name = "ddim"
[[solvers]]
name = "ddim"
clip_sample = true
clip_sample_range = 3.0
"#;
    let opts = common::sweep_options(dir.path().join("out"));
    sweep_text(&dir.path().join("spec.toml"), spec, &opts).unwrap();
    let fitted = orders::orders(&opts.out).unwrap();
    assert_eq!(fitted.len(), 1);
    assert_eq!(
        (fitted[0].solver.as_str(), fitted[0].options.as_str()),
        ("ddim", "{}")
    );
    assert!(
        (fitted[0].observed - 1.0).abs() < 0.4,
        "{}",
        fitted[0].observed
    );
    let left_out = orders::left_out(&opts.out).unwrap();
    assert_eq!(left_out.len(), 1);
    assert!(left_out[0].0.contains("clip_sample"), "{left_out:?}");
    assert!(left_out[0].1.contains("not an ODE solve"), "{left_out:?}");
}
