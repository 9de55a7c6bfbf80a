//! The shared options schema: every solver option is one definition that the command line,
//! TOML specs and sidecars all read, so setting it any way gives the same run.

use pfode::experiment::spec::SolverEntry;
use pfode::grid::{GridOptions, Spacing, TimeGrid};
use pfode::model::builtin;
use pfode::schedule::Schedule;
use pfode::solver::options::{self, Kind, Opt, Value};
use pfode::solver::{sample, Given, Solver, SOLVERS};
use std::process::Command;

/// A valid value of `opt` other than its default, as text.
fn other_value(opt: &Opt) -> String {
    match (opt.kind, opt.default) {
        (Kind::Float, Value::Float(0.0)) => "0.5".into(),
        (Kind::Float, Value::Float(d)) if d.is_infinite() => "10".into(),
        (Kind::Float, Value::Float(d)) => format!("{}", d * 2.0),
        (Kind::Bool, Value::Bool(b)) => (!b).to_string(),
        (Kind::Switch, _) => "true".into(),
        (Kind::Choice(names), Value::Choice(d)) => {
            names.iter().find(|n| **n != d).unwrap().to_string()
        }
        (kind, default) => panic!("{}: default {default:?} is not a {kind:?}", opt.name),
    }
}

/// The value as a TOML literal.
fn toml_value(opt: &Opt, text: &str) -> String {
    match opt.kind {
        Kind::Choice(_) => format!("\"{text}\""),
        _ => text.to_string(),
    }
}

#[test]
fn options_with_one_name_have_one_definition() {
    for s in SOLVERS {
        for o in s.options {
            let shared = options::lookup(o.name).unwrap();
            assert_eq!(*o, shared, "{}: option {} is defined twice", s.name, o.name);
            // The default is a value of the option's kind.
            assert!(
                shared.parse(&shared.default.to_string()).is_ok() || shared.kind == Kind::Switch
            );
        }
    }
    let names: Vec<&str> = options::all().iter().map(|o| o.name).collect();
    assert!(names.len() >= 12, "{names:?}");
}

#[test]
fn every_option_set_on_the_command_line_or_in_a_spec_gives_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let schedule = Schedule::ddpm_linear();
    let model = builtin("ring2d").unwrap();
    let noise = dir.path().join("xt.npy");
    let x_t = pfode::noise::draw(40, 2, 3);
    std::fs::write(
        &noise,
        pfode::npy::encode(&[40, 2], &x_t.data, pfode::npy::Dtype::F64),
    )
    .unwrap();
    let mut checked = 0;
    for s in SOLVERS {
        for opt in s.options {
            let text = other_value(opt);
            // On the command line.
            let out = dir.path().join(format!("{}_{}.npy", s.name, opt.name));
            let mut args = vec![
                "sample".to_string(),
                "--model".into(),
                "ring2d".into(),
                "--solver".into(),
                s.name.into(),
                "--noise".into(),
                noise.to_str().unwrap().into(),
                "--seed".into(),
                "5".into(),
                "--out".into(),
                out.to_str().unwrap().into(),
                opt.flag(),
            ];
            if opt.kind != Kind::Switch {
                args.push(text.clone());
            }
            let steps = if s.name == "dopri5" { "1" } else { "8" };
            args.extend(["--steps".into(), steps.into()]);
            let o = Command::new(env!("CARGO_BIN_EXE_pfode"))
                .args(&args)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let cli = pfode::npy::read(&out).unwrap().data;
            let sidecar: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
                    .unwrap();

            // In a spec's [[solvers]] entry.
            let entry: SolverEntry = toml::from_str(&format!(
                "name = \"{}\"\n{} = {}\n",
                s.name,
                opt.name,
                toml_value(opt, &text)
            ))
            .unwrap();
            let mut expected = Given::new();
            expected.set(opt.name, &text).unwrap();
            assert_eq!(entry.options, expected, "{} {}", s.name, opt.name);
            let solver = Solver::build(&entry.name, &entry.options).unwrap();
            let grid = TimeGrid::build(
                &schedule,
                &Spacing::Trailing,
                Some(steps.parse().unwrap()),
                GridOptions::default(),
            )
            .unwrap();
            let (spec, _) = sample(&solver, &model, &schedule, &grid, x_t.clone(), 5).unwrap();
            assert_eq!(
                cli, spec.data,
                "{} {}: command line and spec differ",
                s.name, opt.name
            );

            // The sidecar records the value set, under the option's name.
            let recorded = &sidecar["options"][opt.name];
            assert_eq!(
                opt.from_json(recorded).unwrap(),
                opt.parse(&text).unwrap(),
                "{} {}: sidecar has {recorded}",
                s.name,
                opt.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} solver options checked");
}

#[test]
fn an_option_a_solver_does_not_take_is_refused_naming_who_takes_it() {
    let err = Solver::with("ddim", &[("coords", "t")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'ddim' does not take `coords`") && err.contains("euler"),
        "{err}"
    );
    let err = Given::from_pairs(&[("no_such", "1")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown solver option 'no_such'"), "{err}");
    let err = Given::from_pairs(&[("coords", "x")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("t, sigma, lambda") && err.contains("'x'"),
        "{err}"
    );
    let bad: Result<SolverEntry, _> = toml::from_str("name = \"ddim\"\neta = \"high\"\n");
    assert!(bad.unwrap_err().to_string().contains("eta"));
}

#[test]
fn the_options_label_is_the_given_options_as_sorted_json() {
    let g = Given::from_pairs(&[("rtol", "1e-5"), ("coords", "t")]).unwrap();
    assert_eq!(g.label(), r#"{"coords":"t","rtol":0.00001}"#);
    let g = Given::from_pairs(&[("eta", "1")]).unwrap();
    assert_eq!(g.label(), r#"{"eta":1.0}"#);
    // A switch that is off is not given.
    let g = Given::from_pairs(&[("no_corrector", "false")]).unwrap();
    assert!(g.is_empty());
}
