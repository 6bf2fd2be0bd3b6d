//! y = x Wᵀ for a handful of rows (decode steps: one row per sequence of a group).
//!
//! gemm packs the whole weight matrix on every call when x has more than one row, which
//! for a decode step costs more than the arithmetic; this reads each weight row once and
//! dots it with every row of x. Forward only (generation needs no gradient); f32 on CPU.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Rows of x up to which the kernel is used; beyond, gemm's blocking wins.
pub const MAX_ROWS: usize = 8;

/// x: [M, K] with M <= MAX_ROWS, w: [N, K], both f32 on CPU -> [M, N].
pub fn small_batch_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &SmallBatchMatmul)
}

struct SmallBatchMatmul;

impl CustomOp2 for SmallBatchMatmul {
    fn name(&self) -> &'static str {
        "small-batch-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (n, k2) = l2.shape().dims2()?;
        if k != k2 || m > MAX_ROWS {
            candle_core::bail!("small-batch-matmul: x {:?} and w {:?} do not fit", l1.shape(), l2.shape());
        }
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (s1, s2) else {
            candle_core::bail!("small-batch-matmul: f32 only");
        };
        let x = &x[l1.start_offset()..l1.start_offset() + m * k];
        let w = &w[l2.start_offset()..l2.start_offset() + n * k];
        // out_t[j * m + i] = y[i, j]: each task owns a contiguous block of output rows of W.
        // Matrices past 64K weights are split across the pool: the split pays for its hand-off
        // in memory bandwidth, since a decode step streams every weight once.
        let mut out_t = vec![0f32; n * m];
        if n * k >= 1 << 16 && rayon::current_num_threads() > 1 {
            let rows_per_task = n.div_ceil(rayon::current_num_threads()).max(64);
            out_t.par_chunks_mut(rows_per_task * m).enumerate().for_each(|(t, out)| {
                let start = t * rows_per_task;
                let rows = out.len() / m;
                dot_block(x, &w[start * k..(start + rows) * k], m, k, out);
            });
        } else {
            dot_block(x, w, m, k, &mut out_t);
        }
        let mut y = vec![0f32; m * n];
        for j in 0..n {
            for i in 0..m {
                y[i * n + j] = out_t[j * m + i];
            }
        }
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }
}

fn dot_block(x: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA; slices are bounds-checked by the callers' shapes.
        unsafe {
            match m {
                1 => avx2::block::<1>(x, w, k, out),
                2 => avx2::block::<2>(x, w, k, out),
                3 => avx2::block::<3>(x, w, k, out),
                4 => avx2::block::<4>(x, w, k, out),
                5 => avx2::block::<5>(x, w, k, out),
                6 => avx2::block::<6>(x, w, k, out),
                7 => avx2::block::<7>(x, w, k, out),
                _ => avx2::block::<8>(x, w, k, out),
            }
        }
        return;
    }
    portable(x, w, m, k, out)
}

/// out[r * m + i] = <w_r, x_i>, plain loops (CPUs without AVX2).
fn portable(x: &[f32], w: &[f32], m: usize, k: usize, out: &mut [f32]) {
    for (r, w_row) in w.chunks_exact(k).enumerate() {
        for i in 0..m {
            out[r * m + i] = w_row.iter().zip(&x[i * k..(i + 1) * k]).map(|(a, b)| a * b).sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// out[r * M + i] = <w_r, x_i>. Two weight rows at a time against all M rows of x:
    /// 2 + M loads feed 2M fused multiply-adds, and the 2M accumulators stay in registers.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn block<const M: usize>(x: &[f32], w: &[f32], k: usize, out: &mut [f32]) {
        assert!(x.len() >= M * k && out.len() * k >= w.len() / k * k * M / M);
        let rows = w.len() / k;
        let body = k / 8 * 8;
        let xp = x.as_ptr();
        let mut r = 0;
        while r < rows {
            let two = r + 1 < rows;
            let w0 = w.as_ptr().add(r * k);
            let w1 = if two { w.as_ptr().add((r + 1) * k) } else { w0 };
            let mut a0 = [_mm256_setzero_ps(); M];
            let mut a1 = [_mm256_setzero_ps(); M];
            let mut c = 0;
            while c < body {
                let v0 = _mm256_loadu_ps(w0.add(c));
                let v1 = _mm256_loadu_ps(w1.add(c));
                for i in 0..M {
                    let xv = _mm256_loadu_ps(xp.add(i * k + c));
                    a0[i] = _mm256_fmadd_ps(v0, xv, a0[i]);
                    a1[i] = _mm256_fmadd_ps(v1, xv, a1[i]);
                }
                c += 8;
            }
            for i in 0..M {
                let (mut s0, mut s1) = (hsum(a0[i]), hsum(a1[i]));
                for j in body..k {
                    s0 += *w0.add(j) * *xp.add(i * k + j);
                    s1 += *w1.add(j) * *xp.add(i * k + j);
                }
                out[r * M + i] = s0;
                if two {
                    out[(r + 1) * M + i] = s1;
                }
            }
            r += if two { 2 } else { 1 };
        }
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), v);
        lanes.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    #[test]
    fn equals_matmul() {
        for (m, n, k) in [(1, 5, 3), (6, 300, 288), (8, 2001, 77), (3, 70_001, 20), (7, 3, 9)] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
            let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
            let want: Vec<Vec<f32>> = x.matmul(&w.t().unwrap()).unwrap().to_vec2().unwrap();
            let got: Vec<Vec<f32>> = small_batch_matmul(&x, &w).unwrap().to_vec2().unwrap();
            for (a, b) in want.iter().flatten().zip(got.iter().flatten()) {
                // f32 dot products of length k with different summation order: |a| ~ sqrt(k)
                assert!((a - b).abs() < 1e-4 * (k as f32).sqrt(), "m={m} n={n} k={k}: {a} vs {b}");
            }
        }
    }
}
