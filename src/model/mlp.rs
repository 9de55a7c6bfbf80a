//! The reference learned score network: an MLP on `[x, emb(t)]` with SiLU, in candle (f32).
//!
//! `emb(t)` is a 32-d sinusoidal embedding of the model time (16 sin + 16 cos, frequencies
//! `exp(-ln(10000) k/16)`, as in Ho et al. 2020 / Vaswani et al. 2017). The embedding is
//! the same for every row at a step, so its contribution to the first layer is folded into
//! a per-step bias instead of a concatenation.
//!
//! A checkpoint is `NAME.safetensors` (tensors `l{i}.weight` `[out, in]`, `l{i}.bias`) plus
//! `NAME.json` (architecture, prediction, training schedule, data, training settings).
//! The model is conditioned on its noise level: at sampling time the level's λ is mapped
//! to the training schedule's time, so sampling under another schedule stays consistent.

use super::{Level, ScoreModel};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::noise::{self, Purpose};
use crate::schedule::Schedule;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Dimension of the time embedding.
pub const TIME_EMBEDDING: usize = 32;

crate::names::named_enum! {
    /// Where the network runs.
    pub enum DeviceChoice("device") {
        Cpu = "cpu",
        /// Needs a build with `--features cuda`.
        Cuda = "cuda",
    }
}

impl DeviceChoice {
    /// The candle device, or a clear error when CUDA was not compiled in.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda => Device::new_cuda(0).map_err(candle),
            #[cfg(not(feature = "cuda"))]
            DeviceChoice::Cuda => Err(Error::invalid("device", "this pfode was built without CUDA: rebuild with `cargo build --release --features cuda`")),
        }
    }
}

crate::names::named_enum! {
    /// What the network predicts.
    pub enum Prediction("prediction") {
        Eps = "eps",
        X0 = "x0",
        V = "v",
    }
}

/// Architecture and provenance, stored next to the weights.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    pub dim: usize,
    pub width: usize,
    pub depth: usize,
    pub prediction: Prediction,
    /// Training schedule (`--schedule` name; discrete ones with T = 1000).
    pub schedule: String,
    /// Free-form provenance: data set, steps, seed, final loss…
    #[serde(default)]
    pub training: serde_json::Value,
}

/// The largest network [`Mlp::new`] builds: 2²⁸ parameters (1 GiB of f32 weights, several
/// times that in training with gradients and Adam's moments).
pub const MAX_PARAMETERS: usize = 1 << 28;

/// The MLP with its weights.
#[derive(Debug)]
pub struct Mlp {
    pub config: MlpConfig,
    schedule: Schedule,
    device: Device,
    /// `(weight [out, in], bias [out])` per layer.
    layers: Vec<(Tensor, Tensor)>,
}

fn candle(e: candle_core::Error) -> Error {
    Error::backend("model", e)
}

impl Mlp {
    /// Refuses an empty network, or one too large to allocate, before anything is allocated:
    /// a width of 10¹² would abort the process, not fail.
    fn check_size(config: &MlpConfig) -> Result<()> {
        if config.dim == 0 || config.width == 0 || config.depth == 0 {
            return Err(Error::invalid("model", "dim, width and depth must be ≥ 1"));
        }
        let parameters = Self::shapes(config)
            .iter()
            .try_fold(0usize, |n, &(i, o)| {
                i.checked_mul(o)?.checked_add(o)?.checked_add(n)
            })
            .filter(|&n| n <= MAX_PARAMETERS);
        if parameters.is_none() {
            return Err(Error::invalid(
                "width",
                format!(
                    "a network of width {} and depth {} on dimension {} has more than {} \
                     parameters (the most pfode trains on this machine's memory): choose a \
                     smaller width or depth",
                    config.width, config.depth, config.dim, MAX_PARAMETERS
                ),
            ));
        }
        Ok(())
    }

    /// A freshly initialised network (PyTorch's default: U(±1/sqrt(fan_in))) from `seed`.
    pub fn new(config: MlpConfig, seed: u64) -> Result<Self> {
        Self::check_size(&config)?;
        let schedule = Schedule::named(&config.schedule)?;
        let layers = init_layers(&Self::shapes(&config), seed)?;
        Ok(Mlp {
            config,
            schedule,
            layers,
            device: Device::Cpu,
        })
    }

    /// `(fan_in, fan_out)` of each layer.
    fn shapes(c: &MlpConfig) -> Vec<(usize, usize)> {
        Self::shapes_upto(c, c.depth.saturating_add(1))
    }

    /// The first `n` of [`Mlp::shapes`].
    fn shapes_upto(c: &MlpConfig, n: usize) -> Vec<(usize, usize)> {
        let layers = c.depth.saturating_add(1);
        (0..n.min(layers))
            .map(|i| match i {
                0 => (c.dim.saturating_add(TIME_EMBEDDING), c.width),
                i if i + 1 == layers => (c.width, c.dim),
                _ => (c.width, c.width),
            })
            .collect()
    }

    /// The same network on `device`.
    pub fn to_device(mut self, device: &Device) -> Result<Self> {
        for (w, b) in &mut self.layers {
            *w = w.to_device(device).map_err(candle)?;
            *b = b.to_device(device).map_err(candle)?;
        }
        self.device = device.clone();
        Ok(self)
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The layers' tensors by checkpoint name.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        named_layers(&self.layers)
    }

    /// Replaces the weights (same shapes), e.g. with trained or averaged ones.
    pub fn set_layers(&mut self, layers: Vec<(Tensor, Tensor)>) {
        debug_assert_eq!(layers.len(), self.layers.len());
        self.layers = layers;
    }

    /// Writes `path` (.safetensors) and its `.json` sidecar, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_tensors(&self.tensors(), path)?;
        let json = serde_json::to_string_pretty(&self.config).expect("config serialises");
        crate::io::write_atomic(&path.with_extension("json"), json.as_bytes())
    }

    /// Loads a checkpoint, checking every tensor's presence, dtype and shape.
    pub fn load(path: &Path) -> Result<Self> {
        // The weights first: a missing checkpoint is reported as itself, not as its .json.
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such checkpoint"),
            ));
        }
        let json = path.with_extension("json");
        let config: MlpConfig = crate::io::read_json(&json)?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        // The config's sizes are checked against the file before anything is sized by them:
        // a config claiming enormous layers must not allocate them.
        let in_file = layers_in_header(&bytes, path)?;
        if config.depth >= in_file {
            // More layers than the file has: the first missing one is named (and no more
            // than one past the file's layers is sized).
            let shapes = Self::shapes_upto(&config, in_file + 1);
            tensors_from_bytes(&bytes, &layer_names(&shapes), path)?;
        }
        if config.depth + 1 != in_file {
            return Err(Error::file(
                &json,
                format!(
                    "depth {} disagrees with the {} layers in {}",
                    config.depth,
                    in_file,
                    path.display()
                ),
            ));
        }
        let shapes = Self::shapes(&config);
        let tensors = tensors_from_bytes(&bytes, &layer_names(&shapes), path)?;
        Self::with_layers(config, layers_from_named(tensors, shapes.len()))
            .map_err(|e| Error::file(&json, e.to_string()))
    }

    /// The network of `config` with the given layers (already checked against its shapes).
    fn with_layers(config: MlpConfig, layers: Vec<(Tensor, Tensor)>) -> Result<Self> {
        Self::check_size(&config)?;
        let schedule = Schedule::named(&config.schedule)?;
        Ok(Mlp {
            config,
            schedule,
            layers,
            device: Device::Cpu,
        })
    }

    /// The data set the network was trained on (its `.json`'s `training.data`), if recorded.
    pub fn trained_on(&self) -> Option<&str> {
        self.config.training["data"].as_str()
    }

    /// The model time of the training schedule at the noise level of `level`.
    pub fn model_time(&self, level: &Level) -> f64 {
        let lambda = (level.alpha / level.sigma).ln();
        let t = self.schedule.t_of_lambda(lambda);
        self.schedule.model_time(t)
    }

    /// The sinusoidal embedding of model time `t`.
    pub fn embedding(t: f64) -> Vec<f32> {
        let half = TIME_EMBEDDING / 2;
        let freqs = (0..half).map(|k| (-(10000f64.ln()) * k as f64 / half as f64).exp());
        let (sin, cos): (Vec<f32>, Vec<f32>) = freqs
            .map(|w| ((t * w).sin() as f32, (t * w).cos() as f32))
            .unzip();
        [sin, cos].concat()
    }

    /// The raw network output for rows `x` (f32 `[n, dim]`) at model time `t`.
    pub fn forward(&self, x: &Tensor, t: f64) -> std::result::Result<Tensor, candle_core::Error> {
        if self.device.is_cpu() {
            return self.forward_cpu(x, t);
        }
        self.forward_generic(x, t)
    }

    /// CPU inference with fused bias + SiLU passes.
    fn forward_cpu(&self, x: &Tensor, t: f64) -> std::result::Result<Tensor, candle_core::Error> {
        let d = self.config.dim;
        let emb = Tensor::from_vec(Self::embedding(t), (TIME_EMBEDDING, 1), &self.device)?;
        let (w0, b0) = &self.layers[0];
        let step_bias: Vec<f32> =
            (w0.narrow(1, d, TIME_EMBEDDING)?.matmul(&emb)?.squeeze(1)? + b0)?.to_vec1()?;
        let w_t: Vec<f32> = w0
            .narrow(1, 0, d)?
            .t()?
            .contiguous()?
            .flatten_all()?
            .to_vec1()?;
        let mut h = x.contiguous()?.apply_op1_no_bwd(&FirstLayer {
            w_t: &w_t,
            bias: &step_bias,
        })?;
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate().skip(1) {
            let bias: Vec<f32> = b.to_vec1()?;
            h = h.matmul(&w.t()?)?.apply_op1_no_bwd(&BiasSilu {
                bias: &bias,
                silu: i < last,
            })?;
        }
        Ok(h)
    }

    /// Inference with candle's own ops (any device).
    fn forward_generic(
        &self,
        x: &Tensor,
        t: f64,
    ) -> std::result::Result<Tensor, candle_core::Error> {
        let d = self.config.dim;
        let emb = Tensor::from_vec(Self::embedding(t), (TIME_EMBEDDING, 1), &self.device)?;
        let (w0, b0) = &self.layers[0];
        // First layer: W_x x + (W_t emb + b), the bracket shared by the whole batch.
        let step_bias = (w0.narrow(1, d, TIME_EMBEDDING)?.matmul(&emb)?.squeeze(1)? + b0)?;
        let mut h = x
            .matmul(&w0.narrow(1, 0, d)?.t()?)?
            .broadcast_add(&step_bias)?;
        h = candle_nn::ops::silu(&h)?;
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate().skip(1) {
            h = h.matmul(&w.t()?)?.broadcast_add(b)?;
            if i < last {
                h = candle_nn::ops::silu(&h)?;
            }
        }
        Ok(h)
    }
}

/// Fully connected layers `(weight [out, in], bias [out])` initialised as PyTorch does,
/// U(±1/sqrt(fan_in)), from a seeded generator (candle's CPU RNG cannot be seeded).
pub(crate) fn init_layers(shapes: &[(usize, usize)], seed: u64) -> Result<Vec<(Tensor, Tensor)>> {
    let mut rng = noise::rng(seed, Purpose::Other, 77);
    let mut layers = Vec::new();
    for &(fan_in, fan_out) in shapes {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let w: Vec<f32> = (0..fan_in * fan_out)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let b: Vec<f32> = (0..fan_out)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        layers.push((
            Tensor::from_vec(w, (fan_out, fan_in), &Device::Cpu).map_err(candle)?,
            Tensor::from_vec(b, fan_out, &Device::Cpu).map_err(candle)?,
        ));
    }
    Ok(layers)
}

/// Checkpoint names and shapes of layers with `(fan_in, fan_out)` shapes: `l{i}.weight`
/// `[out, in]` and `l{i}.bias` `[out]`.
pub(crate) fn layer_names(shapes: &[(usize, usize)]) -> Vec<(String, Vec<usize>)> {
    shapes
        .iter()
        .enumerate()
        .flat_map(|(i, &(fan_in, fan_out))| {
            [
                (format!("l{i}.weight"), vec![fan_out, fan_in]),
                (format!("l{i}.bias"), vec![fan_out]),
            ]
        })
        .collect()
}

/// Layers by checkpoint name: `l{i}.weight`, `l{i}.bias`.
pub(crate) fn named_layers(layers: &[(Tensor, Tensor)]) -> HashMap<String, Tensor> {
    layers
        .iter()
        .enumerate()
        .flat_map(|(i, (w, b))| {
            [
                (format!("l{i}.weight"), w.clone()),
                (format!("l{i}.bias"), b.clone()),
            ]
        })
        .collect()
}

/// The first `count` layers of a checkpoint whose names [`load_tensors`] has checked.
pub(crate) fn layers_from_named(
    mut tensors: HashMap<String, Tensor>,
    count: usize,
) -> Vec<(Tensor, Tensor)> {
    (0..count)
        .map(|i| {
            (
                tensors.remove(&format!("l{i}.weight")).expect("checked"),
                tensors.remove(&format!("l{i}.bias")).expect("checked"),
            )
        })
        .collect()
}

/// Writes tensors to a `.safetensors` file atomically (from the CPU).
pub(crate) fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    if path.extension().is_none_or(|e| e != "safetensors") {
        return Err(Error::invalid(
            "out",
            format!("expected a .safetensors path, got {}", path.display()),
        ));
    }
    let tmp = path.with_extension("safetensors.tmp");
    let cpu: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, t)| t.to_device(&Device::Cpu).map(|t| (k.clone(), t)))
        .collect::<std::result::Result<_, _>>()
        .map_err(candle)?;
    candle_core::safetensors::save(&cpu, &tmp).map_err(|e| Error::file(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The number of layers (`l{i}.weight` tensors) a safetensors file declares in its header,
/// read without loading any tensor.
fn layers_in_header(bytes: &[u8], path: &Path) -> Result<usize> {
    let bad = |msg: &str| Error::file(path, format!("not a readable safetensors file: {msg}"));
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| bad("shorter than its header length"))?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|n| n.checked_add(8))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| bad("header length beyond the end of the file"))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..end]).map_err(|e| bad(&e.to_string()))?;
    Ok(header
        .keys()
        .filter(|k| k.starts_with('l') && k.ends_with(".weight"))
        .count())
}

/// The tensors of a safetensors file's bytes, each checked against its expected name, dtype
/// (f32) and shape (`path` names the file in errors).
pub(crate) fn tensors_from_bytes(
    bytes: &[u8],
    expected: &[(String, Vec<usize>)],
    path: &Path,
) -> Result<HashMap<String, Tensor>> {
    let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|e| Error::file(path, format!("not a readable safetensors file: {e}")))?;
    for (name, shape) in expected {
        let t = tensors.get(name).ok_or_else(|| {
            Error::file(
                path,
                format!("missing tensor '{name}' (expected shape {shape:?})"),
            )
        })?;
        if t.dtype() != DType::F32 {
            return Err(Error::file(
                path,
                format!("tensor '{name}' has dtype {:?}, expected f32", t.dtype()),
            ));
        }
        if t.dims() != shape.as_slice() {
            return Err(Error::file(
                path,
                format!(
                    "tensor '{name}' has shape {:?}, expected {shape:?}",
                    t.dims()
                ),
            ));
        }
    }
    Ok(tensors)
}

/// `e^x` for f32 in a form the compiler vectorises: Cody–Waite reduction by ln 2 and a
/// degree-6 Taylor polynomial on |r| ≤ ln2/2 (relative error ≈ 1.3e-7, f32 rounding level).
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting rounds to nearest
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // 2^n from the integer n held in the low mantissa bits of `shifted` (|n| ≤ 127): adding
    // the bias and shifting by 23 leaves exactly (n + 127) << 23, without a float→int cast
    // (whose saturation checks would keep the loop from vectorising).
    p * f32::from_bits(shifted.to_bits().wrapping_add(127) << 23)
}

// AVX-512 where the CPU has it: these run between `gemm`'s AVX-512 matrix products and
// share their clock, so the reason `simd` keeps other kernels to AVX2 does not apply.
crate::simd::wide_simd!(avx512: bias_silu_rows => bias_silu_block(out: &mut [f32], z: &[f32], bias: &[f32], silu: bool));
crate::simd::wide_simd!(avx512: first_layer_rows => first_layer_block(out: &mut [f32], x: &[f32], w_t: &[f32], bias: &[f32]));

/// `silu(z + bias)` (or `z + bias` for the output layer) for a block of rows.
#[inline(always)]
fn bias_silu_block(out: &mut [f32], z: &[f32], bias: &[f32], silu: bool) {
    let width = bias.len();
    for (o_row, z_row) in out.chunks_mut(width).zip(z.chunks(width)) {
        for ((o, &z), &b) in o_row.iter_mut().zip(z_row).zip(bias) {
            let v = z + b;
            *o = if silu { v / (1.0 + fast_exp(-v)) } else { v };
        }
    }
}

/// `silu(x W_xᵀ + bias)` for a block of rows; `w_t` is `W_xᵀ`, `[D, width]` row-major.
#[inline(always)]
fn first_layer_block(out: &mut [f32], x: &[f32], w_t: &[f32], bias: &[f32]) {
    let width = bias.len();
    let d = w_t.len() / width;
    for (o_row, x_row) in out.chunks_mut(width).zip(x.chunks(d)) {
        o_row.copy_from_slice(bias);
        for (k, &xk) in x_row.iter().enumerate() {
            let w = &w_t[k * width..(k + 1) * width];
            o_row.iter_mut().zip(w).for_each(|(o, &wk)| *o += xk * wk);
        }
        o_row.iter_mut().for_each(|o| *o /= 1.0 + fast_exp(-*o));
    }
}

/// `z + bias` per row, then SiLU unless it is the last layer: one pass instead of candle's
/// broadcast-add and unary-map passes (each with its own allocation and scalar `expf`).
struct BiasSilu<'a> {
    bias: &'a [f32],
    silu: bool,
}

impl CustomOp1 for BiasSilu<'_> {
    fn name(&self) -> &'static str {
        "bias-silu"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let data = storage.as_slice::<f32>()?;
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("bias-silu needs a contiguous input".into()))?;
        let src = &data[start..end];
        let mut out = vec![0f32; src.len()];
        let width = self.bias.len();
        // Blocks of 128 rows across the worker threads; each element depends on itself only.
        use rayon::prelude::*;
        out.par_chunks_mut(128 * width)
            .zip(src.par_chunks(128 * width))
            .for_each(|(o_block, z_block)| bias_silu_rows(o_block, z_block, self.bias, self.silu));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// The first layer in one pass: `silu(x W_xᵀ + step_bias)` for inputs of small dimension,
/// where a general matmul (inner dimension D = 2) wastes its blocking; `w_t` is `W_xᵀ`,
/// `[D, width]` row-major, so the inner loop runs along contiguous outputs.
struct FirstLayer<'a> {
    w_t: &'a [f32],
    bias: &'a [f32],
}

impl CustomOp1 for FirstLayer<'_> {
    fn name(&self) -> &'static str {
        "first-layer"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let data = storage.as_slice::<f32>()?;
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("first-layer needs a contiguous input".into())
        })?;
        let x = &data[start..end];
        let width = self.bias.len();
        let d = self.w_t.len() / width;
        let n = x.len() / d;
        let mut out = vec![0f32; n * width];
        out.par_chunks_mut(128 * width)
            .zip(x.par_chunks(128 * d))
            .for_each(|(o_block, x_block)| first_layer_rows(o_block, x_block, self.w_t, self.bias));
        Ok((CpuStorage::F32(out), Shape::from((n, width))))
    }
}

impl Mlp {
    /// The network on rows with their own model times (training): `emb` is `[n, 32]`.
    pub fn forward_rows(
        layers: &[(Tensor, Tensor)],
        dim: usize,
        x: &Tensor,
        emb: &Tensor,
    ) -> std::result::Result<Tensor, candle_core::Error> {
        let (w0, b0) = &layers[0];
        let first = (x.matmul(&w0.narrow(1, 0, dim)?.t()?)?
            + emb.matmul(&w0.narrow(1, dim, TIME_EMBEDDING)?.t()?)?)?;
        let mut h = candle_nn::ops::silu(&first.broadcast_add(b0)?)?;
        let last = layers.len() - 1;
        for (i, (w, b)) in layers.iter().enumerate().skip(1) {
            h = h.matmul(&w.t()?)?.broadcast_add(b)?;
            if i < last {
                h = candle_nn::ops::silu(&h)?;
            }
        }
        Ok(h)
    }

    /// The weights as `(weight, bias)` per layer.
    pub fn layers(&self) -> &[(Tensor, Tensor)] {
        &self.layers
    }

    /// The training schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
}

impl ScoreModel for Mlp {
    fn dim(&self) -> usize {
        self.config.dim
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"kind": "mlp", "config": self.config})
    }

    fn eps_into(&self, x: &Batch, level: &Level, out: &mut [f64]) -> Result<()> {
        if x.d != self.config.dim {
            return Err(Error::invalid(
                "x",
                format!("model has dimension {}, input has {}", self.config.dim, x.d),
            ));
        }
        let xs: Vec<f32> = x.data.iter().map(|&v| v as f32).collect();
        let xt = Tensor::from_vec(xs, (x.n, x.d), &self.device).map_err(candle)?;
        let y = self.forward(&xt, self.model_time(level)).map_err(candle)?;
        let y: Vec<f32> = y
            .flatten_all()
            .and_then(|t| t.to_device(&Device::Cpu))
            .and_then(|t| t.to_vec1())
            .map_err(candle)?;
        let (a, s) = (level.alpha, level.sigma);
        for ((o, &xv), &yv) in out.iter_mut().zip(&x.data).zip(&y) {
            let yv = yv as f64;
            *o = match self.config.prediction {
                Prediction::Eps => yv,
                Prediction::X0 => (xv - a * yv) / s,
                Prediction::V => s * xv + a * yv,
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_simd_passes_are_bit_identical_to_the_baseline_code() {
        let width = 48;
        let z: Vec<f32> = (0..width * 37)
            .map(|i| ((i * 7919) % 2001) as f32 * 0.01 - 10.0)
            .collect();
        let bias: Vec<f32> = (0..width).map(|i| i as f32 * 0.05 - 1.0).collect();
        for silu in [true, false] {
            let (mut wide, mut base) = (vec![0f32; z.len()], vec![0f32; z.len()]);
            bias_silu_rows(&mut wide, &z, &bias, silu);
            bias_silu_block(&mut base, &z, &bias, silu);
            assert!(wide
                .iter()
                .zip(&base)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        let (d, n) = (3, 29);
        let w_t: Vec<f32> = (0..d * width).map(|i| (i as f32 * 0.37).sin()).collect();
        let x = &z[..n * d];
        let (mut wide, mut base) = (vec![0f32; n * width], vec![0f32; n * width]);
        first_layer_rows(&mut wide, x, &w_t, &bias);
        first_layer_block(&mut base, x, &w_t, &bias);
        assert!(wide
            .iter()
            .zip(&base)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(base.iter().any(|&v| v != 0.0));
    }

    #[test]
    fn fast_exp_is_accurate_to_f32_rounding_and_the_fused_forward_matches_candle() {
        for i in -8000..=8000 {
            let x = i as f32 * 0.01;
            let (a, b) = (fast_exp(x), x.exp());
            assert!(((a - b) / b).abs() < 4e-7, "{x}: {a} vs {b}");
        }
        let m = Mlp::new(config(Prediction::Eps), 7).unwrap();
        let x = Tensor::from_vec(
            (0..64).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(),
            (32, 2),
            &Device::Cpu,
        )
        .unwrap();
        let fused = values(m.forward_cpu(&x, 321.0).unwrap());
        let plain = values(m.forward_generic(&x, 321.0).unwrap());
        let gap = fused
            .iter()
            .zip(&plain)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(gap < 1e-5, "{gap}");
    }

    /// A tensor's values, flattened.
    fn values(t: Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    fn config(prediction: Prediction) -> MlpConfig {
        MlpConfig {
            dim: 2,
            width: 16,
            depth: 2,
            prediction,
            schedule: "linear".into(),
            training: serde_json::Value::Null,
        }
    }

    #[test]
    fn save_then_load_gives_identical_outputs_and_bad_checkpoints_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mlp::new(config(Prediction::Eps), 3).unwrap();
        let path = dir.path().join("m.safetensors");
        m.save(&path).unwrap();
        let back = Mlp::load(&path).unwrap();
        let x = crate::noise::draw(7, 2, 1);
        let level = Level {
            t: 0.4,
            alpha: 0.8,
            sigma: 0.6,
        };
        assert_eq!(m.eps(&x, &level).unwrap(), back.eps(&x, &level).unwrap());
        // Same seed, same weights; another seed, other weights.
        assert_eq!(
            Mlp::new(config(Prediction::Eps), 3)
                .unwrap()
                .eps(&x, &level)
                .unwrap(),
            m.eps(&x, &level).unwrap()
        );
        assert_ne!(
            Mlp::new(config(Prediction::Eps), 4)
                .unwrap()
                .eps(&x, &level)
                .unwrap(),
            m.eps(&x, &level).unwrap()
        );
        // Wrong shape (a wider net's tensors), wrong dtype, missing tensor, not safetensors.
        let mut wide = config(Prediction::Eps);
        wide.width = 8;
        let other = Mlp::new(wide, 1).unwrap();
        candle_core::safetensors::save(&other.tensors(), &path).unwrap();
        assert!(Mlp::load(&path).unwrap_err().to_string().contains("shape"));
        let mut t = m.tensors();
        t.insert("l0.bias".into(), t["l0.bias"].to_dtype(DType::F64).unwrap());
        candle_core::safetensors::save(&t, &path).unwrap();
        assert!(Mlp::load(&path).unwrap_err().to_string().contains("dtype"));
        let mut t = m.tensors();
        t.remove("l1.weight");
        candle_core::safetensors::save(&t, &path).unwrap();
        assert!(Mlp::load(&path)
            .unwrap_err()
            .to_string()
            .contains("missing tensor 'l1.weight'"));
        std::fs::write(&path, b"not a checkpoint").unwrap();
        assert!(Mlp::load(&path)
            .unwrap_err()
            .to_string()
            .contains("safetensors"));
    }

    #[test]
    fn predictions_convert_to_the_same_noise_prediction() {
        // A net predicting x0 = x/a - (s/a)ε̂ would give back ε̂: check the algebra on outputs.
        let level = Level {
            t: 0.4,
            alpha: 0.8,
            sigma: 0.6,
        };
        let x = crate::noise::draw(5, 2, 2);
        let m_eps = Mlp::new(config(Prediction::Eps), 9).unwrap();
        let eps = m_eps.eps(&x, &level).unwrap();
        let xt = Tensor::from_vec(
            x.data.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            (5, 2),
            &Device::Cpu,
        )
        .unwrap();
        let raw = values(m_eps.forward(&xt, m_eps.model_time(&level)).unwrap());
        assert!(eps
            .data
            .iter()
            .zip(&raw)
            .all(|(e, r)| (e - *r as f64).abs() < 1e-12));
        let m_v = Mlp {
            config: config(Prediction::V),
            schedule: Schedule::ddpm_linear(),
            layers: m_eps.layers.clone(),
            device: Device::Cpu,
        };
        let from_v = m_v.eps(&x, &level).unwrap();
        for ((e, xv), r) in from_v.data.iter().zip(&x.data).zip(&raw) {
            assert!((e - (0.6 * xv + 0.8 * *r as f64)).abs() < 1e-12);
        }
    }

    #[test]
    fn model_time_follows_the_noise_level_not_the_sampling_schedule() {
        let m = Mlp::new(config(Prediction::Eps), 1).unwrap();
        let train = Schedule::ddpm_linear();
        // At training index 499 (t = 0.5) the model sees time 499, whichever schedule asks.
        let level = Level::at(&train, 0.5);
        assert!((m.model_time(&level) - 499.0).abs() < 1e-6);
        let other = Schedule::vp_cosine();
        let t = other.t_of_lambda(train.lambda(0.5));
        assert!((m.model_time(&Level::at(&other, t)) - 499.0).abs() < 1e-6);
    }
}
