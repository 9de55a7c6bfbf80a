//! Solver options as data. Each option is defined once, in the file of the solver that
//! takes it (or here, when several do), and that one definition serves every face of
//! pfode: `pfode sample` flags, `[[solvers]]` entries of TOML specs, the `options` of JSON
//! sidecars and of `results.csv`, and keyword arguments from Python.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fmt;

/// What values an option takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A real number.
    Float,
    /// `true` or `false`.
    Bool,
    /// On when given (a flag without value on the command line, `= true` in a spec).
    Switch,
    /// One of these names.
    Choice(&'static [&'static str]),
}

/// An option's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Float(f64),
    Bool(bool),
    /// One of the option's [`Kind::Choice`] names.
    Choice(&'static str),
}

impl Value {
    /// The value as JSON (a non-finite number is written as its name, e.g. `"inf"`).
    pub fn to_json(self) -> serde_json::Value {
        match self {
            Value::Float(v) if v.is_finite() => serde_json::json!(v),
            Value::Float(v) => serde_json::json!(v.to_string()),
            Value::Bool(b) => serde_json::json!(b),
            Value::Choice(c) => serde_json::json!(c),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(v) => write!(f, "{v}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Choice(c) => f.write_str(c),
        }
    }
}

/// One option: its name (snake_case; `--kebab-case` on the command line), what it takes,
/// its default and a one-line description.
#[derive(Debug, PartialEq)]
pub struct Opt {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Value,
    pub doc: &'static str,
}

impl Opt {
    /// The command-line flag, `--name-with-dashes`.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }

    /// Parses a value written as text (a command-line argument, a Python string).
    pub fn parse(&self, text: &str) -> Result<Value> {
        let text = text.trim();
        match self.kind {
            Kind::Float => text
                .parse::<f64>()
                .map(Value::Float)
                .map_err(|_| self.invalid(format!("expected a number, got '{text}'"))),
            Kind::Bool | Kind::Switch => match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(self.invalid(format!("expected true or false, got '{text}'"))),
            },
            Kind::Choice(names) => self.choice(text, names),
        }
    }

    /// Converts a JSON or TOML value (read through serde) of this option.
    pub fn from_json(&self, v: &serde_json::Value) -> Result<Value> {
        match (self.kind, v) {
            (Kind::Float, serde_json::Value::Number(n)) => n
                .as_f64()
                .map(Value::Float)
                .ok_or_else(|| self.invalid(format!("expected a number, got {v}"))),
            // TOML's inf and nan arrive as strings through JSON-shaped values.
            (Kind::Float, serde_json::Value::String(s)) => self.parse(s),
            (Kind::Bool | Kind::Switch, serde_json::Value::Bool(b)) => Ok(Value::Bool(*b)),
            (Kind::Choice(names), serde_json::Value::String(s)) => self.choice(s, names),
            _ => Err(self.invalid(format!("expected {}, got {v}", self.expected()))),
        }
    }

    fn choice(&self, text: &str, names: &'static [&'static str]) -> Result<Value> {
        names
            .iter()
            .find(|n| **n == text)
            .map(|n| Value::Choice(n))
            .ok_or_else(|| self.invalid(format!("expected {}, got '{text}'", self.expected())))
    }

    /// What the option takes, in words.
    pub fn expected(&self) -> String {
        match self.kind {
            Kind::Float => "a number".into(),
            Kind::Bool | Kind::Switch => "true or false".into(),
            Kind::Choice(names) => format!("one of {}", names.join(", ")),
        }
    }

    fn invalid(&self, msg: String) -> Error {
        Error::invalid(self.name, msg)
    }
}

/// Options as a caller gave them, by name; nothing given means every default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Given(BTreeMap<&'static str, Value>);

impl Given {
    /// No options.
    pub fn new() -> Self {
        Given::default()
    }

    /// Sets option `name` (any registered solver's) from text, as the command line does.
    pub fn set(&mut self, name: &str, text: &str) -> Result<()> {
        let opt = lookup(name)?;
        let v = opt.parse(text)?;
        self.insert(opt, v);
        Ok(())
    }

    /// Sets option `name` from a JSON or TOML value, as specs and Python do.
    pub fn set_json(&mut self, name: &str, v: &serde_json::Value) -> Result<()> {
        let opt = lookup(name)?;
        let v = opt.from_json(v)?;
        self.insert(opt, v);
        Ok(())
    }

    /// Sets an option to a value already of its kind.
    pub fn insert(&mut self, opt: &'static Opt, v: Value) {
        // A switch that is off is the same as not given: one meaning, one label.
        if opt.kind == Kind::Switch && v == Value::Bool(false) {
            self.0.remove(opt.name);
        } else {
            self.0.insert(opt.name, v);
        }
    }

    /// Options from `(name, text)` pairs, e.g. `[("coords", "t")]`.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Self> {
        let mut g = Given::new();
        for (k, v) in pairs {
            g.set(k, v)?;
        }
        Ok(g)
    }

    /// The given options, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Value)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }

    /// True when nothing was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The given options as one compact JSON object, keys sorted (the `options` column of
    /// `results.csv`).
    pub fn label(&self) -> String {
        self.to_json().to_string()
    }

    /// The given options as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_json()))
                .collect(),
        )
    }
}

/// Every option of every registered solver, each once, in registry order.
pub fn all() -> Vec<&'static Opt> {
    let mut v: Vec<&'static Opt> = Vec::new();
    for s in super::SOLVERS {
        for o in s.options {
            if !v.iter().any(|p| p.name == o.name) {
                v.push(o);
            }
        }
    }
    v
}

/// The option called `name`.
pub fn lookup(name: &str) -> Result<&'static Opt> {
    let all = all();
    all.iter().copied().find(|o| o.name == name).ok_or_else(|| {
        let names: Vec<_> = all.iter().map(|o| o.name).collect();
        Error::invalid(
            name,
            format!(
                "unknown solver option '{name}' (solver options: {})",
                names.join(", ")
            ),
        )
    })
}

/// A solver's options with defaults filled in: what its `build` reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved(Vec<(&'static Opt, Value)>);

impl Resolved {
    /// `given` over the defaults of `options`; every given option must be among them.
    pub fn new(solver: &str, options: &'static [&'static Opt], given: &Given) -> Result<Self> {
        if let Some((name, _)) = given
            .iter()
            .find(|(n, _)| !options.iter().any(|o| o.name == *n))
        {
            let accepted = if options.is_empty() {
                "no options".to_string()
            } else {
                options
                    .iter()
                    .map(|o| format!("`{}`", o.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let takers: Vec<&str> = super::SOLVERS
                .iter()
                .filter(|s| s.options.iter().any(|o| o.name == name))
                .map(|s| s.name)
                .collect();
            return Err(Error::invalid(
                name,
                format!(
                    "solver '{solver}' does not take `{name}` (it takes {accepted}; `{name}` is for {})",
                    takers.join(", ")
                ),
            ));
        }
        let given: BTreeMap<_, _> = given.iter().collect();
        Ok(Resolved(
            options
                .iter()
                .map(|o| (*o, given.get(o.name).copied().unwrap_or(o.default)))
                .collect(),
        ))
    }

    /// The value of `opt`, if this solver takes it.
    pub fn get(&self, opt: &Opt) -> Option<Value> {
        self.0
            .iter()
            .find(|(o, _)| o.name == opt.name)
            .map(|(_, v)| *v)
    }

    fn value(&self, opt: &Opt) -> Value {
        self.0
            .iter()
            .find(|(o, _)| o.name == opt.name)
            .map_or(opt.default, |(_, v)| *v)
    }

    /// A number option's value.
    pub fn float(&self, opt: &Opt) -> f64 {
        match self.value(opt) {
            Value::Float(v) => v,
            other => unreachable!("option {} holds {other:?}, not a number", opt.name),
        }
    }

    /// A boolean or switch option's value.
    pub fn bool(&self, opt: &Opt) -> bool {
        match self.value(opt) {
            Value::Bool(b) => b,
            other => unreachable!("option {} holds {other:?}, not a boolean", opt.name),
        }
    }

    /// A choice option's value, parsed into its type.
    pub fn choice<T: std::str::FromStr>(&self, opt: &Opt) -> T {
        match self.value(opt) {
            Value::Choice(c) => c
                .parse()
                .unwrap_or_else(|_| unreachable!("choice {c} of {} does not parse", opt.name)),
            other => unreachable!("option {} holds {other:?}, not a choice", opt.name),
        }
    }

    /// Every option with its effective value, as a JSON object (sidecars).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(o, v)| (o.name.to_string(), v.to_json()))
                .collect(),
        )
    }
}

/// Coordinates of a generic integrator (the PF-ODE in t, σ = s/a or λ = log(a/s)).
pub const COORDS: Opt = Opt {
    name: "coords",
    kind: Kind::Choice(crate::flow::Coords::NAMES),
    default: Value::Choice("sigma"),
    doc: "coordinates of the integration: t, sigma (y = x/a in σ = s/a) or lambda",
};

/// Multistep solvers' lower-order last steps.
pub const LOWER_ORDER_FINAL: Opt = Opt {
    name: "lower_order_final",
    kind: Kind::Bool,
    default: Value::Bool(true),
    doc: "lower the order of the last steps when there are fewer than 15",
};

crate::names::named_enum! {
    /// How a multistep method takes its first steps, before its history suffices.
    pub enum WarmStart("warm_start") {
        /// Third-order Runge–Kutta steps until the history suffices: the method keeps its
        /// order, at two extra NFE per such step.
        Rk3 = "rk3",
        /// Lower-order multistep steps: no extra NFE, but a first-order first step caps the
        /// global order at 2.
        Multistep = "multistep",
    }
}

/// A multistep method's first steps.
pub const WARM_START: Opt = Opt {
    name: "warm_start",
    kind: Kind::Choice(WarmStart::NAMES),
    default: Value::Choice("rk3"),
    doc: "first steps of a multistep method: rk3 (Runge–Kutta steps, full order, +2 NFE each) or multistep (lower-order steps, no extra NFE, order ≤ 2)",
};
