//! Models from Python: a callable `fn(x, time) -> array` seen by pfode's solvers as a
//! [`ScoreModel`], and the built-in models behind the same `pfode.Model` class.
//!
//! Conventions (docs/python.md):
//! * `prediction`: what the callable returns — the noise ε̂, the data x̂₀, or the velocity
//!   v̂ = a ε̂ − s x̂₀ (Salimans & Ho 2022). pfode converts to ε̂ with a and s at that time.
//! * `time`: what it is given — `"index"`, diffusers' training index `t·T − 1` (fractional
//!   between training steps) of a discrete schedule; `"t"`, pfode's continuous time in
//!   [0, 1]; `"sigma"`, the k-diffusion/EDM noise level σ = s/a, with x given in those
//!   coordinates too, x/a = x₀ + σ ε (the model applies its own input scaling c_in).

use crate::convert::float_dtype;
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pfode::batch::Batch;
use pfode::model::{Level, ScoreModel};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the callable returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Prediction {
    Eps,
    X0,
    V,
}

/// What time the callable is given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeInput {
    Index,
    T,
    Sigma,
}

impl Prediction {
    fn parse(s: &str) -> PyResult<Self> {
        match s {
            "eps" | "epsilon" => Ok(Prediction::Eps),
            "x0" | "sample" => Ok(Prediction::X0),
            "v" | "v_prediction" => Ok(Prediction::V),
            _ => Err(PyValueError::new_err(format!(
                "prediction: expected 'eps', 'x0' or 'v', got '{s}'"
            ))),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Prediction::Eps => "eps",
            Prediction::X0 => "x0",
            Prediction::V => "v",
        }
    }
}

impl TimeInput {
    fn parse(s: &str) -> PyResult<Self> {
        match s {
            "index" => Ok(TimeInput::Index),
            "t" => Ok(TimeInput::T),
            "sigma" => Ok(TimeInput::Sigma),
            _ => Err(PyValueError::new_err(format!(
                "time: expected 'index', 't' or 'sigma', got '{s}'"
            ))),
        }
    }
    fn name(self) -> &'static str {
        match self {
            TimeInput::Index => "index",
            TimeInput::T => "t",
            TimeInput::Sigma => "sigma",
        }
    }
}

/// A Python callable and how to call it.
pub struct CallbackSpec {
    pub func: Py<PyAny>,
    pub repr: String,
    pub prediction: Prediction,
    pub time: TimeInput,
    pub f32: bool,
    pub time_array: bool,
    pub shape: Option<Vec<usize>>,
    pub defined_at_clean: bool,
}

pub enum Inner {
    Callback(CallbackSpec),
    Native {
        model: Arc<dyn ScoreModel>,
        name: String,
    },
}

/// A score model for pfode: a Python callable `fn(x, time) -> array`, or a built-in model.
///
/// `Model(fn, prediction="eps", time="t", dtype="float64", shape=None, data=None,
/// time_array=False)`; `Model.builtin(name)`; `Model.load(path)`.
#[pyclass(name = "Model", module = "pfode", frozen)]
pub struct PyModel {
    pub inner: Inner,
    /// The data the model learned, if known: a mixture name or JSON file, or a procedural
    /// data set name (what a sweep's distribution metrics compare against).
    pub data: Option<String>,
}

#[pymethods]
impl PyModel {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (func, prediction="eps", time="t", dtype=None, shape=None, data=None, time_array=false, defined_at_clean=false))]
    fn new(
        py: Python<'_>,
        func: Py<PyAny>,
        prediction: &str,
        time: &str,
        dtype: Option<&Bound<'_, PyAny>>,
        shape: Option<Vec<i64>>,
        data: Option<String>,
        time_array: bool,
        defined_at_clean: bool,
    ) -> PyResult<Self> {
        if !func.bind(py).is_callable() {
            return Err(PyTypeError::new_err(format!(
                "func: expected a callable fn(x, time) -> array, got {}",
                func.bind(py).get_type().name()?
            )));
        }
        let f32 = match dtype {
            None => false,
            Some(d) => float_dtype(py, d, "dtype")?,
        };
        let shape = shape
            .map(|s| {
                if s.is_empty() || s.iter().any(|&v| v < 1) {
                    Err(PyValueError::new_err(format!(
                        "shape: expected the shape of one sample, positive sizes such as (2,) or (3, 32, 32), got {s:?}"
                    )))
                } else {
                    Ok(s.into_iter().map(|v| v as usize).collect())
                }
            })
            .transpose()?;
        let repr = func.bind(py).repr()?.to_string();
        Ok(PyModel {
            inner: Inner::Callback(CallbackSpec {
                func,
                repr,
                prediction: Prediction::parse(prediction)?,
                time: TimeInput::parse(time)?,
                f32,
                time_array,
                shape,
                defined_at_clean,
            }),
            data,
        })
    }

    /// A built-in model by name (`ring2d`, `mix16d`, … as `pfode solvers`' models list).
    #[staticmethod]
    fn builtin(name: &str) -> PyResult<Self> {
        let m = pfode::model::builtin(name).ok_or_else(|| {
            PyValueError::new_err(format!(
                "name: unknown built-in model '{name}' (expected one of {})",
                pfode::model::BUILTINS.join(", ")
            ))
        })?;
        Ok(PyModel {
            inner: Inner::Native {
                model: Arc::new(m),
                name: name.to_string(),
            },
            data: Some(name.to_string()),
        })
    }

    /// A model from a file: a mixture JSON, or a learned `.safetensors` checkpoint (with
    /// its `.json`).
    #[staticmethod]
    fn load(path: std::path::PathBuf) -> PyResult<Self> {
        let spec = path.display().to_string();
        if spec.ends_with(".safetensors") {
            let mlp = pfode::model::mlp::Mlp::load(&path).map_err(crate::convert::to_py)?;
            let data = mlp.config.training["data"].as_str().map(String::from);
            return Ok(PyModel {
                inner: Inner::Native {
                    model: Arc::new(mlp),
                    name: spec,
                },
                data,
            });
        }
        if !path.exists() {
            return Err(pyo3::exceptions::PyFileNotFoundError::new_err(format!(
                "path: {spec}: no such file (expected a mixture .json or a .safetensors checkpoint)"
            )));
        }
        let m = pfode::model::resolve(&spec).map_err(crate::convert::to_py)?;
        Ok(PyModel {
            inner: Inner::Native {
                model: Arc::new(m),
                name: spec.clone(),
            },
            data: Some(spec),
        })
    }

    /// The shape of one sample, where known (`None` for a callable given no `shape`).
    #[getter]
    fn shape(&self) -> Option<Vec<usize>> {
        self.shape_known()
    }

    /// What the model is, as the sidecar records it.
    fn describe(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::convert::json_to_py(py, &self.description())
    }

    fn __repr__(&self) -> String {
        match &self.inner {
            Inner::Callback(c) => format!(
                "pfode.Model({}, prediction='{}', time='{}', dtype='{}')",
                c.repr,
                c.prediction.name(),
                c.time.name(),
                if c.f32 { "float32" } else { "float64" }
            ),
            Inner::Native { name, .. } => format!("pfode.Model.builtin('{name}')"),
        }
    }
}

impl PyModel {
    /// One sample's shape where known: a built-in model's `(dim,)`, a callable's `shape`.
    pub fn shape_known(&self) -> Option<Vec<usize>> {
        match &self.inner {
            Inner::Callback(c) => c.shape.clone(),
            Inner::Native { model, .. } => Some(vec![model.dim()]),
        }
    }

    pub fn description(&self) -> serde_json::Value {
        match &self.inner {
            Inner::Callback(c) => serde_json::json!({
                "kind": "python",
                "callable": c.repr,
                "prediction": c.prediction.name(),
                "time": c.time.name(),
                "dtype": if c.f32 { "float32" } else { "float64" },
                "shape": c.shape,
                "data": self.data,
            }),
            Inner::Native { model, .. } => model.describe(),
        }
    }

    /// The model a run uses on samples of shape `sample_shape`: the built-in model itself,
    /// or the callable adapted (with the schedule's training steps for `time="index"`, and
    /// the run's grid to say at which step a failure happened).
    pub fn for_run(
        &self,
        py: Python<'_>,
        sample_shape: &[usize],
        num_train_timesteps: Option<usize>,
        grid: Option<Vec<f64>>,
    ) -> PyResult<Runnable> {
        match &self.inner {
            Inner::Native { model, .. } => {
                if sample_shape != [model.dim()] {
                    return Err(PyValueError::new_err(format!(
                        "x_T: expected shape (N, {}) for this model, got samples of shape {sample_shape:?}",
                        model.dim()
                    )));
                }
                Ok(Runnable::Native(model.clone()))
            }
            Inner::Callback(c) => {
                if let Some(s) = &c.shape {
                    if s.as_slice() != sample_shape {
                        return Err(PyValueError::new_err(format!(
                            "x_T: the model was declared with shape={s:?} per sample, got samples of shape {sample_shape:?}"
                        )));
                    }
                }
                if c.time == TimeInput::Index && num_train_timesteps.is_none() {
                    return Err(PyValueError::new_err(
                        "time: 'index' is the training index of a discrete schedule; this \
                         schedule is continuous: declare the model with time='t' or 'sigma'",
                    ));
                }
                Ok(Runnable::Callback(Arc::new(Callback {
                    func: c.func.clone_ref(py),
                    description: self.description(),
                    prediction: c.prediction,
                    time: c.time,
                    f32: c.f32,
                    time_array: c.time_array,
                    defined_at_clean: c.defined_at_clean,
                    shape: sample_shape.to_vec(),
                    num_train_timesteps: num_train_timesteps.unwrap_or(0),
                    grid,
                    calls: AtomicUsize::new(0),
                    error: Mutex::new(None),
                    nonfinite: Mutex::new(None),
                })))
            }
        }
    }
}

/// A model ready to run.
pub enum Runnable {
    Native(Arc<dyn ScoreModel>),
    Callback(Arc<Callback>),
}

impl Runnable {
    pub fn model(&self) -> Arc<dyn ScoreModel> {
        match self {
            Runnable::Native(m) => m.clone(),
            Runnable::Callback(c) => c.clone(),
        }
    }

    /// The exception the callable raised, if it did (to chain as the cause).
    pub fn take_error(&self) -> Option<PyErr> {
        match self {
            Runnable::Native(_) => None,
            Runnable::Callback(c) => {
                let raised = c.error.lock().unwrap_or_else(|e| e.into_inner()).take();
                raised.or_else(|| c.nonfinite.lock().unwrap_or_else(|e| e.into_inner()).take())
            }
        }
    }
}

/// A Python callable as a [`ScoreModel`]. Each call attaches to the interpreter; the run
/// around it is detached, so pure-Rust work never holds the GIL.
pub struct Callback {
    func: Py<PyAny>,
    description: serde_json::Value,
    prediction: Prediction,
    time: TimeInput,
    f32: bool,
    time_array: bool,
    defined_at_clean: bool,
    shape: Vec<usize>,
    num_train_timesteps: usize,
    grid: Option<Vec<f64>>,
    calls: AtomicUsize,
    /// The exception the callable raised (or KeyboardInterrupt), kept for the binding.
    error: Mutex<Option<PyErr>>,
    /// The first non-finite output, as the ModelError a single run raises (kept apart from
    /// `error`: in a sweep it is a diverged row, not the failure to report).
    nonfinite: Mutex<Option<PyErr>>,
}

impl Callback {
    /// Where in the run a call at `t` is: "step k of K (t = …, index = …, NFE n)".
    fn at(&self, level: &Level, time_value: f64, nfe: usize) -> String {
        let step = match &self.grid {
            Some(times) if times.len() >= 2 => {
                let k = times.len() - 1;
                let i = times.iter().rposition(|&g| g >= level.t).unwrap_or(0);
                format!("step {} of {k}", (i + 1).min(k))
            }
            _ => "a call".to_string(),
        };
        match self.time {
            TimeInput::T => format!("{step} (t = {}, NFE {nfe})", level.t),
            _ => format!(
                "{step} (t = {}, {} = {time_value}, NFE {nfe})",
                level.t,
                self.time.name()
            ),
        }
    }

    fn time_value(&self, level: &Level) -> f64 {
        match self.time {
            TimeInput::Index => level.t * self.num_train_timesteps as f64 - 1.0,
            TimeInput::T => level.t,
            TimeInput::Sigma => level.sigma / level.alpha,
        }
    }

    /// One call: builds the arguments, calls, checks and converts the output into ε̂.
    fn call(
        &self,
        py: Python<'_>,
        x: &Batch,
        level: &Level,
        tv: f64,
        out: &mut [f64],
    ) -> Result<(), Failure> {
        let full: Vec<usize> = std::iter::once(x.n)
            .chain(self.shape.iter().copied())
            .collect();
        let py_err = |e: PyErr| Failure::Bad("raised".to_string(), Some(e));
        let scale = if self.time == TimeInput::Sigma {
            1.0 / level.alpha
        } else {
            1.0
        };
        let arg_x: Bound<'_, PyAny> = if self.f32 {
            let v: Vec<f32> = x.data.iter().map(|&v| (v * scale) as f32).collect();
            PyArray1::from_vec(py, v)
                .reshape(full.clone())
                .map_err(py_err)?
                .into_any()
        } else {
            let v: Vec<f64> = if scale == 1.0 {
                x.data.clone()
            } else {
                x.data.iter().map(|&v| v * scale).collect()
            };
            PyArray1::from_vec(py, v)
                .reshape(full.clone())
                .map_err(py_err)?
                .into_any()
        };
        let arg_t: Bound<'_, PyAny> = match (self.time_array, self.f32) {
            (false, _) => pyo3::types::PyFloat::new(py, tv).into_any(),
            (true, false) => PyArray1::from_vec(py, vec![tv; x.n]).into_any(),
            (true, true) => PyArray1::from_vec(py, vec![tv as f32; x.n]).into_any(),
        };
        let args = PyTuple::new(py, [arg_x, arg_t]).map_err(py_err)?;
        let result = self.func.bind(py).call(args, None::<&Bound<'_, PyDict>>);
        // Ctrl-C while the callable ran arrives as its exception; during pfode's own work, here.
        let result = result.and_then(|r| py.check_signals().map(|_| r));
        let result = result.map_err(py_err)?;
        let arr = as_f64_array(py, &result).map_err(|m| Failure::Bad(m, None))?;
        if arr.shape() != full.as_slice() {
            return Err(Failure::Bad(
                format!(
                    "returned an array of shape {:?}, expected {:?} (the shape of x)",
                    arr.shape(),
                    full
                ),
                None,
            ));
        }
        let ro = arr.readonly();
        let view = ro.as_array();
        for ((o, &p), &xv) in out.iter_mut().zip(view.iter()).zip(&x.data) {
            *o = match self.prediction {
                Prediction::Eps => p,
                Prediction::X0 => (xv - level.alpha * p) / level.sigma,
                Prediction::V => level.sigma * xv + level.alpha * p,
            };
        }
        if let Some(i) = view.iter().position(|v| !v.is_finite()) {
            let d: usize = self.shape.iter().product();
            let value = view.iter().nth(i).copied().unwrap_or(f64::NAN);
            return Err(Failure::NonFinite {
                row: i / d,
                col: i % d,
                value,
            });
        }
        Ok(())
    }
}

/// How a call failed.
enum Failure {
    /// It raised, or returned something unusable (what, and the exception if any).
    Bad(String, Option<PyErr>),
    /// It returned NaN or ±∞ at this element.
    NonFinite { row: usize, col: usize, value: f64 },
}

/// The callable's result as a float64 array: a NumPy array as is, or anything NumPy can
/// turn into a floating-point array (a CPU tensor, a list).
fn as_f64_array<'py>(
    py: Python<'py>,
    result: &Bound<'py, PyAny>,
) -> Result<Bound<'py, PyArrayDyn<f64>>, String> {
    if let Ok(a) = result.cast::<PyArrayDyn<f64>>() {
        return Ok(a.clone());
    }
    let type_name = result
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    let np = py.import("numpy").map_err(|e| e.to_string())?;
    let a = np.call_method1("asarray", (result,)).map_err(|_| {
        format!("returned a {type_name}, expected an array of floating-point numbers")
    })?;
    let kind: String = a
        .getattr("dtype")
        .and_then(|d| d.getattr("kind"))
        .and_then(|k| k.extract())
        .map_err(|e| e.to_string())?;
    if kind != "f" {
        let dtype = a
            .getattr("dtype")
            .and_then(|d| d.str())
            .map(|s| s.to_string())
            .unwrap_or_default();
        return Err(format!(
            "returned a {type_name} of dtype {dtype}, expected floating point (float16/32/64)"
        ));
    }
    a.call_method1("astype", ("float64",))
        .map_err(|e| e.to_string())?
        .cast_into::<PyArrayDyn<f64>>()
        .map_err(|e| e.to_string())
}

impl ScoreModel for Callback {
    fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    fn describe(&self) -> serde_json::Value {
        self.description.clone()
    }

    fn defined_at_clean(&self) -> bool {
        self.defined_at_clean
    }

    fn thread_bound(&self) -> bool {
        true
    }

    fn eps_into(&self, x: &Batch, level: &Level, out: &mut [f64]) -> pfode::Result<()> {
        let nfe = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let tv = self.time_value(level);
        let called = Python::attach(|py| self.call(py, x, level, tv, out));
        // A NaN or infinity is the run's divergence, as from a built-in model (a sweep
        // records it as a diverged row); the message that says where is kept for a single
        // run, which raises it as a ModelError.
        let called = match called {
            Err(Failure::NonFinite { row, col, value }) => {
                let msg = format!(
                    "the model returned {value} (sample {row}, element {col}) at {}",
                    self.at(level, tv, nfe)
                );
                let err = Python::attach(|_| crate::convert::ModelError::new_err(msg));
                // The first failure is the one to report (a solve may call on after it).
                self.nonfinite
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(err);
                return Err(pfode::Error::NonFinite {
                    t: level.t,
                    row,
                    col,
                    value,
                });
            }
            Err(Failure::Bad(what, err)) => Err((what, err)),
            Ok(()) => Ok(()),
        };
        called.map_err(|(what, err)| {
            let at = self.at(level, tv, nfe);
            let msg = match &err {
                Some(e) => {
                    let (name, text) = Python::attach(|py| {
                        let name = e
                            .get_type(py)
                            .name()
                            .map(|n| n.to_string())
                            .unwrap_or_default();
                        (name, e.value(py).to_string())
                    });
                    format!("the model raised {name} at {at}: {text}")
                }
                None => format!("the model {what} at {at}"),
            };
            if let Some(e) = err {
                self.error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
            }
            pfode::Error::Model(msg)
        })
    }
}
