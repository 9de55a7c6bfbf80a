//! Runs every combination of a spec, writing tidy rows as runs finish.
//!
//! * Resume: a run's rows are appended in one write; on restart, rows of runs that are not
//!   complete (and a trailing partial line) are dropped, and complete runs are skipped.
//! * Shards: `--shard k/n` runs the runs whose index is k mod n; `merge` combines shard
//!   folders into exactly the table an unsharded run writes (wall times aside).
//! * Determinism: every run depends only on the spec and its own seed; the final table is
//!   sorted by run index, so thread count and completion order leave no trace.

use super::spec::{Budget, ReferenceSpec, SolverEntry, Spec, ADAPTIVE};
use super::table::{self, Row};
use crate::batch::Batch;
use crate::digits::Classifier;
use crate::error::{Error, Result};
use crate::grid::{GridOptions, Spacing, TimeGrid};
use crate::metrics::{self, Kernel};
use crate::model::{self, GaussianMixture, ScoreModel};
use crate::noise::draw as draw_noise;
use crate::reference::{self, Mode, Settings};
use crate::schedule::Schedule;
use crate::solver::{sample, Solver};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Samples used by the O(N²) kernel metrics (MMD, KID): the first ones of each run.
const KERNEL_SAMPLES: usize = 500;

/// How a sweep runs.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub out: PathBuf,
    /// `(k, n)`: run the k-th of n slices.
    pub shard: Option<(usize, usize)>,
    pub resume: bool,
    pub jobs: usize,
    pub quiet: bool,
    /// Models the caller supplies by name (Python's `models={...}`); a spec's model name
    /// looks here before the built-in names and files.
    pub models: Vec<NamedModel>,
}

/// A model supplied by the caller under a name, with the data it learned where known (a
/// mixture name or file, or a procedural data set: what the metrics compare against).
#[derive(Clone)]
pub struct NamedModel {
    pub name: String,
    pub model: Arc<dyn ScoreModel>,
    pub data: Option<String>,
}

impl std::fmt::Debug for NamedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedModel")
            .field("name", &self.name)
            .field("model", &self.model.describe())
            .field("data", &self.data)
            .finish()
    }
}

/// One run of the sweep.
#[derive(Clone, Debug)]
pub struct RunKey {
    pub index: usize,
    pub schedule: String,
    pub model: String,
    pub solver: SolverEntry,
    pub spacing: String,
    pub budget: Budget,
    pub seed: u64,
}

/// Every run of a spec, in a fixed order. In an NFE sweep an adaptive solver runs once per
/// entry (its tolerances are its axis), on the whole interval, not per spacing and budget.
pub fn enumerate(spec: &Spec) -> Vec<RunKey> {
    let mut runs = Vec::new();
    for schedule in spec.schedule.values() {
        for model in &spec.models {
            for &seed in &spec.seeds {
                for solver in &spec.solvers {
                    let own_steps = !spec.nfe.is_empty()
                        && Solver::build(&solver.name, &solver.options)
                            .is_ok_and(|s| s.is_adaptive());
                    let axes: Vec<(String, Budget)> = if own_steps {
                        vec![(ADAPTIVE.to_string(), Budget::Tolerance)]
                    } else {
                        spec.spacings
                            .iter()
                            .flat_map(|sp| spec.budgets().into_iter().map(move |b| (sp.clone(), b)))
                            .collect()
                    };
                    for (spacing, budget) in axes {
                        runs.push(RunKey {
                            index: runs.len(),
                            schedule: schedule.clone(),
                            model: model.clone(),
                            solver: solver.clone(),
                            spacing,
                            budget,
                            seed,
                        });
                    }
                }
            }
        }
    }
    runs
}

/// Metric names run `solver` records, in order (the count tells complete runs from cut
/// ones): `diverged`, then the values of [`run_metrics`].
pub fn metric_names(spec: &Spec, solver: &Solver) -> Vec<String> {
    let mut names = vec!["diverged".to_string()];
    names.extend(value_names(&run_metrics(spec, solver)));
    names
}

/// The spec's metrics that mean something for `solver`. A stochastic sampler's distance to
/// the ODE reference is no error of anything (its samples follow the SDE, with a Brownian
/// path the ODE does not see), so `error` is kept only for samplers whose runs on one seed
/// share one Brownian path: for them it is the strong error to the reference SDE path
/// ([`SDE_REFERENCE_STEPS`]).
pub fn run_metrics(spec: &Spec, solver: &Solver) -> Vec<String> {
    let drop_error = solver.is_stochastic() && !solver.shares_brownian_path();
    spec.metrics
        .iter()
        .filter(|m| !(drop_error && m.as_str() == "error"))
        .cloned()
        .collect()
}

/// Least steps of the reference SDE path (Euler–Maruyama on the Brownian tree, uniform in
/// t); it takes at least 8× the largest budget of the spec, so that its own error (strong
/// order 1) stays an eighth of the finest run's.
pub const SDE_REFERENCE_STEPS: usize = 4096;

/// Steps of the reference SDE path for `spec`.
fn sde_reference_steps(spec: &Spec) -> usize {
    let largest = spec
        .nfe
        .iter()
        .chain(&spec.steps)
        .copied()
        .max()
        .unwrap_or(0);
    SDE_REFERENCE_STEPS.max(8 * largest)
}

/// True if some run of `spec` is scored against the reference SDE path.
fn needs_sde_reference(spec: &Spec) -> bool {
    spec.metrics.iter().any(|m| m == "error")
        && spec
            .solvers
            .iter()
            .any(|e| Solver::build(&e.name, &e.options).is_ok_and(|s| s.shares_brownian_path()))
}

/// The names of the values `metrics` give, `error` standing for its five statistics.
fn value_names(metrics: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    for m in metrics {
        match m.as_str() {
            "error" => names.extend(
                [
                    "error_mean",
                    "error_rms",
                    "error_median",
                    "error_p95",
                    "error_max",
                ]
                .map(String::from),
            ),
            other => names.push(other.to_string()),
        }
    }
    names
}

/// Parses `k/n`.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::invalid("shard", format!("expected k/n with 0 ≤ k < n, got '{s}'"));
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || k >= n {
        return Err(bad());
    }
    Ok((k, n))
}

/// Everything shared by the runs of one (model, seed): x_T, the reference, data samples.
struct Prepared {
    model: Arc<dyn ScoreModel>,
    /// The data's exact density, where known (mixtures, and networks trained on one).
    density: Option<GaussianMixture>,
    x_t: Batch,
    reference: Batch,
    /// The reference SDE path's end (Euler–Maruyama on the seed's Brownian tree at
    /// [`sde_reference_steps`]), where some solver shares that path.
    sde_reference: Option<Batch>,
    /// Samples of the data distribution: exact mixture samples, held-out procedural data,
    /// or the held-out digits (none where unknown: then only `error` is allowed).
    real: Option<Batch>,
    bandwidth: f64,
    /// For digits: the feature classifier and the held-out images' features.
    digits: Option<(Classifier, Batch)>,
}

/// What a sweep's model name stands for: the model, and where its data came from.
struct ModelData {
    model: Arc<dyn ScoreModel>,
    /// The data set: the mixture itself, or the `data` a checkpoint was trained on.
    data: String,
    /// The data's exact density, where it is a mixture.
    density: Option<GaussianMixture>,
    /// Extra reference cache key: a checkpoint's content hash.
    fingerprint: String,
    /// False for a caller's model, whose content pfode cannot hash: its reference is
    /// always solved afresh, never read from the cache.
    cacheable: bool,
}

/// The model a spec names: a caller's model, a built-in, or a file found relative to `dir`
/// (the spec's folder).
fn model_data(name: &str, supplied: &[NamedModel], dir: &Path) -> Result<ModelData> {
    if let Some(m) = supplied.iter().find(|m| m.name == name) {
        let data = m.data.clone().unwrap_or_default();
        return Ok(ModelData {
            model: m.model.clone(),
            density: model::resolve(&data).ok(),
            data,
            fingerprint: String::new(),
            cacheable: false,
        });
    }
    if name.ends_with(".safetensors") {
        let path = dir.join(name);
        let mlp = crate::model::mlp::Mlp::load(&path)?;
        let data = mlp.config.training["data"]
            .as_str()
            .ok_or_else(|| {
                Error::file(
                    &path.with_extension("json"),
                    "missing training.data: the sweep needs to know what data the network learned",
                )
            })?
            .to_string();
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        return Ok(ModelData {
            model: Arc::new(mlp),
            density: model::resolve(&data).ok(),
            data,
            fingerprint: format!("{:016x}", fnv1a(&bytes)),
            cacheable: true,
        });
    }
    let mixture = match model::builtin(name) {
        Some(m) => m,
        None => model::resolve(&dir.join(name).to_string_lossy())?,
    };
    Ok(ModelData {
        model: Arc::new(mixture.clone()),
        data: name.to_string(),
        density: Some(mixture),
        fingerprint: String::new(),
        cacheable: true,
    })
}

/// Seed of the exact samples that measure a metric's floor (none of the runs' seeds).
const FLOOR_SEED: u64 = 0xf1_00_12;
/// Draws of exact samples whose mean distance is a floor.
const FLOOR_DRAWS: u64 = 16;

/// What perfect samples would score, for the plots to draw as floors: the mean Fréchet and
/// sliced Wasserstein distances of [`FLOOR_DRAWS`] draws of `samples` exact samples
/// (finite-sample floors), the data's
/// entropy (the NLL of exact samples, which the NLL plot subtracts), and for digits the
/// training images' digits FD to the held-out ones. Only the spec's metrics are measured.
fn data_floors(spec: &Spec, m: &ModelData) -> Result<serde_json::Value> {
    let has = |k: &str| spec.metrics.iter().any(|m| m == k);
    let mut f = serde_json::Map::new();
    f.insert("samples".into(), spec.samples.into());
    if let Some(d) = &m.density {
        // One draw's distance varies by tens of per cent: the floor is the mean of many.
        let draws = |k: u64| d.sample(spec.samples, FLOOR_SEED + k);
        if has("frechet") {
            let fd = (0..FLOOR_DRAWS)
                .map(|k| metrics::frechet_to_mixture(&draws(k), d))
                .sum::<Result<f64>>()?;
            f.insert("frechet".into(), (fd / FLOOR_DRAWS as f64).into());
        }
        if has("sliced_wasserstein") {
            let sw = (0..FLOOR_DRAWS)
                .map(|k| {
                    metrics::sliced_wasserstein(&draws(2 * k + 100), &draws(2 * k + 101), 64, k)
                })
                .sum::<Result<f64>>()?;
            f.insert(
                "sliced_wasserstein".into(),
                (sw / FLOOR_DRAWS as f64).into(),
            );
        }
        if has("nll") {
            // The entropy to 1e-3 or so: many draws, a density evaluation each.
            let many = d.sample(200_000, FLOOR_SEED + 1000);
            f.insert("entropy".into(), metrics::nll(&many, d)?.into());
        }
    }
    if has("digits_fd") && m.data == crate::digits::NAME {
        let c = Classifier::load_or_committed(
            spec.classifier.as_deref().map(|p| spec.path(p)).as_deref(),
        )?;
        let held = crate::digits::reference_features(&c)?;
        let train = crate::digits::load(crate::digits::Split::Train)?.images;
        f.insert(
            "digits_fd".into(),
            crate::digits::feature_scores(&c, &train, &held)?.fd.into(),
        );
    }
    Ok(serde_json::Value::Object(f))
}

/// Metrics that need the exact data density, and those that need the digits classifier.
const NEEDS_DENSITY: &[&str] = &["frechet", "nll", "mode_coverage"];
const NEEDS_DIGITS: &[&str] = super::spec::DIGITS_METRICS;

/// Resolves a model of the spec and checks that every metric can be computed for it.
fn checked_model(
    spec_path: &Path,
    spec: &Spec,
    name: &str,
    supplied: &[NamedModel],
) -> Result<ModelData> {
    let in_spec = |e: Error| Error::file(spec_path, format!("model '{name}': {e}"));
    let m = model_data(name, supplied, &spec.dir).map_err(in_spec)?;
    let has_density = m.density.is_some();
    let is_digits = m.data == crate::digits::NAME;
    let has_data =
        has_density || is_digits || crate::model::train::procedural(&m.data, 1, 0).is_some();
    for k in &spec.metrics {
        let problem = if NEEDS_DENSITY.contains(&k.as_str()) && !has_density {
            "needs the exact data density (use error, sliced_wasserstein, mmd, kid)"
        } else if NEEDS_DIGITS.contains(&k.as_str()) && !is_digits {
            "needs a model trained on digits"
        } else if !has_data && k != "error" {
            "needs samples of the data, and none are known"
        } else {
            continue;
        };
        return Err(in_spec(Error::invalid(
            "metrics",
            format!("'{k}' {problem}; this model learned '{}'", m.data),
        )));
    }
    Ok(m)
}

/// Prepares one (schedule, model, seed): noise, cached reference, data samples.
#[allow(clippy::too_many_arguments)]
fn prepare(
    spec_path: &Path,
    spec: &Spec,
    out: &Path,
    schedule: &Schedule,
    name: &str,
    seed: u64,
    save_2d_paths: bool,
    opts: &SweepOptions,
) -> Result<Prepared> {
    let mut m = checked_model(spec_path, spec, name, &opts.models)?;
    let x_t = draw_noise(spec.samples, m.model.dim(), seed);
    let reference = cached_reference(out, spec, schedule, &m, &x_t, seed, !opts.quiet)?;
    let sde_reference = if needs_sde_reference(spec) {
        Some(sde_reference(spec, schedule, m.model.as_ref(), &x_t, seed)?)
    } else {
        None
    };
    let density = m.density.take();
    if save_2d_paths && density.is_some() && m.model.dim() == 2 {
        save_paths(
            out,
            name,
            spec,
            schedule,
            m.model.as_ref(),
            &m.data,
            &x_t,
            &reference,
        )?;
    }
    let samples_seed = seed.wrapping_add(0x5eed);
    let real = if let Some(d) = &density {
        Some(d.sample(spec.samples, samples_seed))
    } else if m.data == crate::digits::NAME {
        Some(crate::digits::load(crate::digits::Split::HeldOut)?.images)
    } else {
        // Held out: the network was trained on other draws of the same generator.
        crate::model::train::procedural(&m.data, spec.samples, samples_seed)
    };
    let digits = if spec
        .metrics
        .iter()
        .any(|k| NEEDS_DIGITS.contains(&k.as_str()))
    {
        let c = Classifier::load_or_committed(
            spec.classifier.as_deref().map(|p| spec.path(p)).as_deref(),
        )?;
        let features = crate::digits::reference_features(&c)?;
        Some((c, features))
    } else {
        None
    };
    let bandwidth = real.as_ref().map_or(1.0, median_bandwidth);
    Ok(Prepared {
        model: m.model,
        density,
        x_t,
        reference,
        sde_reference,
        real,
        bandwidth,
        digits,
    })
}

/// The end of the reference SDE path from `x_t` on `seed`'s Brownian tree: Euler–Maruyama
/// on the tree, uniform in t, at [`sde_reference_steps`] (runs that share the path are
/// scored against it: their strong error).
fn sde_reference(
    spec: &Spec,
    schedule: &Schedule,
    model: &dyn ScoreModel,
    x_t: &Batch,
    seed: u64,
) -> Result<Batch> {
    let n = sde_reference_steps(spec);
    let t_end = match spec.final_sigma {
        crate::grid::FinalSigma::Zero => 0.0,
        crate::grid::FinalSigma::Min => schedule.t_min(),
    };
    let t_max = schedule.t_max();
    let times = (0..=n)
        .map(|k| t_max - (t_max - t_end) * k as f64 / n as f64)
        .collect();
    let grid = TimeGrid::new(times, schedule)?;
    let solver = Solver::with("euler-maruyama", &[("brownian", "tree")])?;
    let (x, _) = sample(&solver, model, schedule, &grid, x_t.clone(), seed)?;
    if x.data.iter().any(|v| !v.is_finite()) {
        return Err(Error::numerical(
            "reference SDE path",
            format!("Euler–Maruyama on the Brownian tree, {n} steps, seed {seed}: not finite"),
        ));
    }
    Ok(x)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The reference for (model, x_T), computed once and cached on disk under `cache/`.
fn cached_reference(
    dir: &Path,
    spec: &Spec,
    schedule: &Schedule,
    m: &ModelData,
    x_t: &Batch,
    seed: u64,
    progress: bool,
) -> Result<Batch> {
    let tol = ReferenceSpec::for_model(spec.reference, m.model.as_ref());
    // The reference ends where the grids end: clean data, or the first training step.
    let t_end = match spec.final_sigma {
        crate::grid::FinalSigma::Zero => 0.0,
        crate::grid::FinalSigma::Min => schedule.t_min(),
    };
    let key = format!(
        "{}{}|{}|{}|{}|{}|{}|{}|{t_end}",
        m.model.describe(),
        m.fingerprint,
        schedule.name(),
        spec.samples,
        seed,
        schedule.t_max(),
        tol.rtol,
        tol.atol
    );
    let path = dir
        .join("cache")
        .join(format!("ref-{:016x}.npy", fnv1a(key.as_bytes())));
    if m.cacheable && path.exists() {
        let a = crate::npy::read(&path)?;
        if a.shape == [x_t.n, x_t.d] {
            return Batch::new(x_t.n, x_t.d, a.data);
        }
    }
    let settings = Settings {
        rtol: tol.rtol,
        atol: tol.atol,
        mode: Mode::Batch,
        progress,
    };
    let (r, _) = reference::solve(
        m.model.as_ref(),
        schedule,
        x_t,
        schedule.t_max(),
        t_end,
        &settings,
    )?;
    if !m.cacheable {
        return Ok(r);
    }
    std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| Error::io(&path, e))?;
    crate::npy::write(&path, &[r.n, r.d], &r.data, crate::npy::Dtype::F64)?;
    Ok(r)
}

fn median_bandwidth(x: &Batch) -> f64 {
    let n = x.n.min(200);
    let mut d2: Vec<f64> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .map(|(i, j)| {
            x.row(i)
                .iter()
                .zip(x.row(j))
                .map(|(a, b)| (a - b).powi(2))
                .sum()
        })
        .collect();
    d2.sort_by(f64::total_cmp);
    (d2[d2.len() / 2] / 2.0).sqrt().max(1e-12)
}

fn first(b: &Batch, n: usize) -> Batch {
    let n = n.min(b.n);
    Batch {
        n,
        d: b.d,
        data: b.data[..n * b.d].to_vec(),
    }
}

/// How a run ended.
pub enum Outcome {
    /// Samples and the NFE used.
    Done(Batch, usize),
    /// The model or the state went non-finite: recorded as `diverged = 1`, metrics NaN,
    /// with this NFE.
    Diverged(usize),
}

/// Runs one combination and returns its rows.
fn run_one(spec: &Spec, schedule: &Schedule, p: &Prepared, key: &RunKey) -> Result<Vec<Row>> {
    let solver = Solver::build(&key.solver.name, &key.solver.options)?;
    let opts = GridOptions {
        final_sigma: spec.final_sigma,
        rho: 7.0,
    };
    let start = Instant::now();
    let defined_at_clean = p.model.defined_at_clean();
    let grid = match key.budget {
        // One span: the adaptive solver picks its own steps across it.
        Budget::Tolerance => TimeGrid::build(schedule, &Spacing::Uniform, Some(1), opts)?,
        Budget::Nfe(n) => {
            let spacing = spec.spacing(&key.spacing)?;
            let steps = solver.steps_for_nfe(schedule, &spacing, opts, n, defined_at_clean)?;
            TimeGrid::build(schedule, &spacing, Some(steps), opts)?
        }
        Budget::Steps(n) => TimeGrid::build(schedule, &spec.spacing(&key.spacing)?, Some(n), opts)?,
    };
    let outcome = match sample(
        &solver,
        p.model.as_ref(),
        schedule,
        &grid,
        p.x_t.clone(),
        key.seed,
    ) {
        Ok((out, nfe)) if out.data.iter().all(|v| v.is_finite()) => Outcome::Done(out, nfe),
        // A run that diverged records the NFE it was given (a budget), or its steps' NFE.
        Ok(_) | Err(Error::NonFinite { .. }) => Outcome::Diverged(match key.budget {
            Budget::Nfe(n) => n,
            _ => solver.nfe_on(schedule, &grid, defined_at_clean)?,
        }),
        Err(e) => return Err(e),
    };
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    rows(spec, p, key, &solver, grid.steps(), outcome, wall_ms)
}

/// The metrics a sweep records, for one sample file: every metric the model's data allows
/// (the error statistics only against a `reference` of the same x_T), with their names.
/// `seed` draws the data samples compared against, as a sweep's run of that seed does.
pub fn score(
    model: &str,
    samples: &Batch,
    reference: Option<&Batch>,
    seed: u64,
) -> Result<Vec<(String, f64)>> {
    let m = model_data(model, &[], Path::new(""))?;
    if samples.d != m.model.dim() {
        return Err(Error::invalid(
            "samples",
            format!(
                "expected rows of the model's dimension {}, got {}",
                m.model.dim(),
                samples.d
            ),
        ));
    }
    if let Some(r) = reference {
        if (r.n, r.d) != (samples.n, samples.d) {
            return Err(Error::invalid(
                "reference",
                format!(
                    "expected the samples' shape [{}, {}], got [{}, {}]",
                    samples.n, samples.d, r.n, r.d
                ),
            ));
        }
    }
    let samples_seed = seed.wrapping_add(0x5eed);
    let is_digits = m.data == crate::digits::NAME;
    let real = if let Some(d) = &m.density {
        Some(d.sample(samples.n, samples_seed))
    } else if is_digits {
        Some(crate::digits::load(crate::digits::Split::HeldOut)?.images)
    } else {
        crate::model::train::procedural(&m.data, samples.n, samples_seed)
    };
    let mut metrics: Vec<String> = Vec::new();
    if reference.is_some() {
        metrics.push("error".into());
    }
    if m.density.is_some() {
        metrics.extend(["frechet", "nll", "mode_coverage"].map(String::from));
    }
    if real.is_some() {
        metrics.extend(["sliced_wasserstein", "mmd", "kid"].map(String::from));
    }
    let digits = if is_digits {
        metrics.extend(NEEDS_DIGITS.iter().map(|s| s.to_string()));
        let c = Classifier::load_or_committed(None)?;
        let features = crate::digits::reference_features(&c)?;
        Some((c, features))
    } else {
        None
    };
    if metrics.is_empty() {
        return Err(Error::invalid(
            "reference",
            format!(
                "nothing to score: the model's data ('{}') is unknown, so only the error to a \
                 reference applies: give one",
                m.data
            ),
        ));
    }
    let p = Prepared {
        bandwidth: real.as_ref().map_or(1.0, median_bandwidth),
        model: m.model,
        density: m.density,
        x_t: Batch::new(0, samples.d, Vec::new())?,
        reference: reference.cloned().unwrap_or(Batch {
            n: 0,
            d: samples.d,
            data: Vec::new(),
        }),
        sde_reference: None,
        real,
        digits,
    };
    let values = metric_values(&metrics, &p, &p.reference, samples, seed)?;
    Ok(value_names(&metrics).into_iter().zip(values).collect())
}

/// The values of `metrics` for samples `x` (the five error statistics for `error`, against
/// `reference`), in the order of [`metric_names`] after `diverged`.
fn metric_values(
    metrics: &[String],
    p: &Prepared,
    reference: &Batch,
    x: &Batch,
    seed: u64,
) -> Result<Vec<f64>> {
    let density = || p.density.as_ref().expect("checked_model");
    let real = || p.real.as_ref().expect("checked_model");
    let digits = |x: &Batch| {
        let (c, f) = p.digits.as_ref().expect("checked_model");
        crate::digits::feature_scores(c, x, f)
    };
    let mut values = Vec::new();
    for m in metrics {
        if m == "error" {
            let e = metrics::error_stats(x, reference)?;
            values.extend([e.mean, e.rms, e.median, e.p95, e.max]);
            continue;
        }
        values.push(match m.as_str() {
            "frechet" => metrics::frechet_to_mixture(x, density())?,
            "sliced_wasserstein" => metrics::sliced_wasserstein(x, real(), 64, seed)?,
            "mmd" => metrics::mmd2_unbiased(
                &first(x, KERNEL_SAMPLES),
                &first(real(), KERNEL_SAMPLES),
                Kernel::Rbf {
                    bandwidth: p.bandwidth,
                },
            )?,
            "kid" => metrics::mmd2_unbiased(
                &first(x, KERNEL_SAMPLES),
                &first(real(), KERNEL_SAMPLES),
                Kernel::Cubic,
            )?,
            "nll" => metrics::nll(x, density())?,
            "mode_coverage" => metrics::mode_coverage_gap(density(), x),
            "digits_fd" => digits(x)?.fd,
            "digits_kid" => digits(x)?.kid,
            _ => unreachable!("validated"),
        });
    }
    Ok(values)
}

/// The rows of one run: `diverged`, then every metric of the spec.
fn rows(
    spec: &Spec,
    p: &Prepared,
    key: &RunKey,
    solver: &Solver,
    steps: usize,
    outcome: Outcome,
    wall_ms: f64,
) -> Result<Vec<Row>> {
    let (out, nfe, diverged) = match outcome {
        Outcome::Done(out, nfe) => (Some(out), nfe, 0.0),
        Outcome::Diverged(nfe) => (None, nfe, 1.0),
    };
    let names = metric_names(spec, solver);
    let mut values = vec![f64::NAN; names.len()];
    values[0] = diverged;
    if let Some(x) = &out {
        // A run sharing its seed's Brownian path is scored against that path's reference.
        let reference = match &p.sde_reference {
            Some(r) if solver.shares_brownian_path() => r,
            _ => &p.reference,
        };
        let measured = metric_values(&run_metrics(spec, solver), p, reference, x, key.seed)?;
        values[1..].copy_from_slice(&measured);
    }
    let coords = key
        .solver
        .options
        .iter()
        .find(|(name, _)| *name == "coords")
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    Ok(names
        .into_iter()
        .zip(values)
        .map(|(metric, value)| Row {
            run: key.index,
            experiment: spec.name.clone(),
            model: key.model.clone(),
            schedule: key.schedule.clone(),
            solver: key.solver.name.clone(),
            options: key.solver.options_label(),
            coords: coords.clone(),
            spacing: key.spacing.clone(),
            steps,
            budget: key.budget.nfe(),
            nfe,
            seed: key.seed,
            metric,
            value,
            wall_ms,
        })
        .collect())
}

/// Checks that every (solver, budget, grid) of the spec can run, so that a sweep fails before
/// writing anything instead of recording rows that cannot mean anything: an adaptive solver
/// (its NFE follows its tolerances, not a budget) and a budget below a solver's least NFE on a
/// grid are errors naming the spec, the entry and what would work.
fn check_runs(
    spec_path: &Path,
    spec: &Spec,
    schedules: &[(String, Schedule)],
    models: &[(String, bool)],
) -> Result<()> {
    let opts = GridOptions {
        final_sigma: spec.final_sigma,
        rho: 7.0,
    };
    let in_spec = |msg: String| Error::file(spec_path, msg);
    for entry in &spec.solvers {
        let solver = Solver::build(&entry.name, &entry.options)
            .map_err(|e| in_spec(format!("solvers[{}]: {e}", entry.source)))?;
        let i = entry.source;
        if solver.is_adaptive() && !spec.nfe.is_empty() {
            // Its tolerances are its axis: one run per value, recording the NFE it used.
            if entry.options.iter().any(|(k, _)| k == "rtol") {
                continue;
            }
            return Err(in_spec(format!(
                "solvers[{i}] ('{}') chooses its own steps from its tolerances, so the spec's nfe \
                 budgets cannot apply to it: give it a tolerance axis (`rtol = [1e-3, 1e-5, \
                 1e-7]`, optionally `atol` of the same length; one run each, recording the NFE \
                 used), sweep it over `steps` (its grid's points), or leave it out",
                entry.name
            )));
        }
        if run_metrics(spec, &solver).is_empty() {
            return Err(in_spec(format!(
                "solvers[{i}] ('{}') is stochastic, and the spec's only metric is `error`: its \
                 distance to the ODE reference is no error of anything. Add a distribution \
                 metric (frechet, sliced_wasserstein, mmd, kid, nll, …), or use \
                 euler-maruyama with brownian = \"tree\" (scored by its strong error)",
                entry.name
            )));
        }
        let mut clean: Vec<bool> = models.iter().map(|m| m.1).collect();
        clean.sort();
        clean.dedup();
        for (schedule_name, schedule) in schedules {
            for spacing_name in &spec.spacings {
                let spacing = spec.spacing(spacing_name)?;
                for &n in &spec.steps {
                    TimeGrid::build(schedule, &spacing, Some(n), opts).map_err(|e| {
                        in_spec(format!(
                            "steps = {n} on the '{spacing_name}' grid of schedule \
                             '{schedule_name}': {e}"
                        ))
                    })?;
                }
                for &defined in &clean {
                    // A grid file's steps are its own; other spacings can shrink to one step.
                    let one = match spacing {
                        Spacing::File(_) => TimeGrid::build(schedule, &spacing, None, opts),
                        _ => TimeGrid::build(schedule, &spacing, Some(1), opts),
                    }
                    .map_err(|e| in_spec(format!("spacing '{spacing_name}': {e}")))?;
                    let least = solver.nfe_on(schedule, &one, defined)?;
                    if let Some(&budget) = spec.nfe.iter().find(|&&n| n < least) {
                        return Err(in_spec(format!(
                            "solvers[{i}] ('{}') cannot run within nfe = {budget} on the \
                             '{spacing_name}' grid of schedule '{schedule_name}': it needs at \
                             least {least} model evaluations; drop the budgets below {least} or \
                             this solver",
                            entry.name
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// What a sweep did.
pub struct SweepReport {
    pub runs_total: usize,
    pub runs_done_now: usize,
    pub runs_skipped: usize,
    pub wall_s: f64,
}

/// Runs a spec (or one shard of it) into `opts.out`.
pub fn sweep(spec_path: &Path, opts: &SweepOptions) -> Result<SweepReport> {
    let text = std::fs::read_to_string(spec_path).map_err(|e| Error::io(spec_path, e))?;
    sweep_text(spec_path, &text, opts)
}

/// [`sweep`] of a spec given as TOML `text`; errors name `spec_path` as its origin.
pub fn sweep_text(spec_path: &Path, text: &str, opts: &SweepOptions) -> Result<SweepReport> {
    let spec = Spec::from_text(spec_path, text)?;
    let schedules: Vec<(String, Schedule)> = spec
        .schedule
        .values()
        .into_iter()
        .map(|n| Schedule::named(&n).map(|s| (n, s)))
        .collect::<Result<_>>()?;
    let out = &opts.out;
    let csv_path = out.join("results.csv");
    // Every model, metric and run is checked before anything is written.
    let mut names: Vec<&String> = spec.models.iter().collect();
    names.sort();
    names.dedup();
    let mut defined_at_clean = Vec::new();
    let mut tolerances = serde_json::Map::new();
    let mut floors = serde_json::Map::new();
    for name in names {
        let m = checked_model(spec_path, &spec, name, &opts.models)?;
        floors.insert(name.clone(), data_floors(&spec, &m)?);
        defined_at_clean.push((name.clone(), m.model.defined_at_clean()));
        let tol = ReferenceSpec::for_model(spec.reference, m.model.as_ref());
        let origin = match (spec.reference, m.model.defined_at_clean()) {
            (Some(_), _) => "the spec's [reference]",
            (None, true) => "the default for exact models",
            (None, false) => "the default for learned models",
        };
        if !opts.quiet {
            eprintln!(
                "model '{name}': reference DOP853 at rtol {:e}, atol {:e} ({origin})",
                tol.rtol, tol.atol
            );
        }
        tolerances.insert(
            name.clone(),
            serde_json::json!({"rtol": tol.rtol, "atol": tol.atol, "from": origin}),
        );
    }
    check_runs(spec_path, &spec, &schedules, &defined_at_clean)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let all = enumerate(&spec);
    let mine: Vec<RunKey> = all
        .iter()
        .filter(|r| opts.shard.is_none_or(|(k, n)| r.index % n == k))
        .cloned()
        .collect();
    // Rows a complete run has: stochastic samplers without a shared path record no error.
    let per_run: std::collections::BTreeMap<usize, usize> = all
        .iter()
        .map(|r| {
            let solver = Solver::build(&r.solver.name, &r.solver.options)?;
            Ok((r.index, metric_names(&spec, &solver).len()))
        })
        .collect::<Result<_>>()?;

    // Resume: keep complete runs only, drop a cut tail.
    let mut done = std::collections::BTreeSet::new();
    if csv_path.exists() {
        if !opts.resume {
            return Err(Error::invalid(
                "out",
                format!(
                    "{} already exists: pass `resume` to continue it, or choose another folder",
                    csv_path.display()
                ),
            ));
        }
        let (rows, _) = table::read(&csv_path)?;
        let mut count = std::collections::BTreeMap::new();
        rows.iter()
            .for_each(|r| *count.entry(r.run).or_insert(0usize) += 1);
        done = count
            .into_iter()
            .filter(|&(run, c)| per_run.get(&run) == Some(&c))
            .map(|(run, _)| run)
            .collect();
        let kept: Vec<Row> = rows.into_iter().filter(|r| done.contains(&r.run)).collect();
        crate::io::write_atomic(
            &csv_path,
            &[table::header(), table::to_csv(&kept, false)].concat(),
        )?;
    } else {
        crate::io::write_atomic(&csv_path, &table::header())?;
    }
    let sde = needs_sde_reference(&spec).then(|| {
        let n = sde_reference_steps(&spec);
        if !opts.quiet {
            eprintln!(
                "error of runs on one Brownian path (euler-maruyama, brownian = tree): strong \
                 error to the same path's Euler–Maruyama solution at {n} steps uniform in t"
            );
        }
        serde_json::json!({"solver": "euler-maruyama", "brownian": "tree", "steps": n, "grid": "uniform in t"})
    });
    write_meta(out, &spec, text, tolerances, sde, floors)?;

    let todo: Vec<&RunKey> = mine.iter().filter(|r| !done.contains(&r.index)).collect();
    // Drawn once the references are solved (they draw their own bars).
    let bar = ProgressBar::hidden();
    let file = Mutex::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&csv_path)
            .map_err(|e| Error::io(&csv_path, e))?,
    );
    let start = Instant::now();
    // A thread-bound model (Python) runs every run on this thread, one at a time; others
    // run on a pool of `jobs` threads.
    let thread_bound = opts.models.iter().any(|m| m.model.thread_bound());
    let pool = if thread_bound {
        None
    } else {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.jobs.max(1))
            .build()
            .map_err(|e| Error::invalid("jobs", e.to_string()))?;
        Some(pool)
    };
    let run_all = || -> Result<()> {
        // Prepare each (schedule, model, seed) once: noise, cached reference, exact samples.
        let mut groups: Vec<(String, String, u64)> = todo
            .iter()
            .map(|r| (r.schedule.clone(), r.model.clone(), r.seed))
            .collect();
        groups.sort();
        groups.dedup();
        let schedule_of = |name: &str| {
            &schedules
                .iter()
                .find(|(n, _)| n == name)
                .expect("validated")
                .1
        };
        let prepared: Vec<((String, String, u64), Prepared)> = groups
            .into_iter()
            .map(|(sched, name, seed)| {
                let first_group = seed == spec.seeds[0] && sched == schedules[0].0;
                let p = prepare(
                    spec_path,
                    &spec,
                    out,
                    schedule_of(&sched),
                    &name,
                    seed,
                    first_group,
                    opts,
                )?;
                Ok(((sched, name, seed), p))
            })
            .collect::<Result<_>>()?;
        if !opts.quiet {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        bar.set_length(todo.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} runs, ETA {eta}").expect("template"),
        );
        let run = |key: &&RunKey| -> Result<()> {
            let p = &prepared
                .iter()
                .find(|(k, _)| k.0 == key.schedule && k.1 == key.model && k.2 == key.seed)
                .expect("prepared")
                .1;
            let rows = run_one(&spec, schedule_of(&key.schedule), p, key)?;
            let bytes = table::to_csv(&rows, false);
            let mut f = file.lock().expect("lock");
            f.write_all(&bytes)
                .and_then(|_| f.sync_data())
                .map_err(|e| Error::io(&csv_path, e))?;
            bar.inc(1);
            Ok(())
        };
        if thread_bound {
            todo.iter().try_for_each(run)
        } else {
            todo.par_iter().try_for_each(run)
        }
    };
    match &pool {
        Some(pool) => pool.install(run_all)?,
        None => run_all()?,
    }
    bar.finish_and_clear();
    // Final table in run order, whatever the completion order was.
    let (mut rows, _) = table::read(&csv_path)?;
    rows.sort_by_key(|r| r.run);
    crate::io::write_atomic(
        &csv_path,
        &[table::header(), table::to_csv(&rows, false)].concat(),
    )?;
    Ok(SweepReport {
        runs_total: mine.len(),
        runs_done_now: todo.len(),
        runs_skipped: mine.len() - todo.len(),
        wall_s: start.elapsed().as_secs_f64(),
    })
}

/// For 2-D models, what the plots draw besides the table: the reference samples and 32
/// reference paths from x_T to x_0 (40 times, uniform in log-SNR).
#[allow(clippy::too_many_arguments)]
fn save_paths(
    out: &Path,
    name: &str,
    spec: &Spec,
    schedule: &Schedule,
    m: &dyn ScoreModel,
    data: &str,
    x_t: &Batch,
    reference: &Batch,
) -> Result<()> {
    let tag = crate::plot::file_tag(name);
    // The plots draw paths over the data density, which a checkpoint names.
    if data != name {
        crate::io::write_atomic(&out.join(format!("data_{tag}.txt")), data.as_bytes())?;
    }
    crate::npy::write(
        &out.join(format!("reference_{tag}.npy")),
        &[reference.n, 2],
        &reference.data,
        crate::npy::Dtype::F64,
    )?;
    let grid = TimeGrid::build(schedule, &Spacing::LogSnr, Some(40), GridOptions::default())?;
    let tol = ReferenceSpec::for_model(spec.reference, m);
    let settings = Settings {
        rtol: tol.rtol,
        atol: tol.atol,
        mode: Mode::Batch,
        progress: false,
    };
    let (states, _) = reference::trajectory(
        m,
        schedule,
        &first(x_t, 32),
        grid.times()[0],
        grid.times(),
        &settings,
    )?;
    let data: Vec<f64> = states.iter().flat_map(|b| b.data.iter().cloned()).collect();
    crate::npy::write(
        &out.join(format!("trajectory_{tag}.npy")),
        &[states.len(), states[0].n, 2],
        &data,
        crate::npy::Dtype::F64,
    )
}

fn write_meta(
    out: &Path,
    spec: &Spec,
    text: &str,
    references: serde_json::Map<String, serde_json::Value>,
    sde_reference: Option<serde_json::Value>,
    floors: serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    let git = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut meta = serde_json::json!({
        "pfode_version": env!("CARGO_PKG_VERSION"),
        "git_revision": git,
        "experiment": spec.name,
        "spec_hash": format!("{:016x}", fnv1a(text.as_bytes())),
        "machine": {"hostname": host, "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)},
        "date_utc": utc_date(secs),
        "reference_tolerances": references,
        "data_floors": floors,
    });
    if let Some(sde) = sde_reference {
        meta["sde_reference"] = sde;
    }
    crate::io::write_atomic(
        &out.join("meta.json"),
        serde_json::to_string_pretty(&meta)
            .expect("json")
            .as_bytes(),
    )?;
    crate::io::write_atomic(&out.join("spec.toml"), text.as_bytes())
}

/// `YYYY-MM-DDTHH:MM:SSZ` from Unix seconds (civil-from-days, Hinnant's algorithm).
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Combines shard folders into `out`: rows sorted by run, duplicates removed, and only the
/// spec shared by all shards accepted.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<usize> {
    if dirs.is_empty() {
        return Err(Error::invalid("DIR", "expected at least one shard folder"));
    }
    let spec_text = std::fs::read_to_string(dirs[0].join("spec.toml"))
        .map_err(|e| Error::io(&dirs[0].join("spec.toml"), e))?;
    let mut rows = Vec::new();
    for d in dirs {
        let other = std::fs::read_to_string(d.join("spec.toml"))
            .map_err(|e| Error::io(&d.join("spec.toml"), e))?;
        if other != spec_text {
            return Err(Error::file(
                &d.join("spec.toml"),
                "spec differs from the first shard's",
            ));
        }
        rows.extend(table::read(&d.join("results.csv"))?.0);
    }
    rows.sort_by_key(|r| r.run);
    rows.dedup_by(|a, b| a.run == b.run && a.metric == b.metric);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    crate::io::write_atomic(
        &out.join("results.csv"),
        &[table::header(), table::to_csv(&rows, false)].concat(),
    )?;
    crate::io::write_atomic(&out.join("spec.toml"), spec_text.as_bytes())?;
    if let Ok(meta) = std::fs::read(dirs[0].join("meta.json")) {
        crate::io::write_atomic(&out.join("meta.json"), &meta)?;
    }
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_spec() -> Spec {
        toml::from_str("name = \"t\"\nmodels = [\"ring2d\"]\nspacings = [\"logsnr\"]\nnfe = [4]\nsamples = 50\n[[solvers]]\nname = \"ddim\"\n").unwrap()
    }

    fn prepared() -> Prepared {
        let model = crate::model::builtin("ring2d").unwrap();
        let x_t = draw_noise(50, 2, 0);
        let exact = model.sample(50, 1);
        Prepared {
            reference: exact.clone(),
            bandwidth: median_bandwidth(&exact),
            model: Arc::new(model.clone()),
            density: Some(model),
            x_t,
            sde_reference: None,
            real: Some(exact),
            digits: None,
        }
    }

    #[test]
    fn a_diverged_run_records_nan_metrics_and_the_flag_instead_of_failing() {
        let spec = tiny_spec();
        let key = enumerate(&spec).remove(0);
        let p = prepared();
        let ddim = Solver::named("ddim").unwrap();
        let names = metric_names(&spec, &ddim);
        let bad = rows(&spec, &p, &key, &ddim, 4, Outcome::Diverged(4), 1.0).unwrap();
        assert_eq!(bad.len(), names.len());
        assert_eq!((bad[0].metric.as_str(), bad[0].value), ("diverged", 1.0));
        assert!(bad[1..].iter().all(|r| r.value.is_nan()));
        let good = rows(
            &spec,
            &p,
            &key,
            &ddim,
            4,
            Outcome::Done(p.reference.clone(), 4),
            1.0,
        )
        .unwrap();
        assert_eq!(good[0].value, 0.0);
        let rms = good.iter().find(|r| r.metric == "error_rms").unwrap().value;
        assert_eq!(rms, 0.0, "samples equal to the reference have zero error");
    }

    #[test]
    fn utc_date_formats_known_instants() {
        assert_eq!(utc_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_date(1_764_111_600), "2025-11-25T23:00:00Z");
        assert_eq!(utc_date(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn shard_syntax_is_checked() {
        assert_eq!(parse_shard("2/5").unwrap(), (2, 5));
        for bad in ["5/5", "1/0", "a/2", "3"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
