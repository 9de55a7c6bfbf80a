//! The digits classifier whose penultimate layer gives the features of the digits FD:
//! an MLP 64 → 256 → 128 → 10 with ReLU, trained with cross-entropy on the training split,
//! inputs jittered with Gaussian noise (σ = 0.1) so that features of slightly noisy
//! generated images stay meaningful. Checkpoint: `.safetensors` (`l{i}.weight`, `l{i}.bias`)
//! plus a `.json` with the widths, training settings and held-out accuracy.

use super::{load, Digits, Split, PIXELS};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::model::mlp::{
    init_layers, layer_names, layers_from_named, named_layers, save_tensors, tensors_from_bytes,
};
use crate::noise::{self, Purpose};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Layer widths, input to logits.
const WIDTHS: [usize; 4] = [PIXELS, 256, 128, 10];

/// Training settings and what came of them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    pub widths: Vec<usize>,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Standard deviation of the Gaussian jitter added to training inputs.
    pub jitter: f64,
    /// Accuracy on the held-out split (set after training).
    #[serde(default)]
    pub held_out_accuracy: f64,
    #[serde(default)]
    pub train_time_s: f64,
}

impl ClassifierConfig {
    /// The settings of the committed classifier.
    pub fn standard(seed: u64) -> Self {
        ClassifierConfig {
            widths: WIDTHS.to_vec(),
            steps: 3000,
            batch: 128,
            lr: 2e-3,
            seed,
            jitter: 0.1,
            held_out_accuracy: 0.0,
            train_time_s: 0.0,
        }
    }
}

/// The trained classifier.
pub struct Classifier {
    pub config: ClassifierConfig,
    layers: Vec<(Tensor, Tensor)>,
}

fn candle(e: candle_core::Error) -> Error {
    Error::backend("classifier", e)
}

fn shapes(widths: &[usize]) -> Vec<(usize, usize)> {
    widths.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Activations after `layers` (ReLU on all but the logits layer).
fn forward(layers: &[(Tensor, Tensor)], x: &Tensor, upto: usize) -> candle_core::Result<Tensor> {
    let mut h = x.clone();
    for (i, (w, b)) in layers[..upto].iter().enumerate() {
        h = h.matmul(&w.t()?)?.broadcast_add(b)?;
        if i + 1 < layers.len() {
            h = h.relu()?;
        }
    }
    Ok(h)
}

fn tensor(images: &Batch) -> Result<Tensor> {
    if images.d != PIXELS {
        return Err(Error::invalid(
            "images",
            format!("expected [n, {PIXELS}] digit images, got [n, {}]", images.d),
        ));
    }
    let v: Vec<f32> = images.data.iter().map(|&x| x as f32).collect();
    Tensor::from_vec(v, (images.n, PIXELS), &Device::Cpu).map_err(candle)
}

impl Classifier {
    /// Trains on the training split; records the held-out accuracy in the config.
    pub fn train(mut config: ClassifierConfig) -> Result<Classifier> {
        let start = std::time::Instant::now();
        let train = load(Split::Train)?;
        let vars: Vec<(Var, Var)> = init_layers(&shapes(&config.widths), config.seed)?
            .into_iter()
            .map(|(w, b)| {
                Ok((
                    Var::from_tensor(&w).map_err(candle)?,
                    Var::from_tensor(&b).map_err(candle)?,
                ))
            })
            .collect::<Result<_>>()?;
        let all: Vec<Var> = vars
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect();
        let mut opt = AdamW::new(
            all,
            ParamsAdamW {
                lr: config.lr,
                weight_decay: 1e-4,
                ..Default::default()
            },
        )
        .map_err(candle)?;
        for step in 0..config.steps {
            let mut rng = noise::rng(config.seed, Purpose::Other, 5 << 40 | step as u64);
            let jitter = noise::normals(
                config.seed,
                Purpose::Other,
                6 << 40 | step as u64,
                config.batch * PIXELS,
            );
            let (mut x, mut y) = (
                Vec::with_capacity(config.batch * PIXELS),
                Vec::with_capacity(config.batch),
            );
            for i in 0..config.batch {
                let k = rng.random_range(0..train.images.n);
                x.extend(
                    train
                        .images
                        .row(k)
                        .iter()
                        .zip(&jitter[i * PIXELS..(i + 1) * PIXELS])
                        .map(|(&p, &e)| (p + config.jitter * e) as f32),
                );
                y.push(train.labels[k] as u32);
            }
            let x = Tensor::from_vec(x, (config.batch, PIXELS), &Device::Cpu).map_err(candle)?;
            let y = Tensor::from_vec(y, config.batch, &Device::Cpu).map_err(candle)?;
            let layers: Vec<(Tensor, Tensor)> = vars
                .iter()
                .map(|(w, b)| (w.as_tensor().clone(), b.as_tensor().clone()))
                .collect();
            let loss = forward(&layers, &x, layers.len())
                .and_then(|logits| candle_nn::loss::cross_entropy(&logits, &y))
                .map_err(candle)?;
            let progress = step as f64 / config.steps as f64;
            opt.set_learning_rate(
                0.5 * config.lr * (1.0 + (std::f64::consts::PI * progress).cos()),
            );
            opt.backward_step(&loss).map_err(candle)?;
        }
        let layers = vars
            .iter()
            .map(|(w, b)| (w.as_tensor().clone(), b.as_tensor().clone()))
            .collect();
        config.train_time_s = start.elapsed().as_secs_f64();
        let mut c = Classifier { config, layers };
        c.config.held_out_accuracy = c.accuracy(&load(Split::HeldOut)?)?;
        Ok(c)
    }

    /// Penultimate-layer features `[n, 128]` of images `[n, 64]` in [−1, 1].
    pub fn features(&self, images: &Batch) -> Result<Batch> {
        let h = forward(&self.layers, &tensor(images)?, self.layers.len() - 1).map_err(candle)?;
        let width = h.dim(1).map_err(candle)?;
        let v: Vec<f32> = h.flatten_all().and_then(|t| t.to_vec1()).map_err(candle)?;
        Batch::new(images.n, width, v.into_iter().map(f64::from).collect())
    }

    /// Predicted labels.
    pub fn predict(&self, images: &Batch) -> Result<Vec<u8>> {
        let logits = forward(&self.layers, &tensor(images)?, self.layers.len()).map_err(candle)?;
        let v: Vec<u32> = logits
            .argmax(1)
            .and_then(|t| t.to_dtype(DType::U32))
            .and_then(|t| t.to_vec1())
            .map_err(candle)?;
        Ok(v.into_iter().map(|l| l as u8).collect())
    }

    /// Fraction of `digits` classified correctly.
    pub fn accuracy(&self, digits: &Digits) -> Result<f64> {
        let predicted = self.predict(&digits.images)?;
        let right = predicted
            .iter()
            .zip(&digits.labels)
            .filter(|(a, b)| a == b)
            .count();
        Ok(right as f64 / digits.labels.len() as f64)
    }

    /// Writes `path` (.safetensors) and its `.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_tensors(&named_layers(&self.layers), path)?;
        let json = serde_json::to_string_pretty(&self.config).expect("config serialises");
        crate::io::write_atomic(&path.with_extension("json"), json.as_bytes())
    }

    /// Loads a checkpoint, checking every tensor.
    pub fn load(path: &Path) -> Result<Classifier> {
        let json = path.with_extension("json");
        let config = std::fs::read_to_string(&json).map_err(|e| Error::io(&json, e))?;
        let weights = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_parts(&config, &weights, path)
    }

    /// The committed classifier (`models/digits_classifier.safetensors`), compiled in so the
    /// digits FD needs no file and means the same thing wherever pfode runs.
    pub fn committed() -> Result<Classifier> {
        Self::from_parts(
            include_str!("../../models/digits_classifier.json"),
            include_bytes!("../../models/digits_classifier.safetensors"),
            Path::new("models/digits_classifier.safetensors"),
        )
    }

    /// `path`, or the committed classifier when none is given.
    pub fn load_or_committed(path: Option<&Path>) -> Result<Classifier> {
        path.map_or_else(Self::committed, Self::load)
    }

    fn from_parts(config: &str, weights: &[u8], path: &Path) -> Result<Classifier> {
        let json = path.with_extension("json");
        let config: ClassifierConfig =
            serde_json::from_str(config).map_err(|e| Error::file(&json, e.to_string()))?;
        if config.widths.len() < 3
            || config.widths[0] != PIXELS
            || config.widths.last() != Some(&10)
        {
            return Err(Error::file(
                &json,
                format!(
                    "widths must run from {PIXELS} to 10 through ≥ 1 hidden layer, got {:?}",
                    config.widths
                ),
            ));
        }
        let shapes = shapes(&config.widths);
        let tensors = tensors_from_bytes(weights, &layer_names(&shapes), path)?;
        let layers = layers_from_named(tensors, shapes.len());
        Ok(Classifier { config, layers })
    }
}
