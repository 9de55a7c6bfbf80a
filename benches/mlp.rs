//! The reference MLP per NFE (batch 4096, D = 2, f32, the network `benches/pytorch_mlp.py`
//! times in PyTorch) under criterion, then `pfode bench`'s table: each solver's own cost
//! per model evaluation as a fraction of the MLP call (target ≤ 2 %).
//! Run: `cargo bench --bench mlp` (add a filter that matches nothing to print only the table).

use criterion::{criterion_group, Criterion};
use pfode::model::{Level, ScoreModel};
use pfode::schedule::Schedule;

fn bench(c: &mut Criterion) {
    let mlp = pfode::bench::reference_mlp().unwrap();
    let x = pfode::noise::draw(4096, 2, 0);
    let level = Level::at(&Schedule::ddpm_linear(), 0.5);
    let mut out = vec![0.0; x.data.len()];
    c.bench_function("mlp forward, batch 4096, D = 2", |b| {
        b.iter(|| mlp.eps_into(&x, &level, &mut out).unwrap())
    });
}

criterion_group!(benches, bench);

fn main() {
    pfode::io::keep_freed_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
    println!("\n{}", pfode::bench::report(4096, 50, None).unwrap());
}
