//! Per-step cost of each solver beyond its model call, on a 4096 × 16 exact mixture.
//!
//! Criterion times one model call and a 20-step run of each solver. The summary isolates the
//! solver's own cost by running it on a free model (one that only fills its output) and
//! prints it as a fraction of the exact-mixture call (target: ≤ 5 % for the arithmetic),
//! with the cost of drawing Gaussian noise shown separately for stochastic solvers.
//! Subtracting two noisy timings of the real model instead would drown a 5 % effect in the
//! ±5–10 % run-to-run noise of a 2-core machine.

use criterion::{criterion_group, Criterion};
use pfode::flow::Coords;
use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::model::{builtin, Counted, Level, ScoreModel};
use pfode::noise::{self, Purpose};
use pfode::run::draw_noise;
use pfode::schedule::Schedule;
use pfode::solver::{
    Ctx, Ddim, Ddpm, DpmSolver1, Euler, EulerMaruyama, Precision, Solver, Variance,
};
use std::time::Instant;

const STEPS: usize = 20;

fn solvers() -> Vec<(&'static str, Solver)> {
    vec![
        ("ddim", Solver::Ddim(Ddim::new(0.0).unwrap())),
        ("ddim-eta1", Solver::Ddim(Ddim::new(1.0).unwrap())),
        (
            "euler-sigma",
            Solver::Euler(Euler {
                coords: Coords::Sigma,
            }),
        ),
        ("euler-t", Solver::Euler(Euler { coords: Coords::T })),
        (
            "euler-lambda",
            Solver::Euler(Euler {
                coords: Coords::Lambda,
            }),
        ),
        ("dpm-solver-1", Solver::DpmSolver1(DpmSolver1)),
        (
            "ddpm",
            Solver::Ddpm(Ddpm {
                variance: Variance::BetaTilde,
            }),
        ),
        ("euler-maruyama", Solver::EulerMaruyama(EulerMaruyama)),
    ]
}

struct Setup {
    model: pfode::model::GaussianMixture,
    schedule: Schedule,
    grid: TimeGrid,
    x: pfode::Batch,
}

fn setup() -> Setup {
    let schedule = Schedule::ddpm_linear();
    let grid = TimeGrid::build(
        &schedule,
        &Spacing::Trailing,
        Some(STEPS),
        GridOptions::default(),
    )
    .unwrap();
    Setup {
        model: builtin("mix16d").unwrap(),
        schedule,
        grid,
        x: draw_noise(4096, 16, 0),
    }
}

fn model_call(s: &Setup, out: &mut [f64]) {
    let level = Level::at(&s.schedule, 0.5);
    s.model.eps_into(&s.x, &level, out).unwrap();
}

/// A model that costs nothing beyond writing its output.
struct FreeModel;

impl ScoreModel for FreeModel {
    fn dim(&self) -> usize {
        16
    }
    fn describe(&self) -> serde_json::Value {
        serde_json::json!("free")
    }
    fn eps_into(&self, _: &pfode::Batch, _: &Level, out: &mut [f64]) -> pfode::Result<()> {
        out.fill(0.01);
        Ok(())
    }
    // Like the mixture, whose row-wise finiteness check is inside the timed model call.
    fn checks_finite_output(&self) -> bool {
        true
    }
}

fn run(s: &Setup, solver: &Solver) -> pfode::Batch {
    run_with(s, &s.model, solver)
}

fn run_with(s: &Setup, model: &dyn ScoreModel, solver: &Solver) -> pfode::Batch {
    let counted = Counted::new(model, false);
    let ctx = Ctx::new(&counted, &s.schedule, &s.grid, 1);
    solver.run(&ctx, s.x.clone(), Precision::F64).unwrap()
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let mut out = vec![0.0; s.x.data.len()];
    c.bench_function("model_call/mix16d_4096x16", |b| {
        b.iter(|| model_call(&s, &mut out))
    });
    let mut group = c.benchmark_group(format!("solver_{STEPS}_steps"));
    group.sample_size(20);
    for (name, solver) in solvers() {
        group.bench_function(name, |b| b.iter(|| run(&s, &solver)));
    }
    group.finish();
}

fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[reps / 2]
}

fn summary() {
    let s = setup();
    let mut out = vec![0.0; s.x.data.len()];
    let model = median_secs(200, || model_call(&s, &mut out));
    let fill = median_secs(200, || {
        FreeModel
            .eps_into(&s.x, &Level::at(&s.schedule, 0.5), &mut out)
            .unwrap()
    });
    let mut buf = vec![0.0; s.x.data.len()];
    let normals = median_secs(200, || {
        noise::add_scaled_normals(1, Purpose::StepNoise, 0, 1.0, &mut buf)
    });
    println!("\nsolver cost per step beyond the model call (4096 × 16 mixture, K = 8, {STEPS}-step runs)");
    println!("mixture model call: {:.1} µs; one batch of 65 536 normals: {:.1} µs ({:.1} % of a model call)", model * 1e6, normals * 1e6, 100.0 * normals / model);
    // The Brownian tree's cost per step along the same grid.
    let times = s.grid.times().to_vec();
    let tree = median_secs(20, || {
        let mut w = pfode::brownian::BrownianTree::new(1, s.x.data.len(), 0.0, s.schedule.t_max());
        for &t in &times {
            std::hint::black_box(w.value(t).unwrap());
        }
    }) / STEPS as f64;
    println!(
        "{:<16} {:>12} {:>14} {:>20}",
        "solver", "solver (µs)", "of model call", "of which noise (µs)"
    );
    for (name, solver) in solvers() {
        let per_step = median_secs(100, || {
            std::hint::black_box(run_with(&s, &FreeModel, &solver));
        }) / STEPS as f64
            - fill;
        let draws = match name {
            "ddim-eta1" | "ddpm" => format!("{:.1}", normals * 1e6),
            "euler-maruyama" => format!("{:.1} (tree)", tree * 1e6),
            _ => "-".into(),
        };
        println!(
            "{name:<16} {:>12.1} {:>13.1}% {:>20}",
            per_step * 1e6,
            100.0 * per_step / model,
            draws
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
