//! The instruction sets the hand-written CPU kernels come in (the small-batch product, decode
//! attention), chosen at run time: the build targets baseline x86-64, so the compiler alone
//! uses SSE2.

/// An instruction set a kernel can be computed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The widest this CPU has (AVX2 only with FMA); found once, asked per kernel call.
    pub fn best() -> Self {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Self::available().pop().unwrap_or(Isa::Portable))
    }

    /// Every one this CPU runs, narrowest first (the tests hold each to the portable loops).
    pub fn available() -> Vec<Self> {
        #[allow(unused_mut)] // nothing but Portable off x86-64
        let mut all = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                all.push(Isa::Avx2);
            }
            if is_x86_feature_detected!("avx512f") {
                all.push(Isa::Avx512);
            }
        }
        all
    }
}

/// AVX-512 pieces the kernels share.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    /// Lane j of the result is the sum of v[j]'s sixteen lanes: pairs of vectors are
    /// interleaved and added, then pairs of pairs, then their 128-bit quarters (45
    /// shuffles and adds for sixteen sums, where sixteen reductions take 128).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn sums16(v: [__m512; 16]) -> __m512 {
        // per 128-bit quarter: [a0+a2, b0+b2, a1+a3, b1+b3] of a = v[2i], b = v[2i + 1]
        let w: [__m512; 8] = std::array::from_fn(|i| {
            let (a, b) = (v[2 * i], v[2 * i + 1]);
            _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
        });
        // per quarter: the quarter's sums of v[4i..4i + 4]
        let x: [__m512; 4] = std::array::from_fn(|i| {
            let (a, b) = (w[2 * i], w[2 * i + 1]);
            _mm512_add_ps(_mm512_shuffle_ps::<0b01_00_01_00>(a, b), _mm512_shuffle_ps::<0b11_10_11_10>(a, b))
        });
        // quarters (0 + 1, 2 + 3) of x[0], then of x[1]; then of x[2], x[3]
        let z01 = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(x[0], x[1]),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(x[0], x[1]),
        );
        let z23 = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(x[2], x[3]),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(x[2], x[3]),
        );
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(z01, z23),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(z01, z23),
        )
    }
}
