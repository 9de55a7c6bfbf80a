//! A seeded Brownian path that is the *same path at every resolution*.
//!
//! A virtual Brownian tree (Gaines & Lyons 1997; Li et al. 2020): `W` on `[t0, t1]` is fixed
//! by its seed alone. `W(t1)` is drawn once; the midpoint of every dyadic interval is drawn
//! from the Brownian bridge between its ends with noise keyed by the node's index, so any
//! query set sees consistent values, and the increments over a coarse grid are exactly the
//! sums of the increments over any finer grid through the same points. Below
//! `MAX_DEPTH` levels (leaves of `(t1 - t0)/2^12`, finer than the 1/T spacing of
//! every discrete schedule with T ≤ 4096) a query is a bridge sample keyed by the
//! leaf and the time itself. Two points of one run closer than a leaf are bridged from
//! each other, which keeps the joint law exact; only such points depend on the query set.

use crate::batch::zip_into;
use crate::error::{Error, Result};
use crate::noise::{self, Purpose};
use std::rc::Rc;

const MAX_DEPTH: u32 = 12;

#[derive(Clone)]
struct Node {
    lo: f64,
    hi: f64,
    w_lo: Rc<Vec<f64>>,
    w_hi: Rc<Vec<f64>>,
    id: u64,
    depth: u32,
}

/// `len` independent Brownian motions on `[t0, t1]`, with `W(t0) = 0`.
pub struct BrownianTree {
    seed: u64,
    len: usize,
    /// Noise block of the first coordinate (nonzero for a row tile of a larger path).
    first_block: usize,
    t0: f64,
    t1: f64,
    /// Root-to-leaf path of the last query: nearby queries reuse their common ancestors.
    path: Vec<Node>,
    /// Points already sampled inside the current leaf (time, value).
    leaf_points: Vec<(f64, Vec<f64>)>,
    /// Buffers of popped nodes, reused for new ones: a fresh allocation of a large state
    /// costs page faults on every step.
    spare: Vec<Vec<f64>>,
}

impl BrownianTree {
    /// A path for `len` coordinates on `[t0, t1]`.
    pub fn new(seed: u64, len: usize, t0: f64, t1: f64) -> Self {
        BrownianTree {
            seed,
            len,
            first_block: 0,
            t0,
            t1,
            path: Vec::new(),
            leaf_points: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// The coordinates of a larger path from noise block `first_block` on (element
    /// `first_block · noise::BLOCK`): a row tile's share of the whole batch's path.
    pub fn from_block(mut self, first_block: usize) -> Self {
        self.first_block = first_block;
        self
    }

    /// Keeps a popped node's buffer for reuse if nobody else holds it.
    fn recycle(&mut self, w: Rc<Vec<f64>>) {
        if let Ok(v) = Rc::try_unwrap(w) {
            if self.spare.len() < 2 * MAX_DEPTH as usize {
                self.spare.push(v);
            }
        }
    }

    fn gaussians(&self, purpose: Purpose, stream: u64) -> Vec<f64> {
        let mut z = vec![0.0; self.len];
        noise::add_scaled_normals_at(self.seed, purpose, stream, 1.0, self.first_block, &mut z);
        z
    }

    fn root(&self) -> Node {
        let scale = (self.t1 - self.t0).sqrt();
        Node {
            lo: self.t0,
            hi: self.t1,
            w_lo: Rc::new(vec![0.0; self.len]),
            w_hi: Rc::new(
                self.gaussians(Purpose::BrownianNode, 0)
                    .iter()
                    .map(|z| scale * z)
                    .collect(),
            ),
            id: 1,
            depth: 0,
        }
    }

    /// `W(t)` for every coordinate.
    pub fn value(&mut self, t: f64) -> Result<Vec<f64>> {
        self.value_shared(t).map(|w| w.to_vec())
    }

    /// `W(t)`, shared with the tree instead of copied.
    pub fn value_shared(&mut self, t: f64) -> Result<Rc<Vec<f64>>> {
        if !(t >= self.t0 && t <= self.t1) {
            return Err(Error::invalid(
                "brownian",
                format!(
                    "time {t} outside the path's interval [{}, {}]",
                    self.t0, self.t1
                ),
            ));
        }
        while let Some(top) = self.path.last() {
            if top.lo <= t && t <= top.hi {
                break;
            }
            let node = self.path.pop().expect("non-empty");
            self.recycle(node.w_lo);
            self.recycle(node.w_hi);
            self.leaf_points.clear();
        }
        if self.path.is_empty() {
            self.path.push(self.root());
        }
        loop {
            let node = self.path.last().unwrap();
            if t == node.lo {
                return Ok(Rc::clone(&node.w_lo));
            }
            if t == node.hi {
                return Ok(Rc::clone(&node.w_hi));
            }
            let (lo, hi) = (node.lo, node.hi);
            if node.depth == MAX_DEPTH {
                return Ok(Rc::new(self.leaf_value(t)));
            }
            let mid = 0.5 * (lo + hi);
            let sd = (0.25 * (hi - lo)).sqrt();
            let mut w_mid = self.spare.pop().unwrap_or_default();
            w_mid.resize(self.len, 0.0);
            // The bridge's mean in one vectorised pass over a reused buffer (an `extend`
            // over a mapped zip cost as much as the tree's noise).
            zip_into(&mut w_mid, &node.w_lo, &node.w_hi, &|a, b| 0.5 * (a + b));
            noise::add_scaled_normals_at(
                self.seed,
                Purpose::BrownianNode,
                node.id,
                sd,
                self.first_block,
                &mut w_mid,
            );
            let w_mid = Rc::new(w_mid);
            self.leaf_points.clear();
            let child = if t < mid {
                Node {
                    lo,
                    hi: mid,
                    w_lo: Rc::clone(&node.w_lo),
                    w_hi: w_mid,
                    id: 2 * node.id,
                    depth: node.depth + 1,
                }
            } else {
                Node {
                    lo: mid,
                    hi,
                    w_lo: w_mid,
                    w_hi: Rc::clone(&node.w_hi),
                    id: 2 * node.id + 1,
                    depth: node.depth + 1,
                }
            };
            self.path.push(child);
        }
    }
}

impl BrownianTree {
    /// Bridge to `t` inside the current leaf from its nearest known neighbours, keyed by
    /// (leaf, t).
    fn leaf_value(&mut self, t: f64) -> Vec<f64> {
        let node = self.path.last().unwrap();
        if let Some((_, w)) = self.leaf_points.iter().find(|(s, _)| *s == t) {
            return w.clone();
        }
        let (mut lo, mut w_lo, mut hi, mut w_hi) =
            (node.lo, &node.w_lo[..], node.hi, &node.w_hi[..]);
        for (s, w) in &self.leaf_points {
            if *s < t && *s > lo {
                (lo, w_lo) = (*s, &w[..]);
            }
            if *s > t && *s < hi {
                (hi, w_hi) = (*s, &w[..]);
            }
        }
        let stream = node.id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ t.to_bits();
        let z = self.gaussians(Purpose::BrownianBridge, stream);
        let frac = (t - lo) / (hi - lo);
        let sd = ((t - lo) * (hi - t) / (hi - lo)).sqrt();
        let w: Vec<f64> = (0..self.len)
            .map(|i| w_lo[i] + frac * (w_hi[i] - w_lo[i]) + sd * z[i])
            .collect();
        self.leaf_points.push((t, w.clone()));
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_increments_are_sums_of_fine_increments() {
        let mut fine = BrownianTree::new(3, 5, 0.0, 1.0);
        let mut coarse = BrownianTree::new(3, 5, 0.0, 1.0);
        let fine_times: Vec<f64> = (0..=64).map(|k| 1.0 - k as f64 / 64.0).collect();
        let fw: Vec<Vec<f64>> = fine_times.iter().map(|&t| fine.value(t).unwrap()).collect();
        for k in 0..8 {
            let (a, b) = (k * 8, (k + 1) * 8);
            let summed: Vec<f64> = (a..b).fold(vec![0.0; 5], |acc, j| {
                acc.iter()
                    .zip(fw[j].iter().zip(&fw[j + 1]))
                    .map(|(s, (x, y))| s + x - y)
                    .collect()
            });
            let direct: Vec<f64> = coarse
                .value(fine_times[a])
                .unwrap()
                .iter()
                .zip(coarse.value(fine_times[b]).unwrap())
                .map(|(x, y)| x - y)
                .collect();
            for i in 0..5 {
                assert!((summed[i] - direct[i]).abs() < 1e-13);
            }
        }
        // Off-dyadic queries are also reproducible in any order.
        let v1 = fine.value(0.123456).unwrap();
        let _ = fine.value(0.9);
        assert_eq!(v1, coarse.value(0.123456).unwrap());
    }

    #[test]
    fn points_closer_than_a_leaf_keep_the_right_increment_variance() {
        let n = 20000;
        let mut w = BrownianTree::new(5, n, 0.0, 1.0);
        let (t1, t2) = (0.3 + 6e-5, 0.3 + 2e-5); // same leaf of width 2^-12 ≈ 2.4e-4
        let (a, b) = (w.value(t1).unwrap(), w.value(t2).unwrap());
        let var = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / n as f64;
        assert!((var / 4e-5 - 1.0).abs() < 0.05, "{var}");
    }

    #[test]
    fn increments_have_variance_equal_to_their_length() {
        let n = 20000;
        let mut w = BrownianTree::new(11, n, 0.0, 2.0);
        let (a, b) = (w.value(0.3).unwrap(), w.value(1.1).unwrap());
        let var = a.iter().zip(&b).map(|(x, y)| (y - x).powi(2)).sum::<f64>() / n as f64;
        let cov = a.iter().zip(&b).map(|(x, y)| x * (y - x)).sum::<f64>() / n as f64;
        // Var = 0.8 with standard error 0.8·sqrt(2/n) ≈ 0.008; independent of W(0.3).
        assert!((var - 0.8).abs() < 0.04, "{var}");
        assert!(cov.abs() < 0.03, "{cov}");
    }
}
