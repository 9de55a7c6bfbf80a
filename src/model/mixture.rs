//! Exact models: Gaussian mixtures with diagonal covariances (docs/math.md §6).
//!
//! Under a VP schedule the marginal `p_t` of `Σ_k w_k N(μ_k, diag(c_k²))` is the mixture
//! with means `a μ_k` and variances `a² c_k² + s²`, so the noise prediction is exact:
//! `ε̂ = s Σ_k r_k(x) (x - a μ_k) / (a² c_k² + s²)` with softmax responsibilities `r_k`.

use super::{Level, RowEvaluator, RowModel, ScoreModel};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::noise::{self, Purpose};
use rand::Rng;
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::f64::consts::PI;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Rows per parallel work item: large enough to amortise scheduling, small enough to balance.
const ROWS_PER_TASK: usize = 64;

/// A Gaussian mixture `Σ_k w_k N(μ_k, diag(c_k²))` in D dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianMixture {
    name: String,
    weights: Vec<f64>,
    /// `[K, D]` row-major.
    means: Vec<f64>,
    /// `[K, D]` row-major, all positive.
    stds: Vec<f64>,
    dim: usize,
    tables: TablesCache,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MixtureFile {
    weights: Vec<f64>,
    means: Vec<Vec<f64>>,
    stds: Vec<Vec<f64>>,
}

/// Names of the built-in models.
pub const BUILTINS: &[&str] = &["ring2d", "gauss2d", "gauss1d", "mix16d"];

impl GaussianMixture {
    /// Validates and builds a mixture; errors name the offending field.
    pub fn new(
        name: &str,
        weights: Vec<f64>,
        means: Vec<Vec<f64>>,
        stds: Vec<Vec<f64>>,
    ) -> Result<Self> {
        let k = weights.len();
        if k == 0 {
            return Err(Error::invalid("weights", "expected at least one component"));
        }
        if means.len() != k || stds.len() != k {
            return Err(Error::invalid(
                "means/stds",
                format!(
                    "expected {k} rows (one per weight), got {} means and {} stds",
                    means.len(),
                    stds.len()
                ),
            ));
        }
        let dim = means[0].len();
        if dim == 0 {
            return Err(Error::invalid(
                "means[0]",
                "expected at least one coordinate",
            ));
        }
        for (i, w) in weights.iter().enumerate() {
            if !(w.is_finite() && *w >= 0.0) {
                return Err(Error::invalid(
                    format!("weights[{i}]"),
                    format!("expected a non-negative number, got {w}"),
                ));
            }
        }
        let total: f64 = weights.iter().sum();
        if (total - 1.0).abs() > 1e-9 {
            return Err(Error::invalid(
                "weights",
                format!("expected weights summing to 1 (± 1e-9), they sum to {total}"),
            ));
        }
        for (field, rows) in [("means", &means), ("stds", &stds)] {
            for (i, row) in rows.iter().enumerate() {
                if row.len() != dim {
                    return Err(Error::invalid(
                        format!("{field}[{i}]"),
                        format!(
                            "expected {dim} values (the dimension of means[0]), got {}",
                            row.len()
                        ),
                    ));
                }
                for (j, v) in row.iter().enumerate() {
                    let ok = v.is_finite() && (field == "means" || *v > 0.0);
                    if !ok {
                        let what = if field == "means" {
                            "a finite mean"
                        } else {
                            "a positive finite std"
                        };
                        return Err(Error::invalid(
                            format!("{field}[{i}][{j}]"),
                            format!("expected {what}, got {v}"),
                        ));
                    }
                }
            }
        }
        Ok(GaussianMixture {
            name: name.to_string(),
            weights,
            means: means.concat(),
            stds: stds.concat(),
            dim,
            tables: TablesCache::default(),
        })
    }

    /// A single Gaussian `N(mean, diag(std²))`.
    pub fn gaussian(name: &str, mean: Vec<f64>, std: Vec<f64>) -> Result<Self> {
        Self::new(name, vec![1.0], vec![mean], vec![std])
    }

    /// Loads `{"weights": [K], "means": [[D]..K], "stds": [[D]..K]}`.
    pub fn from_json(path: &Path) -> Result<Self> {
        let f: MixtureFile = crate::io::read_json(path)?;
        let name = path.display().to_string();
        Self::new(&name, f.weights, f.means, f.stds).map_err(|e| Error::file(path, e.to_string()))
    }

    /// Number of components K.
    pub fn components(&self) -> usize {
        self.weights.len()
    }

    /// Mixture weights.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Mean of component `k`.
    pub fn mean_of(&self, k: usize) -> &[f64] {
        &self.means[k * self.dim..(k + 1) * self.dim]
    }

    /// Stds of component `k`.
    pub fn std_of(&self, k: usize) -> &[f64] {
        &self.stds[k * self.dim..(k + 1) * self.dim]
    }

    /// Exact samples of the data distribution (t = 0).
    pub fn sample(&self, n: usize, seed: u64) -> Batch {
        let mut rng = noise::rng(seed, Purpose::Other, 0);
        let z = noise::normals(seed, Purpose::Other, 1, n * self.dim);
        let mut data = Vec::with_capacity(n * self.dim);
        for i in 0..n {
            let u: f64 = rng.random();
            let mut k = 0;
            let mut acc = self.weights[0];
            while u >= acc && k + 1 < self.components() {
                k += 1;
                acc += self.weights[k];
            }
            for j in 0..self.dim {
                data.push(self.mean_of(k)[j] + self.std_of(k)[j] * z[i * self.dim + j]);
            }
        }
        Batch {
            n,
            d: self.dim,
            data,
        }
    }

    /// The closed-form probability-flow ODE map of a single Gaussian from level `from` to
    /// level `to` (docs/math.md §6): per coordinate, in `y = x/a`, `σ = s/a`,
    /// `y_to - μ = (y_from - μ) sqrt((c² + σ_to²)/(c² + σ_from²))`.
    pub fn gaussian_flow(&self, x: &Batch, from: &Level, to: &Level) -> Result<Batch> {
        if self.components() != 1 {
            return Err(Error::invalid(
                "model",
                "the closed-form flow needs a single Gaussian",
            ));
        }
        let (sf, st) = (from.sigma / from.alpha, to.sigma / to.alpha);
        let mut out = x.clone();
        for (i, v) in out.data.iter_mut().enumerate() {
            let j = i % self.dim;
            let (mu, c) = (self.means[j], self.stds[j]);
            let y = *v / from.alpha;
            let scale = ((c * c + st * st) / (c * c + sf * sf)).sqrt();
            *v = to.alpha * (mu + (y - mu) * scale);
        }
        Ok(out)
    }
}

/// Per-level constants shared by every row.
struct LevelTables {
    centers: Vec<f64>,
    inv_var: Vec<f64>,
    log_norm: Vec<f64>,
}

/// Levels whose tables have been made, newest last: row tiles each run the whole grid, and
/// would otherwise remake every level's tables (a logarithm per component and coordinate)
/// once per tile. Calls on a few rows (the reference's per-sample solves, at levels that
/// never repeat) make their tables without it: for them the lookup costs more than the
/// tables.
#[derive(Default)]
struct TablesCache(Mutex<VecDeque<(LevelKey, Arc<LevelTables>)>>);

/// A level's α and σ, bit for bit: all its tables depend on.
type LevelKey = (u64, u64);

/// Levels a cache keeps (a run's grid points and stages, and then some).
const CACHED_LEVELS: usize = 256;

impl Clone for TablesCache {
    fn clone(&self) -> Self {
        TablesCache::default()
    }
}

impl PartialEq for TablesCache {
    /// A cache holds nothing of the model's identity.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for TablesCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TablesCache")
    }
}

impl GaussianMixture {
    /// The tables at level `l` (they depend on its α and σ alone), made once.
    fn tables(&self, l: &Level) -> Arc<LevelTables> {
        let key = (l.alpha.to_bits(), l.sigma.to_bits());
        let lock = || self.tables.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, t)) = lock().iter().rev().find(|(k, _)| *k == key) {
            return Arc::clone(t);
        }
        let made = Arc::new(self.make_tables(l));
        let mut cache = lock();
        if cache.len() == CACHED_LEVELS {
            cache.pop_front();
        }
        cache.push_back((key, Arc::clone(&made)));
        made
    }

    fn make_tables(&self, l: &Level) -> LevelTables {
        let (a, s) = (l.alpha, l.sigma);
        let centers = self.means.iter().map(|m| a * m).collect();
        let inv_var: Vec<f64> = self
            .stds
            .iter()
            .map(|c| 1.0 / (a * a * c * c + s * s))
            .collect();
        let log_norm = (0..self.components())
            .map(|k| {
                let log_det: f64 = inv_var[k * self.dim..(k + 1) * self.dim]
                    .iter()
                    .map(|iv| (2.0 * PI / iv).ln())
                    .sum();
                self.weights[k].ln() - 0.5 * log_det
            })
            .collect();
        LevelTables {
            centers,
            inv_var,
            log_norm,
        }
    }

    fn eps_row(
        &self,
        tb: &LevelTables,
        sigma: f64,
        x: &[f64],
        out: &mut [f64],
        logits: &mut [f64],
    ) {
        let d = self.dim;
        for (k, logit) in logits.iter_mut().enumerate() {
            let (c, iv) = (
                &tb.centers[k * d..(k + 1) * d],
                &tb.inv_var[k * d..(k + 1) * d],
            );
            let q: f64 = x
                .iter()
                .zip(c)
                .zip(iv)
                .map(|((x, c), iv)| (x - c) * (x - c) * iv)
                .sum();
            *logit = tb.log_norm[k] - 0.5 * q;
        }
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = logits
            .iter_mut()
            .map(|l| {
                *l = (*l - max).exp();
                *l
            })
            .sum();
        out.iter_mut().for_each(|o| *o = 0.0);
        for (k, r) in logits.iter().enumerate() {
            let w = sigma * r / total;
            let (c, iv) = (
                &tb.centers[k * d..(k + 1) * d],
                &tb.inv_var[k * d..(k + 1) * d],
            );
            for j in 0..d {
                out[j] += w * (x[j] - c[j]) * iv[j];
            }
        }
    }

    /// Log-density of the data distribution (t = 0) at each row of `x`.
    pub fn log_density(&self, x: &Batch) -> Vec<f64> {
        let tb = self.tables(&Level {
            t: 0.0,
            alpha: 1.0,
            sigma: 0.0,
        });
        let d = self.dim;
        (0..x.n)
            .map(|i| {
                let row = x.row(i);
                let logits: Vec<f64> = (0..self.components())
                    .map(|k| {
                        let q: f64 = (0..d)
                            .map(|j| {
                                (row[j] - tb.centers[k * d + j]).powi(2) * tb.inv_var[k * d + j]
                            })
                            .sum();
                        tb.log_norm[k] - 0.5 * q
                    })
                    .collect();
                let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                m + logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln()
            })
            .collect()
    }
}

impl ScoreModel for GaussianMixture {
    fn dim(&self) -> usize {
        self.dim
    }

    fn describe(&self) -> serde_json::Value {
        json!({"kind": "gaussian-mixture", "name": self.name, "dim": self.dim, "components": self.components()})
    }

    fn eps_into(&self, x: &Batch, level: &Level, out: &mut [f64]) -> Result<()> {
        if x.d != self.dim {
            return Err(Error::invalid(
                "x",
                format!(
                    "model '{}' has dimension {}, input has {}",
                    self.name, self.dim, x.d
                ),
            ));
        }
        let tb = if x.n < ROWS_PER_TASK {
            Arc::new(self.make_tables(level))
        } else {
            self.tables(level)
        };
        let d = self.dim;
        let first_bad = out
            .par_chunks_mut(ROWS_PER_TASK * d)
            .zip(x.data.par_chunks(ROWS_PER_TASK * d))
            .enumerate()
            .filter_map(|(chunk, (o, xs))| {
                let mut logits = vec![0.0; self.components()];
                let mut bad = None;
                for (r, (orow, xrow)) in o.chunks_mut(d).zip(xs.chunks(d)).enumerate() {
                    self.eps_row(&tb, level.sigma, xrow, orow, &mut logits);
                    if bad.is_none() {
                        if let Some(col) = orow.iter().position(|v| !v.is_finite()) {
                            bad = Some((chunk * ROWS_PER_TASK + r, col, orow[col]));
                        }
                    }
                }
                bad
            })
            .min_by_key(|b| b.0);
        match first_bad {
            Some((row, col, value)) => Err(Error::NonFinite {
                t: level.t,
                row,
                col,
                value,
            }),
            None => Ok(()),
        }
    }

    fn defined_at_clean(&self) -> bool {
        true
    }

    fn rows(&self) -> Option<&dyn RowModel> {
        Some(self)
    }
}

impl RowModel for GaussianMixture {
    fn checks_finite_output(&self) -> bool {
        true
    }

    fn row_evaluator(&self, level: &Level) -> Option<Box<dyn RowEvaluator + '_>> {
        Some(Box::new(MixtureRows {
            model: self,
            tables: self.tables(level),
            sigma: level.sigma,
        }))
    }
}

/// The mixture at one level, its tables made once.
struct MixtureRows<'a> {
    model: &'a GaussianMixture,
    tables: Arc<LevelTables>,
    sigma: f64,
}

/// Components whose responsibilities fit on the stack in [`MixtureRows::eps_rows`] (the
/// array is zeroed on every call, so it is kept small).
const STACK_COMPONENTS: usize = 16;

impl RowEvaluator for MixtureRows<'_> {
    fn eps_rows(&self, x: &[f64], out: &mut [f64]) {
        let (d, k) = (self.model.dim, self.model.components());
        let mut stack = [0.0; STACK_COMPONENTS];
        let mut heap = Vec::new();
        let logits = if k <= STACK_COMPONENTS {
            &mut stack[..k]
        } else {
            heap.resize(k, 0.0);
            &mut heap[..]
        };
        for (orow, xrow) in out.chunks_mut(d).zip(x.chunks(d)) {
            self.model
                .eps_row(&self.tables, self.sigma, xrow, orow, logits);
        }
    }
}

/// A built-in model by name (see [`BUILTINS`]).
pub fn builtin(name: &str) -> Option<GaussianMixture> {
    let m = match name {
        // 8 equal components on a circle of radius 4, std 0.3.
        "ring2d" => {
            let means = (0..8)
                .map(|k| {
                    let a = 2.0 * PI * k as f64 / 8.0;
                    vec![4.0 * a.cos(), 4.0 * a.sin()]
                })
                .collect();
            GaussianMixture::new(name, vec![0.125; 8], means, vec![vec![0.3, 0.3]; 8])
        }
        // A single anisotropic Gaussian: the closed-form test problem.
        "gauss2d" => GaussianMixture::gaussian(name, vec![1.0, -0.5], vec![0.5, 1.5]),
        "gauss1d" => GaussianMixture::gaussian(name, vec![0.5], vec![0.3]),
        // 8 components in 16-D, drawn once from a fixed seed.
        "mix16d" => {
            let mut rng = noise::rng(16, Purpose::Other, 16);
            let raw: Vec<f64> = (0..8).map(|_| rng.random_range(0.5..1.5)).collect();
            let total: f64 = raw.iter().sum();
            let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
            let means = (0..8)
                .map(|_| (0..16).map(|_| rng.random_range(-3.0..3.0)).collect())
                .collect();
            let stds = (0..8)
                .map(|_| (0..16).map(|_| rng.random_range(0.2..1.0)).collect())
                .collect();
            GaussianMixture::new(name, weights, means, stds)
        }
        _ => return None,
    };
    Some(m.expect("built-in models are valid"))
}

/// A model from a `--model` argument: a built-in name or a mixture JSON file.
pub fn resolve(spec: &str) -> Result<GaussianMixture> {
    if let Some(m) = builtin(spec) {
        return Ok(m);
    }
    let path = Path::new(spec);
    if spec.ends_with(".json") || path.exists() {
        return GaussianMixture::from_json(path);
    }
    Err(Error::invalid(
        "model",
        format!(
            "'{spec}' is not a built-in model ({}), a mixture .json file or a .safetensors checkpoint",
            BUILTINS.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The row evaluator is `eps_into` bit for bit, on chunks of any number of rows, for
    /// few components (responsibilities on the stack) and many (on the heap).
    #[test]
    fn the_row_evaluator_equals_the_batch_call_bit_for_bit() {
        let many = GaussianMixture::new(
            "many",
            vec![1.0 / 70.0; 70],
            (0..70)
                .map(|k| vec![(k as f64 * 0.7).sin() * 3.0; 3])
                .collect(),
            (0..70).map(|k| vec![0.2 + 0.01 * k as f64; 3]).collect(),
        )
        .unwrap();
        let schedule = crate::schedule::Schedule::ddpm_linear();
        for model in [builtin("mix16d").unwrap(), many] {
            let d = model.dim();
            assert!(model.components() == 8 || model.components() > STACK_COMPONENTS);
            let x = crate::noise::draw(301, d, 4);
            for t in [0.9, 0.3, 0.0] {
                let level = Level::at(&schedule, t);
                let mut whole = vec![0.0; x.data.len()];
                model.eps_into(&x, &level, &mut whole).unwrap();
                let rows = model.row_evaluator(&level).unwrap();
                let mut chunked = vec![1.0; x.data.len()];
                for (x, out) in x.data.chunks(7 * d).zip(chunked.chunks_mut(7 * d)) {
                    rows.eps_rows(x, out);
                }
                assert!(
                    whole
                        .iter()
                        .zip(&chunked)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "K = {}, t = {t}",
                    model.components()
                );
                assert!(whole.iter().any(|v| *v != 0.0) || t == 0.0);
            }
        }
    }

    /// A level's tables are made once and shared while cached; once evicted (the oldest
    /// level goes first) they are made again, with the same values.
    #[test]
    fn level_tables_are_made_once_while_cached() {
        let model = builtin("mix16d").unwrap();
        let schedule = crate::schedule::Schedule::ddpm_linear();
        let at = |t: f64| model.tables(&Level::at(&schedule, t));
        let first = at(0.3);
        assert!(Arc::ptr_eq(&first, &at(0.3)));
        at(0.5);
        assert!(
            Arc::ptr_eq(&first, &at(0.3)),
            "a second level keeps the first"
        );
        for k in 0..CACHED_LEVELS {
            at(0.001 + 0.003 * k as f64);
        }
        let again = at(0.3);
        assert!(
            !Arc::ptr_eq(&first, &again),
            "evicted after {CACHED_LEVELS} others"
        );
        let bits = |t: &LevelTables| {
            [&t.centers, &t.inv_var, &t.log_norm]
                .iter()
                .flat_map(|v| v.iter().map(|x| x.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&first), bits(&again));
        assert_ne!(bits(&first), bits(&at(0.5)));
    }

    #[test]
    fn eps_is_minus_sigma_times_the_finite_difference_score() {
        let m = builtin("ring2d").unwrap();
        let l = Level {
            t: 0.5,
            alpha: 0.6,
            sigma: 0.8,
        };
        // Score of p_t by central differences of its log-density: p_t is the mixture with
        // means aμ and stds sqrt(a²c² + s²).
        let marginal = GaussianMixture::new(
            "pt",
            m.weights.clone(),
            (0..8)
                .map(|k| m.mean_of(k).iter().map(|v| 0.6 * v).collect())
                .collect(),
            (0..8)
                .map(|k| {
                    m.std_of(k)
                        .iter()
                        .map(|c| (0.36 * c * c + 0.64f64).sqrt())
                        .collect()
                })
                .collect(),
        )
        .unwrap();
        let x = Batch::new(3, 2, vec![0.3, -1.2, 2.0, 0.1, -1.5, -1.5]).unwrap();
        let eps = m.eps(&x, &l).unwrap();
        let h = 1e-5;
        for i in 0..3 {
            for j in 0..2 {
                let mut xp = x.clone();
                let mut xm = x.clone();
                xp.data[i * 2 + j] += h;
                xm.data[i * 2 + j] -= h;
                let fd = (marginal.log_density(&xp)[i] - marginal.log_density(&xm)[i]) / (2.0 * h);
                assert!((eps.data[i * 2 + j] + 0.8 * fd).abs() < 1e-7, "{i} {j}");
            }
        }
    }

    #[test]
    fn mixture_validation_names_the_field() {
        let e = GaussianMixture::new("m", vec![0.5, 0.4], vec![vec![0.0]; 2], vec![vec![1.0]; 2]);
        assert!(e.unwrap_err().to_string().contains("sum to 0.9"));
        let e = GaussianMixture::new("m", vec![1.0], vec![vec![0.0, 1.0]], vec![vec![1.0, -0.1]]);
        assert!(e.unwrap_err().to_string().contains("stds[0][1]"));
        let e = GaussianMixture::new(
            "m",
            vec![0.5, 0.5],
            vec![vec![0.0], vec![0.0, 1.0]],
            vec![vec![1.0]; 2],
        );
        assert!(e.unwrap_err().to_string().contains("means[1]"));
    }

    #[test]
    fn gaussian_flow_composes_and_inverts() {
        let g = builtin("gauss2d").unwrap();
        let s = crate::schedule::Schedule::vp_linear();
        let (l1, l2, l3) = (Level::at(&s, 0.9), Level::at(&s, 0.4), Level::at(&s, 0.05));
        let x = Batch::new(2, 2, vec![0.3, -1.0, 1.0, 2.0]).unwrap();
        let direct = g.gaussian_flow(&x, &l1, &l3).unwrap();
        let via = g
            .gaussian_flow(&g.gaussian_flow(&x, &l1, &l2).unwrap(), &l2, &l3)
            .unwrap();
        assert!(direct.max_abs_diff(&via) < 1e-13);
    }

    #[test]
    fn builtins_are_well_formed() {
        for name in BUILTINS {
            let m = builtin(name).unwrap();
            assert!((m.weights().iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert_eq!(builtin("mix16d").unwrap().dim(), 16);
        assert!((builtin("ring2d").unwrap().mean_of(2)[1] - 4.0).abs() < 1e-15);
    }
}
