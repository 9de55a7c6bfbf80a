//! Clamping the data prediction x̂₀, as diffusers' schedulers offer it: `clip_sample`
//! (clip every element to ±`clip_sample_range`) and dynamic `thresholding` (Saharia et al.
//! 2022, "Photorealistic text-to-image diffusion models with deep language understanding",
//! §2.3: per sample, s = the `dynamic_thresholding_ratio` quantile of |x̂₀|, clamped to
//! [1, `sample_max_value`]; then x̂₀ ← clip(x̂₀, −s, s)/s).
//!
//! A solver that takes these options sees, at every model evaluation, the noise prediction
//! re-derived from the clamped data prediction, ε̃ = (x − a·clamp(x̂₀))/s: every update
//! linear in (x, ε̂) is then the same update with x̂₀ clamped, which is what diffusers does
//! for DDPM, DPM-Solver++ and UniPC. DDIM's default keeps the raw ε̂ in its direction term
//! (diffusers' `use_clipped_model_output=False`; see `ddim.rs`).
//!
//! Clamping leaves the probability-flow ODE: the field is no longer the model's, so
//! `check ddim-euler` does not take these options and `pfode orders` leaves such runs out.

use super::options::{Kind, Opt, Resolved, Value};
use crate::error::{Error, Result};

/// Clip x̂₀ elementwise.
pub const CLIP_SAMPLE: Opt = Opt {
    name: "clip_sample",
    kind: Kind::Switch,
    default: Value::Bool(false),
    doc: "clip the data prediction x̂₀ to ±clip_sample_range at every evaluation (diffusers' clip_sample; leaves the ODE)",
};

/// The clipping range.
pub const CLIP_SAMPLE_RANGE: Opt = Opt {
    name: "clip_sample_range",
    kind: Kind::Float,
    default: Value::Float(1.0),
    doc: "the range of clip_sample",
};

/// Dynamic thresholding of x̂₀.
pub const THRESHOLDING: Opt = Opt {
    name: "thresholding",
    kind: Kind::Switch,
    default: Value::Bool(false),
    doc:
        "dynamic thresholding of x̂₀ (Saharia et al. 2022; diffusers' thresholding; leaves the ODE)",
};

/// The quantile of |x̂₀| that sets the threshold.
pub const DYNAMIC_THRESHOLDING_RATIO: Opt = Opt {
    name: "dynamic_thresholding_ratio",
    kind: Kind::Float,
    default: Value::Float(0.995),
    doc: "the quantile of |x̂₀| per sample that sets the threshold",
};

/// The largest threshold.
pub const SAMPLE_MAX_VALUE: Opt = Opt {
    name: "sample_max_value",
    kind: Kind::Float,
    default: Value::Float(1.0),
    doc: "the largest threshold of dynamic thresholding",
};

/// The options, for the solvers that form x̂₀.
pub const OPTIONS: [&Opt; 5] = [
    &CLIP_SAMPLE,
    &CLIP_SAMPLE_RANGE,
    &THRESHOLDING,
    &DYNAMIC_THRESHOLDING_RATIO,
    &SAMPLE_MAX_VALUE,
];

/// How x̂₀ is clamped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DataClamp {
    /// Every element to [−range, range].
    Clip { range: f64 },
    /// Per sample, to the `ratio` quantile of |x̂₀| clamped to [1, max], then divided by it.
    Threshold { ratio: f64, max: f64 },
}

impl DataClamp {
    /// The clamp the options ask for, if any (none for a solver without these options).
    pub fn from_options(o: &Resolved) -> Result<Option<Self>> {
        let (Some(Value::Bool(clip)), Some(Value::Bool(threshold))) =
            (o.get(&CLIP_SAMPLE), o.get(&THRESHOLDING))
        else {
            return Ok(None);
        };
        match (clip, threshold) {
            (true, true) => Err(Error::invalid(
                "thresholding",
                "give `clip_sample` or `thresholding`, not both",
            )),
            (true, false) => {
                let range = o.float(&CLIP_SAMPLE_RANGE);
                if !(range.is_finite() && range > 0.0) {
                    return Err(Error::invalid(
                        "clip_sample_range",
                        format!("expected a finite range > 0, got {range}"),
                    ));
                }
                Ok(Some(DataClamp::Clip { range }))
            }
            (false, true) => {
                let (ratio, max) = (
                    o.float(&DYNAMIC_THRESHOLDING_RATIO),
                    o.float(&SAMPLE_MAX_VALUE),
                );
                if !(ratio > 0.0 && ratio <= 1.0) {
                    return Err(Error::invalid(
                        "dynamic_thresholding_ratio",
                        format!("expected a quantile in (0, 1], got {ratio}"),
                    ));
                }
                if !(max.is_finite() && max >= 1.0) {
                    return Err(Error::invalid(
                        "sample_max_value",
                        format!("expected a finite value ≥ 1, got {max}"),
                    ));
                }
                Ok(Some(DataClamp::Threshold { ratio, max }))
            }
            (false, false) => Ok(None),
        }
    }

    /// Clamps the data predictions `x0` (rows of `d` elements) in place.
    pub fn apply(&self, x0: &mut [f64], d: usize) {
        match *self {
            DataClamp::Clip { range } => x0.iter_mut().for_each(|v| *v = v.clamp(-range, range)),
            DataClamp::Threshold { ratio, max } => {
                let mut sorted = vec![0.0; d];
                for row in x0.chunks_mut(d) {
                    sorted
                        .iter_mut()
                        .zip(row.iter())
                        .for_each(|(s, v)| *s = v.abs());
                    sorted.sort_by(f64::total_cmp);
                    let s = quantile(&sorted, ratio).clamp(1.0, max);
                    row.iter_mut().for_each(|v| *v = v.clamp(-s, s) / s);
                }
            }
        }
    }

    /// Replaces the noise predictions `eps` at `x` (scales `a`, `s`) by those of the clamped
    /// data prediction: ε̃ = (x − a clamp((x − s ε̂)/a))/s. At s = 0 there is no noise to
    /// re-derive and ε̂ is kept.
    pub fn rederive_eps(&self, x: &[f64], eps: &mut [f64], d: usize, a: f64, s: f64) {
        if s == 0.0 {
            return;
        }
        let mut x0: Vec<f64> = x
            .iter()
            .zip(eps.iter())
            .map(|(x, e)| (x - s * e) / a)
            .collect();
        self.apply(&mut x0, d);
        for ((e, x), x0) in eps.iter_mut().zip(x).zip(&x0) {
            *e = (x - a * x0) / s;
        }
    }
}

/// The `q` quantile of ascending `sorted` with linear interpolation between order
/// statistics (NumPy's and torch's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_numpy() {
        // numpy.quantile([0, 1, 2, 10], 0.9) = 2 + 0.7 * 8 = 7.6
        assert!((quantile(&[0.0, 1.0, 2.0, 10.0], 0.9) - 7.6).abs() < 1e-12);
        assert_eq!(quantile(&[3.0], 0.995), 3.0);
    }

    #[test]
    fn thresholding_scales_each_row_by_its_own_quantile() {
        let mut x = vec![0.5, -4.0, 2.0, 0.1, 0.2, -0.3];
        DataClamp::Threshold {
            ratio: 0.5,
            max: 3.0,
        }
        .apply(&mut x, 3);
        // Row 1: |x| sorted 0.5, 2, 4: median 2 -> clip to ±2, divide by 2.
        assert_eq!(&x[..3], &[0.25, -1.0, 1.0]);
        // Row 2: median 0.2 < 1, so s = 1: plain clipping, nothing to clip.
        assert_eq!(&x[3..], &[0.1, 0.2, -0.3]);
    }

    #[test]
    fn rederived_eps_gives_the_clipped_data_prediction() {
        let (a, s) = (0.6, 0.8);
        let x = [2.0, -0.1];
        let mut eps = [-1.0, 0.3];
        DataClamp::Clip { range: 1.0 }.rederive_eps(&x, &mut eps, 2, a, s);
        let x0: Vec<f64> = x.iter().zip(&eps).map(|(x, e)| (x - s * e) / a).collect();
        // (2 + 0.8)/0.6 = 4.67 clipped to 1; (-0.1 - 0.24)/0.6 = -0.567 kept.
        assert!((x0[0] - 1.0).abs() < 1e-15 && (x0[1] + 0.34 / 0.6).abs() < 1e-15);
    }
}
