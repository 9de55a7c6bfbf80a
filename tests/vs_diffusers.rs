//! At NFE 10 and 20, pfode's best sampler/grid is at least as accurate (RMS error to the
//! DOP853 reference) as the best of diffusers' DDIM, DPM-Solver++(2M) (trailing, Karras)
//! and UniPC, on the same exact models and the same x_T (fixtures made by
//! scripts/make_comparison_fixtures.py).

mod common;

use common::{fixture, matrix};
use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::model::{builtin, GaussianMixture};
use pfode::reference::{solve, Settings};
use pfode::schedule::Schedule;
use pfode::solver::{sample, Solver, SOLVERS};

fn model(name: &str) -> GaussianMixture {
    match name {
        "ring2d" => builtin("ring2d").unwrap(),
        _ => GaussianMixture::from_json(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/mix8d.json"
        )))
        .unwrap(),
    }
}

#[test]
fn best_pfode_sampler_is_at_least_as_accurate_as_best_diffusers_scheduler() {
    let f = fixture("diffusers_solvers.json");
    let schedule = Schedule::ddpm_linear();
    let spacings = [
        Spacing::Trailing,
        Spacing::LogSnr,
        Spacing::Karras,
        Spacing::Uniform,
        Spacing::Quadratic,
    ];
    let mut table = String::new();
    for name in ["ring2d", "mix8d"] {
        let m = model(name);
        let x_t = matrix(&f["noise"][name]);
        let (reference, _) = solve(&m, &schedule, &x_t, 1.0, 0.0, &Settings::default()).unwrap();
        for nfe in [10, 20] {
            let mut theirs: Vec<(String, f64)> = f["runs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["model"] == name && r["nfe"] == nfe)
                .map(|r| {
                    (
                        r["solver"].as_str().unwrap().to_string(),
                        matrix(&r["x0"]).rms_distance(&reference),
                    )
                })
                .collect();
            assert_eq!(theirs.len(), 4);
            let mut ours = Vec::new();
            for info in SOLVERS
                .iter()
                .filter(|s| !s.stochastic && s.name != "dopri5")
            {
                let solver = Solver::named(info.name).unwrap();
                for spacing in &spacings {
                    let steps = solver
                        .steps_for_nfe(&schedule, spacing, GridOptions::default(), nfe, true)
                        .unwrap();
                    let grid =
                        TimeGrid::build(&schedule, spacing, Some(steps), GridOptions::default())
                            .unwrap();
                    let (out, used) =
                        sample(&solver, &m, &schedule, &grid, x_t.clone(), 0).unwrap();
                    assert!(used <= nfe);
                    ours.push((
                        format!("{} / {spacing}", info.name),
                        out.rms_distance(&reference),
                    ));
                }
            }
            theirs.sort_by(|a, b| a.1.total_cmp(&b.1));
            ours.sort_by(|a, b| a.1.total_cmp(&b.1));
            table.push_str(&format!("{name} NFE {nfe}: pfode best {} {:.3e} (next {} {:.3e}); diffusers best {} {:.3e}; diffusers: {}\n",
                ours[0].0, ours[0].1, ours[1].0, ours[1].1, theirs[0].0, theirs[0].1,
                theirs.iter().map(|(n, e)| format!("{n} {e:.3e}")).collect::<Vec<_>>().join(", ")));
            assert!(
                ours[0].1 <= theirs[0].1,
                "{name} NFE {nfe}: pfode {:?} vs diffusers {:?}",
                ours[0],
                theirs[0]
            );
        }
    }
    println!("{table}");
}
