//! Training the reference MLP by denoising score matching (Ho et al. 2020, the "simple"
//! loss): x_t = a x₀ + s ε at uniformly drawn training steps, regress the chosen target.
//! AdamW (candle-nn), linear warm-up then cosine decay, an exponential moving average of
//! the weights (what is saved), all randomness from seeded generators.

use super::mlp::{Mlp, MlpConfig, Prediction, TIME_EMBEDDING};
use super::ScoreModel;
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::noise::{self, Purpose};
use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use std::path::Path;

/// Where training samples come from.
pub enum Data {
    /// An exact mixture (built-in or JSON): fresh samples every step.
    Mixture(super::GaussianMixture),
    /// A fixed data set `[N, D]`, sampled with replacement.
    Points(Batch),
}

impl Data {
    /// A data source by name: a built-in mixture, `swissroll`, `moons`, `checkerboard`,
    /// a mixture JSON or an `[N, D]` .npy file.
    pub fn named(name: &str, seed: u64) -> Result<Data> {
        if let Some(points) = procedural(name, 20_000, seed) {
            return Ok(Data::Points(points));
        }
        if name == crate::digits::NAME {
            return Ok(Data::Points(
                crate::digits::load(crate::digits::Split::Train)?.images,
            ));
        }
        if name.ends_with(".npy") {
            let a = crate::npy::read(Path::new(name))?;
            if a.shape.len() != 2 || a.shape[0] == 0 {
                return Err(Error::file(
                    Path::new(name),
                    format!("expected data of shape [N ≥ 1, D], got {:?}", a.shape),
                ));
            }
            return Ok(Data::Points(Batch::new(a.shape[0], a.shape[1], a.data)?));
        }
        Ok(Data::Mixture(super::resolve(name).map_err(|_| {
            Error::invalid("data", format!("'{name}' is not a data set (ring2d, gauss2d, mix16d, swissroll, moons, checkerboard, digits, a mixture .json or an [N, D] .npy)"))
        })?))
    }

    fn dim(&self) -> usize {
        match self {
            Data::Mixture(m) => m.dim(),
            Data::Points(b) => b.d,
        }
    }

    fn batch(&self, n: usize, seed: u64, step: u64) -> Batch {
        match self {
            Data::Mixture(m) => m.sample(n, seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            Data::Points(b) => {
                let mut rng = noise::rng(seed, Purpose::Other, 1 << 40 | step);
                let data = (0..n)
                    .flat_map(|_| b.row(rng.random_range(0..b.n)).to_vec())
                    .collect();
                Batch { n, d: b.d, data }
            }
        }
    }
}

/// Procedural 2-D data sets, scaled to roughly unit variance.
pub fn procedural(name: &str, n: usize, seed: u64) -> Option<Batch> {
    let mut rng = noise::rng(seed, Purpose::Other, 4242);
    let z = noise::normals(seed, Purpose::Other, 4243, 2 * n);
    let mut data = Vec::with_capacity(2 * n);
    for i in 0..n {
        let (x, y) = match name {
            "swissroll" => {
                let t = 1.5 * std::f64::consts::PI * (1.0 + 2.0 * rng.random::<f64>());
                (
                    t * t.cos() / 5.0 + 0.1 * z[2 * i],
                    t * t.sin() / 5.0 + 0.1 * z[2 * i + 1],
                )
            }
            "moons" => {
                let a = std::f64::consts::PI * rng.random::<f64>();
                let (cx, cy, sign) = if rng.random::<bool>() {
                    (0.0, 0.0, 1.0)
                } else {
                    (1.0, 0.5, -1.0)
                };
                (
                    2.0 * (cx + sign * a.cos()) - 1.0 + 0.1 * z[2 * i],
                    2.0 * (cy + sign * a.sin()) - 0.5 + 0.1 * z[2 * i + 1],
                )
            }
            "checkerboard" => {
                let x = rng.random_range(-2.0..2.0f64);
                let y0 =
                    rng.random_range(0.0..1.0f64) + (rng.random_range(0..2) as f64) * 2.0 - 2.0;
                (x, y0 + (x.floor() as i64).rem_euclid(2) as f64)
            }
            _ => return None,
        };
        data.push(x);
        data.push(y);
    }
    Some(Batch { n, d: 2, data })
}

/// Training settings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainConfig {
    pub data: String,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub warmup: usize,
    pub ema: f64,
    pub seed: u64,
    pub schedule: String,
    pub width: usize,
    pub depth: usize,
    pub prediction: Prediction,
    /// Where to train.
    pub device: super::mlp::DeviceChoice,
}

/// Losses per step.
pub struct TrainReport {
    pub losses: Vec<f64>,
    pub wall_s: f64,
}

fn candle(e: candle_core::Error) -> Error {
    Error::backend("train", e)
}

/// Learning rate at `step`: linear warm-up, then cosine decay to zero.
pub fn learning_rate(c: &TrainConfig, step: usize) -> f64 {
    if step < c.warmup {
        return c.lr * (step + 1) as f64 / c.warmup as f64;
    }
    let progress = (step - c.warmup) as f64 / (c.steps - c.warmup).max(1) as f64;
    0.5 * c.lr * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Trains from scratch (or from `start`) and writes the EMA weights to `out`.
pub fn train(
    c: &TrainConfig,
    out: &Path,
    start: Option<Mlp>,
    quiet: bool,
) -> Result<(Mlp, TrainReport)> {
    if c.steps == 0
        || c.batch == 0
        || !(c.lr > 0.0 && c.lr.is_finite())
        || !(0.0..1.0).contains(&c.ema)
    {
        return Err(Error::invalid(
            "train",
            "expected `steps` ≥ 1, `batch` ≥ 1, `lr` > 0 and 0 ≤ `ema` < 1",
        ));
    }
    let data = Data::named(&c.data, c.seed)?;
    let config = MlpConfig {
        dim: data.dim(),
        width: c.width,
        depth: c.depth,
        prediction: c.prediction,
        schedule: c.schedule.clone(),
        training: serde_json::to_value(c).expect("serialisable"),
    };
    let mlp = match start {
        Some(m) => {
            if m.config.dim != config.dim || m.config.width != c.width || m.config.depth != c.depth
            {
                return Err(Error::invalid(
                    "resume",
                    "the checkpoint's architecture differs from the requested one",
                ));
            }
            m
        }
        None => Mlp::new(config.clone(), c.seed)?,
    };
    let device = c.device.device()?;
    let mut mlp = mlp.to_device(&device)?;
    let vars: Vec<(Var, Var)> = mlp
        .layers()
        .iter()
        .map(|(w, b)| {
            Ok((
                Var::from_tensor(w).map_err(candle)?,
                Var::from_tensor(b).map_err(candle)?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut ema: Vec<(Tensor, Tensor)> = mlp.layers().to_vec();
    let all: Vec<Var> = vars
        .iter()
        .flat_map(|(w, b)| [w.clone(), b.clone()])
        .collect();
    let params = ParamsAdamW {
        lr: c.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut opt = AdamW::new(all, params).map_err(candle)?;
    let schedule = mlp.schedule().clone();
    let big_t = schedule.discrete().map(|d| d.num_train_timesteps());
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(c.steps as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps, loss {msg}, ETA {eta}")
            .expect("template"),
    );
    let start = std::time::Instant::now();
    let mut losses = Vec::with_capacity(c.steps);
    let d = config.dim;
    for step in 0..c.steps {
        let x0 = data.batch(c.batch, c.seed, step as u64);
        let mut rng = noise::rng(c.seed, Purpose::Other, 2 << 40 | step as u64);
        let eps = noise::normals(c.seed, Purpose::Other, 3 << 40 | step as u64, c.batch * d);
        let mut xt = Vec::with_capacity(c.batch * d);
        let mut target = Vec::with_capacity(c.batch * d);
        let mut emb = Vec::with_capacity(c.batch * TIME_EMBEDDING);
        for i in 0..c.batch {
            // Training time: a uniform training index (discrete) or uniform t (continuous).
            let t = match big_t {
                Some(n) => (rng.random_range(0..n) + 1) as f64 / n as f64,
                None => rng.random_range(schedule.t_min()..schedule.t_max()),
            };
            let (a, s) = (schedule.alpha(t), schedule.sigma(t));
            emb.extend(Mlp::embedding(schedule.model_time(t)));
            for j in 0..d {
                let (x, e) = (x0.data[i * d + j], eps[i * d + j]);
                xt.push((a * x + s * e) as f32);
                target.push(match c.prediction {
                    Prediction::Eps => e,
                    Prediction::X0 => x,
                    Prediction::V => a * e - s * x,
                } as f32);
            }
        }
        let xt = Tensor::from_vec(xt, (c.batch, d), &device).map_err(candle)?;
        let emb = Tensor::from_vec(emb, (c.batch, TIME_EMBEDDING), &device).map_err(candle)?;
        let target = Tensor::from_vec(target, (c.batch, d), &device).map_err(candle)?;
        let layers: Vec<(Tensor, Tensor)> = vars
            .iter()
            .map(|(w, b)| (w.as_tensor().clone(), b.as_tensor().clone()))
            .collect();
        let pred = Mlp::forward_rows(&layers, d, &xt, &emb).map_err(candle)?;
        let loss = pred
            .sub(&target)
            .and_then(|r| r.sqr())
            .and_then(|r| r.mean_all())
            .map_err(candle)?;
        opt.set_learning_rate(learning_rate(c, step));
        opt.backward_step(&loss).map_err(candle)?;
        let value = loss.to_scalar::<f32>().map_err(candle)? as f64;
        if !value.is_finite() {
            return Err(Error::invalid(
                "train",
                format!("loss is not finite at step {step}; lower `lr`"),
            ));
        }
        losses.push(value);
        // Detached: an average built from the variables would otherwise keep every
        // step's graph alive (memory grew ≈ 10 GB in 2 000 steps of the digits model).
        for ((ew, eb), (w, b)) in ema.iter_mut().zip(&vars) {
            for (e, v) in [(ew, w), (eb, b)] {
                *e = ((&*e * c.ema).map_err(candle)?
                    + (v.as_tensor().detach() * (1.0 - c.ema)).map_err(candle)?)
                .map_err(candle)?;
            }
        }
        if step % 50 == 0 {
            bar.set_message(format!("{value:.4}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    mlp.set_layers(ema);
    let mut training = serde_json::to_value(c).expect("serialisable");
    let tail = &losses[losses.len().saturating_sub(100)..];
    training["final_loss_mean_last_100"] =
        serde_json::json!(tail.iter().sum::<f64>() / tail.len() as f64);
    training["train_time_s"] = serde_json::json!(start.elapsed().as_secs_f64());
    mlp.config.training = training;
    mlp.save(out)?;
    let csv: String = std::iter::once("step,loss,lr\n".to_string())
        .chain(
            losses
                .iter()
                .enumerate()
                .map(|(i, l)| format!("{i},{l},{}\n", learning_rate(c, i))),
        )
        .collect();
    crate::io::write_atomic(&out.with_extension("loss.csv"), csv.as_bytes())?;
    Ok((
        mlp,
        TrainReport {
            losses,
            wall_s: start.elapsed().as_secs_f64(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(steps: usize) -> TrainConfig {
        TrainConfig {
            data: "ring2d".into(),
            steps,
            batch: 128,
            lr: 2e-3,
            warmup: 20,
            ema: 0.9,
            seed: 3,
            schedule: "linear".into(),
            width: 32,
            depth: 2,
            prediction: Prediction::Eps,
            device: crate::model::mlp::DeviceChoice::Cpu,
        }
    }

    #[test]
    fn training_lowers_the_loss_and_the_same_seed_gives_identical_weights() {
        let dir = tempfile::tempdir().unwrap();
        let (a, report) =
            train(&config(300), &dir.path().join("a.safetensors"), None, true).unwrap();
        let first: f64 = report.losses[..30].iter().sum::<f64>() / 30.0;
        let last: f64 = report.losses[270..].iter().sum::<f64>() / 30.0;
        assert!(last < 0.7 * first, "loss {first:.3} -> {last:.3}");
        let (b, _) = train(&config(300), &dir.path().join("b.safetensors"), None, true).unwrap();
        let x = crate::noise::draw(9, 2, 1);
        let level = crate::model::Level {
            t: 0.3,
            alpha: 0.7,
            sigma: (1.0f64 - 0.49).sqrt(),
        };
        use crate::model::ScoreModel;
        assert_eq!(a.eps(&x, &level).unwrap(), b.eps(&x, &level).unwrap());
        let loaded = Mlp::load(&dir.path().join("a.safetensors")).unwrap();
        assert_eq!(loaded.eps(&x, &level).unwrap(), a.eps(&x, &level).unwrap());
        assert!(dir.path().join("a.loss.csv").exists());
    }

    #[test]
    fn learning_rate_warms_up_then_decays_to_zero() {
        let c = config(120);
        assert!((learning_rate(&c, 0) - 2e-3 / 20.0).abs() < 1e-15);
        assert!((learning_rate(&c, 19) - 2e-3).abs() < 1e-15);
        assert!(learning_rate(&c, 70) < 2e-3 && learning_rate(&c, 70) > 0.0);
        assert!(learning_rate(&c, 120) < 1e-12);
    }

    #[test]
    fn procedural_data_sets_are_seeded_and_two_dimensional() {
        for name in ["swissroll", "moons", "checkerboard"] {
            let a = procedural(name, 500, 1).unwrap();
            assert_eq!(a, procedural(name, 500, 1).unwrap());
            assert_eq!(a.d, 2);
            let var = a.data.iter().map(|v| v * v).sum::<f64>() / a.data.len() as f64;
            assert!(var > 0.2 && var < 10.0, "{name}: {var}");
        }
        assert!(procedural("nothing", 5, 1).is_none());
    }
}
