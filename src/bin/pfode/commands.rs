//! Command implementations: each validates its inputs, calls the library, and writes
//! outputs only once everything has succeeded.

use crate::cli::{CheckCommand, Cli, Command, DemoArgs, DigitsCommand, SampleArgs};
use pfode::batch::Batch;
use pfode::check;
use pfode::model::{self, ScoreModel};
use pfode::npy::{self, Dtype};
use pfode::sampling::Request;
use pfode::solver::{self, Precision, Solver};
use pfode::{Error, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Runs a parsed command line.
pub fn main(cli: Cli) -> Result<()> {
    if let Some(threads) = cli.threads {
        if threads == 0 {
            return Err(Error::invalid("threads", "expected at least 1"));
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .map_err(|e| Error::invalid("threads", e.to_string()))?;
    }
    match cli.command {
        Command::Digits(cmd) => digits(&cmd),
        Command::Sample(args) => {
            let report = sample(&args)?;
            println!(
                "wrote {} ({} samples × {}) and {}: model {}, schedule {}, {} grid, solver {}, \
                 {} steps, nfe {}, {:.3} s",
                args.out.display(),
                report.n,
                report.d,
                report.sidecar.display(),
                args.model,
                report.schedule,
                report.spacing,
                report.solver,
                report.steps,
                report.nfe,
                report.wall_s
            );
            Ok(())
        }
        Command::Check(CheckCommand::DdimEuler(args)) => check_ddim_euler(&args),
        Command::Solvers => {
            print!("{}", solvers_table());
            Ok(())
        }
        Command::Demo(args) => demo(&args),
        Command::Sweep(args) => {
            use pfode::experiment::{sweep, Spec, SweepOptions};
            let (spec, _) = Spec::from_file(&args.spec)?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("results").join(&spec.name));
            let opts = SweepOptions {
                out: out.clone(),
                shard: args
                    .shard
                    .as_deref()
                    .map(pfode::experiment::sweep::parse_shard)
                    .transpose()?,
                resume: args.resume,
                jobs: args.jobs.unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(1)
                }),
                quiet: args.quiet,
                models: Vec::new(),
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
            let n = pfode::experiment::merge(&args.dirs, &args.out)?;
            println!(
                "merged {} rows from {} folders into {}",
                n,
                args.dirs.len(),
                args.out.join("results.csv").display()
            );
            Ok(())
        }
        Command::Train(args) => {
            use pfode::model::{mlp::Mlp, train};
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
                    "out",
                    format!("expected a .safetensors path, got {}", args.out.display()),
                ));
            }
            // Fail before training, not after it.
            let dir = args.out.parent().filter(|p| !p.as_os_str().is_empty());
            if dir.is_some_and(|d| !d.is_dir()) {
                return Err(Error::invalid(
                    "out",
                    format!("folder {} does not exist", dir.unwrap().display()),
                ));
            }
            let start = if args.resume {
                Some(Mlp::load(&args.out)?)
            } else {
                None
            };
            let (_, report) = train::train(&c, &args.out, start, args.quiet)?;
            pfode::plot::loss_plot(&report.losses, &args.out.with_extension("loss.png"))?;
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
                return Err(Error::invalid("batch/reps", "expected at least 1"));
            }
            // Timed on a pool thread, where solver runs go (see `Solver::integrate`).
            let report =
                rayon::scope(|_| pfode::bench::report(args.batch, args.reps, args.pytorch_ms))?;
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
        Command::Score(args) => {
            let model = model::load(&args.model)?;
            let samples = npy::read_rows(&args.samples, model.dim(), "samples")?;
            let reference = args
                .reference
                .as_deref()
                .map(|p| npy::read_rows(p, model.dim(), "reference"))
                .transpose()?;
            let scores =
                pfode::experiment::score(&args.model, &samples, reference.as_ref(), args.seed)?;
            println!(
                "{}: {} samples of model '{}'{}",
                args.samples.display(),
                samples.n,
                args.model,
                if reference.is_some() {
                    ", against the reference"
                } else {
                    ""
                }
            );
            for (name, value) in scores {
                println!("{name:<20} {value:.6e}");
            }
            Ok(())
        }
        Command::Plot(args) if args.dir.extension().is_some_and(|e| e == "npy") => {
            let spec = args.model.as_deref().ok_or_else(|| {
                Error::invalid("--model", "a sample file needs the model it came from")
            })?;
            let dim = model::load(spec)?.dim();
            let samples = npy::read_rows(&args.dir, dim, "samples")?;
            let files = pfode::plot::plot_samples(&samples, spec, &args.dir.with_extension(""))?;
            for f in &files {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        Command::Plot(args) => {
            if args.model.is_some() {
                return Err(Error::invalid(
                    "--model",
                    "applies to a sample file (.npy); a results folder knows its models",
                ));
            }
            let files = pfode::plot::plot(&args.dir)?;
            println!(
                "wrote {} plot files to {}",
                files.len(),
                args.dir.join("plots").display()
            );
            Ok(())
        }
        Command::Orders(args) => {
            let orders = pfode::experiment::orders::orders(&args.dir)?;
            println!(
                "{:<8} {:<20} {:<26} {:<10} {:<6} {:>8} {:>9}  nfe",
                "model", "solver", "options", "spacing", "error", "declared", "observed"
            );
            for o in &orders {
                println!(
                    "{:<8} {:<20} {:<26} {:<10} {:<6} {:>8} {:>9.2}  {}",
                    o.model,
                    o.solver,
                    o.options,
                    o.spacing,
                    o.kind,
                    o.declared,
                    o.observed,
                    o.nfe_used
                );
            }
            for (config, why) in pfode::experiment::orders::left_out(&args.dir)? {
                println!("left out: {config}: {why}");
            }
            Ok(())
        }
        Command::OptimizeGrid(args) => optimize_grid(&args),
        Command::Reference(args) => {
            let (wall, stats, settings, schedule) = reference(&args)?;
            println!(
                "wrote {}: model {}, schedule {}, DOP853 at rtol {:e}, atol {:e}, {} model \
                 calls, {:.3} s",
                args.out.display(),
                args.model,
                schedule,
                settings.rtol,
                settings.atol,
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
    let flag = crate::cli::flag_of();
    for s in solver::SOLVERS {
        let kind = if s.stochastic { "stochastic" } else { "ODE" };
        out.push_str(&format!(
            "{:<18} {:>5}  {:<10} {}\n",
            s.name,
            s.order,
            kind,
            crate::cli::quoted_flags(s.summary, &flag)
        ));
        if !s.options.is_empty() {
            let flags: Vec<String> = s.options.iter().map(|o| o.flag()).collect();
            out.push_str(&format!("{:<37}options: {}\n", "", flags.join(" ")));
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
    pub schedule: String,
    pub spacing: String,
    pub sidecar: PathBuf,
}

/// The sidecar path of an output `.npy`.
pub fn sidecar_path(out: &Path) -> PathBuf {
    out.with_extension("json")
}

/// Reads x_T from `.npy`, checking it is `[N, dim]` and finite.
pub fn read_noise(path: &Path, dim: usize) -> Result<Batch> {
    npy::read_rows(path, dim, "noise")
}

/// Checks an `--out` file before any work: its extension, and that its folder exists.
fn check_out(out: &Path, ext: &str) -> Result<()> {
    if out.extension().is_none_or(|e| e != ext) {
        return Err(Error::invalid(
            "out",
            format!("expected a path ending in .{ext}, got {}", out.display()),
        ));
    }
    match out.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(Error::invalid(
            "out",
            format!("directory {} does not exist", dir.display()),
        )),
        _ => Ok(()),
    }
}

/// `pfode sample`.
pub fn sample(args: &SampleArgs) -> Result<SampleReport> {
    check_out(&args.out, "npy")?;
    let schedule = args.schedule.build()?;
    let model = model::load(&args.model)?;
    let model = model.as_ref();
    let request = Request {
        solver: Solver::build(&args.solver, &args.options.0)?,
        spacing: args.spacing(&schedule)?,
        steps: args.steps,
        nfe: args.nfe,
        grid: args.grid_options(),
        precision: args.dtype,
        seed: args.seed,
    };
    // The grid is checked before x_T is read, as the user wrote them.
    let grid = request.time_grid(&schedule, model.defined_at_clean())?;
    let x_t = match &args.noise {
        Some(path) => read_noise(path, model.dim())?,
        None => {
            let n = args.n.unwrap_or(1000);
            if n == 0 {
                return Err(Error::invalid("n", "expected at least one sample"));
            }
            pfode::noise::draw(n, model.dim(), args.seed)
        }
    };
    let (n, d) = (x_t.n, x_t.d);
    let samples = request.sample_on(model, &schedule, grid, x_t)?;
    let mut sidecar = samples.info;
    sidecar["command"] = json!("sample");
    sidecar["model"]["spec"] = json!(args.model);
    sidecar["noise"] = json!(args.noise.as_ref().map(|p| p.display().to_string()));
    let dtype = if args.dtype == Precision::F32 {
        Dtype::F32
    } else {
        Dtype::F64
    };
    let side = npy::write_with_sidecar(&args.out, &[n, d], &samples.x0.data, dtype, &sidecar)?;
    Ok(SampleReport {
        n,
        d,
        steps: samples.grid.steps(),
        nfe: samples.nfe,
        wall_s: samples.wall_s,
        solver: request.solver.name().to_string(),
        schedule: schedule.name(),
        spacing: request.spacing.to_string(),
        sidecar: side,
    })
}

/// `pfode decompose`: where a learned model's sampling error comes from.
pub fn decompose(args: &crate::cli::DecomposeArgs) -> Result<Vec<pfode::decompose::Decomposition>> {
    let learned = pfode::model::mlp::Mlp::load(Path::new(&args.model))?;
    // The exact model is the data the network learned, unless given; never a silent default.
    let exact_name = match (&args.exact, learned.trained_on()) {
        (Some(name), _) => name.clone(),
        (None, Some(data)) => data.to_string(),
        (None, None) => {
            return Err(Error::invalid(
                "exact",
                format!(
                    "{} does not record the data it learned: give `exact`",
                    args.model
                ),
            ))
        }
    };
    let exact = model::resolve(&exact_name).map_err(|e| {
        Error::invalid(
            "exact",
            format!("the network learned '{exact_name}', which has no exact model: {e}"),
        )
    })?;
    println!("exact model: {exact_name}; reference: DOP853 at rtol = atol = 1e-6");
    let solver = Solver::named(&args.solver)?;
    let spacing: pfode::grid::Spacing = args.spacing.parse()?;
    let x_t = pfode::noise::draw(args.n, exact.dim(), args.seed);
    pfode::decompose::decompose(
        &learned, &exact, &solver, &spacing, &args.nfe, &x_t, args.seed,
    )
}

/// Parses `--trajectory`: a JSON file or a comma-separated list of times.
fn parse_times(spec: &str) -> Result<Vec<f64>> {
    let path = Path::new(spec);
    if spec.ends_with(".json") || path.exists() {
        return pfode::io::read_json(path);
    }
    spec.split(',')
        .map(|s| {
            s.trim().parse::<f64>().map_err(|_| {
                Error::invalid(
                    "trajectory",
                    format!(
                        "'{s}' is not a number (expected comma-separated times or a JSON file)"
                    ),
                )
            })
        })
        .collect()
}

/// `pfode reference`: returns wall time, solver statistics, the tolerances and the schedule.
pub fn reference(
    args: &crate::cli::ReferenceArgs,
) -> Result<(
    f64,
    pfode::reference::Stats,
    pfode::reference::Settings,
    String,
)> {
    use pfode::reference::{self as rf, Settings};
    check_out(&args.out, "npy")?;
    let schedule = args.schedule.build()?;
    let model = model::load(&args.model)?;
    let model = model.as_ref();
    let tolerance = pfode::reference::default_tolerance(model);
    let settings = Settings {
        rtol: args.rtol.unwrap_or(tolerance),
        atol: args.atol.unwrap_or(tolerance),
        mode: args.mode,
        progress: !args.quiet,
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
                    pfode::reference::Stats::default(),
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
        "rtol": settings.rtol,
        "atol": settings.atol,
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
        pfode::io::write_atomic(
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
    Ok((wall, stats, settings, schedule.name()))
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
    check_ddim_euler(&check_args)?;

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
        options: Default::default(),
        dtype: Precision::F64,
        final_sigma: pfode::grid::FinalSigma::Zero,
        karras_rho: 7.0,
        schedule: default_schedule_args(),
    };
    let report = sample(&sample_args)?;
    let x = read_noise(&out, 2)?;
    let fr = pfode::metrics::mode_fractions(&model::builtin("ring2d").unwrap(), &x);
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
    pfode::io::write_atomic(&spec_path, DEMO_SPEC.as_bytes())?;
    let _ = std::fs::remove_file(sweep_dir.join("results.csv"));
    let opts = pfode::experiment::SweepOptions {
        out: sweep_dir.clone(),
        shard: None,
        resume: false,
        jobs: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        quiet: true,
        models: Vec::new(),
    };
    let r = pfode::experiment::sweep(&spec_path, &opts)?;
    let (rows, _) = pfode::experiment::table::read(&sweep_dir.join("results.csv"))?;
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
    let files = pfode::plot::plot(&sweep_dir)?;
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
        schedule: pfode::schedule::ScheduleName::Linear,
        num_train_timesteps: 1000,
        beta_start: None,
        beta_end: None,
        betas: None,
    }
}

/// `pfode check ddim-euler`: the table, then the verdict.
fn check_ddim_euler(args: &crate::cli::CheckArgs) -> Result<()> {
    let schedule = args.schedule.build()?;
    let model = model::resolve(&args.model)?;
    if args.n == 0 {
        return Err(Error::invalid("n", "expected at least one sample"));
    }
    let x_t = pfode::noise::draw(args.n, model.dim(), args.seed);
    let rows = check::ddim_euler(&model, &schedule, &x_t, &args.steps)?;
    print!("{}", check::format_rows(&rows));
    let worst = check::verdict(&rows)?;
    println!(
        "OK: DDIM ≡ Euler in σ ≡ DPM-Solver-1 within {worst:.1e} (tolerance {:.0e}); Euler in t differs at first order",
        check::TOLERANCE
    );
    Ok(())
}

/// `pfode digits …`.
fn digits(cmd: &DigitsCommand) -> Result<()> {
    use pfode::digits::{self, classifier, load, Classifier, Split};
    match cmd {
        DigitsCommand::Classifier { out, seed } => {
            let c = Classifier::train(classifier::ClassifierConfig::standard(*seed))?;
            c.save(out)?;
            println!(
                "wrote {}: held-out accuracy {:.4} ({} images), trained in {:.1} s",
                out.display(),
                c.config.held_out_accuracy,
                load(Split::HeldOut)?.labels.len(),
                c.config.train_time_s
            );
            Ok(())
        }
        DigitsCommand::Score {
            samples,
            classifier,
        } => {
            let x = npy::read_rows(samples, digits::PIXELS, "digit images")?;
            let c = Classifier::load_or_committed(classifier.as_deref())?;
            let r = digits::score_report(&c, &x)?;
            println!(
                "samples vs held-out images: digits-FD {:.4}, KID {:.5} ({} samples)",
                r.samples.fd, r.samples.kid, x.n
            );
            println!(
                "floor (training vs held-out images): digits-FD {:.4}, KID {:.5}",
                r.floor.fd, r.floor.kid
            );
            println!(
                "samples vs training images: digits-FD {:.4}, KID {:.5}",
                r.against_training.fd, r.against_training.kid
            );
            println!(
                "median pixel distance to the nearest training image: samples {:.3}, held-out images {:.3}",
                r.nearest_sample, r.nearest_held_out
            );
            Ok(())
        }
        DigitsCommand::Grid {
            samples,
            out,
            count,
        } => {
            pfode::plot::image_grid(&digits::images(samples)?, digits::SIDE, *count, out)?;
            println!("wrote {}", out.display());
            Ok(())
        }
    }
}

/// `pfode optimize-grid`: the search, its report (every fixed spacing and the optimised
/// grid on calibration and held-out x_T), and the grid file, written last.
fn optimize_grid(args: &crate::cli::OptimizeGridArgs) -> Result<()> {
    use pfode::grid::{GridOptions, Spacing};
    use pfode::optimize::{self, Options, Problem};
    if let Some(path) = &args.study {
        let spec = optimize::study::StudySpec::from_file(path)?;
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("results").join(&spec.name));
        if args.replot {
            optimize::study::replot(&spec, &out)?;
            println!("redrew {}/plots", out.display());
            return Ok(());
        }
        let rows = optimize::study::run(&spec, &out, args.quiet)?;
        println!(
            "wrote {} ({} rows), {}/grids and {}/plots",
            out.join("results.csv").display(),
            rows.len(),
            out.display(),
            out.display()
        );
        return Ok(());
    }
    // clap requires these without --study.
    let (model_spec, solver_name, nfe, out) = match (&args.model, &args.solver, args.nfe, &args.out)
    {
        (Some(m), Some(s), Some(n), Some(o)) => (m, s, n, o),
        _ => {
            return Err(Error::invalid(
                "model",
                "--model, --solver, --nfe and --out are required",
            ))
        }
    };
    check_out(out, "json")?;
    let schedule = args.schedule.build()?;
    let model = model::load(model_spec)?;
    let model = model.as_ref();
    let solver = Solver::build(solver_name, &args.options.0)?;
    let problem = Problem {
        model,
        schedule: &schedule,
        solver: &solver,
        nfe,
        grid: GridOptions {
            final_sigma: args.final_sigma,
            rho: args.karras_rho,
        },
    };
    let mut o = Options::new(&schedule, model);
    o.method = args.method;
    o.objective = args.objective;
    o.calibration = args.calibration;
    o.seed = args.seed;
    o.held_out = args.held_out;
    o.held_out_seed = args.held_out_seed.unwrap_or(args.seed.wrapping_add(1));
    o.candidates = args.candidates;
    o.dp_cost = args.dp_cost;
    o.dp_rows = args.dp_rows;
    o.max_evals = args.max_evals;
    o.starts = args.starts;
    if let Some(list) = &args.spacings {
        o.spacings = list
            .iter()
            .map(|s| s.parse::<Spacing>())
            .collect::<Result<_>>()?;
    }
    if let Some(rtol) = args.rtol {
        o.reference.rtol = rtol;
        o.reference.atol = rtol;
    }
    if let Some(atol) = args.atol {
        o.reference.atol = atol;
    }
    println!(
        "model {} · solver {} · NFE {} · {} ({}) · calibration {} x_T (seed {}) · held-out {} (seed {}) · reference DOP853 rtol {:e} atol {:e}",
        model_spec,
        solver.name(),
        nfe,
        o.method,
        o.objective,
        o.calibration,
        o.seed,
        o.held_out,
        o.held_out_seed,
        o.reference.rtol,
        o.reference.atol
    );
    let r = optimize::optimize(&problem, &o)?;
    println!("{:<12} {:>13} {:>13}", "grid", "calibration", "held-out");
    for (i, f) in r.fixed.iter().enumerate() {
        let mark = if i == r.best_fixed {
            "  (best fixed)"
        } else {
            ""
        };
        println!(
            "{:<12} {:>13.4e} {:>13.4e}{mark}",
            f.spacing.to_string(),
            f.scores.calibration,
            f.scores.held_out
        );
    }
    println!(
        "{:<12} {:>13.4e} {:>13.4e}",
        format!("{}", o.method),
        r.scores.calibration,
        r.scores.held_out
    );
    println!(
        "held-out ratio to the best fixed grid ({}): {:.3}; calibration ratio {:.3}",
        r.best().spacing,
        r.held_out_ratio(),
        r.scores.calibration / r.best().scores.calibration
    );
    println!(
        "{} steps, NFE {} · search {:.2} s ({} evaluations), {:.2} s in all",
        r.grid.steps(),
        r.nfe,
        r.search_s,
        r.evaluations,
        r.total_s
    );
    let mut made_by = optimize::provenance(&problem, &o, &r);
    made_by["model"]["spec"] = json!(model_spec);
    optimize::write_grid(out, &schedule, &r.grid, made_by)?;
    println!(
        "wrote {} (use it as --spacing file:{})",
        out.display(),
        out.display()
    );
    Ok(())
}
