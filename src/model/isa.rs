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
