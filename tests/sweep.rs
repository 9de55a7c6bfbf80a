//! `pfode sweep`, `merge` and `orders`: determinism, sharding, crash-safe resume, and
//! spec errors.

use pfode::experiment::table;
use std::path::Path;
use std::process::{Command, Output};

const SPEC: &str = r#"
name = "tiny"
models = ["ring2d", "gauss2d"]
spacings = ["trailing", "logsnr"]
nfe = [4, 8, 16]
seeds = [0, 1]
samples = 200
metrics = ["error", "frechet", "nll", "mode_coverage", "kid"]
[[solvers]]
name = "ddim"
[[solvers]]
name = "heun"
[[solvers]]
name = "dpm-solver++2m"
"#;

fn pfode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pfode"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// `pfode sweep SPEC --out OUT --quiet EXTRA...`, which must succeed.
fn sweep(spec: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["sweep", spec, "--out", out.to_str().unwrap(), "--quiet"];
    args.extend_from_slice(extra);
    ok(pfode(&args))
}

/// The table without its wall-time column, which is the only thing allowed to differ.
fn table_without_wall(dir: &Path) -> Vec<table::Row> {
    let (mut rows, _) = table::read(&dir.join("results.csv")).unwrap();
    rows.iter_mut().for_each(|r| r.wall_ms = 0.0);
    rows
}

/// Writes spec `text` as `dir`/spec.toml; `ROOT` in it stands for the repository root (a
/// spec's relative paths start at its own folder).
fn write_spec(dir: &Path, text: &str) -> String {
    let p = dir.join("spec.toml");
    std::fs::write(&p, text.replace("ROOT", env!("CARGO_MANIFEST_DIR"))).unwrap();
    p.to_str().unwrap().to_string()
}

/// Runs a sweep of spec `text` that must be refused: a non-zero exit, no panic, an error
/// naming the spec and each of `expect`, and no output folder left behind.
fn assert_refused(dir: &Path, text: &str, expect: &[&str]) {
    let spec = write_spec(dir, text);
    let out = dir.join("refused");
    let o = pfode(&["sweep", &spec, "--out", out.to_str().unwrap(), "--quiet"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("spec.toml"),
        "{expect:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    for e in expect {
        assert!(err.contains(e), "'{err}' should mention '{e}'");
    }
    assert!(
        !out.exists(),
        "the failed sweep left {} behind",
        out.display()
    );
}

#[test]
fn two_runs_of_a_spec_give_identical_tables_and_shards_merge_to_the_same_table() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), SPEC);
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    sweep(&spec, &a, &["--jobs", "2"]);
    sweep(&spec, &b, &["--jobs", "1"]);
    let rows = table_without_wall(&a);
    // 2 models × 2 seeds × 3 solvers × 2 spacings × 3 budgets, 1 + 5 + 4 metric rows each.
    assert_eq!(rows.len(), 72 * 10);
    assert_eq!(rows, table_without_wall(&b));
    assert!(rows
        .iter()
        .all(|r| r.metric != "error_rms" || (r.value.is_finite() && r.nfe <= 16)));
    // Three shards as separate processes, merged.
    let shards: Vec<String> = (0..3)
        .map(|k| {
            dir.path()
                .join(format!("s{k}"))
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for (k, s) in shards.iter().enumerate() {
        sweep(&spec, Path::new(s), &["--shard", &format!("{k}/3")]);
    }
    let merged = dir.path().join("merged");
    let mut args = vec!["merge"];
    args.extend(shards.iter().map(String::as_str));
    args.extend(["--out", merged.to_str().unwrap()]);
    ok(pfode(&args));
    assert_eq!(table_without_wall(&merged), rows);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["experiment"], "tiny");
    assert_eq!(meta["spec_hash"].as_str().unwrap().len(), 16);
    // Orders: DDIM's fitted order is finite and first-order-ish on ring2d.
    ok(pfode(&["orders", a.to_str().unwrap()]));
    let orders = std::fs::read_to_string(a.join("orders.csv")).unwrap();
    assert!(orders.lines().count() == 1 + 2 * 3 * 2, "{orders}");
}

#[test]
fn a_sweep_killed_mid_run_resumes_to_the_uninterrupted_table() {
    let dir = tempfile::tempdir().unwrap();
    let text = SPEC
        .replace("samples = 200", "samples = 3000")
        .replace("nfe = [4, 8, 16]", "nfe = [4, 8, 16, 32, 64]");
    let spec = write_spec(dir.path(), &text);
    let full = dir.path().join("full");
    sweep(&spec, &full, &[]);
    let cut = dir.path().join("cut");
    let mut killed = 0;
    // Kill -9 at a few moments; every restart must lose and duplicate nothing.
    for delay_ms in [300, 700] {
        let mut args = vec![
            "sweep",
            spec.as_str(),
            "--out",
            cut.to_str().unwrap(),
            "--quiet",
            "--jobs",
            "1",
        ];
        if cut.join("results.csv").exists() {
            args.push("--resume");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_pfode"))
            .args(&args)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        killed >= 1,
        "the sweep finished before it could be killed; make it longer"
    );
    let o = sweep(&spec, &cut, &["--resume"]);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("already done"), "{said}");
    assert_eq!(table_without_wall(&cut), table_without_wall(&full));
    // Without --resume an existing folder is refused, and left as it was.
    let before = std::fs::read(cut.join("results.csv")).unwrap();
    let o = pfode(&["sweep", &spec, "--out", cut.to_str().unwrap(), "--quiet"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--resume"));
    assert_eq!(std::fs::read(cut.join("results.csv")).unwrap(), before);
}

#[test]
fn bad_specs_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            SPEC.replace("samples = 200", "samples = 200\nsampels = 3"),
            "sampels",
        ),
        (
            SPEC.replace("name = \"ddim\"", "name = \"ddim\"\nrtol = 1e-3"),
            "rtol",
        ),
        (SPEC.replace("name = \"heun\"", "name = \"rk9\""), "rk9"),
        (
            SPEC.replace("\"trailing\", \"logsnr\"", "\"diagonal\""),
            "diagonal",
        ),
        (SPEC.replace("samples = 200", "samples = 1"), "samples"),
        (SPEC.replace("\"error\"", "\"accuracy\""), "accuracy"),
        (SPEC.replace("nfe = [4, 8, 16]", "nfe = []"), "nfe"),
        (
            SPEC.replace(
                "models = [\"ring2d\", \"gauss2d\"]",
                "models = [\"nosuch\"]",
            ),
            "nosuch",
        ),
        ("name = 3".to_string(), "name"),
    ];
    for (text, key) in cases {
        assert_refused(dir.path(), &text, &[key]);
    }
    let o = pfode(&["sweep", "/nonexistent/spec.toml", "--quiet"]);
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("/nonexistent/spec.toml")
    );
}

/// A run that cannot run is an error before anything is written, naming the spec, the entry
/// and what would work — not a row of NaN with steps = 0 and nfe = 0 (a dopri5 entry in an
/// NFE sweep, or heun at a budget of 1, used to give "2 runs (2 done)" and NaN rows).
#[test]
fn runs_that_cannot_run_are_errors_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            format!("{SPEC}[[solvers]]\nname = \"dopri5\"\n"),
            vec!["solvers[3]", "'dopri5'", "chooses its own steps"],
        ),
        (
            SPEC.replace("nfe = [4, 8, 16]", "nfe = [1, 4]"),
            vec!["solvers[1]", "'heun'", "nfe = 1", "at least 2"],
        ),
    ];
    for (text, expect) in cases {
        assert_refused(dir.path(), &text, &expect);
    }
}

/// `steps = [...]` sweeps step counts instead of NFE budgets: every run takes exactly those
/// steps and records the NFE they used, adaptive solvers included (their grid's points);
/// giving both or neither is an error.
#[test]
fn a_spec_can_sweep_step_counts_instead_of_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let text = SPEC
        .replace("nfe = [4, 8, 16]", "steps = [3, 6]")
        .replace("seeds = [0, 1]", "seeds = [0]")
        .replace(
            "models = [\"ring2d\", \"gauss2d\"]",
            "models = [\"ring2d\"]",
        )
        + "[[solvers]]\nname = \"dopri5\"\n";
    let spec = write_spec(dir.path(), &text);
    let out = dir.path().join("out");
    sweep(&spec, &out, &[]);
    let rows = table_without_wall(&out);
    let used = |solver: &str, steps: usize| {
        let r = rows
            .iter()
            .find(|r| r.solver == solver && r.steps == steps && r.metric == "error_rms")
            .unwrap_or_else(|| panic!("{solver} at {steps} steps"));
        assert!(r.value.is_finite() && r.value > 0.0, "{r:?}");
        r.nfe
    };
    for steps in [3, 6] {
        assert_eq!(used("ddim", steps), steps);
        // Heun's last step onto clean data is a full Heun step for an exact model.
        assert_eq!(used("heun", steps), 2 * steps);
        assert!(
            used("dopri5", steps) > 2 * steps,
            "dopri5 reports the NFE it used"
        );
    }
    for (text, key) in [
        (
            SPEC.replace("nfe = [4, 8, 16]", "nfe = [4]\nsteps = [3]"),
            "not both",
        ),
        (SPEC.replace("nfe = [4, 8, 16]", ""), "steps"),
        (
            SPEC.replace("nfe = [4, 8, 16]", "steps = [2000]"),
            "steps = 2000",
        ),
    ] {
        assert_refused(dir.path(), &text, &[key]);
    }
}

/// A sweep over a learned checkpoint: `error` is measured against the learned model's own
/// ODE solution (so it falls with NFE), the density metrics against the data it learned.
#[test]
fn a_learned_model_sweeps_against_its_own_reference_and_the_data_it_learned() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        r#"
name = "learned"
models = ["ROOT/models/ring2d.safetensors"]
spacings = ["logsnr"]
nfe = [10, 40]
samples = 200
metrics = ["error", "frechet", "mode_coverage", "sliced_wasserstein"]
[reference]
rtol = 1e-7
atol = 1e-7
[[solvers]]
name = "dpm-solver++2m"
"#,
    );
    let out = dir.path().join("out");
    sweep(&spec, &out, &[]);
    let rows = table_without_wall(&out);
    let value = |metric: &str, nfe: usize| {
        rows.iter()
            .find(|r| r.metric == metric && r.nfe == nfe)
            .unwrap()
            .value
    };
    let (e10, e40) = (value("error_rms", 10), value("error_rms", 40));
    assert!(e40 < 0.5 * e10 && e40 > 0.0, "error {e10} -> {e40}");
    // The network's own error keeps the Fréchet distance and mode gap above zero but small.
    let fd = value("frechet", 40);
    assert!(
        fd > 0.0 && fd < 0.15,
        "frechet {fd} (200 samples: the sampling floor is ≈ 0.04)"
    );
    assert!(value("mode_coverage", 40) < 0.05);
    let tag = pfode::plot::file_tag(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/ring2d.safetensors"
    ));
    assert!(out.join(format!("trajectory_{tag}.npy")).exists());
    ok(pfode(&["plot", out.to_str().unwrap()]));
    assert!(out.join(format!("plots/trajectories_{tag}.png")).exists());
}

/// Model files a spec names are found relative to the spec's folder, wherever the sweep
/// runs from; a path that is not there is refused naming the file looked for, and no output
/// folder is left behind.
#[test]
fn spec_paths_are_relative_to_the_spec_file_not_the_working_folder() {
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(specs.join("models")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mix8d.json"),
        specs.join("models/mix.json"),
    )
    .unwrap();
    let text = "name = \"rel\"\nmodels = [\"models/mix.json\"]\nspacings = [\"logsnr\"]\nnfe = [6]\nsamples = 20\nmetrics = [\"error\"]\n[[solvers]]\nname = \"ddim\"\n";
    std::fs::write(specs.join("spec.toml"), text).unwrap();
    // Run from another folder (the temp dir's root, where models/mix.json does not exist).
    let run = |spec: &Path, out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_pfode"))
            .current_dir(dir.path())
            .args([
                "sweep",
                spec.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--quiet",
            ])
            .output()
            .unwrap()
    };
    let out = dir.path().join("out");
    ok(run(&specs.join("spec.toml"), &out));
    let rows = table_without_wall(&out);
    assert!(rows.iter().all(|r| r.model == "models/mix.json"));
    assert!(rows
        .iter()
        .any(|r| r.metric == "error_rms" && r.value > 0.0));
    // The same spec one folder up: models/mix.json is not beside it.
    std::fs::write(dir.path().join("spec.toml"), text).unwrap();
    let out2 = dir.path().join("out2");
    let o = run(&dir.path().join("spec.toml"), &out2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("models/mix.json") && err.contains("spec.toml"),
        "{err}"
    );
    assert!(!out2.exists(), "no output folder on a refused spec");
}

#[test]
fn density_metrics_on_a_model_without_an_exact_density_are_refused_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        r#"
name = "bad"
models = ["ROOT/models/swissroll.safetensors"]
spacings = ["logsnr"]
nfe = [10]
samples = 50
metrics = ["error", "nll"]
[[solvers]]
name = "ddim"
"#,
    );
    let out = dir.path().join("out");
    let o = pfode(&["sweep", &spec, "--out", out.to_str().unwrap(), "--quiet"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("spec.toml")
            && err.contains("'nll'")
            && err.contains("swissroll"),
        "{err}"
    );
    assert!(!out.join("results.csv").exists());
}

/// Adaptive solvers have their own axis: `rtol`/`atol` lists in an NFE sweep give one run
/// per tolerance over the whole interval (spacing `adaptive`, no budget), recording the NFE
/// used; any option given as a list is an axis. The `budget` column holds the NFE asked for
/// beside the NFE used (Heun at budget 5 uses 4).
#[test]
fn tolerance_lists_are_an_adaptive_axis_and_the_budget_column_holds_the_nfe_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        r#"
name = "axes"
models = ["ring2d"]
spacings = ["logsnr", "trailing"]
nfe = [5, 10]
samples = 100
metrics = ["error", "sliced_wasserstein"]
[[solvers]]
name = "heun"
[[solvers]]
name = "dopri5"
rtol = [1e-3, 1e-5, 1e-7]
atol = [1e-3, 1e-5, 1e-7]
[[solvers]]
name = "ddim"
eta = [0.0, 0.2]
"#,
    );
    let out = dir.path().join("out");
    sweep(&spec, &out, &[]);
    let rows = table_without_wall(&out);
    let rms = |r: &&table::Row| r.metric == "error_rms";
    let dopri: Vec<&table::Row> = rows
        .iter()
        .filter(rms)
        .filter(|r| r.solver == "dopri5")
        .collect();
    assert_eq!(
        dopri.len(),
        3,
        "one run per tolerance, not per spacing or budget"
    );
    assert!(dopri
        .iter()
        .all(|r| r.spacing == "adaptive" && r.budget.is_none()));
    assert!(
        dopri
            .windows(2)
            .all(|w| w[1].nfe > w[0].nfe && w[1].value < w[0].value),
        "tighter tolerances use more NFE for less error: {:?}",
        dopri.iter().map(|r| (r.nfe, r.value)).collect::<Vec<_>>()
    );
    let heun5 = rows
        .iter()
        .find(|r| r.solver == "heun" && r.budget == Some(5) && r.metric == "diverged")
        .unwrap();
    assert_eq!((heun5.nfe, heun5.steps), (4, 2));
    let ddim: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.solver == "ddim")
        .map(|r| r.options.as_str())
        .collect();
    assert_eq!(ddim.len(), 2, "{ddim:?}");
    // η = 0.2 is stochastic: its runs record no error to the ODE reference.
    let stochastic: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.solver == "ddim" && r.options.contains("0.2"))
        .map(|r| r.metric.as_str())
        .collect();
    assert_eq!(stochastic, ["diverged", "sliced_wasserstein"].into());
    let header = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(header.starts_with(
        "run,experiment,model,schedule,solver,options,coords,spacing,steps,budget,nfe,"
    ));
    // The plot draws dopri5 as one line through its tolerances.
    ok(pfode(&["plot", out.to_str().unwrap()]));
    let svg = std::fs::read_to_string(out.join("plots/error_vs_nfe_ring2d_logsnr.svg")).unwrap();
    assert_eq!(svg.matches("dopri5 (adaptive, over rtol)").count(), 1);

    for (text, expect) in [
        (
            "name = \"a\"\nmodels = [\"ring2d\"]\nspacings = [\"logsnr\"]\nnfe = [5]\nsamples = 20\n[[solvers]]\nname = \"ddim\"\n[[solvers]]\nname = \"dopri5\"\nrtol = [1e-3, 1e-5]\natol = [1e-3]\n",
            vec!["solvers[1]", "atol has 1, rtol has 2"],
        ),
        (
            "name = \"a\"\nmodels = [\"ring2d\"]\nspacings = [\"logsnr\"]\nnfe = [5]\nsamples = 20\n[[solvers]]\nname = \"dopri5\"\nrtol = []\n",
            vec!["solvers[0]", "rtol: expected at least one value"],
        ),
        (
            "name = \"a\"\nmodels = [\"ring2d\"]\nspacings = [\"logsnr\"]\nnfe = [5]\nsamples = 20\n[[solvers]]\nname = \"dopri5\"\n",
            vec!["solvers[0]", "'dopri5'", "rtol = ["],
        ),
    ] {
        assert_refused(dir.path(), text, &expect);
    }
}
