//! Run-time dispatch to AVX-512 / AVX2 copies of element-wise loops.

/// Defines `$name`, which runs `$inner` compiled for AVX-512 (or AVX2) when the CPU has
/// it, so its element-wise loops vectorise 16 (8) lanes wide instead of the baseline's 4.
/// The arithmetic per element is the same sequence of IEEE operations (Rust never contracts
/// to FMA), so every path gives bit-identical results.
/// A generic parameter (`<F: Fn(f64) -> f64>`) is allowed: a closure passed in is inlined
/// into each copy and vectorised with it.
macro_rules! wide_simd {
    ($name:ident $(<$g:ident: $bound:path>)? => $inner:ident($($arg:ident: $ty:ty),*)) => {
        fn $name$(<$g: $bound>)?($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512$(<$g: $bound>)?($($arg: $ty),*) {
                    $inner($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2$(<$g: $bound>)?($($arg: $ty),*) {
                    $inner($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked above).
                    return unsafe { avx512($($arg),*) };
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
