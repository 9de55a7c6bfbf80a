//! `pfode reference`: DOP853 in f64 against an independent solver, its own tolerance
//! sensitivity, a closed form, and the command line.

mod common;

use common::{fixture, matrix};
use pfode::model::{builtin, Level};
use pfode::noise::draw as draw_noise;
use pfode::reference::{solve, Mode, Settings};
use pfode::schedule::Schedule;
use pfode::Batch;
use serde_json::Value;
use std::process::Command;

fn tol(t: f64, mode: Mode) -> Settings {
    Settings {
        rtol: t,
        atol: t,
        mode,
        progress: false,
    }
}

#[test]
fn reference_agrees_with_scipy_dop853_to_1e_8() {
    let f = fixture("scipy_reference.json");
    let s = Schedule::ddpm_linear();
    // Same start: scipy's σ(t = 1) from the cumulative product in f64.
    assert!((s.sigma_ratio(1.0) - f["sigma_start"].as_f64().unwrap()).abs() < 1e-10);
    let (x_t, scipy) = (matrix(&f["x_t"]), matrix(&f["x0"]));
    for mode in [Mode::Batch, Mode::PerSample] {
        let (ours, _) = solve(
            &builtin("ring2d").unwrap(),
            &s,
            &x_t,
            1.0,
            0.0,
            &tol(1e-10, mode),
        )
        .unwrap();
        let diff = ours.max_abs_diff(&scipy);
        println!("{mode:?}: max |pfode - scipy| = {diff:.2e}");
        assert!(diff <= 1e-8, "{mode:?}: {diff:e}");
    }
}

#[test]
fn halving_the_tolerances_moves_the_reference_by_at_most_1e_9() {
    let s = Schedule::ddpm_linear();
    let x_t = draw_noise(64, 2, 4);
    let m = builtin("ring2d").unwrap();
    let (a, _) = solve(&m, &s, &x_t, 1.0, 0.0, &tol(1e-10, Mode::Batch)).unwrap();
    let (b, _) = solve(&m, &s, &x_t, 1.0, 0.0, &tol(5e-11, Mode::Batch)).unwrap();
    let diff = a.max_abs_diff(&b);
    println!("1e-10 vs 5e-11: {diff:.2e}");
    assert!(diff <= 1e-9 && diff > 0.0, "{diff:e}");
}

#[test]
fn reference_matches_the_closed_form_gaussian_flow_in_both_modes() {
    for s in [
        Schedule::ddpm_linear(),
        Schedule::vp_linear(),
        Schedule::vp_cosine(),
    ] {
        let g = builtin("gauss2d").unwrap();
        let x_t = draw_noise(50, 2, 5);
        let exact = g
            .gaussian_flow(&x_t, &Level::at(&s, s.t_max()), &Level::at(&s, 0.0))
            .unwrap();
        for mode in [Mode::Batch, Mode::PerSample] {
            let (r, st) = solve(&g, &s, &x_t, s.t_max(), 0.0, &tol(1e-10, mode)).unwrap();
            let diff = r.max_abs_diff(&exact);
            assert!(diff <= 2e-9, "{} {mode:?}: {diff:e}", s.name());
            assert!(st.model_calls > 0);
        }
    }
}

#[test]
fn reference_stops_with_the_model_error_when_the_model_fails() {
    let s = Schedule::ddpm_linear();
    let x = Batch::new(1, 2, vec![1e200, 0.0]).unwrap();
    let err = solve(
        &builtin("ring2d").unwrap(),
        &s,
        &x,
        1.0,
        0.0,
        &tol(1e-8, Mode::Batch),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not finite"), "{err}");
    let err = solve(
        &builtin("ring2d").unwrap(),
        &s,
        &x,
        1.0,
        0.0,
        &tol(0.0, Mode::Batch),
    )
    .unwrap_err();
    assert!(err.to_string().contains("rtol"), "{err}");
}

#[test]
fn reference_command_writes_solution_trajectory_and_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let noise = dir.path().join("xt.npy");
    let z = draw_noise(6, 2, 7);
    std::fs::write(
        &noise,
        pfode::npy::encode(&[6, 2], &z.data, pfode::npy::Dtype::F64),
    )
    .unwrap();
    let out = dir.path().join("ref.npy");
    let bin = env!("CARGO_BIN_EXE_pfode");
    let o = Command::new(bin)
        .args([
            "reference",
            "--model",
            "ring2d",
            "--noise",
            noise.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--trajectory",
            "0.5,0.1",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = pfode::npy::read(&out).unwrap();
    let (lib, _) = solve(
        &builtin("ring2d").unwrap(),
        &Schedule::ddpm_linear(),
        &z,
        1.0,
        0.0,
        &Settings::default(),
    )
    .unwrap();
    assert!(Batch::new(6, 2, r.data).unwrap().max_abs_diff(&lib) < 1e-8);
    let traj = pfode::npy::read(&out.with_extension("trajectory.npy")).unwrap();
    assert_eq!(traj.shape, vec![2, 6, 2]);
    let side: Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(side["rtol"], 1e-10);
    assert!(side["nfe"].as_u64().unwrap() > 10);
    // A learned model's reference defaults to 1e-7, and the sidecar says so.
    let learned = dir.path().join("learned.npy");
    let checkpoint = concat!(env!("CARGO_MANIFEST_DIR"), "/models/swissroll.safetensors");
    let o = Command::new(bin)
        .args(["reference", "--model", checkpoint, "--noise"])
        .args([noise.to_str().unwrap(), "--out", learned.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("rtol 1e-7, atol 1e-7"));
    let side: Value =
        serde_json::from_str(&std::fs::read_to_string(learned.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(
        (side["rtol"].as_f64(), side["atol"].as_f64()),
        (Some(1e-7), Some(1e-7))
    );
    // Bad tolerance and bad trajectory: clean failures, nothing written.
    for (flag, value, expect) in [
        ("--rtol", "2", "--rtol"),
        ("--trajectory", "0.5,abc", "abc"),
        ("--trajectory", "0.1,0.5", "decrease"),
    ] {
        let out2 = dir.path().join("bad.npy");
        let o = Command::new(bin)
            .args([
                "reference",
                "--model",
                "ring2d",
                "--noise",
                noise.to_str().unwrap(),
                "--out",
                out2.to_str().unwrap(),
                flag,
                value,
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(expect),
            "{flag} {value}: {err}"
        );
        assert!(!out2.exists());
    }
}
