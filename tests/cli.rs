//! The `pfode` binary: its contract, its determinism, and its errors on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pfode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pfode"))
        .args(args)
        .output()
        .unwrap()
}

fn pfode_threads(threads: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pfode"))
        .env("RAYON_NUM_THREADS", threads)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn write_npy(path: &Path, shape: &[usize], data: &[f64], dtype: pfode::npy::Dtype) {
    std::fs::write(path, pfode::npy::encode(shape, data, dtype)).unwrap();
}

#[test]
fn sample_writes_npy_and_a_sidecar_with_the_exact_grid_and_nfe() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x0.npy");
    let o = pfode(&[
        "sample",
        "--model",
        "ring2d",
        "--solver",
        "ddim",
        "--steps",
        "25",
        "--spacing",
        "logsnr",
        "--n",
        "64",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = pfode::npy::read(&out).unwrap();
    assert_eq!(a.shape, vec![64, 2]);
    assert_eq!(a.dtype, pfode::npy::Dtype::F64);
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("x0.json")).unwrap())
            .unwrap();
    assert_eq!(side["nfe"], 25);
    assert_eq!(side["solver"], "ddim");
    assert_eq!(side["seed"], 3);
    assert_eq!(side["grid"]["t"].as_array().unwrap().len(), 26);
    assert_eq!(side["grid"]["t"][25], 0.0);
    assert_eq!(side["schedule"]["name"], "linear");
    assert_eq!(side["pfode_version"], env!("CARGO_PKG_VERSION"));
    assert!(side["wall_time_s"].as_f64().unwrap() >= 0.0);
    // The sidecar's grid is the one the library builds for the same arguments.
    let s = pfode::schedule::Schedule::ddpm_linear();
    let g = pfode::grid::TimeGrid::build(
        &s,
        &pfode::grid::Spacing::LogSnr,
        Some(25),
        Default::default(),
    )
    .unwrap();
    let t: Vec<f64> = serde_json::from_value(side["grid"]["t"].clone()).unwrap();
    assert_eq!(t, g.times());
}

#[test]
fn same_arguments_give_byte_identical_output_with_one_two_or_three_threads() {
    let dir = tempfile::tempdir().unwrap();
    // The learned model runs candle's threaded matrix products and the SIMD passes.
    for (model, solver, extra) in [
        ("mix16d", "ddim", &[][..]),
        ("mix16d", "ddpm", &[]),
        ("mix16d", "euler-maruyama", &[]),
        ("mix16d", "euler-maruyama", &["--brownian", "tree"]),
        ("mix16d", "dopri5", &[]),
        ("models/digits.safetensors", "dpm-solver++2m", &[]),
    ] {
        let mut outputs = vec![];
        // Three threads split dopri5's row chunks unevenly.
        for (k, threads) in ["1", "2", "2", "3"].iter().enumerate() {
            let out = dir.path().join(format!("{solver}{}{k}.npy", extra.len()));
            let args = [
                &[
                    "sample",
                    "--model",
                    model,
                    "--solver",
                    solver,
                    "--steps",
                    "20",
                    "--n",
                    "300",
                    "--seed",
                    "9",
                    "--out",
                    out.to_str().unwrap(),
                ][..],
                extra,
            ]
            .concat();
            let o = pfode_threads(threads, &args);
            assert!(o.status.success(), "{}", stderr(&o));
            let mut side: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
                    .unwrap();
            side.as_object_mut().unwrap().remove("wall_time_s");
            outputs.push((std::fs::read(&out).unwrap(), side));
        }
        assert_eq!(outputs[0].0, outputs[1].0, "{solver}: 1 vs 2 threads");
        assert_eq!(outputs[1].0, outputs[2].0, "{solver}: repeated run");
        assert_eq!(outputs[0].0, outputs[3].0, "{solver}: 1 vs 3 threads");
        assert_eq!(
            outputs[0].1, outputs[1].1,
            "{solver}: sidecars differ beyond wall time"
        );
    }
}

#[test]
fn noise_file_in_f32_or_f64_determines_the_run_and_f32_dtype_writes_f32() {
    let dir = tempfile::tempdir().unwrap();
    let z = pfode::noise::draw(10, 2, 4);
    let (n64, n32) = (dir.path().join("n64.npy"), dir.path().join("n32.npy"));
    write_npy(&n64, &[10, 2], &z.data, pfode::npy::Dtype::F64);
    write_npy(&n32, &[10, 2], &z.data, pfode::npy::Dtype::F32);
    let run = |noise: &Path, out: &str, extra: &[&str]| {
        let out = dir.path().join(out);
        let mut args = vec![
            "sample",
            "--model",
            "ring2d",
            "--solver",
            "ddim",
            "--steps",
            "10",
            "--noise",
            noise.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = pfode(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        pfode::npy::read(&out).unwrap()
    };
    let a = run(&n64, "a.npy", &[]);
    // The same x_T through the library gives the same numbers.
    let s = pfode::schedule::Schedule::ddpm_linear();
    let g = pfode::grid::TimeGrid::build(
        &s,
        &pfode::grid::Spacing::Trailing,
        Some(10),
        Default::default(),
    )
    .unwrap();
    let solver = pfode::solver::Solver::named("ddim").unwrap();
    let lib = pfode::solver::sample(
        &solver,
        &pfode::model::builtin("ring2d").unwrap(),
        &s,
        &g,
        z,
        0,
    )
    .unwrap()
    .0;
    assert_eq!(a.data, lib.data);
    let b = run(&n32, "b.npy", &[]);
    let gap = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(gap > 0.0 && gap < 1e-5, "f32 noise only rounds x_T: {gap}");
    let c = run(&n64, "c.npy", &["--dtype", "f32"]);
    assert_eq!(c.dtype, pfode::npy::Dtype::F32);
    let gap = a
        .data
        .iter()
        .zip(&c.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(
        gap > 1e-9 && gap < 1e-4,
        "f32 sampling stays within single precision: {gap}"
    );
}

/// Runs a command expected to fail; checks the exit code, a one-line message containing
/// `expect`, no panic, and that nothing new was written to `dir`.
fn assert_clean_failure(dir: &Path, args: &[&str], expect: &[&str]) {
    let before = files_in(dir);
    let o = pfode(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "{args:?}: expected one line, got {err}"
    );
    for e in expect {
        assert!(err.contains(e), "{args:?}: '{err}' should mention '{e}'");
    }
    assert_eq!(files_in(dir), before, "{args:?} left files behind");
}

#[test]
fn bad_inputs_fail_with_one_line_naming_the_problem_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |name: &str| d.join(name).to_str().unwrap().to_string();
    std::fs::write(
        p("malformed.json"),
        "{\"weights\": [1.0], \"means\": [[0.0]],",
    )
    .unwrap();
    std::fs::write(
        p("negstd.json"),
        r#"{"weights": [1.0], "means": [[0.0, 1.0]], "stds": [[0.5, -0.3]]}"#,
    )
    .unwrap();
    std::fs::write(
        p("zerostd.json"),
        r#"{"weights": [1.0], "means": [[0.0]], "stds": [[0.0]]}"#,
    )
    .unwrap();
    std::fs::write(
        p("weights.json"),
        r#"{"weights": [0.5, 0.4], "means": [[0.0], [1.0]], "stds": [[1.0], [1.0]]}"#,
    )
    .unwrap();
    std::fs::write(
        p("unknown.json"),
        r#"{"weights": [1.0], "means": [[0.0]], "stds": [[1.0]], "extra": 1}"#,
    )
    .unwrap();
    std::fs::write(p("notnpy.npy"), "just text").unwrap();
    write_npy(
        &d.join("noise3d.npy"),
        &[4, 3],
        &[0.0; 12],
        pfode::npy::Dtype::F64,
    );
    write_npy(
        &d.join("huge.npy"),
        &[2, 2],
        &[1e200, 0.0, 0.0, 0.0],
        pfode::npy::Dtype::F64,
    );
    let before = files_in(d);
    let out = p("out.npy");
    let base = |model: &str| -> Vec<String> {
        [
            "sample", "--model", model, "--solver", "ddim", "--steps", "10", "--n", "8", "--out",
            &out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            base(&p("malformed.json")),
            vec!["malformed.json", "invalid JSON", "line 1"],
        ),
        (
            base(&p("negstd.json")),
            vec!["negstd.json", "stds[0][1]", "positive"],
        ),
        (base(&p("zerostd.json")), vec!["zerostd.json", "stds[0][0]"]),
        (base(&p("weights.json")), vec!["weights.json", "sum to 0.9"]),
        (base(&p("unknown.json")), vec!["unknown.json", "extra"]),
        (
            base(&p("missing.json")),
            vec!["missing.json", "No such file"],
        ),
        (
            base("nosuchmodel"),
            vec!["--model", "nosuchmodel", "ring2d"],
        ),
        (
            [base("ring2d"), vec!["--noise".into(), p("noise3d.npy")]].concat(),
            vec![],
        ),
        (
            [
                &base("ring2d")[..7],
                &[
                    "--out".into(),
                    out.clone(),
                    "--noise".into(),
                    p("noise3d.npy"),
                ],
            ]
            .concat(),
            vec!["noise3d.npy", "[N, 2]", "[4, 3]"],
        ),
        (
            [
                &base("ring2d")[..7],
                &[
                    "--out".into(),
                    out.clone(),
                    "--noise".into(),
                    p("notnpy.npy"),
                ],
            ]
            .concat(),
            vec!["notnpy.npy", "not a .npy"],
        ),
        (
            [
                &base("ring2d")[..7],
                &[
                    "--out".into(),
                    out.clone(),
                    "--noise".into(),
                    p("absent.npy"),
                ],
            ]
            .concat(),
            vec!["absent.npy", "No such file"],
        ),
        (
            [
                &base("ring2d")[..7],
                &["--out".into(), out.clone(), "--noise".into(), p("huge.npy")],
            ]
            .concat(),
            vec!["not finite", "t = 1"],
        ),
        (
            [base("ring2d"), vec!["--spacing".into(), "diagonal".into()]].concat(),
            vec!["--spacing", "diagonal", "trailing"],
        ),
        (
            [
                base("ring2d"),
                vec![
                    "--spacing".into(),
                    "leading".into(),
                    "--schedule".into(),
                    "vp-linear".into(),
                ],
            ]
            .concat(),
            vec!["discrete schedule"],
        ),
        (
            [base("ring2d"), vec!["--coords".into(), "t".into()]].concat(),
            vec!["--coords", "ddim"],
        ),
        (
            [base("ring2d"), vec!["--brownian".into(), "tree".into()]].concat(),
            vec!["--brownian", "ddim", "euler-maruyama"],
        ),
        (
            [base("ring2d"), vec!["--eta".into(), "-1".into()]].concat(),
            vec!["--eta", "-1"],
        ),
        (
            [
                base("ring2d"),
                vec![
                    "--karras-rho".into(),
                    "0".into(),
                    "--spacing".into(),
                    "karras".into(),
                ],
            ]
            .concat(),
            vec!["--karras-rho"],
        ),
        (
            [base("ring2d"), vec!["--betas".into(), p("absent.json")]].concat(),
            vec!["absent.json"],
        ),
    ];
    for (args, expect) in cases {
        if expect.is_empty() {
            continue; // --n with --noise is a clap conflict, checked below
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_clean_failure(d, &args, &expect);
    }
    let steps = |n: &'static str| {
        vec![
            "sample", "--model", "ring2d", "--solver", "ddim", "--steps", n, "--n", "8", "--out",
            &out,
        ]
    };
    assert_clean_failure(d, &steps("0"), &["--steps", "at least 1"]);
    assert_clean_failure(
        d,
        &steps("1001"),
        &["--steps", "1001", "1000 training timesteps"],
    );
    let mut unknown = steps("10");
    unknown[4] = "rk9";
    assert_clean_failure(d, &unknown, &["--solver", "rk9", "euler"]);
    let bad_out = p("out.txt");
    let mut wrong_ext = steps("10");
    wrong_ext[10] = &bad_out;
    assert_clean_failure(d, &wrong_ext, &["--out", ".npy"]);
    // clap-level misuse: non-zero exit, no panic, no output (clap prints usage lines).
    let o = pfode(&[
        "sample",
        "--model",
        "ring2d",
        "--solver",
        "ddim",
        "--steps",
        "5",
        "--n",
        "3",
        "--noise",
        &p("noise3d.npy"),
        "--out",
        &out,
    ]);
    assert!(!o.status.success() && stderr(&o).contains("cannot be used with"));
    assert_eq!(files_in(d), before);
}

#[test]
fn a_model_that_returns_nan_mid_run_is_reported_with_its_time() {
    struct NanAfter(std::sync::atomic::AtomicUsize);
    impl pfode::model::ScoreModel for NanAfter {
        fn dim(&self) -> usize {
            1
        }
        fn describe(&self) -> serde_json::Value {
            serde_json::json!("nan-after-3")
        }
        fn eps_into(
            &self,
            _: &pfode::Batch,
            _: &pfode::model::Level,
            out: &mut [f64],
        ) -> pfode::Result<()> {
            let k = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            out.iter_mut()
                .for_each(|o| *o = if k == 3 { f64::NAN } else { 0.1 });
            Ok(())
        }
    }
    let s = pfode::schedule::Schedule::ddpm_linear();
    let g = pfode::grid::TimeGrid::build(
        &s,
        &pfode::grid::Spacing::Trailing,
        Some(10),
        Default::default(),
    )
    .unwrap();
    let solver = pfode::solver::Solver::named("ddim").unwrap();
    let model = NanAfter(0.into());
    let err =
        pfode::solver::sample(&solver, &model, &s, &g, pfode::noise::draw(4, 1, 0), 0).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("not finite") && msg.contains("t = 0.7 "),
        "{msg}"
    );
}

#[test]
fn check_ddim_euler_passes_and_prints_every_grid() {
    let o = pfode(&["check", "ddim-euler", "--steps", "5", "40", "--n", "32"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for spacing in ["trailing", "leading", "linspace", "logsnr", "karras"] {
        assert_eq!(
            text.lines().filter(|l| l.starts_with(spacing)).count(),
            2,
            "{text}"
        );
    }
    assert!(text.contains("OK: DDIM"));
    // On a continuous schedule it checks the continuous grids.
    let o = pfode(&[
        "check",
        "ddim-euler",
        "--steps",
        "8",
        "--schedule",
        "vp-cosine",
        "--model",
        "mix16d",
        "--n",
        "16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("uniform"));
}

#[test]
fn solvers_lists_every_registered_solver_with_its_order() {
    let o = pfode(&["solvers"]);
    let text = String::from_utf8_lossy(&o.stdout);
    for s in pfode::solver::SOLVERS {
        let line = text
            .lines()
            .find(|l| l.starts_with(s.name))
            .unwrap_or_else(|| panic!("{} missing", s.name));
        assert!(line.contains(&format!("{}", s.order)));
    }
}

#[test]
fn help_shows_defaults_on_every_command() {
    for (cmd, defaults) in [
        (
            vec!["sample", "--help"],
            vec![
                "[default: 0]",
                "[default: f64]",
                "[default: zero]",
                "[default: 7]",
                "[default: linear]",
                "[default: 1000]",
            ],
        ),
        (
            vec!["check", "ddim-euler", "--help"],
            vec!["[default: ring2d]", "[default: 10 20 50 100]"],
        ),
        (vec!["demo", "--help"], vec!["[default: results/demo]"]),
        (vec!["solvers", "--help"], vec!["Usage"]),
    ] {
        let o = pfode(&cmd);
        assert!(o.status.success());
        let text = String::from_utf8_lossy(&o.stdout);
        for d in defaults {
            assert!(text.contains(d), "{cmd:?} help lacks {d}: {text}");
        }
    }
}

#[test]
fn betas_from_a_file_define_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    // The default linear betas written out must reproduce the default schedule exactly.
    let betas: Vec<f64> = (0..1000)
        .map(|i| 1e-4 + (0.02 - 1e-4) * i as f64 / 999.0)
        .collect();
    let file = dir.path().join("betas.json");
    std::fs::write(&file, serde_json::to_string(&betas).unwrap()).unwrap();
    let run = |extra: &[&str], out: &str| {
        let out = dir.path().join(out);
        let mut args = vec![
            "sample",
            "--model",
            "ring2d",
            "--solver",
            "ddim",
            "--steps",
            "10",
            "--n",
            "20",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = pfode(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        pfode::npy::read(&out).unwrap().data
    };
    let a = run(&[], "a.npy");
    let b = run(&["--betas", file.to_str().unwrap()], "b.npy");
    let gap = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(gap < 1e-12, "{gap}");
    let c = run(&["--schedule", "cosine"], "c.npy");
    assert!(
        a.iter()
            .zip(&c)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
            > 1e-2
    );
    std::fs::write(&file, "[0.1, 1.2]").unwrap();
    let o = pfode(&[
        "sample",
        "--model",
        "ring2d",
        "--solver",
        "ddim",
        "--steps",
        "1",
        "--betas",
        file.to_str().unwrap(),
        "--out",
        dir.path().join("d.npy").to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("betas[1]"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_learned_checkpoint_samples_like_any_model_and_bad_checkpoints_fail_cleanly() {
    use pfode::model::mlp::{Mlp, MlpConfig, Prediction};
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("net.safetensors");
    let config = MlpConfig {
        dim: 2,
        width: 32,
        depth: 3,
        prediction: Prediction::Eps,
        schedule: "linear".into(),
        training: serde_json::Value::Null,
    };
    Mlp::new(config, 5).unwrap().save(&ckpt).unwrap();
    for solver in ["ddim", "heun", "dpm-solver++2m", "dopri5"] {
        let out = dir.path().join(format!("{solver}.npy"));
        let o = pfode(&[
            "sample",
            "--model",
            ckpt.to_str().unwrap(),
            "--solver",
            solver,
            "--steps",
            "10",
            "--n",
            "16",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{solver}: {}", stderr(&o));
        let side: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
                .unwrap();
        assert_eq!(side["model"]["description"]["kind"], "mlp");
        if solver == "heun" {
            // A learned model is not evaluated on clean data: the last Heun step is Euler.
            assert_eq!(side["nfe"], 19);
        }
    }
    std::fs::remove_file(ckpt.with_extension("json")).unwrap();
    let out = dir.path().join("x.npy");
    assert_clean_failure(
        dir.path(),
        &[
            "sample",
            "--model",
            ckpt.to_str().unwrap(),
            "--solver",
            "ddim",
            "--steps",
            "5",
            "--out",
            out.to_str().unwrap(),
        ],
        &["net.json"],
    );
}

#[test]
fn train_rejects_bad_arguments_without_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = d.join("m.safetensors");
    let ck = ck.to_str().unwrap();
    assert_clean_failure(
        d,
        &["train", "--data", "nosuch", "--out", ck, "--steps", "5"],
        &["--data", "nosuch"],
    );
    assert_clean_failure(
        d,
        &[
            "train",
            "--data",
            "ring2d",
            "--out",
            d.join("m.bin").to_str().unwrap(),
            "--steps",
            "5",
        ],
        &["--out", ".safetensors"],
    );
    assert_clean_failure(
        d,
        &[
            "train", "--data", "ring2d", "--out", ck, "--steps", "5", "--lr", "0",
        ],
        &["--lr"],
    );
    let missing = d.join("no/such/m.safetensors");
    assert_clean_failure(
        d,
        &[
            "train",
            "--data",
            "ring2d",
            "--out",
            missing.to_str().unwrap(),
            "--steps",
            "5",
        ],
        &["--out", "does not exist"],
    );
    assert_clean_failure(
        d,
        &[
            "train", "--data", "ring2d", "--out", ck, "--steps", "5", "--device", "cuda",
        ],
        &["--device", "cuda"],
    );
    assert_clean_failure(
        d,
        &[
            "train", "--data", "ring2d", "--out", ck, "--steps", "5", "--resume",
        ],
        // The missing checkpoint itself, not its .json.
        &["m.safetensors", "no such checkpoint"],
    );
    // A short run writes the checkpoint, its config, loss CSV and plot.
    let o = pfode(&[
        "train", "--data", "moons", "--out", ck, "--steps", "30", "--batch", "64", "--width", "16",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for ext in ["safetensors", "json", "loss.csv", "loss.png"] {
        assert!(d.join(format!("m.{ext}")).exists(), "{ext}");
    }
}

#[test]
fn bench_reports_the_mlp_and_every_solver() {
    let o = pfode(&[
        "bench",
        "--batch",
        "64",
        "--reps",
        "2",
        "--pytorch-ms",
        "9.5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("ms per NFE") && text.contains("pfode / PyTorch"));
    for s in pfode::solver::SOLVERS {
        assert!(
            text.lines().any(|l| l.starts_with(s.name)),
            "{} missing",
            s.name
        );
    }
}
