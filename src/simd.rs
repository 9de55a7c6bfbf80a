//! Run-time dispatch to AVX2 (or AVX-512) copies of element-wise loops.
//!
//! 256-bit vectors by default, not 512: a solver's AVX-512 sweeps lowered the core's clock
//! for the model calls between them (which run the baseline build's scalar and SSE code),
//! and whole runs took longer than with AVX2 sweeps though each sweep alone was faster
//! (docs/performance.md). Kernels that run between AVX-512 matrix products (the MLP's)
//! share those products' clock and opt in.

/// Defines `$name`, which runs `$inner` compiled for AVX2 when the CPU has it, so its
/// element-wise loops vectorise 4 lanes of f64 wide instead of the baseline's 2; with a
/// leading `avx512:`, compiled for AVX-512 first (8 lanes).
/// The arithmetic per element is the same sequence of IEEE operations (Rust never contracts
/// to FMA), so every path gives bit-identical results.
/// A generic parameter (`<F: Fn(f64) -> f64>`) is allowed (not with `avx512:`): a closure
/// passed in is inlined into each copy and vectorised with it.
macro_rules! wide_simd {
    (avx512: $name:ident => $inner:ident($($arg:ident: $ty:ty),*)) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    $inner($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked above).
                    return unsafe { avx512($($arg),*) };
                }
            }
            $crate::simd::wide_simd!(narrower => $inner($($arg: $ty),*));
            narrower($($arg),*)
        }
    };
    ($name:ident $(<$g:ident: $bound:path>)? => $inner:ident($($arg:ident: $ty:ty),*)) => {
        fn $name$(<$g: $bound>)?($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2$(<$g: $bound>)?($($arg: $ty),*) {
                    $inner($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $inner($($arg),*)
        }
    };
}

pub(crate) use wide_simd;
