//! Between Python and pfode: errors, JSON-shaped values, arrays.

use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pfode::batch::Batch;
use pfode::Error;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

pyo3::create_exception!(
    pfode,
    ModelError,
    PyRuntimeError,
    "The model failed during a run: its callable raised, or returned the wrong shape, a \
     non-float dtype, NaN or Inf. The message names the step, time and NFE; a raised \
     exception is chained as __cause__."
);

/// Library field names that Python spells differently.
fn python_name(field: &str) -> &str {
    match field {
        "x_t" | "noise" => "x_T",
        other => other,
    }
}

/// A pfode error as the Python exception that fits it.
pub fn to_py(e: Error) -> PyErr {
    match e {
        Error::Invalid { field, msg } => {
            PyValueError::new_err(format!("{}: {msg}", python_name(&field)))
        }
        Error::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(format!("{path}: {source}"))
        }
        e @ Error::Io { .. } => PyOSError::new_err(e.to_string()),
        e @ Error::File { .. } => PyValueError::new_err(e.to_string()),
        e @ (Error::NonFinite { .. } | Error::Model(_)) => ModelError::new_err(e.to_string()),
        e => PyRuntimeError::new_err(e.to_string()),
    }
}

/// Ctrl-C while the library runs detached: SIGINT asks the library to stop
/// (`pfode::interrupt`), which it does at the next model evaluation, and the binding then
/// raises KeyboardInterrupt. Installed on the main thread only (where Python handles
/// signals), for the guard's lifetime; the previous handler is restored after.
pub struct SigintGuard {
    previous: Option<libc::sighandler_t>,
}

extern "C" fn on_sigint(_: libc::c_int) {
    pfode::interrupt::request();
}

impl SigintGuard {
    pub fn new(py: Python<'_>) -> PyResult<Self> {
        pfode::interrupt::clear();
        let threading = py.import("threading")?;
        let main = threading.call_method0("main_thread")?;
        let current = threading.call_method0("current_thread")?;
        if !main.is(&current) {
            return Ok(SigintGuard { previous: None });
        }
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let handler = on_sigint as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t;
        let previous = unsafe { libc::signal(libc::SIGINT, handler) };
        Ok(SigintGuard {
            previous: (previous != libc::SIG_ERR).then_some(previous),
        })
    }
}

impl Drop for SigintGuard {
    fn drop(&mut self) {
        if let Some(previous) = self.previous {
            // SAFETY: restores the handler that was installed before.
            unsafe { libc::signal(libc::SIGINT, previous) };
        }
    }
}

/// A run's error: the callable's own exception when it raised (a KeyboardInterrupt as
/// itself; anything else chained under a [`ModelError`] that says where), else [`to_py`].
pub fn run_error(py: Python<'_>, e: Error, raised: Option<PyErr>) -> PyErr {
    match raised {
        Some(cause) if cause.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => cause,
        // A non-finite output: the model's own message, which says where in the run.
        Some(cause) if cause.is_instance_of::<ModelError>(py) => match e {
            Error::NonFinite { .. } => cause,
            other => to_py(other),
        },
        Some(cause) => {
            let err = ModelError::new_err(e.to_string());
            err.set_cause(py, Some(cause));
            err
        }
        None if matches!(e, Error::Interrupted) => {
            pyo3::exceptions::PyKeyboardInterrupt::new_err("interrupted: the run wrote nothing")
        }
        None => to_py(e),
    }
}

/// A JSON value as a Python object (through the `json` module: exact for floats).
pub fn json_to_py(py: Python<'_>, v: &serde_json::Value) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(v).expect("serialisable");
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// A keyword argument's value as JSON, for the options schema: bool, int, float or str.
pub fn scalar_to_json(name: &str, v: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    if v.is_instance_of::<PyBool>() {
        return Ok(serde_json::Value::Bool(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
        let f: f64 = v.extract()?;
        return Ok(serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| serde_json::Value::String(f.to_string())));
    }
    if v.is_instance_of::<PyString>() {
        return Ok(serde_json::Value::String(v.extract()?));
    }
    // NumPy scalars and the like.
    if let Ok(f) = v.extract::<f64>() {
        return Ok(serde_json::json!(f));
    }
    Err(PyTypeError::new_err(format!(
        "{name}: expected a number, a bool or a string, got {}",
        v.get_type().name()?
    )))
}

/// A dict-like Python value as JSON (through the `json` module), for specs.
pub fn py_to_json(py: Python<'_>, what: &str, v: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let text: String = py
        .import("json")?
        .call_method1("dumps", (v,))
        .map_err(|e| PyTypeError::new_err(format!("{what}: cannot be written as JSON/TOML: {e}")))?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// `dtype` given as "float32"/"float64", a NumPy dtype or type, or a torch dtype: true
/// for float32.
pub fn float_dtype(py: Python<'_>, d: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    let text = if let Ok(s) = d.extract::<String>() {
        s
    } else {
        // numpy.float32, numpy.dtype('float32'), torch.float32 all print their name last.
        let s = d.str()?.to_string();
        match py.import("numpy")?.call_method1("dtype", (d,)) {
            Ok(dt) => dt.str()?.to_string(),
            Err(_) => s.rsplit('.').next().unwrap_or("").to_string(),
        }
    };
    match text.as_str() {
        "float64" | "f64" | "double" => Ok(false),
        "float32" | "f32" | "float" => Ok(true),
        _ => Err(PyValueError::new_err(format!(
            "{name}: expected 'float64' or 'float32', got '{text}'"
        ))),
    }
}

/// An array argument `[N, ...]` as a batch of N flattened rows (copied: the solver owns
/// its state), and the shape of one sample.
pub fn batch_from(
    py: Python<'_>,
    name: &str,
    a: &Bound<'_, PyAny>,
) -> PyResult<(Batch, Vec<usize>)> {
    let arr: Bound<'_, PyArrayDyn<f64>> = match a.cast::<PyArrayDyn<f64>>() {
        Ok(a) => a.clone(),
        Err(_) => {
            let np = py.import("numpy")?;
            let conv = np.call_method1("asarray", (a,)).map_err(|_| {
                PyTypeError::new_err(format!(
                    "{name}: expected an array of shape (N, ...), got {}",
                    a.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            let kind: String = conv.getattr("dtype")?.getattr("kind")?.extract()?;
            if kind != "f" && kind != "i" && kind != "u" {
                return Err(PyTypeError::new_err(format!(
                    "{name}: expected a real-valued array, got dtype {}",
                    conv.getattr("dtype")?.str()?
                )));
            }
            conv.call_method1("astype", ("float64",))?
                .cast_into::<PyArrayDyn<f64>>()
                .map_err(|e| PyTypeError::new_err(format!("{name}: {e}")))?
        }
    };
    let shape = arr.shape().to_vec();
    if shape.len() < 2 || shape.contains(&0) {
        return Err(PyValueError::new_err(format!(
            "{name}: expected an array of shape (N, ...) with N ≥ 1 samples of at least one \
             element, got shape {shape:?}"
        )));
    }
    let ro = arr.readonly();
    let data: Vec<f64> = match ro.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => ro.as_array().iter().copied().collect(),
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "{name}: element {i} is {}, expected finite values",
            data[i]
        )));
    }
    let d: usize = shape[1..].iter().product();
    let batch = Batch::new(shape[0], d, data).map_err(to_py)?;
    Ok((batch, shape[1..].to_vec()))
}

/// A batch as an array of shape `[n, *sample_shape]`, without copying its data.
pub fn array_from<'py>(
    py: Python<'py>,
    b: Batch,
    sample_shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let shape: Vec<usize> = std::iter::once(b.n)
        .chain(sample_shape.iter().copied())
        .collect();
    Ok(PyArray1::from_vec(py, b.data).reshape(shape)?.into_any())
}
