//! `pfode bench`: the per-NFE time of the reference MLP (batch 4096, f32, D = 2) and each
//! solver's own cost per model evaluation, as figures and as ratios to the MLP call.
//!
//! The solver's cost is isolated by running it on a free model ([`ZeroModel`], which only
//! fills its output): subtracting two noisy timings of the real model would drown a few-percent
//! effect in run-to-run noise. PyTorch's time for the same network comes from
//! `benches/pytorch_mlp.py`, passed in with `--pytorch-ms`.

use crate::error::Result;
use crate::grid::{GridOptions, Spacing, TimeGrid};
use crate::model::mlp::{Mlp, MlpConfig, Prediction};
use crate::model::{Counted, Level, ScoreModel, ZeroModel};
use crate::schedule::Schedule;
use crate::solver::{Ctx, Precision, Solver, SOLVERS};
use std::time::Instant;

/// Median wall time of `reps` calls of `f` after one warm-up call.
pub fn median_secs(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64());
    }
    v.sort_by(f64::total_cmp);
    Ok(v[reps / 2])
}

/// The network `benches/pytorch_mlp.py` times: 2 → 3 × 256 SiLU → 2, noise prediction.
pub fn reference_mlp() -> Result<Mlp> {
    let config = MlpConfig {
        dim: 2,
        width: 256,
        depth: 3,
        prediction: Prediction::Eps,
        schedule: "linear".into(),
        training: serde_json::Value::Null,
    };
    Mlp::new(config, 0)
}

/// Medians over `reps` alternating repetitions of (a 50-step f32 DDIM run through
/// [`crate::sampling::Request`], per NFE; 50 forwards of the model on the same pool thread,
/// per forward), and the median of their per-repetition ratios.
fn sample_path_per_nfe(
    mlp: &Mlp,
    schedule: &Schedule,
    x: &crate::Batch,
    reps: usize,
) -> Result<(f64, f64, f64)> {
    let request = crate::sampling::Request {
        solver: Solver::named("ddim")?,
        spacing: Spacing::Trailing,
        steps: Some(50),
        nfe: None,
        grid: GridOptions::default(),
        precision: Precision::F32,
        seed: 0,
    };
    let grid = request.time_grid(schedule, false)?;
    let mut out = vec![0.0; x.data.len()];
    let (mut path, mut forward) = (Vec::new(), Vec::new());
    for rep in 0..=reps {
        let t = Instant::now();
        let samples = request.sample_on(mlp, schedule, grid.clone(), x.clone())?;
        let p = t.elapsed().as_secs_f64() / samples.nfe as f64;
        let t = Instant::now();
        rayon::scope(|_| -> Result<()> {
            for &time in &grid.times()[..50] {
                mlp.eps_into(x, &Level::at(schedule, time), &mut out)?;
            }
            Ok(())
        })?;
        let f = t.elapsed().as_secs_f64() / 50.0;
        // The first repetition warms both up.
        if rep > 0 {
            path.push(p);
            forward.push(f);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratios = path.iter().zip(&forward).map(|(p, f)| p / f).collect();
    Ok((median(path), median(forward), median(ratios)))
}

/// Runs the benchmark and returns the report text.
pub fn report(batch: usize, reps: usize, pytorch_ms: Option<f64>) -> Result<String> {
    let schedule = Schedule::ddpm_linear();
    let mlp = reference_mlp()?;
    let x = crate::noise::draw(batch, 2, 0);
    let mut out = vec![0.0; x.data.len()];
    let level = Level::at(&schedule, 0.5);
    let mlp_s = median_secs(reps, || mlp.eps_into(&x, &level, &mut out))?;
    let fill_s = median_secs(reps, || {
        ZeroModel {
            dim: 2,
            defined_at_clean: false,
        }
        .eps_into(&x, &level, &mut out)
    })?;
    let mut text = format!(
        "reference MLP (2 -> 3 x 256 SiLU -> 2, f32), batch {batch}: {:.2} ms per NFE\n",
        mlp_s * 1e3
    );
    // The sample path on the same network: what `pfode sample --dtype f32` runs per step,
    // timed alternately with the bare forward so both see the same machine.
    let (path_s, forward_s, ratio) =
        sample_path_per_nfe(&mlp, &schedule, &x, reps.div_ceil(5).max(3))?;
    text.push_str(&format!(
        "sample path (ddim, 50 steps, f32): {:.2} ms per NFE against {:.2} ms for the forward alone; median ratio of pairs {:.3}x\n",
        path_s * 1e3,
        forward_s * 1e3,
        ratio
    ));
    if let Some(pt) = pytorch_ms {
        text.push_str(&format!(
            "PyTorch (benches/pytorch_mlp.py): {pt:.2} ms -> pfode / PyTorch = {:.2}x\n",
            mlp_s * 1e3 / pt
        ));
    }
    text.push_str(&format!(
        "{:<20} {:>6} {:>16} {:>14}\n",
        "solver", "nfe", "own cost / NFE", "of MLP call"
    ));
    let grid = TimeGrid::build(
        &schedule,
        &Spacing::Trailing,
        Some(20),
        GridOptions::default(),
    )?;
    for info in SOLVERS {
        let solver = Solver::named(info.name)?;
        let run_once = || -> Result<usize> {
            let model = ZeroModel {
                dim: 2,
                defined_at_clean: false,
            };
            let counted = Counted::new(&model, false);
            let ctx = Ctx::new(&counted, &schedule, &grid, 1);
            solver.integrate(&ctx, x.clone(), Precision::F64)?;
            Ok(counted.nfe())
        };
        let nfe = run_once()?;
        let total = median_secs(reps.min(50), || run_once().map(|_| ()))?;
        let own = (total / nfe as f64 - fill_s).max(0.0);
        text.push_str(&format!(
            "{:<20} {:>6} {:>13.1} µs {:>13.2}%\n",
            info.name,
            nfe,
            own * 1e6,
            100.0 * own / mlp_s
        ));
    }
    Ok(text)
}
