//! Per-evaluation cost of each solver beyond its model calls, on 4096-row batches of the
//! exact mixtures mix16d (16-D) and ring2d (2-D), and the speed of `pfode reference`.
//!
//! Criterion times one model call and a 20-step run of each solver. The summary gives each
//! solver's cost beyond its model calls as a fraction of them (target: ≤ 5 %): a real run
//! against as many whole-batch model calls as its NFE at x_T, and against the run's own
//! calls replayed at the inputs it evaluated (the mixture's cost depends on its input by a
//! few per cent), interleaved so that the ±5–10 % drift of a 2-core machine cancels,
//! median and quartiles over the repetitions, with the number of row tiles the run used
//! (`solver::tiles`; dopri5 tiles each attempted step). Tiled runs
//! can come out below the model calls: their model calls find their rows in cache. Runs and
//! baselines are timed alike on a pool thread (see `main`). The cost
//! of drawing Gaussian noise is shown separately for stochastic solvers, and the memory
//! floor line times one sweep over three state-sized arrays, the least a separate
//! whole-batch update costs. Then
//! it times `pfode reference` on 10 000 ring2d samples
//! against scipy's per-sample DOP853 (time recorded in tests/fixtures/scipy_reference.json).

use criterion::{criterion_group, Criterion};
use pfode::flow::Coords;
use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::model::{builtin, Counted, GaussianMixture, Level, ScoreModel};
use pfode::noise::draw as draw_noise;
use pfode::noise::{self, Purpose};
use pfode::reference::{self, Mode, Settings};
use pfode::schedule::Schedule;
use pfode::solver::{Ctx, Given, Precision, Solver, SOLVERS};
use std::sync::Mutex;
use std::time::Instant;

const STEPS: usize = 20;

/// Every registered solver with default options, plus the variants worth separating.
fn solvers() -> Vec<(String, Solver)> {
    let mut v: Vec<(String, Solver)> = SOLVERS
        .iter()
        .map(|s| (s.name.to_string(), Solver::named(s.name).unwrap()))
        .collect();
    v.push((
        "ddim --eta 1".into(),
        Solver::with("ddim", &[("eta", "1.0")]).unwrap(),
    ));
    let churn = Given::from_pairs(&[("s_churn", "1.0")]).unwrap();
    v.push((
        "heun --s-churn 1".into(),
        Solver::build("heun", &churn).unwrap(),
    ));
    v.push((
        "euler-maruyama --brownian tree".into(),
        Solver::with("euler-maruyama", &[("brownian", "tree")]).unwrap(),
    ));
    for coords in [Coords::T, Coords::Lambda] {
        let o = Given::from_pairs(&[("coords", coords.as_str())]).unwrap();
        v.push((
            format!("euler --coords {coords}"),
            Solver::build("euler", &o).unwrap(),
        ));
        v.push((
            format!("heun --coords {coords}"),
            Solver::build("heun", &o).unwrap(),
        ));
    }
    v
}

struct Setup {
    name: &'static str,
    model: GaussianMixture,
    schedule: Schedule,
    grid: TimeGrid,
    x: pfode::Batch,
}

/// The 4096-row batch of a built-in mixture: `mix16d` (the target's case) or `ring2d`.
fn setup(name: &'static str) -> Setup {
    let schedule = Schedule::ddpm_linear();
    let grid = TimeGrid::build(
        &schedule,
        &Spacing::Trailing,
        Some(STEPS),
        GridOptions::default(),
    )
    .unwrap();
    let model = builtin(name).unwrap();
    Setup {
        name,
        x: draw_noise(4096, model.dim(), 0),
        model,
        schedule,
        grid,
    }
}

fn model_call(s: &Setup, out: &mut [f64]) {
    let level = Level::at(&s.schedule, 0.5);
    s.model.eps_into(&s.x, &level, out).unwrap();
}

/// Runs the solver; returns the output and its NFE.
fn run_with(s: &Setup, model: &dyn ScoreModel, solver: &Solver) -> (pfode::Batch, usize) {
    let counted = Counted::new(model, false);
    let ctx = Ctx::new(&counted, &s.schedule, &s.grid, 1);
    let out = solver.integrate(&ctx, s.x.clone(), Precision::F64).unwrap();
    (out, counted.nfe())
}

fn bench(c: &mut Criterion) {
    let s = setup("mix16d");
    let mut out = vec![0.0; s.x.data.len()];
    c.bench_function("model_call/mix16d_4096x16", |b| {
        b.iter(|| model_call(&s, &mut out))
    });
    let mut group = c.benchmark_group(format!("solver_{STEPS}_steps"));
    group.sample_size(10);
    for (name, solver) in solvers() {
        group.bench_function(name.as_str(), |b| {
            b.iter(|| run_with(&s, &s.model, &solver))
        });
    }
    group.finish();
}

fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    pfode::bench::median_secs(reps, || {
        f();
        Ok(())
    })
    .unwrap()
}

/// Median and quartiles of an overhead, in per cent.
fn show([q1, median, q3]: [f64; 3]) -> String {
    format!(
        "{:+.1}% ({:+.1} … {:+.1})",
        100.0 * median,
        100.0 * q1,
        100.0 * q3
    )
}

/// Quartiles of `v`.
fn quartiles(mut v: Vec<f64>) -> [f64; 3] {
    v.sort_by(f64::total_cmp);
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    [q(0.25), q(0.5), q(0.75)]
}

/// The mixture, recording every call's input and level: a whole-batch run through it
/// makes the same calls (at the same inputs) as the tiled run (tiled ≡ whole, bit for bit).
struct Recorder<'a> {
    inner: &'a GaussianMixture,
    calls: Mutex<Vec<(pfode::Batch, Level)>>,
}

impl ScoreModel for Recorder<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn describe(&self) -> serde_json::Value {
        self.inner.describe()
    }
    fn eps_into(
        &self,
        x: &pfode::Batch,
        level: &Level,
        out: &mut [f64],
    ) -> pfode::error::Result<()> {
        self.calls.lock().unwrap().push((x.clone(), *level));
        self.inner.eps_into(x, level, out)
    }
    fn defined_at_clean(&self) -> bool {
        self.inner.defined_at_clean()
    }
}

/// The inputs of every model call a run of `solver` makes.
fn own_calls(s: &Setup, solver: &Solver) -> Vec<(pfode::Batch, Level)> {
    let recorder = Recorder {
        inner: &s.model,
        calls: Mutex::new(Vec::new()),
    };
    run_with(s, &recorder, solver);
    recorder.calls.into_inner().unwrap()
}

/// A solver's cost beyond its model calls, as quartiles of `run / model_calls - 1` over
/// repetitions, against two baselines timed right after each run, so that the machine's
/// drift (±5–10 % between minutes on 2 cores) cancels in each ratio: as many whole-batch
/// calls at x_T (t = 0.5) as its NFE, and the run's own calls replayed (whole batch, at the
/// inputs and levels the run evaluated: the mixture's cost moves with its input by a few
/// per cent, e.g. 359–365 µs at x_T against 369–386 µs at the samples). Both count the cache
/// gain of row tiles as the run's.
fn overhead(s: &Setup, solver: &Solver, out: &mut [f64]) -> (usize, [f64; 3], [f64; 3]) {
    let nfe = run_with(s, &s.model, solver).1;
    let calls = own_calls(s, solver);
    assert_eq!(calls.len(), nfe, "every call recorded");
    let once = median_secs(3, || {
        std::hint::black_box(run_with(s, &s.model, solver));
    });
    let reps = ((1.5 / (3.0 * once)) as usize).clamp(9, 41);
    let (fixed, own): (Vec<f64>, Vec<f64>) = (0..reps)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(run_with(s, &s.model, solver));
            let run = start.elapsed().as_secs_f64();
            let start = Instant::now();
            for _ in 0..nfe {
                model_call(s, out);
            }
            let fixed = start.elapsed().as_secs_f64();
            let start = Instant::now();
            for (x, level) in &calls {
                s.model.eps_into(x, level, out).unwrap();
            }
            let own = start.elapsed().as_secs_f64();
            (run / fixed - 1.0, run / own - 1.0)
        })
        .unzip();
    (nfe, quartiles(fixed), quartiles(own))
}

fn summary(s: &Setup) {
    let mut out = vec![0.0; s.x.data.len()];
    let model = median_secs(200, || model_call(s, &mut out));
    // The memory floor: one sweep z = a + b·c over the state (three arrays touched).
    let (a, b) = (s.x.data.clone(), s.x.data.clone());
    let mut z = vec![0.0; a.len()];
    let triad = median_secs(200, || {
        z.iter_mut()
            .zip(a.iter().zip(&b))
            .for_each(|(z, (a, b))| *z += a + 0.5 * b);
        std::hint::black_box(&z);
    });
    let mut buf = vec![0.0; s.x.data.len()];
    let normals = median_secs(200, || {
        noise::add_scaled_normals(1, Purpose::StepNoise, 0, 1.0, &mut buf)
    });
    // The tree as Euler–Maruyama queries it, on its clock.
    let clock = pfode::solver::TreeClock::new(&s.schedule);
    let steps: Vec<f64> = s.grid.times().iter().map(|&t| clock.at(t)).collect();
    let tree = median_secs(20, || {
        let mut w = pfode::brownian::BrownianTree::new(1, s.x.data.len(), 0.0, clock.span);
        for &u in &steps {
            std::hint::black_box(w.value(u).unwrap());
        }
    }) / STEPS as f64;
    let len = s.x.data.len();
    println!(
        "\nsolver cost beyond the model calls ({}: 4096 × {}, K = {}, {STEPS}-step trailing runs; target ≤ 5 %)",
        s.name,
        s.model.dim(),
        s.model.components()
    );
    println!(
        "mixture model call (whole batch): {:.1} µs; one batch of {len} normals: {:.1} µs ({:.1} % of a model call); Brownian tree per step: {:.1} µs",
        model * 1e6,
        normals * 1e6,
        100.0 * normals / model,
        tree * 1e6
    );
    println!(
        "memory floor of a separate update: one sweep touching three {len}-element arrays {:.1} µs ({:.1} % of a model call)",
        triad * 1e6,
        100.0 * triad / model
    );
    println!(
        "{:<30} {:>5} {:>6} {:>29} {:>29} {:>24}",
        "solver", "nfe", "tiles", "vs calls at x_T", "vs its own calls", "noise draws / NFE (µs)"
    );
    for (name, solver) in solvers() {
        let (nfe, fixed, own) = overhead(s, &solver, &mut out);
        let counted = Counted::new(&s.model, false);
        let ctx = Ctx::new(&counted, &s.schedule, &s.grid, 1);
        let tiles = match pfode::solver::tiles::rows_for(&solver, &ctx, &s.x) {
            Some(rows) => format!("{}", s.x.n.div_ceil(rows)),
            None if solver.is_adaptive() => "steps".into(),
            None => "-".into(),
        };
        let draws = if name.ends_with("--brownian tree") {
            format!("{:.1} (tree)", tree * STEPS as f64 / nfe as f64 * 1e6)
        } else if solver.is_stochastic() {
            format!("{:.1}", normals * STEPS as f64 / nfe as f64 * 1e6)
        } else {
            "-".into()
        };
        println!(
            "{name:<30} {nfe:>5} {tiles:>6} {:>29} {:>29} {draws:>24}",
            show(fixed),
            show(own)
        );
    }
    println!(
        "(--brownian tree is Euler–Maruyama's other noise source, not another sampler: each step \
         descends the tree from the previous query's common ancestor, ≈ 1 + log₂(spacing in \
         training steps) node arrays of normals against one for per-step increments)"
    );
}

/// `pfode reference` on 10 000 ring2d samples at rtol = atol = 1e-10, in both modes.
fn reference_summary() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/scipy_reference.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let scipy = fixture["seconds_per_sample_512"].as_f64().unwrap();
    let schedule = Schedule::ddpm_linear();
    let model = builtin("ring2d").unwrap();
    let x = draw_noise(10_000, 2, 0);
    println!(
        "\npfode reference, ring2d, 10 000 samples, rtol = atol = 1e-10 (scipy solve_ivp DOP853: {:.2} ms per sample)",
        scipy * 1e3
    );
    for mode in [Mode::Batch, Mode::PerSample] {
        let settings = Settings {
            rtol: 1e-10,
            atol: 1e-10,
            mode,
            progress: false,
        };
        let wall = median_secs(3, || {
            std::hint::black_box(
                reference::solve(&model, &schedule, &x, 1.0, 0.0, &settings).unwrap(),
            );
        });
        let per = wall / 10_000.0;
        println!(
            "{mode:?}: {wall:.2} s, {:.1} µs per sample, {:.0}× faster than scipy per sample",
            per * 1e6,
            scipy / per
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    // As the pfode binary does: freed buffers stay in the heap instead of being unmapped.
    pfode::io::keep_freed_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Every figure below is timed on a pool thread, where `Solver::integrate` runs: a model call
    // made from outside the pool also pays for waking its caller (4–8 % of a mix16d call),
    // which would count as the runs' gain.
    rayon::scope(|_| {
        summary(&setup("mix16d"));
        summary(&setup("ring2d"));
        reference_summary();
    });
}
