//! Row tiles: a deterministic run on an exact model, integrated a tile of rows at a time,
//! is the whole-batch run bit for bit, with the same NFE and the same error on bad output.

use pfode::error::Error;
use pfode::flow::Coords;
use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::model::{builtin, Counted, GaussianMixture, Level, RowEvaluator, RowModel, ScoreModel};
use pfode::noise::draw as draw_noise;
use pfode::schedule::Schedule;
use pfode::solver::{tiles, Ctx, Given, Precision, Solver, SOLVERS};
use pfode::Batch;

fn grid(schedule: &Schedule, steps: usize) -> TimeGrid {
    TimeGrid::build(
        schedule,
        &Spacing::Trailing,
        Some(steps),
        GridOptions::default(),
    )
    .unwrap()
}

/// Output and NFE of `solver`, tiled with `tile_rows` rows, or on the whole batch.
fn run(
    solver: &Solver,
    model: &dyn ScoreModel,
    grid: &TimeGrid,
    x: &Batch,
    tile_rows: Option<usize>,
    precision: Precision,
) -> (pfode::error::Result<Batch>, usize) {
    let schedule = Schedule::ddpm_linear();
    let counted = Counted::new(model, precision == Precision::F32);
    let ctx = Ctx::new(&counted, &schedule, grid, 3);
    let out = match tile_rows {
        Some(rows) => {
            // Tiles that split noise blocks read every step's noise drawn ahead.
            let plan = tiles::Plan {
                rows,
                noise_ahead: !(rows * x.d).is_multiple_of(pfode::noise::BLOCK),
            };
            tiles::integrate(solver, &ctx, x.clone(), precision, plan)
        }
        None => solver.integrate_whole(&ctx, x.clone(), precision),
    };
    (out, counted.nfe())
}

/// Every registered solver plus the stochastic variants of DDIM and Heun.
fn every_solver() -> Vec<(String, Solver)> {
    let mut v: Vec<(String, Solver)> = SOLVERS
        .iter()
        .map(|i| {
            let s = Solver::named(i.name).unwrap();
            (i.name.to_string(), s)
        })
        .collect();
    for (name, opts) in [
        ("ddim", Given::from_pairs(&[("eta", "0.7")]).unwrap()),
        ("heun", Given::from_pairs(&[("s_churn", "2.0")]).unwrap()),
        (
            "euler-maruyama",
            Given::from_pairs(&[("brownian", "tree")]).unwrap(),
        ),
    ] {
        v.push((
            format!("{name} (variant)"),
            Solver::build(name, &opts).unwrap(),
        ));
    }
    v
}

#[test]
fn tiled_runs_equal_whole_batch_runs_bit_for_bit_for_every_solver() {
    let schedule = Schedule::ddpm_linear();
    let model = builtin("mix16d").unwrap();
    let g = grid(&schedule, 7);
    // 1 100 rows (above one tile's worth): no tile size below divides it, so the last
    // tile is short.
    let x = draw_noise(1100, model.dim(), 5);
    let mut tiled = 0;
    for (name, solver) in every_solver() {
        let counted = Counted::new(&model, false);
        let ctx = Ctx::new(&counted, &schedule, &g, 3);
        let rows = tiles::rows_for(&solver, &ctx, &x);
        if solver.is_adaptive() {
            assert_eq!(rows, None, "{name}: its step size couples the rows");
            continue;
        }
        tiled += 1;
        let (whole, nfe) = run(&solver, &model, &g, &x, None, Precision::F64);
        let whole = whole.unwrap();
        // A stochastic run's tiles start on noise blocks (8 192 / 16 = 512 rows each) or
        // read step noise drawn ahead (Euler–Maruyama's tree: blocks only).
        let sizes: &[usize] = if solver.is_stochastic() {
            assert_eq!(rows, Some(512), "{name}");
            if name == "euler-maruyama (variant)" {
                &[512, 1024]
            } else {
                &[512, 1024, 100, 7]
            }
        } else {
            assert_eq!(rows, Some(tiles::tile_rows(x.n, x.d)), "{name}");
            &[1, 16, 64, 200]
        };
        for &rows in sizes {
            let (out, tiled_nfe) = run(&solver, &model, &g, &x, Some(rows), Precision::F64);
            assert_eq!(out.unwrap(), whole, "{name} with {rows}-row tiles");
            assert_eq!(tiled_nfe, nfe, "{name}: NFE");
        }
        // The default tiling, through `Solver::integrate`.
        let (out, _) = pfode::solver::sample(&solver, &model, &schedule, &g, x.clone(), 3).unwrap();
        assert_eq!(out, whole, "{name}: default tiling");
        // In single precision a tile's row evaluator rounds the model's outputs as the batch
        // call does.
        let (whole, _) = run(&solver, &model, &g, &x, None, Precision::F32);
        let rows = sizes[sizes.len() - 1];
        let (tiled, _) = run(&solver, &model, &g, &x, Some(rows), Precision::F32);
        assert_eq!(tiled.unwrap(), whole.unwrap(), "{name}: f32");
    }
    assert_eq!(
        tiled,
        SOLVERS.len() + 2,
        "every solver but dopri5, and three variants"
    );
    // Single precision rounds inside each tile exactly as on the whole batch.
    let s = Solver::named("dpm-solver++3m").unwrap();
    let (whole, _) = run(&s, &model, &g, &x, None, Precision::F32);
    let (out, _) = run(&s, &model, &g, &x, Some(16), Precision::F32);
    assert_eq!(out.unwrap(), whole.unwrap());
}

#[test]
fn tiles_apply_only_where_they_change_nothing() {
    let schedule = Schedule::ddpm_linear();
    let g = grid(&schedule, 5);
    let model = builtin("ring2d").unwrap();
    let x = draw_noise(4096, 2, 0);
    let counted = Counted::new(&model, false);
    let ctx = Ctx::new(&counted, &schedule, &g, 0);
    let build = |name: &str| Solver::named(name).unwrap();
    let plan = |name: &str, x: &Batch| tiles::plan(&build(name), &ctx, x);
    let tiled = |rows, noise_ahead| Some(tiles::Plan { rows, noise_ahead });
    assert_eq!(plan("unipc", &x), tiled(512, false));
    // One noise block holds all 4 096 rows of a 2-D batch: stochastic runs read step noise
    // drawn ahead, except Euler–Maruyama on its Brownian tree, which stays whole, like dopri5.
    for name in ["ddpm", "dpm-solver++2m-sde", "euler-maruyama"] {
        assert_eq!(plan(name, &x), tiled(512, true), "{name}");
    }
    assert_eq!(plan("dopri5", &x), None);
    let tree = Solver::build(
        "euler-maruyama",
        &Given::from_pairs(&[("brownian", "tree")]).unwrap(),
    )
    .unwrap();
    assert_eq!(tiles::plan(&tree, &ctx, &x), None);
    let wider = draw_noise(4097, 2, 0);
    assert_eq!(plan("ddpm", &wider), tiled(4096, false));
    // Noise drawn ahead is bounded by 64 MiB: 8 192 × 3 values over 5 steps are drawn
    // ahead (a 3-D block holds 8 192 rows), over 999 steps (196 MB) they are not.
    let x3 = draw_noise(8192, 3, 0);
    assert_eq!(plan("ddpm", &x3), tiled(1024, true));
    let long = grid(&schedule, 999);
    let ctx = Ctx::new(&counted, &schedule, &long, 0);
    assert_eq!(tiles::plan(&build("ddpm"), &ctx, &x3), None);
    // Dimension 3 does not divide a block: tiles of 8 192 rows (3 blocks) keep them whole.
    let x3 = draw_noise(20_000, 3, 0);
    assert_eq!(tiles::rows_for(&build("ddpm"), &ctx, &x3), Some(8192));
    // A batch no larger than one tile runs whole.
    assert_eq!(
        tiles::rows_for(&build("unipc"), &ctx, &draw_noise(8, 2, 0)),
        None
    );
    // A learned network is not row-independent bit for bit (its matrix kernels block rows).
    let mlp = pfode::model::mlp::Mlp::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/ring2d.safetensors"
    )))
    .unwrap();
    let counted = Counted::new(&mlp, false);
    let ctx = Ctx::new(&counted, &schedule, &g, 0);
    assert_eq!(tiles::rows_for(&build("unipc"), &ctx, &x), None);
    // Tiles are a few hundred rows at most, whatever the batch.
    assert_eq!(tiles::tile_rows(4096, 16), 512);
    assert_eq!(tiles::tile_rows(100, 16), 13);
}

/// The mixture, but NaN in every row whose first coordinate exceeds 1 once t < 0.5.
struct NanBelowHalf(GaussianMixture);

impl ScoreModel for NanBelowHalf {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn describe(&self) -> serde_json::Value {
        self.0.describe()
    }
    fn eps_into(&self, x: &Batch, level: &Level, out: &mut [f64]) -> pfode::error::Result<()> {
        self.0.eps_into(x, level, out)?;
        if level.t < 0.5 {
            for (row, o) in x.data.chunks(x.d).zip(out.chunks_mut(x.d)) {
                if row[0] > 1.0 {
                    o[1] = f64::NAN;
                }
            }
        }
        Ok(())
    }
    fn rows(&self) -> Option<&dyn RowModel> {
        Some(self)
    }
}

impl RowModel for NanBelowHalf {
    fn row_evaluator(&self, level: &Level) -> Option<Box<dyn RowEvaluator + '_>> {
        Some(Box::new(NanRows {
            inner: self.0.row_evaluator(level)?,
            t: level.t,
            d: self.0.dim(),
        }))
    }
}

/// [`NanBelowHalf`] a few rows at a time.
struct NanRows<'a> {
    inner: Box<dyn RowEvaluator + 'a>,
    t: f64,
    d: usize,
}

impl RowEvaluator for NanRows<'_> {
    fn eps_rows(&self, x: &[f64], out: &mut [f64]) {
        self.inner.eps_rows(x, out);
        if self.t < 0.5 {
            for (row, o) in x.chunks(self.d).zip(out.chunks_mut(self.d)) {
                if row[0] > 1.0 {
                    o[1] = f64::NAN;
                }
            }
        }
    }
}

#[test]
fn a_tiled_run_reports_the_bad_output_a_whole_batch_run_reports() {
    let schedule = Schedule::ddpm_linear();
    let model = NanBelowHalf(builtin("mix16d").unwrap());
    let g = grid(&schedule, 6);
    let x = draw_noise(300, 16, 1);
    let solver = Solver::named("heun").unwrap();
    let (whole, _) = run(&solver, &model, &g, &x, None, Precision::F64);
    let whole = whole.unwrap_err();
    let Error::NonFinite { row, col, .. } = whole else {
        panic!("expected a non-finite output, got {whole}");
    };
    assert_eq!(col, 1);
    assert!(
        row > 7,
        "the first bad row ({row}) should lie beyond the first tiles"
    );
    for rows in [4, 7, 64] {
        let (tiled, _) = run(&solver, &model, &g, &x, Some(rows), Precision::F64);
        assert_eq!(tiled.unwrap_err().to_string(), whole.to_string(), "{rows}");
    }
}

/// A model declared not row-independent: samplers then never tile it.
struct Whole<M>(M);

impl<M: ScoreModel> ScoreModel for Whole<M> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn describe(&self) -> serde_json::Value {
        self.0.describe()
    }
    fn eps_into(&self, x: &Batch, level: &Level, out: &mut [f64]) -> pfode::error::Result<()> {
        self.0.eps_into(x, level, out)
    }
    fn defined_at_clean(&self) -> bool {
        true
    }
}

/// dopri5 on row chunks (fused stage sums, chunks shared out over threads) gives the bits
/// of the stage-by-stage whole-batch solve, in every integration variable: σ (the slope is
/// ε̂), λ (a multiple of ε̂) and t (the slope also has a term in the state).
#[test]
fn dopri5_in_row_chunks_equals_the_whole_batch_solve_bit_for_bit() {
    let schedule = Schedule::ddpm_linear();
    let g = grid(&schedule, 3);
    let x = draw_noise(611, 16, 2);
    for (coords, rtol, atol) in [
        (None, 1e-4, 1e-4),
        (None, 1e-7, 1e-6),
        (Some(Coords::T), 1e-5, 1e-5),
        (Some(Coords::Lambda), 1e-5, 1e-5),
    ] {
        let solver = Solver::build("dopri5", &{
            let mut o =
                Given::from_pairs(&[("rtol", &rtol.to_string()), ("atol", &atol.to_string())])
                    .unwrap();
            if let Some(c) = coords {
                o.set("coords", c.as_str()).unwrap();
            }
            o
        })
        .unwrap();
        let (chunked, nfe) = pfode::solver::sample(
            &solver,
            &builtin("mix16d").unwrap(),
            &schedule,
            &g,
            x.clone(),
            0,
        )
        .unwrap();
        let whole_model = Whole(builtin("mix16d").unwrap());
        let (whole, whole_nfe) =
            pfode::solver::sample(&solver, &whole_model, &schedule, &g, x.clone(), 0).unwrap();
        assert_eq!(chunked, whole, "{coords:?}, rtol {rtol}");
        assert_eq!(nfe, whole_nfe);
        assert!(nfe > 50, "{nfe}");
        // In single precision the row evaluator rounds the model's outputs as the batch
        // call does.
        let (chunked, nfe) = run(
            &solver,
            &builtin("mix16d").unwrap(),
            &g,
            &x,
            None,
            Precision::F32,
        );
        let (whole, whole_nfe) = run(&solver, &whole_model, &g, &x, None, Precision::F32);
        let (chunked, whole) = (chunked.unwrap(), whole.unwrap());
        assert_eq!(chunked, whole, "f32, {coords:?}, rtol {rtol}");
        assert_eq!(nfe, whole_nfe);
        assert!(chunked.data.iter().all(|v| *v == *v as f32 as f64));
        assert_ne!(
            chunked,
            pfode::solver::sample(&solver, &whole_model, &schedule, &g, x.clone(), 0)
                .unwrap()
                .0
        );
    }
}

#[test]
fn dopri5_in_row_chunks_reports_the_bad_output_the_whole_batch_solve_reports() {
    let schedule = Schedule::ddpm_linear();
    let g = grid(&schedule, 3);
    let x = draw_noise(611, 16, 2);
    let solver = Solver::named("dopri5").unwrap();
    let sample = |model: &dyn ScoreModel| {
        pfode::solver::sample(&solver, model, &schedule, &g, x.clone(), 0)
            .unwrap_err()
            .to_string()
    };
    let whole = sample(&Whole(NanBelowHalf(builtin("mix16d").unwrap())));
    assert!(whole.contains("not finite (NaN)"), "{whole}");
    assert_eq!(sample(&NanBelowHalf(builtin("mix16d").unwrap())), whole);
}

/// The mixture with NaN outputs (column 1 of rows whose first coordinate exceeds 1) at one
/// exact time only, and finite outputs at NaN inputs (read as 0): a bad slope then leaves
/// no trace in the later stages' outputs, only in the values built from it. Records the
/// times of its row evaluators.
struct NanAtOneTime {
    inner: GaussianMixture,
    bad_t: f64,
    times: std::sync::Mutex<Vec<f64>>,
}

impl NanAtOneTime {
    fn eps(&self, x: &[f64], t: f64, out: &mut [f64], mut eval: impl FnMut(&[f64], &mut [f64])) {
        let d = self.inner.dim();
        let clean: Vec<f64> = x
            .iter()
            .map(|v| if v.is_nan() { 0.0 } else { *v })
            .collect();
        eval(&clean, out);
        if t == self.bad_t {
            for (row, o) in clean.chunks(d).zip(out.chunks_mut(d)) {
                if row[0] > 1.0 {
                    o[1] = f64::NAN;
                }
            }
        }
    }
}

impl ScoreModel for NanAtOneTime {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn describe(&self) -> serde_json::Value {
        self.inner.describe()
    }
    fn eps_into(&self, x: &Batch, level: &Level, out: &mut [f64]) -> pfode::error::Result<()> {
        let mut result = Ok(());
        self.eps(&x.data, level.t, out, |clean, out| {
            let clean = Batch::new(x.n, x.d, clean.to_vec()).unwrap();
            result = self.inner.eps_into(&clean, level, out);
        });
        result
    }
    fn rows(&self) -> Option<&dyn RowModel> {
        Some(self)
    }
}

impl RowModel for NanAtOneTime {
    fn row_evaluator(&self, level: &Level) -> Option<Box<dyn RowEvaluator + '_>> {
        self.times.lock().unwrap().push(level.t);
        Some(Box::new(NanAtOneTimeRows {
            model: self,
            inner: self.inner.row_evaluator(level)?,
            t: level.t,
        }))
    }
}

struct NanAtOneTimeRows<'a> {
    model: &'a NanAtOneTime,
    inner: Box<dyn RowEvaluator + 'a>,
    t: f64,
}

impl RowEvaluator for NanAtOneTimeRows<'_> {
    fn eps_rows(&self, x: &[f64], out: &mut [f64]) {
        self.model
            .eps(x, self.t, out, |clean, out| self.inner.eps_rows(clean, out));
    }
}

/// dopri5's row-chunked attempts check the values the slopes feed rather than each model
/// output; a bad output at any of an attempt's stage times (k₂ … k₅, and k₆ with k₇ at
/// its end) is still reported, as the model's NaN at that time.
#[test]
fn dopri5_reports_a_bad_output_at_every_stage_of_an_attempt() {
    let schedule = Schedule::ddpm_linear();
    let g = grid(&schedule, 1);
    let x = draw_noise(611, 16, 2);
    let solver = Solver::named("dopri5").unwrap();
    let model = |bad_t| NanAtOneTime {
        inner: builtin("mix16d").unwrap(),
        bad_t,
        times: Default::default(),
    };
    let clean = model(f64::NAN);
    pfode::solver::sample(&solver, &clean, &schedule, &g, x.clone(), 0).unwrap();
    let times = clean.times.into_inner().unwrap();
    // The slope at the start, the initial step's probe, then the first attempt's stages.
    let first_attempt = &times[2..7];
    assert!(first_attempt.windows(2).all(|w| w[0] != w[1]), "{times:?}");
    for &bad_t in first_attempt {
        let err =
            pfode::solver::sample(&solver, &model(bad_t), &schedule, &g, x.clone(), 0).unwrap_err();
        assert!(
            matches!(err, Error::NonFinite { t, col: 1, .. } if t == bad_t),
            "NaN at t = {bad_t}: {err}"
        );
    }
}
