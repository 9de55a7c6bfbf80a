//! `pfode optimize-grid` and `pfode::optimize`: the grids it writes are valid grids of the
//! NFE it was asked for, read back bit for bit, are reproducible at any thread count, and
//! beat (or match) the best fixed spacing on held-out noise where the answer is known.

use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::model::{builtin, GaussianMixture};
use pfode::optimize::{self, dp, Method, Objective, Optimized, Options, Problem};
use pfode::schedule::Schedule;
use pfode::solver::Solver;
use std::process::Command;

mod common;

fn run(
    model: &GaussianMixture,
    solver: &Solver,
    nfe: usize,
    tune: impl FnOnce(&mut Options),
) -> pfode::Result<Optimized> {
    let schedule = Schedule::ddpm_linear();
    let problem = Problem {
        model,
        schedule: &schedule,
        solver,
        nfe,
        grid: GridOptions::default(),
    };
    let mut o = Options::new(&schedule, model);
    o.calibration = 128;
    o.held_out = 256;
    o.max_evals = 400;
    o.candidates = 24;
    tune(&mut o);
    optimize::optimize(&problem, &o)
}

#[test]
fn an_optimised_grid_is_monotone_inside_the_schedule_and_uses_exactly_the_fixed_grids_nfe() {
    let schedule = Schedule::ddpm_linear();
    let model = builtin("ring2d").unwrap();
    for (name, opts, nfe) in [
        ("ddim", vec![], 5),
        ("heun", vec![], 9),
        ("unipc", vec![], 6),
        ("ipndm", vec![], 8),
        ("ipndm", vec![("warm_start", "multistep")], 5),
    ] {
        let solver = Solver::with(name, &opts).unwrap();
        for method in [Method::Direct, Method::Dp] {
            let r = run(&model, &solver, nfe, |o| o.method = method).unwrap();
            let t = r.grid.times();
            assert_eq!(t[0], schedule.t_max(), "{name} {method}");
            assert_eq!(*t.last().unwrap(), 0.0, "{name} {method}");
            assert!(t.windows(2).all(|w| w[1] < w[0]), "{name} {method}: {t:?}");
            // The dry-run count on the grid itself, not the report's word for it.
            let used = solver.nfe_on(&schedule, &r.grid, true).unwrap();
            let fixed = solver.nfe_on(&schedule, &r.best().grid, true).unwrap();
            assert_eq!(used, r.nfe, "{name} {method}");
            assert_eq!(used, fixed, "{name} {method}");
            assert!(used <= nfe, "{name} {method}: {used} > {nfe}");
            assert_eq!(r.grid.steps(), r.best().grid.steps(), "{name} {method}");
        }
    }
}

#[test]
fn a_written_grid_file_reads_back_bit_for_bit_through_spacing_file() {
    let schedule = Schedule::ddpm_linear();
    let model = builtin("ring2d").unwrap();
    let solver = Solver::named("dpm-solver++2m").unwrap();
    let r = run(&model, &solver, 6, |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.json");
    optimize::write_grid(&path, &schedule, &r.grid, serde_json::json!({"test": true})).unwrap();
    let spacing: Spacing = format!("file:{}", path.display()).parse().unwrap();
    let back = TimeGrid::build(&schedule, &spacing, None, GridOptions::default()).unwrap();
    assert_eq!(back.times(), r.grid.times());
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["made_by"]["test"], true);
    assert_eq!(
        doc["lambda"].as_array().unwrap().last().unwrap(),
        &serde_json::Value::Null
    );
}

#[test]
fn on_a_gaussian_the_optimised_grid_is_no_worse_than_the_best_fixed_grid_on_held_out_noise() {
    // gauss2d has a closed-form flow; the reference solve is checked against it first.
    let model = builtin("gauss2d").unwrap();
    let schedule = Schedule::ddpm_linear();
    let x = pfode::noise::draw(64, 2, 5);
    let (dop, _) = pfode::reference::solve(
        &model,
        &schedule,
        &x,
        1.0,
        0.0,
        &pfode::reference::Settings::default(),
    )
    .unwrap();
    let exact = model
        .gaussian_flow(
            &x,
            &pfode::model::Level::at(&schedule, 1.0),
            &pfode::model::Level::at(&schedule, 0.0),
        )
        .unwrap();
    assert!(dop.max_abs_diff(&exact) < 1e-8);
    for (name, nfe) in [("ddim", 5), ("dpm-solver++2m", 5), ("unipc", 8)] {
        let solver = Solver::named(name).unwrap();
        let r = run(&model, &solver, nfe, |_| {}).unwrap();
        assert!(
            r.scores.held_out <= r.best().scores.held_out,
            "{name}: held-out {} vs best fixed {}",
            r.scores.held_out,
            r.best().scores.held_out
        );
        assert!(r.scores.calibration <= r.best().scores.calibration);
    }
}

#[test]
fn unipc_on_ring2d_at_nfe_6_halves_the_best_fixed_grids_held_out_error() {
    let model = builtin("ring2d").unwrap();
    let solver = Solver::named("unipc").unwrap();
    let r = run(&model, &solver, 6, |o| {
        o.calibration = 256;
        o.max_evals = 1500;
    })
    .unwrap();
    assert!(r.held_out_ratio() < 0.5, "ratio {}", r.held_out_ratio());
}

#[test]
fn the_same_seeds_give_the_same_grid_bit_for_bit_at_any_thread_count() {
    let model = builtin("ring2d").unwrap();
    let solver = Solver::named("unipc").unwrap();
    for method in [Method::Direct, Method::Dp] {
        let tune = |o: &mut Options| o.method = method;
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| run(&model, &solver, 5, tune).unwrap());
        let many = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(|| run(&model, &solver, 5, tune).unwrap());
        let bits = |g: &TimeGrid| g.times().iter().map(|t| t.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&one.grid), bits(&many.grid), "{method}");
        assert_eq!(
            one.scores.held_out.to_bits(),
            many.scores.held_out.to_bits()
        );
        let other = run(&model, &solver, 5, |o| {
            o.method = method;
            o.seed = 7;
            o.held_out_seed = 8;
        })
        .unwrap();
        assert_ne!(
            bits(&one.grid),
            bits(&other.grid),
            "{method}: seeds ignored"
        );
    }
}

#[test]
fn dp_grids_are_paths_through_the_candidates() {
    let schedule = Schedule::ddpm_linear();
    let model = builtin("ring2d").unwrap();
    let solver = Solver::named("ddim").unwrap();
    for cost in [dp::Cost::Propagated, dp::Cost::Local] {
        let r = run(&model, &solver, 6, |o| {
            o.method = Method::Dp;
            o.dp_cost = cost;
        })
        .unwrap();
        let problem = Problem {
            model: &model,
            schedule: &schedule,
            solver: &solver,
            nfe: 6,
            grid: GridOptions::default(),
        };
        let candidates = dp::candidates(&problem, 24);
        assert_eq!(candidates.len(), 25);
        for t in r.grid.times() {
            assert!(candidates.contains(t), "{cost}: {t} is not a candidate");
        }
    }
}

#[test]
fn searches_that_cannot_be_judged_are_refused_with_the_field_named() {
    let model = builtin("ring2d").unwrap();
    type Tune = Box<dyn Fn(&mut Options)>;
    let cases: Vec<(Solver, Tune, &str)> = vec![
        (
            Solver::named("dopri5").unwrap(),
            Box::new(|_| {}),
            "solver: dopri5 chooses its own steps",
        ),
        (
            Solver::named("ddpm").unwrap(),
            Box::new(|_| {}),
            "objective: ddpm injects noise",
        ),
        (
            Solver::named("ddim").unwrap(),
            Box::new(|o| o.held_out_seed = o.seed),
            "held_out_seed: must differ",
        ),
        (
            Solver::named("ddim").unwrap(),
            Box::new(|o| o.objective = Objective::DigitsFd),
            "objective: digits-fd scores 8×8 digits",
        ),
        (
            Solver::named("heun").unwrap(),
            Box::new(|_| {}),
            "nfe: 1 is too small",
        ),
    ];
    for (solver, tune, expected) in cases {
        let nfe = if solver.name() == "heun" { 1 } else { 5 };
        let err = run(&model, &solver, nfe, tune).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{err}");
    }
}

#[test]
fn the_command_writes_a_grid_that_pfode_sample_runs_at_the_same_nfe_and_bad_calls_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.json");
    let bin = env!("CARGO_BIN_EXE_pfode");
    let out = Command::new(bin)
        .args([
            "optimize-grid",
            "--model",
            "ring2d",
            "--solver",
            "dpm-solver++2m",
            "--nfe",
            "6",
        ])
        .args([
            "--calibration",
            "64",
            "--held-out",
            "128",
            "--max-evals",
            "200",
            "--out",
        ])
        .arg(&grid)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("held-out ratio to the best fixed grid"),
        "{text}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&grid).unwrap()).unwrap();
    assert_eq!(doc["made_by"]["solver"], "dpm-solver++2m");
    assert_eq!(doc["made_by"]["calibration"]["n"], 64);
    assert_eq!(doc["made_by"]["held_out"]["seed"], 1);
    assert_eq!(doc["made_by"]["model"]["spec"], "ring2d");
    let samples = dir.path().join("s.npy");
    let out = Command::new(bin)
        .args([
            "sample",
            "--model",
            "ring2d",
            "--solver",
            "dpm-solver++2m",
            "--n",
            "8",
        ])
        .arg("--spacing")
        .arg(format!("file:{}", grid.display()))
        .arg("--out")
        .arg(&samples)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(samples.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(side["nfe"], doc["made_by"]["nfe"]);
    assert_eq!(side["grid"]["t"], doc["t"]);
    for (args, expected) in [
        (
            vec!["--solver", "dopri5"],
            "solver: dopri5 chooses its own steps",
        ),
        (
            vec!["--solver", "ddim", "--seed", "3", "--held-out-seed", "3"],
            "--held-out-seed: must differ",
        ),
        (
            vec!["--solver", "ddim", "--spacings", "trailing,nope"],
            "spacing: unknown spacing 'nope'",
        ),
    ] {
        let bad = dir.path().join("bad.json");
        let out = Command::new(bin)
            .args(["optimize-grid", "--model", "ring2d", "--nfe", "5", "--out"])
            .arg(&bad)
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expected),
            "{args:?}: {err}"
        );
        assert!(!bad.exists(), "{args:?} left {}", bad.display());
    }
}

/// Committed grids of experiments/optimized_grids.toml are data the code must still
/// produce: re-running two of the study's searches from what their files record gives the
/// same times bit for bit and the same held-out error.
#[test]
fn committed_optimised_grids_regenerate_bit_for_bit() {
    use pfode::optimize::study::StudySpec;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = StudySpec::from_file(&root.join("experiments/optimized_grids.toml")).unwrap();
    let schedule = Schedule::named(&spec.schedule).unwrap();
    for file in ["ring2d_unipc_nfe6_direct.json", "ring2d_ddim_nfe5_dp.json"] {
        let path = root.join("results/optimized_grids/grids").join(file);
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let made = &doc["made_by"];
        let entry = spec
            .solvers
            .iter()
            .find(|e| e.name == made["solver"].as_str().unwrap())
            .unwrap();
        let solver = Solver::build(&entry.name, &entry.options).unwrap();
        let model = builtin(made["model"]["spec"].as_str().unwrap()).unwrap();
        let problem = Problem {
            model: &model,
            schedule: &schedule,
            solver: &solver,
            nfe: made["nfe_budget"].as_u64().unwrap() as usize,
            grid: GridOptions::default(),
        };
        let mut o = Options::new(&schedule, &model);
        let n = |v: &serde_json::Value| v.as_u64().unwrap() as usize;
        o.method = made["method"].as_str().unwrap().parse().unwrap();
        o.calibration = n(&made["calibration"]["n"]);
        o.seed = made["calibration"]["seed"].as_u64().unwrap();
        o.held_out = n(&made["held_out"]["n"]);
        o.held_out_seed = made["held_out"]["seed"].as_u64().unwrap();
        if o.method == Method::Dp {
            o.candidates = n(&made["candidates"]);
            o.dp_rows = n(&made["dp_rows"]);
            o.dp_cost = made["dp_cost"].as_str().unwrap().parse().unwrap();
        } else {
            o.max_evals = n(&made["max_evals"]);
            o.starts = n(&made["starts"]);
        }
        let r = optimize::optimize(&problem, &o).unwrap();
        let committed: Vec<f64> = serde_json::from_value(doc["t"].clone()).unwrap();
        let bits = |t: &[f64]| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(r.grid.times()), bits(&committed), "{file}");
        assert_eq!(
            r.scores.held_out,
            made["after"]["held_out"].as_f64().unwrap(),
            "{file}"
        );
    }
}

#[test]
fn a_grid_file_runs_in_a_sweep_under_an_nfe_budget_that_holds_it_and_is_refused_under_one_that_does_not(
) {
    let schedule = Schedule::ddpm_linear();
    let model = builtin("ring2d").unwrap();
    let solver = Solver::named("unipc").unwrap();
    let r = run(&model, &solver, 6, |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.json");
    optimize::write_grid(&grid, &schedule, &r.grid, serde_json::json!({})).unwrap();
    let spec = |nfe: usize| {
        let path = dir.path().join(format!("spec{nfe}.toml"));
        std::fs::write(
            &path,
            format!(
                "name = \"g\"\nmodels = [\"ring2d\"]\nspacings = [\"file:{}\"]\nnfe = [{nfe}]\n\
                 samples = 64\nmetrics = [\"error\"]\n[[solvers]]\nname = \"unipc\"\n",
                grid.display()
            ),
        )
        .unwrap();
        path
    };
    let out = dir.path().join("ok");
    pfode::experiment::sweep(&spec(8), &common::sweep_options(out.clone())).unwrap();
    let (rows, _) = pfode::experiment::table::read(&out.join("results.csv")).unwrap();
    let error = rows.iter().find(|r| r.metric == "error_rms").unwrap();
    assert_eq!((error.steps, error.nfe), (r.grid.steps(), 6));
    assert!(error.value.is_finite() && error.value > 0.0);
    let bad = dir.path().join("bad");
    let err = match pfode::experiment::sweep(&spec(5), &common::sweep_options(bad.clone())) {
        Ok(_) => panic!("a budget below the grid's NFE ran"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("cannot run within nfe = 5") && err.contains("grid.json"),
        "{err}"
    );
    assert!(!bad.exists());
}
