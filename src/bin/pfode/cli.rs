//! Command-line structure (clap). Names follow what a diffusers user already knows.

use clap::{Arg, ArgAction, ArgMatches, Args, Parser, Subcommand};
use pfode::grid::{FinalSigma, GridOptions, Spacing};
use pfode::schedule::{Schedule, ScheduleConfig, ScheduleName};
use pfode::solver::options::{self, Kind, Value};
use pfode::solver::{Given, Precision};
use pfode::Result;
use std::path::PathBuf;

/// pfode — diffusion sampling as numerical integration of the probability-flow ODE.
#[derive(Parser, Debug)]
#[command(name = "pfode", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads for model evaluation (default: all cores). Results do not depend on it.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

/// pfode's commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Draw samples with one solver and write OUT.npy plus an OUT.json sidecar.
    Sample(SampleArgs),
    /// Numerical identity checks.
    #[command(subcommand)]
    Check(CheckCommand),
    /// List solvers with their theoretical order and options.
    Solvers,
    /// Tightly solved probability-flow ODE (DOP853, f64) from x_T to t = 0: the reference
    /// every sampler's error is measured against.
    Reference(ReferenceArgs),
    /// The main job on built-in defaults: the DDIM ≡ Euler check and ring2d samples.
    Demo(DemoArgs),
    /// Run every combination of an experiment spec into a tidy results.csv.
    Sweep(SweepArgs),
    /// Combine shard folders into the table an unsharded sweep writes.
    Merge(MergeArgs),
    /// Fit observed convergence orders from a results folder (writes orders.csv).
    Orders(OrdersArgs),
    /// Draw the plots of a results folder into DIR/plots (PNG and SVG), or draw one sample
    /// file (.npy) with --model: 2-D samples over the data density, digits as images.
    Plot(PlotArgs),
    /// Score one sample file with the metrics a sweep records (those the model's data
    /// allows; the error statistics against --reference).
    Score(ScoreArgs),
    /// Train the reference MLP score model by denoising score matching.
    Train(TrainArgs),
    /// Time the reference MLP per NFE and every solver's own cost per NFE.
    Bench(BenchArgs),
    /// Tune a step grid to a model, solver and NFE budget on calibration x_T, judge it on
    /// held-out x_T against every fixed spacing, and write it as a grid file for
    /// `--spacing file:PATH`.
    OptimizeGrid(OptimizeGridArgs),
    /// Split a learned model's sampling error into discretisation and network parts, on a
    /// data set whose exact model is known.
    Decompose(DecomposeArgs),
    /// The 8×8 digits: train the feature classifier, score samples (digits FD/KID), draw
    /// sample grids.
    #[command(subcommand)]
    Digits(DigitsCommand),
}

/// Digits commands.
#[derive(Subcommand, Debug)]
pub enum DigitsCommand {
    /// Train the classifier whose penultimate features define the digits FD.
    Classifier {
        /// Output checkpoint (.safetensors; its .json goes next to it).
        #[arg(long, default_value = "models/digits_classifier.safetensors")]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Digits FD and KID of samples [n, 64] against the held-out images, with the floor
    /// (the training images against the same held-out images).
    Score {
        /// Samples (.npy [n, 64], pixels in [−1, 1]).
        samples: PathBuf,
        /// Feature classifier [default: the committed one, compiled into pfode].
        #[arg(long)]
        classifier: Option<PathBuf>,
    },
    /// Draw samples [n, 64] as a grid of 8×8 images (PNG).
    Grid {
        /// Samples (.npy [n, 64]); `train` or `held-out` draws real images.
        samples: String,
        #[arg(long)]
        out: PathBuf,
        /// Images drawn (the first ones), in rows of 10.
        #[arg(long, default_value_t = 100)]
        count: usize,
    },
}

/// Identity checks.
#[derive(Subcommand, Debug)]
pub enum CheckCommand {
    /// DDIM (η = 0) vs Euler in σ-coordinates (and DPM-Solver-1, Euler in t) on several grids;
    /// exits non-zero if DDIM and Euler-in-σ differ by more than 1e-11.
    DdimEuler(CheckArgs),
}

/// Schedule selection shared by commands.
#[derive(Args, Debug, Clone)]
pub struct ScheduleArgs {
    /// Noise schedule.
    #[arg(long, value_enum, default_value_t = ScheduleName::Linear)]
    pub schedule: ScheduleName,
    /// Training steps T of a discrete schedule.
    #[arg(long, default_value_t = 1000)]
    pub num_train_timesteps: usize,
    /// First beta [default: 1e-4 for linear, 0.00085 for scaled-linear].
    #[arg(long)]
    pub beta_start: Option<f64>,
    /// Last beta [default: 0.02 for linear, 0.012 for scaled-linear].
    #[arg(long)]
    pub beta_end: Option<f64>,
    /// Discrete betas from a file (1-D .npy or JSON array); overrides --schedule.
    #[arg(long, value_name = "FILE")]
    pub betas: Option<PathBuf>,
}

impl ScheduleArgs {
    /// The schedule these arguments describe.
    pub fn config(&self) -> ScheduleConfig {
        ScheduleConfig {
            name: self.schedule,
            num_train_timesteps: self.num_train_timesteps,
            beta_start: self.beta_start,
            beta_end: self.beta_end,
            betas: self.betas.clone(),
        }
    }

    /// Builds the schedule these arguments describe.
    pub fn build(&self) -> Result<Schedule> {
        self.config().build()
    }
}

/// The solver options of the shared schema (`pfode::solver::options`), one flag each:
/// `--name-with-dashes`, a value of the option's kind (a switch takes none).
#[derive(Debug, Clone, Default)]
pub struct SolverFlags(pub Given);

impl clap::FromArgMatches for SolverFlags {
    fn from_arg_matches(m: &ArgMatches) -> std::result::Result<Self, clap::Error> {
        let mut given = Given::new();
        for opt in options::all() {
            if opt.kind == Kind::Switch {
                if m.get_flag(opt.name) {
                    given.insert(opt, Value::Bool(true));
                }
            } else if let Some(text) = m.get_one::<String>(opt.name) {
                given.set(opt.name, text).map_err(|e| {
                    let msg = match e {
                        pfode::Error::Invalid { msg, .. } => msg,
                        other => other.to_string(),
                    };
                    clap::Error::raw(
                        clap::error::ErrorKind::InvalidValue,
                        format!("{}: {msg}\n", opt.flag()),
                    )
                })?;
            }
        }
        Ok(SolverFlags(given))
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> std::result::Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for SolverFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        options::all().into_iter().fold(cmd, |cmd, opt| {
            // clap keeps flag names for the life of the program.
            let long: &'static str = Box::leak(opt.name.replace('_', "-").into_boxed_str());
            let takers: Vec<&str> = pfode::solver::SOLVERS
                .iter()
                .filter(|s| s.options.iter().any(|o| o.name == opt.name))
                .map(|s| s.name)
                .collect();
            let help = match opt.kind {
                Kind::Switch => format!("{} ({})", capitalise(opt.doc), takers.join(", ")),
                _ => format!(
                    "{} ({}) [default: {}]",
                    capitalise(opt.doc),
                    takers.join(", "),
                    opt.default
                ),
            };
            let arg = Arg::new(opt.name).long(long).help(help);
            let arg = match opt.kind {
                Kind::Switch => arg.action(ArgAction::SetTrue),
                Kind::Float => arg.allow_negative_numbers(true).value_name("X"),
                Kind::Bool => arg.value_parser(["true", "false"]),
                Kind::Choice(names) => arg.value_parser(clap::builder::PossibleValuesParser::new(
                    names.iter().copied(),
                )),
            };
            cmd.arg(arg)
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Arguments of `pfode sample`.
#[derive(Args, Debug, Clone)]
pub struct SampleArgs {
    /// Model: a built-in name (ring2d, gauss2d, gauss1d, mix16d), a mixture JSON file or a
    /// learned checkpoint (NAME.safetensors with its NAME.json).
    #[arg(long)]
    pub model: String,
    /// Solver name (see `pfode solvers`).
    #[arg(long)]
    pub solver: String,
    /// Number of steps.
    #[arg(long, conflicts_with = "nfe")]
    pub steps: Option<usize>,
    /// Model-evaluation budget instead of --steps: the most steps whose NFE fits it.
    #[arg(long)]
    pub nfe: Option<usize>,
    /// Step spacing: leading, trailing, linspace, uniform, quadratic, logsnr, karras or
    /// file:PATH [default: trailing for discrete schedules, uniform for continuous ones].
    #[arg(long)]
    pub spacing: Option<String>,
    /// Output .npy ([N, D] samples at t = 0); the sidecar goes next to it as .json.
    #[arg(long)]
    pub out: PathBuf,
    /// Initial noise x_T ([N, D] .npy, f64 or f32, VP scale) instead of drawing it.
    #[arg(long, conflicts_with = "n")]
    pub noise: Option<PathBuf>,
    /// Number of samples to draw when no --noise is given [default: 1000].
    #[arg(long)]
    pub n: Option<usize>,
    /// Seed for x_T (without --noise) and for any noise a stochastic solver injects.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub options: SolverFlags,
    /// Precision of the sampling state and model outputs; also the output dtype.
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    pub dtype: Precision,
    /// Where the last step ends: zero = clean data (ᾱ = 1), min = first training step.
    #[arg(long, value_enum, default_value_t = FinalSigma::Zero)]
    pub final_sigma: FinalSigma,
    /// ρ of the karras spacing.
    #[arg(long, default_value_t = 7.0)]
    pub karras_rho: f64,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
}

impl SampleArgs {
    /// Grid options as given.
    pub fn grid_options(&self) -> GridOptions {
        GridOptions {
            final_sigma: self.final_sigma,
            rho: self.karras_rho,
        }
    }

    /// The spacing, defaulted by schedule kind.
    pub fn spacing(&self, schedule: &Schedule) -> Result<Spacing> {
        match &self.spacing {
            Some(s) => s.parse(),
            None => Ok(pfode::sampling::Request::default_spacing(schedule)),
        }
    }
}

/// Arguments of `pfode optimize-grid`.
#[derive(Args, Debug, Clone)]
pub struct OptimizeGridArgs {
    /// Model: a built-in name, a mixture JSON file or a .safetensors checkpoint.
    #[arg(long, required_unless_present = "study")]
    pub model: Option<String>,
    /// Solver name (a fixed-step one; see `pfode solvers`).
    #[arg(long, required_unless_present = "study")]
    pub solver: Option<String>,
    /// Model-evaluation budget: the grid has the steps the fixed spacings get for it.
    #[arg(long, required_unless_present = "study")]
    pub nfe: Option<usize>,
    /// The grid file to write (.json: times `t`, `sigma`, `lambda` and `made_by`); with
    /// --study, the results folder [default: results/NAME].
    #[arg(long, required_unless_present = "study")]
    pub out: Option<PathBuf>,
    /// Run a study spec instead (every model × solver × NFE × method of
    /// experiments/optimized_grids.toml, say) into results.csv, grids/ and plots/.
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["model", "solver", "nfe"])]
    pub study: Option<PathBuf>,
    /// With --study: no progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// With --study: only redraw the plots of the finished study in --out.
    #[arg(long, requires = "study")]
    pub replot: bool,
    /// Search: dp (dynamic programming over candidate points) or direct (Nelder–Mead on
    /// the whole solve from the best fixed grids).
    #[arg(long, value_enum, default_value_t = pfode::optimize::Method::Direct)]
    pub method: pfode::optimize::Method,
    /// What the grid minimises: error (RMS end-point error to the DOP853 reference) or
    /// digits-fd (digits Fréchet distance, for 8×8 digits models).
    #[arg(long, value_enum, default_value_t = pfode::optimize::Objective::Error)]
    pub objective: pfode::optimize::Objective,
    /// Number of calibration x_T the grid is tuned on.
    #[arg(long, default_value_t = 256)]
    pub calibration: usize,
    /// Seed of the calibration x_T.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of held-out x_T the grid is judged on.
    #[arg(long, default_value_t = 1024)]
    pub held_out: usize,
    /// Seed of the held-out x_T (must differ from --seed) [default: --seed + 1].
    #[arg(long)]
    pub held_out_seed: Option<u64>,
    /// dp: candidate points (uniform in log-SNR).
    #[arg(long, default_value_t = 60)]
    pub candidates: usize,
    /// dp: a step's cost, propagated (its error carried to the end) or local (GITS).
    #[arg(long, value_enum, default_value_t = pfode::optimize::dp::Cost::Propagated)]
    pub dp_cost: pfode::optimize::dp::Cost,
    /// dp: how many calibration x_T (the first ones) its step costs are measured on.
    #[arg(long, default_value_t = 256)]
    pub dp_rows: usize,
    /// direct: most objective evaluations (whole solves).
    #[arg(long, default_value_t = 3000)]
    pub max_evals: usize,
    /// direct: how many of the best fixed grids the search starts from.
    #[arg(long, default_value_t = 3)]
    pub starts: usize,
    /// Fixed spacings compared, comma-separated [default: every spacing that starts at
    /// t_max: trailing, linspace (discrete schedules), uniform, quadratic, logsnr, karras].
    #[arg(long, value_delimiter = ',')]
    pub spacings: Option<Vec<String>>,
    /// Relative tolerance of the reference solves [default: 1e-10 for exact models, 1e-7
    /// for learned ones].
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Absolute tolerance of the reference solves [default: as --rtol].
    #[arg(long)]
    pub atol: Option<f64>,
    #[command(flatten)]
    pub options: SolverFlags,
    /// Where the last step ends: zero = clean data (ᾱ = 1), min = first training step.
    #[arg(long, value_enum, default_value_t = FinalSigma::Zero)]
    pub final_sigma: FinalSigma,
    /// ρ of the karras spacing.
    #[arg(long, default_value_t = 7.0)]
    pub karras_rho: f64,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
}

/// Arguments of `pfode reference`.
#[derive(Args, Debug, Clone)]
pub struct ReferenceArgs {
    /// Model: a built-in name, a mixture JSON file or a .safetensors checkpoint.
    #[arg(long)]
    pub model: String,
    /// Initial noise x_T ([N, D] .npy, f64 or f32).
    #[arg(long)]
    pub noise: PathBuf,
    /// Output .npy of the solution at t = 0; the sidecar goes next to it as .json.
    #[arg(long)]
    pub out: PathBuf,
    /// Start time of x_T [default: the schedule's t_max, i.e. training index T - 1].
    #[arg(long)]
    pub t_start: Option<f64>,
    /// Relative tolerance of DOP853 [default: 1e-10 for exact models, 1e-7 for learned ones].
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Absolute tolerance of DOP853 [default: as --rtol].
    #[arg(long)]
    pub atol: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Also write OUT.trajectory.npy ([M, N, D]) at these decreasing times: a comma-separated
    /// list or a JSON file.
    #[arg(long, value_name = "TIMES")]
    pub trajectory: Option<String>,
    /// Integrate the batch as one system or each sample on its own.
    #[arg(long, value_enum, default_value_t = pfode::reference::Mode::Batch)]
    pub mode: pfode::reference::Mode,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
}

/// Arguments of `pfode check ddim-euler`.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Model (built-in name or mixture JSON).
    #[arg(long, default_value = "ring2d")]
    pub model: String,
    /// Step counts to check.
    #[arg(long, num_args = 1.., default_values_t = vec![10, 20, 50, 100])]
    pub steps: Vec<usize>,
    /// Samples per run.
    #[arg(long, default_value_t = 256)]
    pub n: usize,
    /// Seed of x_T.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
}

/// Arguments of `pfode sweep`.
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// Experiment spec (TOML).
    pub spec: PathBuf,
    /// Results folder [default: results/<experiment name>/].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only the k-th of n deterministic slices (k/n, 0-based), e.g. for a job array.
    #[arg(long)]
    pub shard: Option<String>,
    /// Continue a sweep in an existing folder; finished runs are never redone.
    #[arg(long)]
    pub resume: bool,
    /// Runs in parallel [default: all cores].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `pfode merge`.
#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// Shard folders.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Merged results folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// Arguments of `pfode train`.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Data: ring2d, gauss2d, mix16d, swissroll, moons, checkerboard, a mixture .json or an [N, D] .npy.
    #[arg(long)]
    pub data: String,
    /// Output checkpoint (.safetensors; the .json config, .loss.csv and .loss.png go next to it).
    #[arg(long)]
    pub out: PathBuf,
    /// Optimiser steps.
    #[arg(long, default_value_t = 5000)]
    pub steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Linear warm-up steps before the cosine decay.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// EMA decay of the saved weights.
    #[arg(long, default_value_t = 0.999)]
    pub ema: f64,
    /// Seed of the initial weights and of every batch.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Training schedule.
    #[arg(long, default_value = "linear")]
    pub schedule: String,
    /// Hidden width.
    #[arg(long, default_value_t = 256)]
    pub width: usize,
    /// Hidden layers.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// What the network predicts.
    #[arg(long, value_enum, default_value_t = pfode::model::mlp::Prediction::Eps)]
    pub prediction: pfode::model::mlp::Prediction,
    /// Continue from the checkpoint at --out (fresh optimiser state).
    #[arg(long)]
    pub resume: bool,
    /// Where to train (cuda needs a build with `--features cuda`).
    #[arg(long, value_enum, default_value_t = pfode::model::mlp::DeviceChoice::Cpu)]
    pub device: pfode::model::mlp::DeviceChoice,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Arguments of `pfode bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Batch size.
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
    /// Repetitions per timing (the median is reported).
    #[arg(long, default_value_t = 50)]
    pub reps: usize,
    /// PyTorch's time for the same network (ms, from benches/pytorch_mlp.py), to print the ratio.
    #[arg(long)]
    pub pytorch_ms: Option<f64>,
}

/// Arguments of `pfode decompose`.
#[derive(Args, Debug, Clone)]
pub struct DecomposeArgs {
    /// Learned checkpoint (.safetensors).
    #[arg(long)]
    pub model: String,
    /// The exact model of the same data (built-in name or mixture JSON) [default: the data the
    /// checkpoint's .json says it learned].
    #[arg(long)]
    pub exact: Option<String>,
    /// Solver.
    #[arg(long, default_value = "ddim")]
    pub solver: String,
    /// Model-evaluation budgets to report.
    #[arg(long, num_args = 1.., default_values_t = vec![10, 20, 50, 100])]
    pub nfe: Vec<usize>,
    /// Step spacing.
    #[arg(long, default_value = "trailing")]
    pub spacing: String,
    /// Samples.
    #[arg(long, default_value_t = 500)]
    pub n: usize,
    /// Seed of x_T.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Arguments of `pfode orders`.
#[derive(Args, Debug, Clone)]
pub struct OrdersArgs {
    /// Results folder of a sweep.
    pub dir: PathBuf,
}

/// Arguments of `pfode plot`.
#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// A results folder of a sweep, or a sample file (.npy [N, D]).
    pub dir: PathBuf,
    /// For a sample file: the model it came from (built-in name, mixture JSON or
    /// .safetensors checkpoint); the plot is written beside it as .png (and .svg).
    #[arg(long)]
    pub model: Option<String>,
}

/// Arguments of `pfode score`.
#[derive(Args, Debug, Clone)]
pub struct ScoreArgs {
    /// Samples (.npy [N, D]).
    pub samples: PathBuf,
    /// The model they came from: a built-in name, a mixture JSON file or a .safetensors
    /// checkpoint (whose training data the distribution metrics compare against).
    #[arg(long)]
    pub model: String,
    /// The reference solution from the same x_T (`pfode reference`): adds the error
    /// statistics.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Seed of the data samples compared against (a sweep uses its run's seed).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Arguments of `pfode demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Directory for the demo's samples and sidecars.
    #[arg(long, default_value = "results/demo")]
    pub out_dir: PathBuf,
}

/// A library error in the command line's words: the argument it names, and any argument
/// its message quotes (`` `name` ``), as the flag a user typed (`--name-with-dashes`).
pub fn in_flags(e: &pfode::Error) -> String {
    let flag = flag_of();
    match e {
        pfode::Error::Invalid { field, msg } => {
            // `field` may be `a/b` or `name[k]`: each name that is a flag becomes one.
            let field: Vec<String> = field
                .split('/')
                .map(|part| {
                    let (name, index) = part.split_at(part.find('[').unwrap_or(part.len()));
                    flag(name).map_or_else(|| part.to_string(), |f| f + index)
                })
                .collect();
            format!("{}: {}", field.join("/"), quoted_flags(msg, &flag))
        }
        other => other.to_string(),
    }
}

/// Replaces each `` `name` `` that is a flag by the flag.
pub fn quoted_flags(msg: &str, flag: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(start) = rest.find('`') {
        let Some(len) = rest[start + 1..].find('`') else {
            break;
        };
        let name = &rest[start + 1..start + 1 + len];
        out.push_str(&rest[..start]);
        match flag(name).filter(|_| name.chars().all(|c| c.is_ascii_lowercase() || c == '_')) {
            Some(f) => out.push_str(&f),
            None => out.push_str(&rest[start..start + len + 2]),
        }
        rest = &rest[start + len + 2..];
    }
    out + rest
}

/// Every long flag of every command.
fn long_flags() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        out.extend(
            cmd.get_arguments()
                .filter_map(|a| a.get_long())
                .map(|l| format!("--{l}")),
        );
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&<Cli as clap::CommandFactory>::command(), &mut out);
    out
}

/// The flag `--name-with-dashes` of an argument `name`, if the command line has one.
pub fn flag_of() -> impl Fn(&str) -> Option<String> {
    let flags = long_flags();
    move |name: &str| {
        let f = format!("--{}", name.replace('_', "-"));
        flags.contains(&f).then_some(f)
    }
}
