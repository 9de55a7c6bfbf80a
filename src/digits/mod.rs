//! The 8×8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", test set,
//! Alpaydin & Kaynak 1998, CC BY 4.0; see `data/README.md`), compiled into the binary so
//! `--data digits` works offline; and the digits feature FD/KID, a Fréchet distance and a
//! kernel distance between a small classifier's penultimate features of two image sets. It
//! plays the role FID plays for natural images but is not FID: the feature network is ours,
//! trained on these 1 438 images.

pub mod classifier;

pub use classifier::Classifier;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::metrics::{self, Kernel};
use std::io::Read;

const CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// Image side in pixels.
pub const SIDE: usize = 8;
/// Pixels per image (the data dimension).
pub const PIXELS: usize = SIDE * SIDE;
/// The name `--data` and checkpoints use.
pub const NAME: &str = "digits";

/// Which images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The 1 438 images with index mod 5 ≠ 4: what models are trained on.
    Train,
    /// The 359 images with index mod 5 = 4.
    HeldOut,
}

/// Images scaled to [−1, 1] (`[n, 64]`, row-major pixels) and their labels.
#[derive(Clone, Debug)]
pub struct Digits {
    pub images: Batch,
    pub labels: Vec<u8>,
}

/// The images of `split`.
pub fn load(split: Split) -> Result<Digits> {
    let bad = |msg: String| Error::invalid("data/digits.csv.gz", msg);
    let mut text = String::new();
    flate2::read::GzDecoder::new(CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    let (mut data, mut labels) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let held_out = i % 5 == 4;
        if held_out != (split == Split::HeldOut) {
            continue;
        }
        let values: Vec<u8> = line
            .split(',')
            .map(|v| v.trim().parse())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
        if values.len() != PIXELS + 1 || values[..PIXELS].iter().any(|&v| v > 16) {
            return Err(bad(format!(
                "line {}: expected 64 pixels in 0..=16 and a label",
                i + 1
            )));
        }
        data.extend(values[..PIXELS].iter().map(|&v| v as f64 / 8.0 - 1.0));
        labels.push(values[PIXELS]);
    }
    Ok(Digits {
        images: Batch::new(labels.len(), PIXELS, data)?,
        labels,
    })
}

/// Digits feature FD and KID of `images` against the reference features `real`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeatureScores {
    /// Fréchet distance between Gaussians fitted to the two feature sets.
    pub fd: f64,
    /// Unbiased MMD² with the cubic polynomial kernel (KID, Bińkowski et al. 2018).
    pub kid: f64,
}

/// Scores generated `images` against precomputed real features.
pub fn feature_scores(
    classifier: &Classifier,
    images: &Batch,
    real: &Batch,
) -> Result<FeatureScores> {
    scores_of_features(&classifier.features(images)?, real)
}

/// FD and KID between two sets of classifier features.
fn scores_of_features(f: &Batch, real: &Batch) -> Result<FeatureScores> {
    Ok(FeatureScores {
        fd: metrics::frechet(
            &metrics::sample_moments(f)?,
            &metrics::sample_moments(real)?,
        ),
        kid: metrics::mmd2_unbiased(f, real, Kernel::Cubic)?,
    })
}

/// Features of the held-out images: what generated samples are compared against. Neither
/// the diffusion model nor the classifier saw them, so the training images score the floor
/// (a model that reproduced its training set exactly would score it); against the training
/// images instead, samples of a model that learned them can score below what unseen real
/// digits do.
pub fn reference_features(classifier: &Classifier) -> Result<Batch> {
    classifier.features(&load(Split::HeldOut)?.images)
}

/// Median over rows of `x` of the Euclidean distance to the nearest row of `y`: how close
/// samples sit to the training images (memorisation shows as samples closer than unseen
/// real images are).
pub fn median_nearest(x: &Batch, y: &Batch) -> f64 {
    use rayon::prelude::*;
    let mut d: Vec<f64> = (0..x.n)
        .into_par_iter()
        .map(|i| {
            (0..y.n)
                .map(|j| {
                    x.row(i)
                        .iter()
                        .zip(y.row(j))
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min)
                .sqrt()
        })
        .collect();
    d.sort_by(f64::total_cmp);
    d[d.len() / 2]
}

/// Reads `[n, 64]` images from an .npy file, or the real ones for `train` / `held-out`.
pub fn images(source: &str) -> Result<Batch> {
    match source {
        "train" => Ok(load(Split::Train)?.images),
        "held-out" => Ok(load(Split::HeldOut)?.images),
        path => crate::npy::read_rows(std::path::Path::new(path), PIXELS, "digit images"),
    }
}

/// What `pfode digits score` reports about samples.
#[derive(Clone, Debug)]
pub struct ScoreReport {
    /// Samples against the held-out images.
    pub samples: FeatureScores,
    /// The floor: training images against the held-out images.
    pub floor: FeatureScores,
    /// Samples against the training images.
    pub against_training: FeatureScores,
    /// Median pixel distance from a sample to its nearest training image.
    pub nearest_sample: f64,
    /// The same for the held-out images.
    pub nearest_held_out: f64,
}

/// Scores samples `x` (`[n, 64]`) with classifier `c` (each image set through it once).
pub fn score_report(c: &Classifier, x: &Batch) -> Result<ScoreReport> {
    let (train, held) = (load(Split::Train)?.images, load(Split::HeldOut)?.images);
    let (f_x, f_train, f_held) = (c.features(x)?, c.features(&train)?, c.features(&held)?);
    Ok(ScoreReport {
        samples: scores_of_features(&f_x, &f_held)?,
        floor: scores_of_features(&f_train, &f_held)?,
        against_training: scores_of_features(&f_x, &f_train)?,
        nearest_sample: median_nearest(x, &train),
        nearest_held_out: median_nearest(&held, &train),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_partitions_all_1797_images_in_range_with_every_label() {
        let (train, held) = (load(Split::Train).unwrap(), load(Split::HeldOut).unwrap());
        assert_eq!((train.images.n, held.images.n), (1438, 359));
        assert_eq!(train.images.d, 64);
        for d in [&train, &held] {
            assert!(d.images.data.iter().all(|&v| (-1.0..=1.0).contains(&v)));
            for label in 0..10u8 {
                let count = d.labels.iter().filter(|&&l| l == label).count();
                assert!(count * 20 > d.labels.len(), "label {label}: {count}");
            }
        }
        // The first image of the file (a zero) opens the training split.
        assert_eq!(train.labels[0], 0);
        assert_eq!(train.images.data[2], 5.0 / 8.0 - 1.0);
    }
}
