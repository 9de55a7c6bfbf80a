//! Row tiles: a deterministic run on an exact model, integrated a tile of rows at a time,
//! is the whole-batch run bit for bit, with the same NFE and the same error on bad output.

use pfode::error::Error;
use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::model::{builtin, Counted, GaussianMixture, Level, ScoreModel};
use pfode::run::draw_noise;
use pfode::schedule::Schedule;
use pfode::solver::{tiles, Ctx, Precision, Solver, SolverOptions, SOLVERS};
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
        Some(rows) => tiles::run(solver, &ctx, x.clone(), precision, rows),
        None => solver.run_whole(&ctx, x.clone(), precision),
    };
    (out, counted.nfe())
}

#[test]
fn tiled_runs_equal_whole_batch_runs_bit_for_bit_for_every_deterministic_solver() {
    let schedule = Schedule::ddpm_linear();
    let model = builtin("mix16d").unwrap();
    let g = grid(&schedule, 7);
    // 611 rows (above one tile's worth): no tile size below divides it, so the last
    // tile is short.
    let x = draw_noise(611, model.dim(), 5);
    let mut tiled = 0;
    for info in SOLVERS {
        let solver = Solver::build(info.name, &SolverOptions::default()).unwrap();
        let counted = Counted::new(&model, false);
        let ctx = Ctx::new(&counted, &schedule, &g, 3);
        let applies = tiles::applies(&solver, &ctx, &x);
        assert_eq!(
            applies,
            !solver.is_stochastic() && !solver.is_adaptive(),
            "{}",
            info.name
        );
        if !applies {
            continue;
        }
        tiled += 1;
        let (whole, nfe) = run(&solver, &model, &g, &x, None, Precision::F64);
        let whole = whole.unwrap();
        for rows in [1, 16, 64, 200] {
            let (out, tiled_nfe) = run(&solver, &model, &g, &x, Some(rows), Precision::F64);
            assert_eq!(out.unwrap(), whole, "{} with {rows}-row tiles", info.name);
            assert_eq!(tiled_nfe, nfe, "{}: NFE", info.name);
        }
        // The default tiling, through `Solver::run`.
        let (out, _) = pfode::solver::sample(&solver, &model, &schedule, &g, x.clone(), 3).unwrap();
        assert_eq!(out, whole, "{}: default tiling", info.name);
    }
    assert!(tiled >= 12, "only {tiled} solvers ran tiled");
    // Single precision rounds inside each tile exactly as on the whole batch.
    let ddim = Solver::build("dpm-solver++3m", &SolverOptions::default()).unwrap();
    let (whole, _) = run(&ddim, &model, &g, &x, None, Precision::F32);
    let (out, _) = run(&ddim, &model, &g, &x, Some(16), Precision::F32);
    assert_eq!(out.unwrap(), whole.unwrap());
}

#[test]
fn tiles_never_apply_to_learned_models_stochastic_or_adaptive_solvers() {
    let schedule = Schedule::ddpm_linear();
    let g = grid(&schedule, 5);
    let model = builtin("ring2d").unwrap();
    let x = draw_noise(4096, 2, 0);
    let counted = Counted::new(&model, false);
    let ctx = Ctx::new(&counted, &schedule, &g, 0);
    let build = |name: &str| Solver::build(name, &SolverOptions::default()).unwrap();
    assert!(tiles::applies(&build("unipc"), &ctx, &x));
    for name in ["ddpm", "euler-maruyama", "dpm-solver++2m-sde", "dopri5"] {
        assert!(!tiles::applies(&build(name), &ctx, &x), "{name}");
    }
    let churn = SolverOptions {
        s_churn: Some(1.0),
        ..Default::default()
    };
    assert!(!tiles::applies(
        &Solver::build("heun", &churn).unwrap(),
        &ctx,
        &x
    ));
    // A batch no larger than one tile runs whole.
    assert!(!tiles::applies(&build("unipc"), &ctx, &draw_noise(8, 2, 0)));
    // A learned network is not row-independent bit for bit (its matrix kernels block rows).
    let mlp = pfode::model::mlp::Mlp::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/ring2d.safetensors"
    )))
    .unwrap();
    let counted = Counted::new(&mlp, false);
    let ctx = Ctx::new(&counted, &schedule, &g, 0);
    assert!(!tiles::applies(&build("unipc"), &ctx, &x));
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
    fn rows_independent(&self) -> bool {
        true
    }
}

#[test]
fn a_tiled_run_reports_the_bad_output_a_whole_batch_run_reports() {
    let schedule = Schedule::ddpm_linear();
    let model = NanBelowHalf(builtin("mix16d").unwrap());
    let g = grid(&schedule, 6);
    let x = draw_noise(300, 16, 1);
    let solver = Solver::build("heun", &SolverOptions::default()).unwrap();
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

/// The mixture, declared not row-independent: samplers then never tile it.
struct Whole(GaussianMixture);

impl ScoreModel for Whole {
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

#[test]
fn dopri5_with_tiled_stages_equals_the_whole_batch_solve_bit_for_bit() {
    let schedule = Schedule::ddpm_linear();
    let g = grid(&schedule, 3);
    let x = draw_noise(611, 16, 2);
    for (rtol, atol) in [(1e-4, 1e-4), (1e-7, 1e-6)] {
        let solver = Solver::build(
            "dopri5",
            &SolverOptions {
                rtol: Some(rtol),
                atol: Some(atol),
                ..Default::default()
            },
        )
        .unwrap();
        let (tiled, nfe) = pfode::solver::sample(
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
        assert_eq!(tiled, whole, "rtol {rtol}");
        assert_eq!(nfe, whole_nfe);
        assert!(nfe > 50, "{nfe}");
    }
}
