//! Committed results are data the code must still produce: each exact-model experiment's
//! `results.csv` regenerates from its spec identical apart from wall times.

use pfode::experiment::{sweep, table, SweepOptions};
use std::path::Path;

fn rows_without_wall(path: &Path) -> Vec<table::Row> {
    let (mut rows, _) = table::read(path).unwrap();
    rows.iter_mut().for_each(|r| r.wall_ms = 0.0);
    rows
}

fn regenerates(name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let opts = SweepOptions {
        out: dir.path().to_path_buf(),
        shard: None,
        resume: false,
        jobs: 2,
        quiet: true,
        models: Vec::new(),
    };
    sweep(
        &root.join("experiments").join(format!("{name}.toml")),
        &opts,
    )
    .unwrap();
    let committed = rows_without_wall(&root.join("results").join(name).join("results.csv"));
    let fresh = rows_without_wall(&dir.path().join("results.csv"));
    assert_eq!(committed.len(), fresh.len(), "{name}: row count");
    for (a, b) in committed.iter().zip(&fresh) {
        // NaN (a diverged run's metrics) equals NaN here: compare the bits.
        let same = a.value.to_bits() == b.value.to_bits() && {
            let (mut a, mut b) = (a.clone(), b.clone());
            a.value = 0.0;
            b.value = 0.0;
            a == b
        };
        assert!(same, "{name}: committed {a:?}, regenerated {b:?}");
    }
}

#[test]
fn ddim_equals_euler_regenerates_its_committed_table() {
    regenerates("ddim_equals_euler");
}

#[test]
fn orders_gaussian_regenerates_its_committed_table() {
    regenerates("orders_gaussian");
}

#[test]
fn eta_study_regenerates_its_committed_table() {
    regenerates("eta_study");
}

#[test]
fn schedules_regenerates_its_committed_table() {
    regenerates("schedules");
}

#[test]
fn orders_mixture_regenerates_its_committed_table() {
    regenerates("orders_mixture");
}
