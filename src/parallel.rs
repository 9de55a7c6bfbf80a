//! Sharing out a list of work items over the thread pool with a stable assignment.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// `f` applied to every item, results in item order. The items are cut into as many
/// contiguous segments as the pool has threads, one per leaf of a tree of joins; a leaf
/// takes its segment's items from the front, then items from the back of the others'. The
/// calling thread runs the first leaf and each other thread the leaf it steals, so on a
/// pool of two each thread gets the same items from call to call (their data stays in its
/// core's cache) until the end, where the threads finish within about one item's time of
/// each other. Joins, unlike a broadcast, never wait for a thread that is busy elsewhere
/// (a sweep's other runs): its leaf runs on whichever thread gets to it.
pub fn map_segments<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let n = items.len();
    assert!(n < 1 << 32, "segment bounds are packed in 32 bits each");
    let k = rayon::current_num_threads().clamp(1, n.max(1));
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let bounds: Vec<AtomicU64> = (0..k)
        .map(|w| AtomicU64::new(pack(w * n / k, (w + 1) * n / k)))
        .collect();
    let take = |i: usize| {
        let item = slots[i].lock().unwrap_or_else(|e| e.into_inner()).take();
        (i, f(item.expect("each item is taken once")))
    };
    let work = |w: usize| {
        let mut done = Vec::new();
        while let Some(i) = claim(&bounds[w], true) {
            done.push(take(i));
        }
        for other in (1..k).map(|j| (w + j) % k) {
            while let Some(i) = claim(&bounds[other], false) {
                done.push(take(i));
            }
        }
        done
    };
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    for (i, r) in spread(0, k, &work) {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.expect("every item is done"))
        .collect()
}

/// `f(i)` for every `i` in `0..n`, in order: over the thread pool, or all on the calling
/// thread when `this_thread_only` (a thread-bound model, a Python callable, which pool
/// workers must never call).
pub fn map_indices<R: Send>(
    n: usize,
    this_thread_only: bool,
    f: impl Fn(usize) -> R + Sync + Send,
) -> Vec<R> {
    use rayon::prelude::*;
    if this_thread_only {
        (0..n).map(f).collect()
    } else {
        (0..n).into_par_iter().map(f).collect()
    }
}

/// The results of `work(w)` for the `k` leaves `w = first, first + 1, …`, run as a tree of
/// joins.
fn spread<R: Send>(first: usize, k: usize, work: &(impl Fn(usize) -> Vec<R> + Sync)) -> Vec<R> {
    if k <= 1 {
        return work(first);
    }
    let half = k / 2;
    let (mut a, b) = rayon::join(
        || spread(first, half, work),
        || spread(first + half, k - half, work),
    );
    a.extend(b);
    a
}

fn pack(front: usize, back: usize) -> u64 {
    ((back as u64) << 32) | front as u64
}

/// Takes the next item of a segment, from its front or its back.
fn claim(bounds: &AtomicU64, front: bool) -> Option<usize> {
    let mut cur = bounds.load(Ordering::Acquire);
    loop {
        let (f, b) = ((cur & 0xffff_ffff) as usize, (cur >> 32) as usize);
        if f >= b {
            return None;
        }
        let (next, item) = if front {
            (pack(f + 1, b), f)
        } else {
            (pack(f, b - 1), b - 1)
        };
        match bounds.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some(item),
            Err(now) => cur = now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item is mapped exactly once and the results come back in item order, for
    /// fewer items than threads, uneven segments, and the threads taking from each other.
    #[test]
    fn map_segments_maps_every_item_once_in_order() {
        for threads in [1, 2, 3, 5] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for n in [0, 1, 2, 7, 64, 257] {
                let calls = std::sync::atomic::AtomicUsize::new(0);
                let items: Vec<usize> = (0..n).collect();
                let out = pool.install(|| {
                    map_segments(items, |i| {
                        calls.fetch_add(1, Ordering::Relaxed);
                        // Uneven work, so that threads run out at different times.
                        if i % 3 == 0 {
                            std::thread::sleep(std::time::Duration::from_micros(50));
                        }
                        i * i + 1
                    })
                });
                assert_eq!(out, (0..n).map(|i| i * i + 1).collect::<Vec<_>>());
                assert_eq!(
                    calls.load(Ordering::Relaxed),
                    n,
                    "{threads} threads, {n} items"
                );
            }
        }
    }
}
