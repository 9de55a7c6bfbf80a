//! A process-wide request to stop: set from a signal handler (the Python binding's Ctrl-C
//! while the library runs detached from the interpreter), checked at every model
//! evaluation, which then fails with [`Error::Interrupted`] and the run writes nothing.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks every running evaluation to stop (async-signal-safe: one atomic store).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Withdraws the request (before a new run).
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}

/// True if a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// `Err(Error::Interrupted)` if a stop was requested.
pub fn check() -> Result<()> {
    if requested() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}
