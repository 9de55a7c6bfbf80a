//! A run's buffers: a batch a step is done with goes back to its run's pool when dropped, so
//! the next step reuses it instead of allocating (and page-faulting) a fresh one.

use crate::batch::Batch;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

/// The spent buffers of one run (a mutex, so that a run can move onto a pool thread).
#[derive(Default)]
pub struct Pool(Mutex<Vec<Vec<f64>>>);

impl Pool {
    fn buffers(&self) -> std::sync::MutexGuard<'_, Vec<Vec<f64>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest pooled buffer of `len` values, else a new one (its values are stale).
    fn take(&self, len: usize) -> Vec<f64> {
        let mut pool = self.buffers();
        match pool.iter().rposition(|b| b.len() == len) {
            Some(i) => pool.swap_remove(i),
            None => vec![0.0; len],
        }
    }
}

/// A batch whose buffer belongs to a run's [`Pool`]: it returns there when dropped.
pub struct Scratch {
    batch: Batch,
    pool: Arc<Pool>,
}

impl Scratch {
    /// An `n × d` batch from `pool` (its values are stale: overwrite them).
    pub(super) fn new(pool: &Arc<Pool>, n: usize, d: usize) -> Self {
        Scratch {
            batch: Batch {
                n,
                d,
                data: pool.take(n * d),
            },
            pool: pool.clone(),
        }
    }

    /// `batch`, whose buffer goes to `pool` when dropped.
    pub(super) fn adopt(pool: &Arc<Pool>, batch: Batch) -> Self {
        Scratch {
            batch,
            pool: pool.clone(),
        }
    }

    /// The batch, kept out of the pool.
    pub fn into_batch(mut self) -> Batch {
        std::mem::replace(
            &mut self.batch,
            Batch {
                n: 0,
                d: 0,
                data: Vec::new(),
            },
        )
    }
}

impl Clone for Scratch {
    fn clone(&self) -> Self {
        let mut copy = Scratch::new(&self.pool, self.batch.n, self.batch.d);
        copy.data.copy_from_slice(&self.batch.data);
        copy
    }
}

impl Deref for Scratch {
    type Target = Batch;
    fn deref(&self) -> &Batch {
        &self.batch
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut Batch {
        &mut self.batch
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.batch.data);
        if !data.is_empty() {
            self.pool.buffers().push(data);
        }
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.batch.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_scratch_buffer_is_reused_and_an_extracted_one_is_not() {
        let pool = Arc::new(Pool::default());
        let a = Scratch::new(&pool, 3, 2);
        let ptr = a.data.as_ptr();
        drop(a);
        let b = Scratch::new(&pool, 2, 3);
        assert_eq!(b.data.as_ptr(), ptr, "same length: the pooled buffer");
        let c = Scratch::new(&pool, 4, 2);
        assert_ne!(c.data.as_ptr(), ptr);
        let kept = b.into_batch();
        assert_eq!(kept.data.len(), 6);
        assert!(
            pool.buffers().is_empty(),
            "an extracted batch is not returned"
        );
        drop(c);
        assert_eq!(pool.buffers().len(), 1);
    }
}
