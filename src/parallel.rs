//! Sharing out a list of work items over the thread pool with a stable assignment.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// `f` applied to every item, results in item order. Thread `w` of the pool's `k` owns the
/// `w`-th of `k` contiguous segments and takes its items from the front; a thread whose
/// segment is done takes items from the back of the others'. So each thread gets the same
/// items from call to call (their data stays in its core's cache) until the end, where the
/// threads finish within about one item's time of each other.
pub fn map_segments<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let n = items.len();
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
    let parts = if k == 1 {
        vec![work(0)]
    } else {
        rayon::broadcast(|ctx| work(ctx.index() % k))
    };
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    for (i, r) in parts.into_iter().flatten() {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.expect("every item is done"))
        .collect()
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
