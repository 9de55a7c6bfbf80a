//! Experiment specs (`experiments/*.toml`): what to sweep. Unknown keys are errors that
//! name the key and the file.

use crate::error::{Error, Result};
use crate::grid::FinalSigma;
use crate::solver::Given;
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
    /// Solvers with their options. An option given as a list is an axis: the entry stands
    /// for one solver per element (several lists in one entry go together, element by
    /// element, and must have one length), e.g. `rtol = [1e-3, 1e-5]` or `eta = [0, 1]`.
    #[serde(deserialize_with = "expand_entries")]
    pub solvers: Vec<SolverEntry>,
    /// Step spacings.
    pub spacings: Vec<String>,
    /// NFE budgets: steps are derived per solver so runs compare at equal NFE.
    #[serde(default)]
    pub nfe: Vec<usize>,
    /// Step counts instead of NFE budgets (each solver then uses the NFE its steps take).
    #[serde(default)]
    pub steps: Vec<usize>,
    /// Seeds of x_T (and of injected noise).
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Samples per run.
    pub samples: usize,
    /// End of every grid.
    #[serde(default = "default_final_sigma")]
    pub final_sigma: FinalSigma,
    /// Reference tolerances [default: per model, `reference::default_tolerance`].
    #[serde(default)]
    pub reference: Option<ReferenceSpec>,
    /// Metrics to record (default: those of mixtures: error, frechet, sliced_wasserstein,
    /// mmd, kid, nll, mode_coverage).
    #[serde(default = "default_metrics")]
    pub metrics: Vec<String>,
    /// The digits feature classifier (for `digits_fd`, `digits_kid`); default: the
    /// committed one, compiled into pfode.
    #[serde(default)]
    pub classifier: Option<std::path::PathBuf>,
    /// The spec file's folder: model files, grid files and the classifier are read
    /// relative to it (empty for a spec given as text, such as Python's dict: the working
    /// folder).
    #[serde(skip)]
    pub dir: std::path::PathBuf,
}

/// One `[[solvers]]` entry: a solver name and any of its options, keyed as in the shared
/// options schema (`solver::options`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "serde_json::Map<String, serde_json::Value>",
    into = "serde_json::Value"
)]
pub struct SolverEntry {
    pub name: String,
    pub options: Given,
    /// The index of the `[[solvers]]` entry this came from (entries with list-valued
    /// options stand for several solvers), for messages.
    #[serde(skip)]
    pub source: usize,
}

/// Deserialises `[[solvers]]`, expanding list-valued options into one entry per element.
fn expand_entries<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<SolverEntry>, D::Error> {
    use serde::de::Error as _;
    let raw: Vec<serde_json::Map<String, serde_json::Value>> = Vec::deserialize(d)?;
    let mut out = Vec::new();
    for (i, map) in raw.into_iter().enumerate() {
        for m in expand_lists(&map).map_err(|e| D::Error::custom(format!("solvers[{i}]: {e}")))? {
            let mut entry = SolverEntry::try_from(m)
                .map_err(|e| D::Error::custom(format!("solvers[{i}]: {e}")))?;
            entry.source = i;
            out.push(entry);
        }
    }
    Ok(out)
}

/// One map per element of the list-valued keys of `map` (just `map` when none is a list).
fn expand_lists(
    map: &serde_json::Map<String, serde_json::Value>,
) -> std::result::Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
    let lists: Vec<(&String, &Vec<serde_json::Value>)> = map
        .iter()
        .filter_map(|(k, v)| v.as_array().map(|a| (k, a)))
        .collect();
    let Some(&(first, first_list)) = lists.first() else {
        return Ok(vec![map.clone()]);
    };
    if first_list.is_empty() {
        return Err(format!("{first}: expected at least one value in the list"));
    }
    if let Some((k, l)) = lists.iter().find(|(_, l)| l.len() != first_list.len()) {
        return Err(format!(
            "list-valued options go together element by element, so they need one length: \
             {first} has {}, {k} has {}",
            first_list.len(),
            l.len()
        ));
    }
    Ok((0..first_list.len())
        .map(|j| {
            let mut m = map.clone();
            for (k, l) in &lists {
                m.insert((*k).clone(), l[j].clone());
            }
            m
        })
        .collect())
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for SolverEntry {
    type Error = String;
    fn try_from(
        mut m: serde_json::Map<String, serde_json::Value>,
    ) -> std::result::Result<Self, String> {
        let name = match m.remove("name") {
            Some(serde_json::Value::String(n)) => n,
            Some(other) => return Err(format!("name: expected a solver name, got {other}")),
            None => return Err("missing field `name`".into()),
        };
        let mut options = Given::new();
        for (k, v) in &m {
            options.set_json(k, v).map_err(|e| e.to_string())?;
        }
        Ok(SolverEntry {
            name,
            options,
            source: 0,
        })
    }
}

impl From<SolverEntry> for serde_json::Value {
    fn from(e: SolverEntry) -> Self {
        let mut v = e.options.to_json();
        v.as_object_mut()
            .expect("options are an object")
            .insert("name".into(), e.name.into());
        v
    }
}

/// Tolerances of the cached reference.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceSpec {
    pub rtol: f64,
    pub atol: f64,
}

impl ReferenceSpec {
    /// The tolerances for `model`: the spec's, or the model's default (exact models 1e-10,
    /// learned ones 1e-7).
    pub fn for_model(given: Option<ReferenceSpec>, model: &dyn crate::model::ScoreModel) -> Self {
        given.unwrap_or_else(|| {
            let t = crate::reference::default_tolerance(model);
            ReferenceSpec { rtol: t, atol: t }
        })
    }
}

/// Every metric a sweep knows.
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
        let spec = Spec::from_text(path, &text)?;
        Ok((spec, text))
    }

    /// Parses and validates spec `text`; errors name `origin` (its file, or what stands
    /// for one, such as Python's `spec` argument).
    pub fn from_text(origin: &Path, text: &str) -> Result<Spec> {
        let path = origin;
        let spec: Spec = toml::from_str(text).map_err(|e| {
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
        let mut spec = spec;
        spec.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        spec.validate()
            .map_err(|e| Error::file(path, e.to_string()))?;
        Ok(spec)
    }

    fn validate(&self) -> Result<()> {
        let nonempty = [
            ("models", self.models.is_empty()),
            ("solvers", self.solvers.is_empty()),
            ("spacings", self.spacings.is_empty()),
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
        for s in &self.solvers {
            crate::solver::Solver::build(&s.name, &s.options)
                .map_err(|e| Error::invalid(format!("solvers[{}]", s.source), e.to_string()))?;
        }
        for sp in &self.spacings {
            sp.parse::<crate::grid::Spacing>()?;
        }
        if self.schedule.values().is_empty() {
            return Err(Error::invalid("schedule", "expected at least one schedule"));
        }
        for name in self.schedule.values() {
            crate::schedule::Schedule::named(&name)?;
        }
        match (self.nfe.is_empty(), self.steps.is_empty()) {
            (true, true) => {
                return Err(Error::invalid(
                    "nfe",
                    "give NFE budgets (`nfe = [...]`) or step counts (`steps = [...]`)",
                ))
            }
            (false, false) => {
                return Err(Error::invalid("steps", "give `nfe` or `steps`, not both"))
            }
            _ => {}
        }
        for (key, list) in [("nfe", &self.nfe), ("steps", &self.steps)] {
            if let Some(&n) = list.iter().find(|&&n| n == 0) {
                return Err(Error::invalid(key, format!("expected values ≥ 1, got {n}")));
            }
        }
        Ok(())
    }

    /// A path the spec names, relative to the spec's folder (absolute paths as they are).
    pub fn path(&self, p: &Path) -> std::path::PathBuf {
        self.dir.join(p)
    }

    /// A spacing of the spec with its grid file (if any) found relative to the spec's folder.
    pub fn spacing(&self, name: &str) -> Result<crate::grid::Spacing> {
        Ok(match name.parse()? {
            crate::grid::Spacing::File(p) => crate::grid::Spacing::File(self.path(&p)),
            other => other,
        })
    }

    /// The budgets runs are swept over: NFE budgets, or step counts.
    pub fn budgets(&self) -> Vec<Budget> {
        if self.steps.is_empty() {
            self.nfe.iter().map(|&n| Budget::Nfe(n)).collect()
        } else {
            self.steps.iter().map(|&n| Budget::Steps(n)).collect()
        }
    }
}

/// What a run is given: a model-evaluation budget, a number of steps, or (an adaptive
/// solver in an NFE sweep) nothing but its own tolerances, on the whole interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    Nfe(usize),
    Steps(usize),
    Tolerance,
}

impl Budget {
    /// The NFE a run was asked to stay within (the `budget` column), if any.
    pub fn nfe(self) -> Option<usize> {
        match self {
            Budget::Nfe(n) => Some(n),
            _ => None,
        }
    }
}

/// The spacing label of an adaptive solver's runs in an NFE sweep: one span, t_max to the
/// grid's end, with the solver choosing its own steps.
pub const ADAPTIVE: &str = "adaptive";

impl SolverEntry {
    /// Options as compact JSON for the CSV.
    pub fn options_label(&self) -> String {
        self.options.label()
    }
}
