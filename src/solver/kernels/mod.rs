//! Fused kernels: sweeps that run a solver's update element by element in one pass over
//! memory (and, for dopri5, a chunk of rows at a time with the model), where the solver's
//! own file states the update as the paper does and computes its coefficients. Each kernel
//! keeps the plain pass-by-pass form beside it as its reference, runs it when a coefficient
//! is zero (the combination kernels drop zero terms, which changes a sum's order), and is
//! tested to give its bits (`same_bits` below, shared by every kernel's test).

pub mod dopri5;
pub mod multistep;
pub mod unipc;

/// True when two arrays hold the same bits.
#[cfg(test)]
pub(crate) fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits())
}

/// Runs `fused` and `passes` on copies of the same arrays and asserts that every array
/// comes out with the same bits (the property every fused kernel must have).
#[cfg(test)]
pub(crate) fn assert_fused_equals_passes(
    what: &str,
    arrays: &[Vec<f64>],
    fused: impl FnOnce(&mut [Vec<f64>]),
    passes: impl FnOnce(&mut [Vec<f64>]),
) {
    let (mut a, mut b) = (arrays.to_vec(), arrays.to_vec());
    fused(&mut a);
    passes(&mut b);
    for (k, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!(same_bits(a, b), "{what}: array {k} differs");
    }
    assert!(
        a.iter()
            .zip(arrays)
            .any(|(a, before)| !same_bits(a, before)),
        "{what}: the kernel wrote nothing"
    );
}
