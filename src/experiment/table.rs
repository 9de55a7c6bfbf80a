//! The tidy results table: one row per run × metric, written and read with the csv crate.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The columns of `results.csv`, in order (the fields of [`Row`]).
pub const COLUMNS: [&str; 15] = [
    "run",
    "experiment",
    "model",
    "schedule",
    "solver",
    "options",
    "coords",
    "spacing",
    "steps",
    "budget",
    "nfe",
    "seed",
    "metric",
    "value",
    "wall_ms",
];

/// One row of `results.csv`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Row {
    /// Index of the run in the spec's enumeration (the sort key of the table).
    pub run: usize,
    pub experiment: String,
    pub model: String,
    pub schedule: String,
    pub solver: String,
    pub options: String,
    pub coords: String,
    pub spacing: String,
    pub steps: usize,
    /// The NFE budget the run was given (empty for step-count and tolerance runs); `nfe` is
    /// what it used, which can be less (Heun at budget 5 uses 4).
    #[serde(default)]
    pub budget: Option<usize>,
    pub nfe: usize,
    pub seed: u64,
    pub metric: String,
    pub value: f64,
    pub wall_ms: f64,
}

/// Serialises rows as CSV text (with a header when `header`).
pub fn to_csv(rows: &[Row], header: bool) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(header)
        .from_writer(Vec::new());
    for r in rows {
        w.serialize(r).expect("rows serialise");
    }
    w.into_inner().expect("in-memory writer")
}

/// Reads a results table; a trailing partial line (a write cut by a crash) is ignored and
/// reported through the returned byte length of the complete part.
pub fn read(path: &Path) -> Result<(Vec<Row>, usize)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(&bytes[..complete]);
    let rows = rd
        .deserialize()
        .enumerate()
        .map(|(i, r)| r.map_err(|e| Error::file(path, format!("row {}: {e}", i + 2))))
        .collect::<Result<Vec<Row>>>()?;
    Ok((rows, complete))
}

/// Header line of the table.
pub fn header() -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(COLUMNS).unwrap();
    w.into_inner().unwrap()
}
