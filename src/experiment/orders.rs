//! `pfode orders`: observed convergence orders from a results table.

use super::table;
use crate::convergence::fitted_order;
use crate::error::{Error, Result};
use crate::solver::Solver;
use std::collections::BTreeMap;
use std::path::Path;

/// Errors below this are round-off, not discretisation, and are left out of fits.
const FLOOR: f64 = 1e-10;

/// (model, solver, options, spacing): what an order is fitted for.
type Group = (String, String, String, String);

/// One fitted order.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Order {
    pub model: String,
    pub solver: String,
    pub options: String,
    pub spacing: String,
    /// What the error is: `ode` (to the probability-flow ODE's reference) or `strong` (a
    /// stochastic sampler's, to the reference SDE path on its seed's Brownian path).
    pub kind: &'static str,
    pub declared: f64,
    pub observed: f64,
    pub nfe_used: String,
}

/// Fits the order of `error_rms` against NFE on the three largest NFE above the round-off
/// floor, per (model, solver, options, spacing), averaging seeds. Writes `orders.csv`.
///
/// Stochastic samplers whose runs share their seed's Brownian path (Euler–Maruyama on the
/// tree) are fitted too: their `error_rms` is the strong error to the reference SDE path,
/// so theirs is a strong order (`kind` = `strong`). Two kinds of runs are left out
/// ([`left_out`] lists them with the reason): other stochastic samplers, whose noise is
/// fresh at every step count, so no run converges to any one path (sweeps record no error
/// for them; older tables hold their distance to the ODE reference), and runs that clamp
/// x̂₀ (`clip_sample`, `thresholding`), which integrate another field than the
/// probability-flow ODE.
pub fn orders(dir: &Path) -> Result<Vec<Order>> {
    let (rows, _) = table::read(&dir.join("results.csv"))?;
    let mut groups: BTreeMap<Group, BTreeMap<usize, Vec<f64>>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.metric == "error_rms" && r.value.is_finite() && why_left_out(r).is_none())
    {
        groups
            .entry((
                r.model.clone(),
                r.solver.clone(),
                r.options.clone(),
                r.spacing.clone(),
            ))
            .or_default()
            .entry(r.nfe)
            .or_default()
            .push(r.value);
    }
    if groups.is_empty() {
        let left = rows
            .iter()
            .filter(|r| r.metric == "error_rms")
            .find_map(why_left_out);
        let msg = match left {
            Some(why) => format!(
                "nothing to fit: every configuration is left out (e.g. {why}); orders are \
                 fitted to ODE solvers and to samplers on one Brownian path only"
            ),
            None => "no finite error_rms rows to fit".to_string(),
        };
        return Err(Error::file(&dir.join("results.csv"), msg));
    }
    let mut out = Vec::new();
    for ((model, solver, options, spacing), by_nfe) in groups {
        let pts: Vec<(usize, f64)> = by_nfe
            .into_iter()
            .map(|(n, v)| (n, v.iter().sum::<f64>() / v.len() as f64))
            .filter(|p| p.1 > FLOOR)
            .collect();
        let tail = &pts[pts.len().saturating_sub(3)..];
        let observed = if tail.len() >= 2 {
            let (n, e): (Vec<usize>, Vec<f64>) = tail.iter().cloned().unzip();
            fitted_order(&n, &e)
        } else {
            f64::NAN
        };
        let built = given_options(&options).and_then(|given| Solver::build(&solver, &given));
        let declared = built.as_ref().map(|s| s.order()).unwrap_or(f64::NAN);
        let kind = match built {
            Ok(s) if s.is_stochastic() => "strong",
            _ => "ode",
        };
        let nfe_used = tail
            .iter()
            .map(|p| p.0.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        out.push(Order {
            model,
            solver,
            options,
            spacing,
            kind,
            declared,
            observed,
            nfe_used,
        });
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    for o in &out {
        w.serialize(o).expect("serialise");
    }
    crate::io::write_atomic(&dir.join("orders.csv"), &w.into_inner().expect("buffer"))?;
    Ok(out)
}

/// Why [`orders`] does not fit the row's configuration, if it does not (and why its error
/// to the ODE reference is not plotted as a solver's error either).
pub fn why_left_out(r: &table::Row) -> Option<&'static str> {
    let solver = given_options(&r.options)
        .and_then(|given| Solver::build(&r.solver, &given))
        .ok()?;
    if solver.clamps_data() {
        Some("clamps x̂₀, so it is not an ODE solve")
    } else if solver.is_stochastic() && !solver.shares_brownian_path() {
        Some(
            "stochastic with fresh noise at every step count: no run converges to one path, and \
             its distance to the ODE reference is not a convergence error (euler-maruyama with \
             brownian = tree has a strong order)",
        )
    } else {
        None
    }
}

/// The (model, solver, options, spacing) groups of a results folder that [`orders`] leaves
/// out, each with the reason.
pub fn left_out(dir: &Path) -> Result<Vec<(String, &'static str)>> {
    let (rows, _) = table::read(&dir.join("results.csv"))?;
    // Every run has a `diverged` row; sweeps record no error for samplers left out.
    let mut out: Vec<(String, &'static str)> = rows
        .iter()
        .filter(|r| r.metric == "diverged")
        .filter_map(|r| {
            why_left_out(r).map(|why| {
                (
                    format!("{} {} {} {}", r.model, r.solver, r.options, r.spacing),
                    why,
                )
            })
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The options of a `results.csv` label (`{"coords":"t"}`).
fn given_options(label: &str) -> crate::Result<crate::solver::Given> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(label)
        .map_err(|e| crate::Error::invalid("options", format!("'{label}': {e}")))?;
    let mut given = crate::solver::Given::new();
    for (k, v) in &map {
        given.set_json(k, v)?;
    }
    Ok(given)
}
