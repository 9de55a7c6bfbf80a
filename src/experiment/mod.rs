//! Reproducible sweeps: specs, the sweep (sharding, resume, cached references), tidy CSV,
//! and convergence orders fitted from the results.

pub mod orders;
pub mod spec;
pub mod sweep;
pub mod table;

pub use spec::Spec;
pub use sweep::{merge, score, sweep, sweep_text, NamedModel, SweepOptions};
