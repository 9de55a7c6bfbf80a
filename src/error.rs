//! One error type for the whole library, with a `Result` alias.

use std::path::Path;

/// Everything that can go wrong in pfode, each variant naming where and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not what was expected.
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    /// An option, field or argument has an invalid value.
    #[error("{field}: {msg}")]
    Invalid { field: String, msg: String },
    /// The model produced NaN or ±Inf.
    #[error("model output is not finite ({value}) at t = {t} (sample {row}, coordinate {col}); the run was stopped and no output was written")]
    NonFinite {
        t: f64,
        row: usize,
        col: usize,
        value: f64,
    },
    /// A numerical method failed: no convergence, a singular system, a non-finite estimate.
    #[error("{method}: {msg}")]
    Numerical { method: String, msg: String },
    /// The tensor backend (candle) failed.
    #[error("{context}: candle: {msg}")]
    Backend { context: String, msg: String },
    /// A model supplied by the caller (a Python callback) failed or returned something
    /// unusable; the message says where in the run.
    #[error("{0}")]
    Model(String),
    /// The run was asked to stop ([`crate::interrupt`]).
    #[error("interrupted")]
    Interrupted,
    /// A numerical check failed (e.g. `check ddim-euler`).
    #[error("{0}")]
    Check(String),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
    /// A content error in file `path`.
    pub fn file(path: &Path, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.display().to_string(),
            msg: msg.into(),
        }
    }
    /// A failure of numerical `method`.
    pub fn numerical(method: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Numerical {
            method: method.into(),
            msg: msg.into(),
        }
    }
    /// A candle error while doing `context`.
    pub fn backend(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Error::Backend {
            context: context.into(),
            msg: e.to_string(),
        }
    }
    /// An invalid value of `field`.
    pub fn invalid(field: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            msg: msg.into(),
        }
    }
}
