//! pfode: diffusion sampling as numerical integration of the probability-flow ODE and the
//! reverse SDE, with exact test models so that every claim is measurable.

pub mod batch;
pub mod bench;
pub mod brownian;
pub mod check;
pub mod convergence;
pub mod decompose;
pub mod digits;
pub mod error;
pub mod experiment;
pub mod flow;
pub mod grid;
pub mod interrupt;
pub mod io;
pub mod metrics;
pub mod model;
mod names;
pub mod noise;
pub mod npy;
pub mod optimize;
pub mod parallel;
pub mod plot;
pub mod reference;
pub mod sampling;
pub mod schedule;
mod simd;
pub mod solver;

pub use batch::Batch;
pub use error::{Error, Result};
