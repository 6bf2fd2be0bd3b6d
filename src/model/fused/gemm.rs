//! Strided matmuls on CPU slices through the gemm crate, for the kernels that run their own
//! matmuls (blockwise attention, the MLP's gate and up projections).

use std::mem::MaybeUninit;

use candle_core::WithDType;

/// A strided matrix inside a slice: element (i, j) at data[i * rs + j * cs].
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, F> {
    pub data: &'a [F],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, F> Mat<'a, F> {
    /// Rows of width `cols` starting at data[offset], `rs` apart.
    pub fn rows(data: &'a [F], offset: usize, rs: usize) -> Self {
        Self { data: &data[offset..], rs, cs: 1 }
    }

    pub fn t(self) -> Self {
        Self { data: self.data, rs: self.cs, cs: self.rs }
    }
}

/// dst[m, n] (row-major, row stride dst_rs) = (dst if accumulate) + alpha · a[m, k] · b[k, n].
/// `parallelism`: gemm's own (Rayon(n) over the global pool, or None inside rayon tasks).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<F: WithDType>(
    dims: (usize, usize, usize),
    dst: &mut [F],
    dst_rs: usize,
    accumulate: bool,
    a: Mat<F>,
    b: Mat<F>,
    alpha: F,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: dst is initialised, so gemm may read it when accumulating
    unsafe { product(dims, dst.as_mut_ptr(), dst.len(), dst_rs, accumulate, a, b, alpha, parallelism) }
}

/// `matmul` into an unwritten buffer (see `buffer`): dst[m, n] = alpha · a · b, every element
/// of the m rows of n written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_into<F: WithDType>(
    dims: (usize, usize, usize),
    dst: &mut [MaybeUninit<F>],
    dst_rs: usize,
    a: Mat<F>,
    b: Mat<F>,
    alpha: F,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: gemm only writes dst when not accumulating
    unsafe { product(dims, dst.as_mut_ptr() as *mut F, dst.len(), dst_rs, false, a, b, alpha, parallelism) }
}

/// # Safety
/// dst is valid for writes of `dst_len` elements, and for reads when `accumulate`.
#[allow(clippy::too_many_arguments)]
unsafe fn product<F: WithDType>(
    (m, n, k): (usize, usize, usize),
    dst: *mut F,
    dst_len: usize,
    dst_rs: usize,
    accumulate: bool,
    a: Mat<F>,
    b: Mat<F>,
    alpha: F,
    parallelism: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    let end = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
    assert!(dst_len >= end(m, n, dst_rs, 1));
    if k == 0 {
        if !accumulate {
            // SAFETY: inside dst (asserted)
            (0..m).for_each(|i| (0..n).for_each(|j| unsafe { dst.add(i * dst_rs + j).write(F::zero()) }));
        }
        return;
    }
    assert!(a.data.len() >= end(m, k, a.rs, a.cs) && b.data.len() >= end(k, n, b.rs, b.cs));
    // SAFETY: every element the shapes and strides reach lies inside its slice (asserted);
    // gemm reads dst only when accumulating.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            F::one(),
            alpha,
            false,
            false,
            false,
            parallelism,
        )
    }
}
