//! Messages and defaults a new user meets first: each names what is wrong or what was used.

use std::process::{Command, Output};

fn pfode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pfode"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn failure(args: &[&str]) -> String {
    let o = pfode(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    err
}

#[test]
fn a_missing_checkpoint_is_named_itself_not_its_json() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("none.safetensors");
    let out = dir.path().join("x.npy");
    let err = failure(&[
        "sample",
        "--model",
        model.to_str().unwrap(),
        "--solver",
        "ddim",
        "--steps",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("none.safetensors") && !err.contains("none.json"),
        "{err}"
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().count() == 0);
}

#[test]
fn an_unknown_model_lists_every_kind_of_model() {
    let err = failure(&[
        "sample",
        "--model",
        "nosuch",
        "--solver",
        "ddim",
        "--steps",
        "5",
        "--out",
        "/tmp/pfode-x.npy",
    ]);
    assert!(
        err.contains("--model")
            && err.contains("ring2d")
            && err.contains(".json")
            && err.contains(".safetensors"),
        "{err}"
    );
    let o = pfode(&["sample", "--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(".safetensors"));
}

#[test]
fn neither_steps_nor_nfe_asks_for_one_of_them() {
    let err = failure(&[
        "sample",
        "--model",
        "ring2d",
        "--solver",
        "ddim",
        "--out",
        "/tmp/pfode-y.npy",
    ]);
    assert!(err.contains("give --steps or --nfe"), "{err}");
}

#[test]
fn decompose_takes_the_exact_model_from_the_checkpoint_and_says_so() {
    // swissroll has no exact density: refused, naming what the network learned.
    let err = failure(&["decompose", "--model", "models/swissroll.safetensors"]);
    assert!(
        err.contains("swissroll") && err.contains("--exact"),
        "{err}"
    );
    // ring2d's checkpoint learned ring2d: used, and printed.
    let o = pfode(&[
        "decompose",
        "--model",
        "models/ring2d.safetensors",
        "--nfe",
        "10",
        "--n",
        "40",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("exact model: ring2d"), "{text}");
}

/// `pfode train --width 10¹²` aborted the process on the allocation; it is refused naming
/// `--width` before anything is sized or written.
#[test]
fn an_impossibly_wide_network_is_refused_naming_the_width_not_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("huge.safetensors");
    for (width, depth) in [("1000000000000", "3"), ("20000", "3")] {
        let err = failure(&[
            "train",
            "--data",
            "ring2d",
            "--width",
            width,
            "--depth",
            depth,
            "--steps",
            "1",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(err.contains("--width") && err.contains(width), "{err}");
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[test]
fn sample_and_reference_say_which_model_schedule_grid_and_tolerance_they_used() {
    let dir = tempfile::tempdir().unwrap();
    let noise = dir.path().join("noise.npy");
    let out = dir.path().join("x.npy");
    let o = pfode(&[
        "sample",
        "--model",
        "models/ring2d.safetensors",
        "--schedule",
        "cosine",
        "--solver",
        "heun",
        "--nfe",
        "10",
        "--spacing",
        "logsnr",
        "--n",
        "8",
        "--out",
        noise.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{said}");
    for part in [
        "model models/ring2d.safetensors",
        "schedule cosine",
        "logsnr grid",
        "solver heun",
        "nfe 9",
    ] {
        assert!(said.contains(part), "missing {part:?} in {said}");
    }
    let o = pfode(&[
        "reference",
        "--model",
        "models/ring2d.safetensors",
        "--noise",
        noise.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{said}");
    // A network's default tolerance is the f32 one (1e-7), not the exact models' 1e-10.
    for part in [
        "model models/ring2d.safetensors",
        "schedule linear",
        "rtol 1e-7",
        "atol 1e-7",
    ] {
        assert!(said.contains(part), "missing {part:?} in {said}");
    }
}
