//! Helpers shared by the integration tests: committed fixtures and their arrays.

use pfode::Batch;
use serde_json::Value;

/// A JSON fixture from tests/fixtures.
#[allow(dead_code)]
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A `[[f64; D]; N]` JSON array as a batch.
#[allow(dead_code)]
pub fn matrix(v: &Value) -> Batch {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    Batch::new(rows.len(), rows[0].len(), rows.concat()).unwrap()
}

/// The `model` mixture of a fixture (`{"weights", "means", "stds"}`).
#[allow(dead_code)]
pub fn mixture(f: &Value, name: &str) -> pfode::model::GaussianMixture {
    let m = &f["model"];
    let rows = |k: &str| -> Vec<Vec<f64>> { serde_json::from_value(m[k].clone()).unwrap() };
    let weights = serde_json::from_value(m["weights"].clone()).unwrap();
    pfode::model::GaussianMixture::new(name, weights, rows("means"), rows("stds")).unwrap()
}

/// A quiet, unsharded, fresh sweep into `out` on two threads.
#[allow(dead_code)]
pub fn sweep_options(out: std::path::PathBuf) -> pfode::experiment::SweepOptions {
    pfode::experiment::SweepOptions {
        out,
        shard: None,
        resume: false,
        jobs: 2,
        quiet: true,
        models: Vec::new(),
    }
}
