//! A model needs only its dimension and ε̂: the framework's fast paths (row tiles, row
//! evaluators, the mixture's own finiteness check) change no bit of any solver's output.

use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::model::{builtin, GaussianMixture, Level, ScoreModel};
use pfode::schedule::Schedule;
use pfode::solver::{sample, Solver, SOLVERS};
use pfode::Batch;

/// The exact mixture behind the three required methods only (and its mathematical
/// property of being defined on clean data).
struct Plain(GaussianMixture);

impl ScoreModel for Plain {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn eps_into(&self, x: &Batch, level: &Level, out: &mut [f64]) -> pfode::Result<()> {
        self.0.eps_into(x, level, out)
    }
    fn defined_at_clean(&self) -> bool {
        true
    }
}

#[test]
fn every_solver_gives_the_same_bits_for_a_model_with_only_eps() {
    let exact = builtin("mix16d").unwrap();
    let plain = Plain(exact.clone());
    assert!(plain.rows().is_none() && exact.rows().is_some());
    let s = Schedule::ddpm_linear();
    let x_t = pfode::noise::draw(1024, 16, 9);
    for info in SOLVERS {
        let solver = Solver::named(info.name).unwrap();
        let steps = if solver.is_adaptive() { 1 } else { 6 };
        let grid =
            TimeGrid::build(&s, &Spacing::Trailing, Some(steps), GridOptions::default()).unwrap();
        let (a, nfe_a) = sample(&solver, &exact, &s, &grid, x_t.clone(), 3).unwrap();
        let (b, nfe_b) = sample(&solver, &plain, &s, &grid, x_t.clone(), 3).unwrap();
        assert_eq!(nfe_a, nfe_b, "{}", info.name);
        assert!(
            a.data
                .iter()
                .zip(&b.data)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{}: the plain model's samples differ by {:e}",
            info.name,
            a.max_abs_diff(&b)
        );
    }
    assert_eq!(plain.describe()["kind"], "custom");
}
