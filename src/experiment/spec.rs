//! Experiment specs (`experiments/*.toml`): what to sweep. Unknown keys are errors that
//! name the key and the file.

use crate::error::{Error, Result};
use crate::grid::FinalSigma;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A sweep: every model × solver × spacing × NFE budget × seed.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Experiment name (the results folder's default name).
    pub name: String,
    /// Models: built-in names or mixture JSON paths.
    pub models: Vec<String>,
    /// Schedule name(s) as for `--schedule` (default `linear`); a list sweeps them.
    #[serde(default = "default_schedule")]
    pub schedule: OneOrMany,
    /// Solvers with their options.
    pub solvers: Vec<SolverSpec>,
    /// Step spacings.
    pub spacings: Vec<String>,
    /// NFE budgets: steps are derived per solver so runs compare at equal NFE.
    pub nfe: Vec<usize>,
    /// Seeds of x_T (and of injected noise).
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Samples per run.
    pub samples: usize,
    /// End of every grid.
    #[serde(default = "default_final_sigma")]
    pub final_sigma: FinalSigma,
    /// Reference tolerances.
    #[serde(default)]
    pub reference: ReferenceSpec,
    /// Metrics to record (default: those of mixtures: error, frechet, sliced_wasserstein,
    /// mmd, kid, nll, mode_coverage).
    #[serde(default = "default_metrics")]
    pub metrics: Vec<String>,
    /// The digits feature classifier (for `digits_fd`, `digits_kid`); default: the
    /// committed one, compiled into pfode.
    #[serde(default)]
    pub classifier: Option<std::path::PathBuf>,
}

/// One solver configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SolverSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coords: Option<crate::flow::Coords>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_order_final: Option<bool>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_corrector: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brownian: Option<crate::solver::Brownian>,
}

/// Tolerances of the cached reference.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSpec {
    pub rtol: f64,
    pub atol: f64,
}

impl Default for ReferenceSpec {
    fn default() -> Self {
        ReferenceSpec {
            rtol: 1e-10,
            atol: 1e-10,
        }
    }
}

/// Every metric the runner knows.
pub const METRICS: &[&str] = &[
    "error",
    "frechet",
    "sliced_wasserstein",
    "mmd",
    "kid",
    "nll",
    "mode_coverage",
    "digits_fd",
    "digits_kid",
];

/// A single value or a list of them.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// All values.
    pub fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

fn default_schedule() -> OneOrMany {
    OneOrMany::One("linear".into())
}
fn default_seeds() -> Vec<u64> {
    vec![0]
}
fn default_final_sigma() -> FinalSigma {
    FinalSigma::Zero
}
/// Metrics computed on the digits classifier's features (digits models only).
pub const DIGITS_METRICS: &[&str] = &["digits_fd", "digits_kid"];

fn default_metrics() -> Vec<String> {
    METRICS
        .iter()
        .filter(|m| !DIGITS_METRICS.contains(m))
        .map(|s| s.to_string())
        .collect()
}

impl Spec {
    /// Reads and validates a spec file.
    pub fn from_file(path: &Path) -> Result<(Spec, String)> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let spec: Spec = toml::from_str(&text).map_err(|e| {
            // One line: where, the offending line itself (it names the key), and why.
            let at = match e.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count();
                    format!(
                        " at line {} (`{}`)",
                        line + 1,
                        text.lines().nth(line).unwrap_or("").trim()
                    )
                }
                None => String::new(),
            };
            Error::file(path, format!("invalid spec{at}: {}", e.message().trim()))
        })?;
        spec.validate()
            .map_err(|e| Error::file(path, e.to_string()))?;
        Ok((spec, text))
    }

    fn validate(&self) -> Result<()> {
        let nonempty = [
            ("models", self.models.is_empty()),
            ("solvers", self.solvers.is_empty()),
            ("spacings", self.spacings.is_empty()),
            ("nfe", self.nfe.is_empty()),
            ("seeds", self.seeds.is_empty()),
        ];
        if let Some((key, _)) = nonempty.iter().find(|(_, empty)| *empty) {
            return Err(Error::invalid(*key, "expected at least one entry"));
        }
        if self.samples < 2 {
            return Err(Error::invalid(
                "samples",
                format!("expected at least 2, got {}", self.samples),
            ));
        }
        if let Some(m) = self.metrics.iter().find(|m| !METRICS.contains(&m.as_str())) {
            return Err(Error::invalid(
                "metrics",
                format!("unknown metric '{m}' (expected {})", METRICS.join(", ")),
            ));
        }
        for (i, s) in self.solvers.iter().enumerate() {
            crate::solver::Solver::build(&s.name, &s.options())
                .map_err(|e| Error::invalid(format!("solvers[{i}]"), e.to_string()))?;
        }
        for sp in &self.spacings {
            sp.parse::<crate::grid::Spacing>()?;
        }
        if self.schedule.values().is_empty() {
            return Err(Error::invalid("schedule", "expected at least one schedule"));
        }
        for name in self.schedule.values() {
            crate::experiment::runner::schedule_named(&name)?;
        }
        if let Some(&n) = self.nfe.iter().find(|&&n| n == 0) {
            return Err(Error::invalid(
                "nfe",
                format!("budgets must be ≥ 1, got {n}"),
            ));
        }
        Ok(())
    }
}

impl SolverSpec {
    /// The solver options this entry sets.
    pub fn options(&self) -> crate::solver::SolverOptions {
        crate::solver::SolverOptions {
            eta: self.eta,
            coords: self.coords,
            lower_order_final: self.lower_order_final,
            no_corrector: self.no_corrector,
            brownian: self.brownian,
            ..Default::default()
        }
    }

    /// Options as compact JSON for the CSV.
    pub fn options_label(&self) -> String {
        let mut v = serde_json::to_value(self).expect("serialisable");
        v.as_object_mut().unwrap().remove("name");
        v.to_string()
    }
}
