//! Command implementations: each validates its inputs, calls the library, and writes
//! outputs only once everything has succeeded.

use crate::batch::Batch;
use crate::check;
use crate::cli::{CheckCommand, Cli, Command, DemoArgs, SampleArgs};
use crate::error::{Error, Result};
use crate::grid::TimeGrid;
use crate::model::{self, Counted, ScoreModel};
use crate::noise::{self, Purpose};
use crate::npy::{self, Dtype};
use crate::solver::{self, Ctx, Precision, Solver};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Runs a parsed command line.
pub fn main(cli: Cli) -> Result<()> {
    if let Some(threads) = cli.threads {
        if threads == 0 {
            return Err(Error::invalid("--threads", "expected at least 1"));
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|e| Error::invalid("--threads", e.to_string()))?;
    }
    match cli.command {
        Command::Digits(cmd) => crate::digits::command(&cmd),
        Command::Sample(args) => {
            let report = sample(&args)?;
            println!(
                "wrote {} ({} samples × {}) and {}: solver {}, {} steps, nfe {}, {:.3} s",
                args.out.display(),
                report.n,
                report.d,
                report.sidecar.display(),
                report.solver,
                report.steps,
                report.nfe,
                report.wall_s
            );
            Ok(())
        }
        Command::Check(CheckCommand::DdimEuler(args)) => {
            let rows = check::ddim_euler(&args)?;
            print!("{}", check::format_rows(&rows));
            check::verdict(&rows)
        }
        Command::Solvers => {
            print!("{}", solvers_table());
            Ok(())
        }
        Command::Demo(args) => demo(&args),
        Command::Sweep(args) => {
            use crate::experiment::{runner, sweep, Spec, SweepOptions};
            let (spec, _) = Spec::from_file(&args.spec)?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("results").join(&spec.name));
            let opts = SweepOptions {
                out: out.clone(),
                shard: args.shard.as_deref().map(runner::parse_shard).transpose()?,
                resume: args.resume,
                jobs: args.jobs.unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(1)
                }),
                quiet: args.quiet,
            };
            let r = sweep(&args.spec, &opts)?;
            println!(
                "{}: {} runs ({} done now, {} already done) in {:.1} s -> {}",
                spec.name,
                r.runs_total,
                r.runs_done_now,
                r.runs_skipped,
                r.wall_s,
                out.join("results.csv").display()
            );
            Ok(())
        }
        Command::Merge(args) => {
            let n = crate::experiment::merge(&args.dirs, &args.out)?;
            println!(
                "merged {} rows from {} folders into {}",
                n,
                args.dirs.len(),
                args.out.join("results.csv").display()
            );
            Ok(())
        }
        Command::Train(args) => {
            use crate::model::{mlp::Mlp, train};
            let c = train::TrainConfig {
                data: args.data.clone(),
                steps: args.steps,
                batch: args.batch,
                lr: args.lr,
                warmup: args.warmup.min(args.steps.saturating_sub(1)),
                ema: args.ema,
                seed: args.seed,
                schedule: args.schedule.clone(),
                width: args.width,
                depth: args.depth,
                prediction: args.prediction,
                device: args.device,
            };
            if args.out.extension().is_none_or(|e| e != "safetensors") {
                return Err(Error::invalid(
                    "--out",
                    format!("expected a .safetensors path, got {}", args.out.display()),
                ));
            }
            // Fail before training, not after it.
            let dir = args.out.parent().filter(|p| !p.as_os_str().is_empty());
            if dir.is_some_and(|d| !d.is_dir()) {
                return Err(Error::invalid(
                    "--out",
                    format!("folder {} does not exist", dir.unwrap().display()),
                ));
            }
            let start = if args.resume {
                Some(Mlp::load(&args.out)?)
            } else {
                None
            };
            let (_, report) = train::train(&c, &args.out, start, args.quiet)?;
            crate::plot::loss_plot(&report.losses, &args.out.with_extension("loss.png"))?;
            let tail = &report.losses[report.losses.len().saturating_sub(100)..];
            println!(
                "trained {} steps in {:.1} s: loss {:.4} -> {:.4} (mean of the last {}); wrote {}",
                c.steps,
                report.wall_s,
                report.losses[0],
                tail.iter().sum::<f64>() / tail.len() as f64,
                tail.len(),
                args.out.display()
            );
            Ok(())
        }
        Command::Bench(args) => {
            if args.batch == 0 || args.reps == 0 {
                return Err(Error::invalid("--batch/--reps", "expected at least 1"));
            }
            // Timed on a pool thread, where solver runs go (see `Solver::run`).
            let report =
                rayon::scope(|_| crate::bench::run(args.batch, args.reps, args.pytorch_ms))?;
            print!("{report}");
            Ok(())
        }
        Command::Decompose(args) => {
            let rows = decompose(&args)?;
            println!(
                "{:>6} {:>14} {:>16} {:>12} {:>12}",
                "nfe", "total (RMS)", "discretisation", "network", "exact solver"
            );
            for r in &rows {
                println!(
                    "{:>6} {:>14.4e} {:>16.4e} {:>12.4e} {:>12.4e}",
                    r.nfe, r.total, r.discretisation, r.network, r.exact_discretisation
                );
            }
            Ok(())
        }
        Command::Plot(args) => {
            let files = crate::plot::plot(&args.dir)?;
            println!(
                "wrote {} plot files to {}",
                files.len(),
                args.dir.join("plots").display()
            );
            Ok(())
        }
        Command::Orders(args) => {
            let orders = crate::experiment::orders::orders(&args.dir)?;
            println!(
                "{:<8} {:<20} {:<26} {:<10} {:>8} {:>9}  nfe",
                "model", "solver", "options", "spacing", "declared", "observed"
            );
            for o in &orders {
                println!(
                    "{:<8} {:<20} {:<26} {:<10} {:>8} {:>9.2}  {}",
                    o.model, o.solver, o.options, o.spacing, o.declared, o.observed, o.nfe_used
                );
            }
            Ok(())
        }
        Command::Reference(args) => {
            let (wall, stats) = reference(&args)?;
            println!(
                "wrote {}: DOP853 at rtol {:e}, atol {:e}, {} model calls, {:.3} s",
                args.out.display(),
                args.rtol,
                args.atol,
                stats.model_calls,
                wall
            );
            Ok(())
        }
    }
}

/// The `pfode solvers` table.
pub fn solvers_table() -> String {
    let mut out = format!(
        "{:<18} {:>5}  {:<10} {}\n",
        "solver", "order", "kind", "options / notes"
    );
    for s in solver::SOLVERS {
        let kind = if s.stochastic { "stochastic" } else { "ODE" };
        out.push_str(&format!(
            "{:<18} {:>5}  {:<10} {}\n",
            s.name, s.order, kind, s.summary
        ));
        if !s.options.is_empty() {
            out.push_str(&format!("{:<37}options: {}\n", "", s.options.join(" ")));
        }
    }
    out
}

/// What a finished `sample` run reports.
pub struct SampleReport {
    pub n: usize,
    pub d: usize,
    pub steps: usize,
    pub nfe: usize,
    pub wall_s: f64,
    pub solver: String,
    pub sidecar: PathBuf,
}

/// The sidecar path of an output `.npy`.
pub fn sidecar_path(out: &Path) -> PathBuf {
    out.with_extension("json")
}

/// Reads x_T from `.npy`, checking it is `[N, dim]` and finite.
pub fn read_noise(path: &Path, dim: usize) -> Result<Batch> {
    read_rows(path, dim, "noise")
}

/// Reads finite rows `[N ≥ 1, dim]` (`what` names them in errors).
pub fn read_rows(path: &Path, dim: usize, what: &str) -> Result<Batch> {
    let a = npy::read(path)?;
    if a.shape.len() != 2 || a.shape[1] != dim {
        return Err(Error::file(
            path,
            format!("expected {what} of shape [N, {dim}], got {:?}", a.shape),
        ));
    }
    if a.shape[0] == 0 {
        return Err(Error::file(path, "expected at least one sample, got N = 0"));
    }
    if let Some(i) = a.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::file(
            path,
            format!("value at flat index {i} is not finite"),
        ));
    }
    Batch::new(a.shape[0], dim, a.data)
}

/// Standard-normal x_T for `n` samples from `seed`.
pub fn draw_noise(n: usize, dim: usize, seed: u64) -> Batch {
    Batch {
        n,
        d: dim,
        data: noise::normals(seed, Purpose::InitialNoise, 0, n * dim),
    }
}

/// `pfode sample`.
pub fn sample(args: &SampleArgs) -> Result<SampleReport> {
    if args.out.extension().is_none_or(|e| e != "npy") {
        return Err(Error::invalid(
            "--out",
            format!("expected a path ending in .npy, got {}", args.out.display()),
        ));
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(Error::invalid(
                "--out",
                format!("directory {} does not exist", dir.display()),
            ));
        }
    }
    let schedule = args.schedule.build()?;
    let model = model::load(&args.model)?;
    let model = model.as_ref();
    let solver = Solver::build(&args.solver, &args.solver_options())?;
    let spacing = args.spacing(&schedule)?;
    let steps = match (args.nfe, solver.is_adaptive()) {
        (Some(_), true) => {
            return Err(Error::invalid(
                "--nfe",
                "dopri5 chooses its own steps: set --rtol/--atol instead",
            ))
        }
        (Some(budget), false) => Some(steps_for_nfe(
            &solver,
            &schedule,
            &spacing,
            args.grid_options(),
            budget,
            model.defined_at_clean(),
        )?),
        (None, true) => Some(args.steps.unwrap_or(1)),
        (None, false) => args.steps,
    };
    let grid = TimeGrid::build(&schedule, &spacing, steps, args.grid_options())?;
    let x_t = match &args.noise {
        Some(path) => read_noise(path, model.dim())?,
        None => {
            let n = args.n.unwrap_or(1000);
            if n == 0 {
                return Err(Error::invalid("--n", "expected at least one sample"));
            }
            draw_noise(n, model.dim(), args.seed)
        }
    };
    let (n, d) = (x_t.n, x_t.d);
    let mut x_t = x_t;
    if args.dtype == Precision::F32 {
        x_t.round_to_f32();
    }

    let counted = Counted::new(model, args.dtype == Precision::F32);
    let ctx = Ctx::new(&counted, &schedule, &grid, args.seed);
    let start = Instant::now();
    let out = solver.run(&ctx, x_t, args.dtype)?;
    let wall_s = start.elapsed().as_secs_f64();

    let times = grid.times();
    let sidecar = json!({
        "pfode_version": env!("CARGO_PKG_VERSION"),
        "command": "sample",
        "model": {"spec": args.model, "description": model.describe()},
        "solver": solver.name(),
        "order": solver.order(),
        "nfe_budget": args.nfe,
        "options": solver.options_json(),
        "schedule": schedule.describe(),
        "spacing": spacing.to_string(),
        "final_sigma": args.final_sigma,
        "karras_rho": args.karras_rho,
        "steps": grid.steps(),
        "grid": {
            "t": times,
            "model_time": times.iter().map(|&t| schedule.model_time(t)).collect::<Vec<_>>(),
            "alpha": times.iter().map(|&t| schedule.alpha(t)).collect::<Vec<_>>(),
            "sigma": times.iter().map(|&t| schedule.sigma(t)).collect::<Vec<_>>(),
        },
        "nfe": counted.nfe(),
        "wall_time_s": wall_s,
        "seed": args.seed,
        "noise": args.noise.as_ref().map(|p| p.display().to_string()),
        "n": n,
        "dim": d,
        "dtype": args.dtype,
    });
    let dtype = if args.dtype == Precision::F32 {
        Dtype::F32
    } else {
        Dtype::F64
    };
    let side = sidecar_path(&args.out);
    let text = serde_json::to_string_pretty(&sidecar).expect("sidecar serialises");
    npy::write(&args.out, &[n, d], &out.data, dtype)?;
    if let Err(e) = crate::io::write_atomic(&side, text.as_bytes()) {
        let _ = std::fs::remove_file(&args.out);
        return Err(e);
    }
    Ok(SampleReport {
        n,
        d,
        steps: grid.steps(),
        nfe: counted.nfe(),
        wall_s,
        solver: solver.name().to_string(),
        sidecar: side,
    })
}

/// One budget of an error decomposition (RMS per-sample L2 distances, same x_T).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Decomposition {
    pub nfe: usize,
    /// (learned model, solver) vs (exact model, reference): what a user gets.
    pub total: f64,
    /// (learned model, solver) vs (learned model, reference): the solver's share.
    pub discretisation: f64,
    /// (learned model, reference) vs (exact model, reference): the network's share.
    pub network: f64,
    /// (exact model, solver) vs (exact model, reference), for comparison.
    pub exact_discretisation: f64,
}

/// `pfode decompose`: where a learned model's sampling error comes from.
pub fn decompose(args: &crate::cli::DecomposeArgs) -> Result<Vec<Decomposition>> {
    use crate::reference::{solve, Settings};
    let schedule = crate::schedule::Schedule::ddpm_linear();
    let learned = model::load(&args.model)?;
    let exact = model::resolve(&args.exact)?;
    if learned.dim() != exact.dim() {
        return Err(Error::invalid(
            "--exact",
            format!(
                "dimension {} differs from the learned model's {}",
                exact.dim(),
                learned.dim()
            ),
        ));
    }
    let x_t = draw_noise(args.n, exact.dim(), args.seed);
    // The learned model's reference ends like its samplers: at the first training step, then
    // its own denoising step (it is not evaluated on clean data).
    let settings = Settings {
        rtol: 1e-6,
        atol: 1e-6,
        ..Default::default()
    };
    let (learned_ref, _) = solve(learned.as_ref(), &schedule, &x_t, 1.0, 0.0, &settings)?;
    let (exact_ref, _) = solve(&exact, &schedule, &x_t, 1.0, 0.0, &settings)?;
    let solver = Solver::build(&args.solver, &Default::default())?;
    let spacing: crate::grid::Spacing = args.spacing.parse()?;
    let opts = crate::grid::GridOptions::default();
    args.nfe
        .iter()
        .map(|&budget| {
            let steps = steps_for_nfe(&solver, &schedule, &spacing, opts, budget, false)?;
            let grid = TimeGrid::build(&schedule, &spacing, Some(steps), opts)?;
            let (ls, nfe) = solver::sample(
                &solver,
                learned.as_ref(),
                &schedule,
                &grid,
                x_t.clone(),
                args.seed,
            )?;
            let (es, _) =
                solver::sample(&solver, &exact, &schedule, &grid, x_t.clone(), args.seed)?;
            Ok(Decomposition {
                nfe,
                total: ls.rms_distance(&exact_ref),
                discretisation: ls.rms_distance(&learned_ref),
                network: learned_ref.rms_distance(&exact_ref),
                exact_discretisation: es.rms_distance(&exact_ref),
            })
        })
        .collect()
}

/// Parses `--trajectory`: a JSON file or a comma-separated list of times.
fn parse_times(spec: &str) -> Result<Vec<f64>> {
    let path = Path::new(spec);
    if spec.ends_with(".json") || path.exists() {
        return crate::io::read_json(path);
    }
    spec.split(',')
        .map(|s| {
            s.trim().parse::<f64>().map_err(|_| {
                Error::invalid(
                    "--trajectory",
                    format!(
                        "'{s}' is not a number (expected comma-separated times or a JSON file)"
                    ),
                )
            })
        })
        .collect()
}

/// `pfode reference`: returns wall time and solver statistics.
pub fn reference(args: &crate::cli::ReferenceArgs) -> Result<(f64, crate::reference::Stats)> {
    use crate::reference::{self as rf, Settings};
    if args.out.extension().is_none_or(|e| e != "npy") {
        return Err(Error::invalid(
            "--out",
            format!("expected a path ending in .npy, got {}", args.out.display()),
        ));
    }
    let schedule = args.schedule.build()?;
    let model = model::load(&args.model)?;
    let model = model.as_ref();
    let settings = Settings {
        rtol: args.rtol,
        atol: args.atol,
        mode: args.mode,
    };
    settings.validate()?;
    let x_t = read_noise(&args.noise, model.dim())?;
    let t_start = args.t_start.unwrap_or(schedule.t_max());
    let times = args.trajectory.as_deref().map(parse_times).transpose()?;
    let start = Instant::now();
    let (out, traj, stats) = match &times {
        Some(ts) => {
            let (states, st) = rf::trajectory(model, &schedule, &x_t, t_start, ts, &settings)?;
            let (fin, st2) = match ts.last() {
                Some(0.0) => (
                    states.last().unwrap().clone(),
                    crate::reference::Stats::default(),
                ),
                Some(&last) => rf::solve(
                    model,
                    &schedule,
                    states.last().unwrap(),
                    last,
                    0.0,
                    &settings,
                )?,
                None => rf::solve(model, &schedule, &x_t, t_start, 0.0, &settings)?,
            };
            let st = st + st2;
            (fin, Some(states), st)
        }
        None => {
            let (fin, st) = rf::solve(model, &schedule, &x_t, t_start, 0.0, &settings)?;
            (fin, None, st)
        }
    };
    let wall = start.elapsed().as_secs_f64();
    let side = json!({
        "pfode_version": env!("CARGO_PKG_VERSION"),
        "command": "reference",
        "model": {"spec": args.model, "description": model.describe()},
        "schedule": schedule.describe(),
        "method": "DOP853 (ode_solvers), sigma-coordinates, f64",
        "rtol": args.rtol,
        "atol": args.atol,
        "mode": args.mode,
        "t_start": t_start,
        "nfe": stats.model_calls,
        "stats": stats,
        "trajectory_times": times,
        "wall_time_s": wall,
        "noise": args.noise.display().to_string(),
        "n": x_t.n,
        "dim": x_t.d,
    });
    let traj_path = args.out.with_extension("trajectory.npy");
    npy::write(&args.out, &[out.n, out.d], &out.data, Dtype::F64)?;
    let written = (|| {
        if let Some(states) = &traj {
            let data: Vec<f64> = states.iter().flat_map(|b| b.data.iter().cloned()).collect();
            npy::write(&traj_path, &[states.len(), x_t.n, x_t.d], &data, Dtype::F64)?;
        }
        crate::io::write_atomic(
            &sidecar_path(&args.out),
            serde_json::to_string_pretty(&side)
                .expect("json")
                .as_bytes(),
        )
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&args.out);
        let _ = std::fs::remove_file(&traj_path);
        return Err(e);
    }
    Ok((wall, stats))
}

/// The most steps whose grid lets `solver` stay within `budget` model evaluations.
pub fn steps_for_nfe(
    solver: &Solver,
    schedule: &crate::schedule::Schedule,
    spacing: &crate::grid::Spacing,
    opts: crate::grid::GridOptions,
    budget: usize,
    defined_at_clean: bool,
) -> Result<usize> {
    let nfe_of = |n: usize| -> Result<usize> {
        let grid = TimeGrid::build(schedule, spacing, Some(n), opts)?;
        solver.nfe_on(schedule, &grid, defined_at_clean)
    };
    let least = nfe_of(1)?;
    if budget < least {
        return Err(Error::invalid(
            "--nfe",
            format!(
                "{budget} is too small: solver '{}' needs at least {least} model evaluations",
                solver.name()
            ),
        ));
    }
    // NFE grows with the step count: binary search for the largest n within budget.
    let max_n = schedule
        .discrete()
        .map_or(budget, |d| budget.min(d.num_train_timesteps()));
    let (mut lo, mut hi) = (1, max_n);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if nfe_of(mid)? <= budget {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

/// The small sweep `pfode demo` runs: ring2d, four solvers, NFE 5 to 100.
const DEMO_SPEC: &str = r#"
name = "demo"
models = ["ring2d"]
spacings = ["logsnr", "trailing"]
nfe = [5, 10, 20, 50, 100]
samples = 1000
metrics = ["error", "frechet", "nll", "mode_coverage"]
[[solvers]]
name = "ddim"
[[solvers]]
name = "heun"
[[solvers]]
name = "dpm-solver++2m"
[[solvers]]
name = "unipc"
"#;

/// `pfode demo`: the identity check, ring2d samples with their mode coverage, and a small
/// sweep with its plots.
pub fn demo(args: &DemoArgs) -> Result<()> {
    println!("== pfode demo: DDIM (η = 0) is exactly Euler in σ = s/a ==");
    let check_args = crate::cli::CheckArgs {
        model: "ring2d".into(),
        steps: vec![10, 50],
        n: 256,
        seed: 0,
        schedule: default_schedule_args(),
    };
    let rows = check::ddim_euler(&check_args)?;
    print!("{}", check::format_rows(&rows));
    check::verdict(&rows)?;

    std::fs::create_dir_all(&args.out_dir).map_err(|e| Error::io(&args.out_dir, e))?;
    println!("\n== ring2d samples (8 modes, weight 0.125 each) ==");
    let out = args.out_dir.join("ring2d_ddim_50.npy");
    let sample_args = SampleArgs {
        model: "ring2d".into(),
        solver: "ddim".into(),
        steps: Some(50),
        spacing: None,
        nfe: None,
        out: out.clone(),
        noise: None,
        n: Some(2000),
        seed: 0,
        eta: None,
        coords: None,
        variance: None,
        brownian: None,
        s_churn: None,
        s_tmin: None,
        s_tmax: None,
        s_noise: None,
        rtol: None,
        atol: None,
        lower_order_final: None,
        no_corrector: false,
        warm_start: None,
        dtype: Precision::F64,
        final_sigma: crate::grid::FinalSigma::Zero,
        karras_rho: 7.0,
        schedule: default_schedule_args(),
    };
    let report = sample(&sample_args)?;
    let x = read_noise(&out, 2)?;
    let fr = crate::metrics::mode_fractions(&model::builtin("ring2d").unwrap(), &x);
    let worst = fr.iter().map(|f| (f - 0.125).abs()).fold(0.0, f64::max);
    println!(
        "ddim, 50 trailing steps, nfe {}: mode fractions {:?} (max gap to 0.125: {:.3}); wrote {}",
        report.nfe,
        fr.iter().map(|f| format!("{f:.3}")).collect::<Vec<_>>(),
        worst,
        out.display()
    );

    println!("\n== a small sweep: error to the DOP853 reference vs NFE ==");
    let sweep_dir = args.out_dir.join("sweep");
    let spec_path = args.out_dir.join("demo_spec.toml");
    crate::io::write_atomic(&spec_path, DEMO_SPEC.as_bytes())?;
    let _ = std::fs::remove_file(sweep_dir.join("results.csv"));
    let opts = crate::experiment::SweepOptions {
        out: sweep_dir.clone(),
        shard: None,
        resume: false,
        jobs: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        quiet: true,
    };
    let r = crate::experiment::sweep(&spec_path, &opts)?;
    let (rows, _) = crate::experiment::table::read(&sweep_dir.join("results.csv"))?;
    println!(
        "{:<16} {}",
        "solver (logsnr)",
        [5, 10, 20, 50, 100]
            .map(|n| format!("{:>10}", format!("NFE {n}")))
            .join("")
    );
    for solver in ["ddim", "heun", "dpm-solver++2m", "unipc"] {
        let errs: Vec<String> = [5, 10, 20, 50, 100]
            .iter()
            .map(|&n| {
                rows.iter()
                    .find(|r| {
                        r.solver == solver
                            && r.spacing == "logsnr"
                            && r.nfe <= n
                            && r.nfe + 2 >= n
                            && r.metric == "error_rms"
                    })
                    .map_or("-".to_string(), |r| format!("{:.2e}", r.value))
            })
            .map(|s| format!("{s:>10}"))
            .collect();
        println!("{solver:<16} {}", errs.join(""));
    }
    let files = crate::plot::plot(&sweep_dir)?;
    println!(
        "{} runs in {:.1} s; {} plots in {} (e.g. error_vs_nfe_ring2d_logsnr.png)",
        r.runs_total,
        r.wall_s,
        files.len(),
        sweep_dir.join("plots").display()
    );
    Ok(())
}

fn default_schedule_args() -> crate::cli::ScheduleArgs {
    crate::cli::ScheduleArgs {
        schedule: crate::cli::ScheduleName::Linear,
        num_train_timesteps: 1000,
        beta_start: None,
        beta_end: None,
        betas: None,
    }
}
