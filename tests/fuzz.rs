//! Arbitrary bytes given as a `.npy`, a mixture JSON, a checkpoint or a spec give an error —
//! never a panic, a hang or a huge allocation. Mutations (bit flips, truncations, inserted
//! and overwritten bytes, digits swapped for huge numbers) of valid files, from a fixed seed,
//! so each run is the same bounded run.

use pfode::model::{mlp::Mlp, GaussianMixture};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

const MUTANTS: usize = 400;

fn mutate(rng: &mut Xoshiro256PlusPlus, good: &[u8]) -> Vec<u8> {
    let mut b = good.to_vec();
    for _ in 0..rng.random_range(1..4) {
        let at = rng.random_range(0..b.len().max(1));
        match rng.random_range(0..6) {
            0 if !b.is_empty() => b[at] ^= 1 << rng.random_range(0..8),
            1 => b.truncate(at),
            2 => b.insert(at.min(b.len()), rng.random()),
            3 if !b.is_empty() => b[at] = rng.random(),
            4 => {
                // A digit becomes a huge number (header shapes, JSON sizes).
                if let Some(i) = b.iter().skip(at).position(|c| c.is_ascii_digit()) {
                    let i = at + i;
                    b.splice(i..i + 1, b"1000000000000".iter().copied());
                }
            }
            _ => {
                let n = rng.random_range(0..64);
                b = (0..n).map(|_| rng.random()).collect();
            }
        }
    }
    b
}

/// Runs `parse` on `MUTANTS` mutants of `good`, failing on any panic; returns how many were
/// accepted (mutants can stay valid).
fn fuzz(what: &str, seed: u64, good: &[u8], parse: impl Fn(&[u8]) -> bool) -> usize {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    assert!(parse(good), "{what}: the unmutated input must parse");
    let mut accepted = 0;
    for k in 0..MUTANTS {
        let bytes = mutate(&mut rng, good);
        match catch_unwind(AssertUnwindSafe(|| parse(&bytes))) {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => panic!(
                "{what}: mutant {k} panicked: {:?}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ),
        }
    }
    println!("{what}: {MUTANTS} mutants, {accepted} accepted, the rest refused with an error");
    accepted
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn the_npy_reader_refuses_mutated_files_with_an_error() {
    let good = pfode::npy::encode(
        &[3, 2],
        &[0.5, -1.0, 2.0, 3.0, 4.5, -6.0],
        pfode::npy::Dtype::F64,
    );
    let accepted = fuzz("npy", 1, &good, |b| pfode::npy::decode(b).is_ok());
    assert!(accepted < MUTANTS / 2);
    // A header claiming 10¹² rows is refused before anything is allocated for it.
    // The same file with another shape in its header (which is padded with spaces, so a
    // longer shape takes some of them and the data stays where it was).
    let with_shape = |shape: &str| {
        let data_at = good.len() - 6 * 8;
        let header = String::from_utf8(good[10..data_at].to_vec()).unwrap();
        let header = header.replacen("(3, 2)", shape, 1).replacen(
            &" ".repeat(shape.len() - "(3, 2)".len()),
            "",
            1,
        );
        [&good[..10], header.as_bytes(), &good[data_at..]].concat()
    };
    let err = pfode::npy::decode(&with_shape("(1000000000000, 2)")).unwrap_err();
    assert!(err.contains("needs") && err.contains("bytes"), "{err}");
    let err = pfode::npy::decode(&with_shape("(4294967296, 4294967296, 8)")).unwrap_err();
    assert!(err.contains("too large"), "{err}");
}

#[test]
fn the_mixture_loader_refuses_mutated_json_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = br#"{"weights": [0.5, 0.5], "means": [[0.0, 1.0], [2.0, -1.0]], "stds": [[0.3, 0.4], [0.5, 0.6]]}"#;
    fuzz("mixture json", 2, good, |b| {
        GaussianMixture::from_json(&write(dir.path(), "m.json", b)).is_ok()
    });
}

#[test]
fn the_checkpoint_loader_refuses_mutated_weights_and_configs_with_an_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let (weights, config) = (
        std::fs::read(root.join("ring2d.safetensors")).unwrap(),
        std::fs::read(root.join("ring2d.json")).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.json", &config);
    fuzz("checkpoint weights", 3, &weights, |b| {
        Mlp::load(&write(dir.path(), "c.safetensors", b)).is_ok()
    });
    write(dir.path(), "c.safetensors", &weights);
    fuzz("checkpoint config", 4, &config, |b| {
        write(dir.path(), "c.json", b);
        Mlp::load(&dir.path().join("c.safetensors")).is_ok()
    });
}

#[test]
fn the_spec_parser_refuses_mutated_specs_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = b"name = \"t\"\nmodels = [\"ring2d\"]\nspacings = [\"logsnr\"]\nnfe = [4, 8]\nsamples = 50\n[[solvers]]\nname = \"heun\"\ns_churn = 0.5\n[[solvers]]\nname = \"ipndm\"\nwarm_start = \"multistep\"\n";
    fuzz("spec", 5, good, |b| {
        pfode::experiment::Spec::from_file(&write(dir.path(), "s.toml", b)).is_ok()
    });
}
