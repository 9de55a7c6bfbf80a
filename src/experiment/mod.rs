//! Reproducible sweeps: specs, the runner (sharding, resume, cached references), tidy CSV,
//! and convergence orders fitted from the results.

pub mod orders;
pub mod runner;
pub mod spec;
pub mod table;

pub use runner::{merge, sweep, SweepOptions};
pub use spec::Spec;
