//! Running a sampler on row tiles: the whole integration of a few hundred rows at a time.
//!
//! A sampler's arithmetic is a handful of sweeps per model call over state-sized arrays (the
//! state, stage values, multistep history). On a 4096 × 16 batch each array is 512 KiB, so
//! a step's arrays spill out of the per-core cache and every sweep runs at the speed of the
//! shared cache: measured on mix16d, UniPC's three sweeps cost 38 % of a model call that way.
//! When the model treats rows independently (exact models), nothing couples the rows of a
//! deterministic run, so each tile of rows can be integrated on its own from x_T to the end,
//! with all of its arrays in the core's cache; the tiles run in parallel. Every row gets the
//! same arithmetic as in a whole-batch run, so the output is bit-identical to it, at any
//! tile size and thread count (tested).
//!
//! Not tiled: stochastic runs (their noise is keyed by position in the whole batch) and
//! samplers whose control couples rows (dopri5's step size follows the batch's error norm).

use super::{Ctx, Precision, Solver};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::model::{Counted, ScoreModel};
use rayon::prelude::*;

/// Elements per tile: 64 KiB of f64 per array keeps a sampler's handful of arrays within
/// a core's L2 cache (measured on mix16d: 4 096 elements gave UniPC +12 %, 8 192 +7 %, from
/// the per-tile share of each step's scalar work). Smaller batches run whole.
const TILE_ELEMENTS: usize = 8192;
/// At least this many tiles when the batch allows, so that two or more threads balance.
const MIN_TILES: usize = 8;

/// Rows per tile for an `n × d` batch (never depends on the thread count).
pub fn tile_rows(n: usize, d: usize) -> usize {
    (TILE_ELEMENTS / d.max(1)).clamp(1, n.div_ceil(MIN_TILES).max(1))
}

/// True if `solver` may run `ctx`'s model in row tiles with the same result.
pub fn applies(solver: &Solver, ctx: &Ctx, x: &Batch) -> bool {
    ctx.model.rows_independent()
        && !solver.is_stochastic()
        && !solver.is_adaptive()
        && x.data.len() >= TILE_ELEMENTS
}

/// Runs `solver` on each tile of `tile_rows` rows of `x` in parallel, counting the NFE of one
/// tile (every tile makes the same calls) on `ctx`'s model.
pub fn run(
    solver: &Solver,
    ctx: &Ctx,
    x: Batch,
    precision: Precision,
    tile_rows: usize,
) -> Result<Batch> {
    let d = x.d;
    // The context is per thread (it pools buffers); each tile gets its own from these.
    let (inner, round, schedule, grid, seed) = (
        ctx.model.inner(),
        ctx.model.rounds_to_f32(),
        ctx.schedule,
        ctx.grid,
        ctx.seed,
    );
    let results: Vec<(Result<Batch>, usize)> = x
        .data
        .par_chunks(tile_rows * d)
        .map(|rows| {
            let model = Counted::new(inner, round);
            let tile_ctx = Ctx::new(&model, schedule, grid, seed);
            let tile = Batch {
                n: rows.len() / d,
                d,
                data: rows.to_vec(),
            };
            (solver.run_whole(&tile_ctx, tile, precision), model.nfe())
        })
        .collect();
    ctx.model.add_calls(results[0].1);
    let mut data = Vec::with_capacity(x.data.len());
    // The error a whole-batch run would have stopped on: the earliest model call that
    // failed (every tile makes the same calls), then the lowest row.
    let mut first_error: Option<(usize, usize, Error)> = None;
    for (k, (result, calls)) in results.into_iter().enumerate() {
        match result {
            Ok(tile) => data.extend_from_slice(&tile.data),
            Err(e) => {
                let e = in_batch_rows(e, k * tile_rows);
                let row = match e {
                    Error::NonFinite { row, .. } => row,
                    _ => k * tile_rows,
                };
                if first_error
                    .as_ref()
                    .is_none_or(|f| (calls, row) < (f.0, f.1))
                {
                    first_error = Some((calls, row, e));
                }
            }
        }
    }
    match first_error {
        Some((_, _, e)) => Err(e),
        None => Batch::new(x.n, d, data),
    }
}

/// A tile's error with its row numbered in the whole batch.
fn in_batch_rows(e: Error, first_row: usize) -> Error {
    match e {
        Error::NonFinite { t, row, col, value } => Error::NonFinite {
            t,
            row: row + first_row,
            col,
            value,
        },
        other => other,
    }
}
