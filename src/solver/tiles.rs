//! Running a sampler on row tiles: the whole integration of a few hundred rows at a time.
//!
//! A sampler's arithmetic is a handful of sweeps per model call over state-sized arrays (the
//! state, stage values, multistep history). On a 4096 × 16 batch each array is 512 KiB, so
//! a step's arrays spill out of the per-core cache and every sweep runs at the speed of the
//! shared cache (on mix16d, UniPC's three sweeps then cost a large fraction of a model call).
//! When the model treats rows independently (exact models), nothing couples the rows of a
//! deterministic run, so each tile of rows can be integrated on its own from x_T to the end,
//! with all of its arrays in the core's cache; the tiles run in parallel. Every row gets the
//! same arithmetic as in a whole-batch run, so the output is bit-identical to it, at any
//! tile size and thread count (tested).
//!
//! A stochastic run is tiled on noise-block boundaries, so that each tile draws exactly the
//! whole batch's noise for its rows (noise is keyed by block, see `noise`), or, where one
//! block holds the whole batch, with every step's noise drawn ahead (see [`plan`]). dopri5's step
//! size follows the batch's error norm, which couples rows: it runs each attempted step a
//! chunk of rows at a time instead (`dopri5`).

use super::{Ctx, Precision, Solver};
use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::model::Counted;
use crate::noise::{self, Purpose, BLOCK};
use rayon::prelude::*;

/// Elements per tile: 64 KiB of f64 per array keeps a sampler's handful of arrays within
/// a core's L2 cache (smaller tiles measured slower on mix16d: more per-tile set-up).
/// Smaller batches run whole.
const TILE_ELEMENTS: usize = 8192;
/// At least this many tiles when the batch allows, so that two or more threads balance.
const MIN_TILES: usize = 8;

/// Rows per tile for an `n × d` batch (never depends on the thread count).
pub fn tile_rows(n: usize, d: usize) -> usize {
    (TILE_ELEMENTS / d.max(1)).clamp(1, n.div_ceil(MIN_TILES).max(1))
}

/// Rows per tile when `solver` runs `x` in row tiles, `None` when it runs the whole batch.
pub fn rows_for(solver: &Solver, ctx: &Ctx, x: &Batch) -> Option<usize> {
    plan(solver, ctx, x).map(|p| p.rows)
}

/// How a run is tiled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// Rows per tile.
    pub rows: usize,
    /// True if every step's noise is drawn for the whole batch before the tiles run (their
    /// rows split noise blocks).
    pub noise_ahead: bool,
}

/// Per-step noise drawn ahead may take this much memory (all steps, whole batch).
const NOISE_AHEAD_BYTES: usize = 64 << 20;

/// The tiling of `solver` on `x`, `None` for a whole-batch run. A stochastic run's tiles
/// hold whole noise blocks (`BLOCK / gcd(d, BLOCK)` rows, one block when d divides it) so
/// that each draws the whole batch's noise for its rows; where that leaves one tile (a 2-D
/// batch of 4 096 rows is one block), the noise of every step is drawn ahead, in parallel,
/// and the tiles read their rows of it, unless it would exceed 64 MiB. Euler–Maruyama on a
/// Brownian tree draws node noise, not step noise: it tiles on blocks only.
pub fn plan(solver: &Solver, ctx: &Ctx, x: &Batch) -> Option<Plan> {
    if solver.is_adaptive() || !rows_separate(ctx, x) {
        return None;
    }
    let rows = tile_rows(x.n, x.d);
    if !solver.is_stochastic() {
        return Some(Plan {
            rows,
            noise_ahead: false,
        });
    }
    let whole_blocks = BLOCK / gcd(x.d.max(1), BLOCK);
    if whole_blocks < x.n {
        return Some(Plan {
            rows: whole_blocks,
            noise_ahead: false,
        });
    }
    let ahead_bytes = ctx.grid.steps() * x.data.len() * std::mem::size_of::<f64>();
    (solver.draws_step_noise_only() && ahead_bytes <= NOISE_AHEAD_BYTES).then_some(Plan {
        rows,
        noise_ahead: true,
    })
}

pub(super) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// True if `ctx`'s model treats rows independently and `x` is larger than one tile.
pub fn rows_separate(ctx: &Ctx, x: &Batch) -> bool {
    ctx.model.rows_independent() && x.data.len() >= TILE_ELEMENTS
}

/// Runs `solver` on row tiles of `x` in parallel as `plan` says, counting the NFE of one
/// tile (every tile makes the same calls) on `ctx`'s model.
pub fn integrate(
    solver: &Solver,
    ctx: &Ctx,
    mut x: Batch,
    precision: Precision,
    plan: Plan,
) -> Result<Batch> {
    let tile_rows = plan.rows;
    let models = models(ctx, x.n.div_ceil(tile_rows));
    let (schedule, grid, seed, d) = (ctx.schedule, ctx.grid, ctx.seed, x.d);
    let step_noise: Vec<Vec<f64>> = if plan.noise_ahead {
        (0..grid.steps() as u64)
            .into_par_iter()
            .map(|i| noise::normals(seed, Purpose::StepNoise, i, x.data.len()))
            .collect()
    } else {
        Vec::new()
    };
    let step_noise = plan.noise_ahead.then_some(step_noise.as_slice());
    // Each tile copies its rows out of `x` and its result back in their place, on its own
    // thread while they are in that core's cache.
    let errors: Vec<(usize, usize, Error)> = x
        .data
        .par_chunks_mut(tile_rows * d)
        .zip(&models)
        .enumerate()
        .filter_map(|(k, (rows, model))| {
            let offset = k * tile_rows * d;
            let tile_ctx = Ctx::for_tile(model, schedule, grid, seed, offset, step_noise);
            let tile = Batch {
                n: rows.len() / d,
                d,
                data: rows.to_vec(),
            };
            match solver.integrate_whole(&tile_ctx, tile, precision) {
                Ok(tile) => {
                    rows.copy_from_slice(&tile.data);
                    None
                }
                Err(e) => Some((k * tile_rows, model.nfe(), e)),
            }
        })
        .collect();
    ctx.model.add_calls(models[0].nfe());
    match first_error(errors) {
        Some(e) => Err(e),
        None => Ok(x),
    }
}

/// One call-counting wrapper of `ctx`'s model per tile: tiles run in parallel, each with its
/// own [`Ctx`] (a context pools buffers for one thread).
pub fn models<'a>(ctx: &Ctx<'a>, tiles: usize) -> Vec<Counted<'a>> {
    (0..tiles)
        .map(|_| Counted::new(ctx.model.inner(), ctx.model.rounds_to_f32()))
        .collect()
}

/// Of the tiles' errors, given as (the tile's first row, the model calls it had made,
/// error), the one a whole-batch run would have stopped on: the earliest failed call (every
/// tile makes the same calls), then the lowest row; its row is numbered in the whole batch.
pub fn first_error(errors: Vec<(usize, usize, Error)>) -> Option<Error> {
    errors
        .into_iter()
        .map(|(first_row, calls, e)| match e {
            Error::NonFinite { t, row, col, value } => {
                let row = row + first_row;
                (calls, row, Error::NonFinite { t, row, col, value })
            }
            other => (calls, first_row, other),
        })
        .min_by_key(|(calls, row, _)| (*calls, *row))
        .map(|(_, _, e)| e)
}
