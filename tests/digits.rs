//! The digits data, the committed feature classifier, the digits FD/KID, sample grids, and
//! the committed digits diffusion model.

use pfode::batch::Batch;
use pfode::digits::classifier::ClassifierConfig;
use pfode::digits::{feature_scores, load, reference_features, Classifier, Split};
use std::path::Path;
use std::process::Command;

const CLASSIFIER: &str = "models/digits_classifier.safetensors";

fn classifier() -> Classifier {
    Classifier::load(Path::new(CLASSIFIER)).unwrap()
}

#[test]
fn the_compiled_in_classifier_is_the_committed_file() {
    let x = load(Split::HeldOut).unwrap().images;
    let (file, builtin) = (classifier(), Classifier::committed().unwrap());
    assert_eq!(file.config, builtin.config);
    assert_eq!(file.features(&x).unwrap(), builtin.features(&x).unwrap());
}

fn pfode(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pfode"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_committed_classifier_is_at_least_95_percent_accurate_on_held_out_digits() {
    let c = classifier();
    let acc = c.accuracy(&load(Split::HeldOut).unwrap()).unwrap();
    assert!(acc >= 0.95, "held-out accuracy {acc}");
    assert_eq!(
        acc, c.config.held_out_accuracy,
        "the recorded figure is the real one"
    );
    let train = c.accuracy(&load(Split::Train).unwrap()).unwrap();
    assert!(train >= acc, "train {train} < held-out {acc}");
}

#[test]
fn digits_fd_is_smallest_for_real_training_images_and_grows_with_damage() {
    let c = classifier();
    let held_out = reference_features(&c).unwrap();
    let train = load(Split::Train).unwrap();
    let floor = feature_scores(&c, &train.images, &held_out).unwrap();
    // Damage of increasing size: pixel noise, a single class, pure noise.
    let z = pfode::noise::draw(train.images.n, 64, 5);
    let noisy = train
        .images
        .zip_map(&z, |x, e| (x + 0.5 * e).clamp(-1.0, 1.0));
    let zeros: Vec<f64> = (0..train.images.n)
        .filter(|&i| train.labels[i] == 0)
        .flat_map(|i| train.images.row(i).to_vec())
        .collect();
    let zeros = Batch::new(zeros.len() / 64, 64, zeros).unwrap();
    let noise = z.zip_map(&z, |e, _| e.clamp(-1.0, 1.0));
    let scores: Vec<_> = [&noisy, &zeros, &noise]
        .iter()
        .map(|x| feature_scores(&c, x, &held_out).unwrap())
        .collect();
    println!("floor {floor:?}, noisy / zeros only / noise: {scores:?}");
    assert!(floor.fd > 0.0 && floor.kid < 0.5 * scores[0].kid);
    assert!(scores[0].fd > 3.0 * floor.fd, "{floor:?} {scores:?}");
    assert!(scores[1].fd > 3.0 * floor.fd, "{floor:?} {scores:?}");
    assert!(scores[2].fd > scores[0].fd, "{floor:?} {scores:?}");
}

#[test]
fn classifier_training_is_deterministic_for_a_seed() {
    let config = ClassifierConfig {
        steps: 60,
        ..ClassifierConfig::standard(7)
    };
    let (a, b) = (
        Classifier::train(config.clone()).unwrap(),
        Classifier::train(config).unwrap(),
    );
    let x = load(Split::HeldOut).unwrap().images;
    assert_eq!(a.features(&x).unwrap(), b.features(&x).unwrap());
    assert!(
        a.config.held_out_accuracy > 0.5,
        "{}",
        a.config.held_out_accuracy
    );
}

#[test]
fn a_classifier_checkpoint_with_wrong_widths_or_tensors_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    std::fs::copy(CLASSIFIER, &path).unwrap();
    let json = std::fs::read_to_string(Path::new(CLASSIFIER).with_extension("json")).unwrap();
    std::fs::write(path.with_extension("json"), json.replace("256", "255")).unwrap();
    let e = Classifier::load(&path).err().unwrap().to_string();
    assert!(e.contains("l0.weight") && e.contains("255"), "{e}");
    std::fs::write(path.with_extension("json"), json.replacen("64", "63", 1)).unwrap();
    let e = Classifier::load(&path).err().unwrap().to_string();
    assert!(e.contains("c.json") && e.contains("widths"), "{e}");
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[1..4], b"PNG");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

#[test]
fn digit_grids_are_drawn_ten_to_a_row_and_bad_samples_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("g.png");
    let o = pfode(&[
        "digits",
        "grid",
        "held-out",
        "--out",
        png.to_str().unwrap(),
        "--count",
        "23",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 8 px × 4 per image + 2 px gaps: 10 columns, 3 rows.
    assert_eq!(png_size(&png), (10 * 34 + 2, 3 * 34 + 2));
    let npy = dir.path().join("x.npy");
    pfode::npy::write(&npy, &[3, 2], &[0.0; 6], pfode::npy::Dtype::F64).unwrap();
    let bad = dir.path().join("bad.png");
    let o = pfode(&[
        "digits",
        "grid",
        npy.to_str().unwrap(),
        "--out",
        bad.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("x.npy") && err.contains("[N, 64]"),
        "{err}"
    );
    assert!(!bad.exists() && !dir.path().join("bad.png.tmp.png").exists());
}

/// The committed digits model (models/digits.safetensors): DDIM samples at 50 NFE are within
/// 2× the real-data floor of the digits FD and the classifier finds every digit among them.
#[test]
fn the_digits_model_draws_every_digit_within_twice_the_real_data_floor() {
    use pfode::grid::{GridOptions, Spacing, TimeGrid};
    use pfode::solver::{sample, Solver};
    let net = pfode::model::mlp::Mlp::load(Path::new("models/digits.safetensors")).unwrap();
    let s = pfode::schedule::Schedule::ddpm_linear();
    let grid = TimeGrid::build(&s, &Spacing::Trailing, Some(50), GridOptions::default()).unwrap();
    let ddim = Solver::named("ddim").unwrap();
    let (x, _) = sample(&ddim, &net, &s, &grid, pfode::noise::draw(1000, 64, 0), 0).unwrap();
    let c = classifier();
    let held_out = reference_features(&c).unwrap();
    let fd = feature_scores(&c, &x, &held_out).unwrap().fd;
    let floor = feature_scores(&c, &load(Split::Train).unwrap().images, &held_out)
        .unwrap()
        .fd;
    let labels = c.predict(&x).unwrap();
    let share = |d: u8| labels.iter().filter(|&&l| l == d).count() as f64 / labels.len() as f64;
    let shares: Vec<f64> = (0..10).map(share).collect();
    println!("digits-FD {fd:.3} (floor {floor:.3}); class shares {shares:.3?}");
    assert!(fd < 2.0 * floor, "digits-FD {fd} vs floor {floor}");
    assert!(shares.iter().all(|&p| p > 0.04), "{shares:?}");
}

/// A sweep's digits_fd / digits_kid are exactly the scores of the same samples computed
/// directly; and asking for them on a model not trained on digits is refused.
#[test]
fn sweep_digits_metrics_equal_the_direct_scores_of_the_same_samples() {
    use pfode::grid::{GridOptions, Spacing, TimeGrid};
    use pfode::solver::{sample, Solver};
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.toml");
    // Model paths in a spec are relative to the spec's folder: this one is absolute.
    let text = r#"
name = "d"
models = ["MODEL"]
spacings = ["trailing"]
nfe = [8]
samples = 80
metrics = ["digits_fd", "digits_kid"]
[reference]
rtol = 1e-4
atol = 1e-4
[[solvers]]
name = "ddim"
"#
    .replace(
        "MODEL",
        concat!(env!("CARGO_MANIFEST_DIR"), "/models/digits.safetensors"),
    );
    std::fs::write(&spec, &text).unwrap();
    let out = dir.path().join("out");
    let o = pfode(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (rows, _) = pfode::experiment::table::read(&out.join("results.csv")).unwrap();
    let value = |m: &str| rows.iter().find(|r| r.metric == m).unwrap().value;

    let net = pfode::model::mlp::Mlp::load(Path::new("models/digits.safetensors")).unwrap();
    let s = pfode::schedule::Schedule::ddpm_linear();
    let grid = TimeGrid::build(&s, &Spacing::Trailing, Some(8), GridOptions::default()).unwrap();
    let ddim = Solver::named("ddim").unwrap();
    let (x, _) = sample(&ddim, &net, &s, &grid, pfode::noise::draw(80, 64, 0), 0).unwrap();
    let c = classifier();
    let direct = feature_scores(&c, &x, &reference_features(&c).unwrap()).unwrap();
    assert_eq!(
        (value("digits_fd"), value("digits_kid")),
        (direct.fd, direct.kid)
    );
    assert!(direct.fd > 0.0 && direct.fd.is_finite());

    let ring = text.replace("models/digits.safetensors", "models/ring2d.safetensors");
    std::fs::write(&spec, ring).unwrap();
    let out2 = dir.path().join("out2");
    let o = pfode(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("digits_fd") && err.contains("ring2d"),
        "{err}"
    );
    assert!(!out2.join("results.csv").exists());
}
