//! y = x Wᵀ for a handful of rows (decode steps: one row per sequence of a group).
//!
//! gemm packs the whole weight matrix on every call when x has more than one row, which
//! for a decode step costs more than the arithmetic; this reads each weight row once and
//! dots it with every row of x. Forward only (generation needs no gradient); f32 on CPU.
//!
//! Each output is one accumulator over K (8 lanes summed in order, then the scalar tail,
//! with AVX2; 16 lanes summed by one fixed tree, the tail a masked step, with AVX-512): the
//! same sum whatever M is, so a row decoded in a group gets the logits it gets alone.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use std::mem::MaybeUninit;

use super::decode_pool::Disjoint;
use super::fused::buffer::{filled, unfilled};
use super::isa::Isa;

/// Rows of x up to which one pass over W serves them all; beyond, gemm's blocking wins
/// (and `matmul_rows` takes x in passes of this many rows).
pub const MAX_ROWS: usize = 8;

/// Weights (N x K) from which a product is split across the decode pool's threads (the
/// caller's and its spinning helpers': a split costs about a microsecond). Every
/// projection of the 15M llama (83K-221K weights) and its head are split, not stories260K's
/// (4K-33K). 15M llama, 2 Zen 4 cores, medians of 5 interleaved: one stream 500 tokens/s
/// splitting only from 1M weights (the head), 592 from 64K, 571 from 16K; a group of 6
/// 2022, 2541 and 2406. Through rayon's pool, whose threads sleep between splits, splitting
/// the projections had made both slower (a group of 6: 1747 -> 1493).
const PARALLEL_WEIGHTS: usize = 1 << 16;

/// x: [M, K] with M <= MAX_ROWS, w: [N, K], both f32 on CPU -> [M, N].
pub fn small_batch_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &SmallBatchMatmul)
}

/// y[i, j] = <x_i, w_j>: x [M, K] row-major, w [N, K] row-major, y [M, N] row-major, any M
/// (taken MAX_ROWS rows per pass over W). Large W is split across the decode pool by rows.
pub fn matmul_rows(x: &[f32], w: &[f32], k: usize, y: &mut [f32]) {
    assert!(y.len() * k == x.len() * (w.len() / k), "matmul_rows: shapes do not fit");
    // SAFETY: y holds M x N elements
    unsafe { matmul_into(x, k, &[(w, y.as_mut_ptr())]) }
}

/// `matmul_rows` into a buffer not yet written (a step's logits, [B, vocabulary]: zeroing
/// them first was 20-100 µs of a group's step, page faults included), every element of
/// which it writes.
pub fn matmul_rows_unfilled(x: &[f32], w: &[f32], k: usize, y: &mut [MaybeUninit<f32>]) {
    assert!(y.len() * k == x.len() * (w.len() / k), "matmul_rows: shapes do not fit");
    // SAFETY: y holds M x N elements; f32 and MaybeUninit<f32> share a layout
    unsafe { matmul_into(x, k, &[(w, y.as_mut_ptr() as *mut f32)]) }
}

/// Several products of one x [M, K], y_i = x W_iᵀ for each (W_i [N_i, K], y_i [M, N_i]),
/// split as one: the parts cover the weights' rows end to end, so a layer's q, k and v (or
/// gate and up) wait at one barrier, not three. Each output gets the bits `matmul_rows`
/// gives it (an output's sum does not depend on which rows share its pass).
pub fn matmul_rows_many(x: &[f32], k: usize, products: &mut [(&[f32], &mut [f32])]) {
    let m = x.len() / k;
    for (w, y) in products.iter() {
        assert!(y.len() * k == m * w.len(), "matmul_rows_many: shapes do not fit");
    }
    let targets: Vec<(&[f32], *mut f32)> = products.iter_mut().map(|(w, y)| (*w, y.as_mut_ptr())).collect();
    // SAFETY: each y_i holds M x N_i elements (checked above)
    unsafe { matmul_into(x, k, &targets) }
}

/// The products through pointers to their outputs, y_i holding M x N_i floats, every one
/// written once.
///
/// # Safety
/// Each y_i is valid for writes of M x N_i floats, and no two overlap.
unsafe fn matmul_into(x: &[f32], k: usize, targets: &[(&[f32], *mut f32)]) {
    let m = x.len() / k;
    assert!(
        x.len() == m * k && targets.iter().all(|(w, _)| w.len() % k == 0),
        "matmul_rows: shapes do not fit"
    );
    // (W_i, its rows N_i, the first of them counted across all the weights, y_i)
    let mut total = 0;
    let products: Vec<(&[f32], usize, usize, Disjoint<f32>)> = targets
        .iter()
        .map(|&(w, y)| {
            let n = w.len() / k;
            total += n;
            (w, n, total - n, Disjoint::from_ptr(y))
        })
        .collect();
    let threads = super::decode_pool::threads();
    let mut done = 0;
    while done < m {
        let rows = (m - done).min(MAX_ROWS);
        let xs = &x[done * k..(done + rows) * k];
        // weight rows [from, to) counted across all the weights
        let span = |from: usize, to: usize| {
            for &(w, n, start, y) in &products {
                let (a, b) = (from.max(start), to.min(start + n));
                if a < b {
                    let (a, b) = (a - start, b - start);
                    // y_i's rows from `done` on (in y_i, by the caller's promise)
                    let ys = OutRows { y: Disjoint::from_ptr(y.get().wrapping_add(done * n)), n };
                    // SAFETY: this span writes columns [a, b) of those rows, and no other
                    // span writes them
                    unsafe { dot_block(xs, rows, &w[a * k..b * k], k, ys, a) }
                }
            }
        };
        if total * k >= PARALLEL_WEIGHTS && threads > 1 {
            // one part per thread: 2, 4 or 8 parts a thread (claimed as threads come free,
            // to even out a slower core) ran a group of 6 at 2577, 2548 and 2424 tokens/s
            // against 2679, 2707 and 2634 with one (paired in one process, slow phases): each
            // part restarts its weight stream cold
            let per_task = total.div_ceil(threads).max(64);
            super::decode_pool::split(total.div_ceil(per_task), |t| {
                span(t * per_task, ((t + 1) * per_task).min(total))
            });
        } else {
            span(0, total);
        }
        done += rows;
    }
}

/// How far ahead the kernels prefetch W (bytes): the weight rows this far on are asked
/// into L2 while the current rows compute, so a group's arithmetic overlaps the stream from
/// memory. Into L2, not L1: on a Zen 4 core one row's step products (the 15M llama's layers
/// and head, `benches/decode_matmul.rs`) took 4.6 ms prefetched into L1 two passes ahead,
/// 2.2 ms into L2; six rows' 6.9 and 3.2 ms. Its decode (medians of 7, interleaved): a
/// group of 6 1177 -> 1396 tokens/s on one thread, 1527 -> 1648 on two; one stream 337 ->
/// 354 and 398 -> 408. 16 KiB (about 4 DRAM latencies at a group's pace) measured no worse
/// than 8-48 weight rows of the head either way. Paired in one process against 32 and 48
/// KiB (each distance's one stream and group by turns), in the windows where one stream
/// ran 780 tokens/s or more, the group of 6 went 3841 -> 3751 and 3823 -> 3650 tokens/s,
/// one stream 821 -> 828 and 823 -> 814: a longer distance does not help the group even
/// when memory is fast.
const PREFETCH_BYTES: usize = 16 << 10;

/// Weight rows between the rows a pass reads and those it prefetches: `PREFETCH_BYTES`, and
/// at least the next pass (`rows_per_pass`).
fn prefetch_rows(k: usize, rows_per_pass: usize) -> usize {
    (PREFETCH_BYTES / (k * 4)).max(rows_per_pass)
}

/// Where outputs go: y[i * n + j] for x row i and weight row j (split parts write
/// disjoint columns, see `matmul_rows`).
#[derive(Clone, Copy)]
struct OutRows {
    y: Disjoint<f32>,
    n: usize,
}

impl OutRows {
    #[cfg(test)]
    fn new(y: &mut [f32], n: usize) -> Self {
        Self { y: Disjoint::new(y), n }
    }

    /// Where x row i's output for weight row j goes.
    fn at(self, i: usize, j: usize) -> *mut f32 {
        self.y.get().wrapping_add(i * self.n + j)
    }
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
        let mut y = unfilled(m * n);
        matmul_rows_unfilled(x, w, k, &mut y);
        // SAFETY: matmul_rows_unfilled writes every element
        Ok((CpuStorage::F32(unsafe { filled(y) }), Shape::from((m, n))))
    }
}

/// y[i * n + col0 + r] = <w_r, x_i> for the `m` rows of x and every row r of w.
///
/// # Safety
/// `y` must be valid for writes at every such index.
unsafe fn dot_block(x: &[f32], m: usize, w: &[f32], k: usize, y: OutRows, col0: usize) {
    dot_block_with(Isa::best(), x, m, w, k, y, col0)
}

/// `dot_block` with a given instruction set (tests hold each to the others).
///
/// # Safety
/// As `dot_block`; and the CPU has `isa`.
unsafe fn dot_block_with(isa: Isa, x: &[f32], m: usize, w: &[f32], k: usize, y: OutRows, col0: usize) {
    // Weight rows per pass (the second parameter): enough accumulators (rows x m) to hide
    // the FMA latency, few enough to stay in the vector registers (16 ymm, 32 zmm).
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => match m {
            1 => avx512::block::<1, 8>(x, w, k, y, col0),
            2 => avx512::block::<2, 6>(x, w, k, y, col0),
            3 => avx512::block::<3, 6>(x, w, k, y, col0),
            4 => avx512::block::<4, 4>(x, w, k, y, col0),
            // up to 24 accumulators: with the sixteen-at-a-time reduction, 3 or 4 weight rows
            // beat 2 from 5 rows on (benches/decode_matmul, 2 Zen 4 cores: the head at 5
            // rows 553-572 -> 501-521 µs, 7 rows 700-732 -> 684-697, 8 rows 873-948 ->
            // 783-806; a 6-row step's products 1324-1466 -> 1213-1229 with 4)
            5 => avx512::block::<5, 3>(x, w, k, y, col0),
            6 => avx512::block::<6, 4>(x, w, k, y, col0),
            7 => avx512::block::<7, 3>(x, w, k, y, col0),
            _ => avx512::block::<8, 3>(x, w, k, y, col0),
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => match m {
            1 => avx2::block::<1, 4>(x, w, k, y, col0),
            2 => avx2::block::<2, 4>(x, w, k, y, col0),
            3 => avx2::block::<3, 3>(x, w, k, y, col0),
            4 => avx2::block::<4, 2>(x, w, k, y, col0),
            5 => avx2::block::<5, 2>(x, w, k, y, col0),
            6 => avx2::block::<6, 2>(x, w, k, y, col0),
            7 => avx2::block::<7, 1>(x, w, k, y, col0),
            _ => avx2::block::<8, 1>(x, w, k, y, col0),
        },
        Isa::Portable => portable(x, m, w, k, y, col0),
    }
}

/// The same sums in plain loops (CPUs without AVX2): eight lanes over K, then the tail.
unsafe fn portable(x: &[f32], m: usize, w: &[f32], k: usize, y: OutRows, col0: usize) {
    let body = k / 8 * 8;
    for (r, w_row) in w.chunks_exact(k).enumerate() {
        for i in 0..m {
            let x_row = &x[i * k..(i + 1) * k];
            let mut lanes = [0f32; 8];
            for c in (0..body).step_by(8) {
                for l in 0..8 {
                    lanes[l] += w_row[c + l] * x_row[c + l];
                }
            }
            let mut s: f32 = lanes.iter().sum();
            for j in body..k {
                s += w_row[j] * x_row[j];
            }
            *y.at(i, col0 + r) = s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::OutRows;

    /// y[i * n + col0 + r] = <w_r, x_i>. R weight rows at a time against all M rows of x:
    /// R + M loads feed R*M fused multiply-adds, and the R*M accumulators stay in registers.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::needless_range_loop)] // i and j index registers of x rows and w rows
    pub unsafe fn block<const M: usize, const R: usize>(
        x: &[f32],
        w: &[f32],
        k: usize,
        y: OutRows,
        col0: usize,
    ) {
        assert!(x.len() >= M * k);
        let rows = w.len() / k;
        let body = k / 8 * 8;
        let xp = x.as_ptr();
        let ahead_rows = super::prefetch_rows(k, R);
        let mut r = 0;
        while r < rows {
            if rows - r < R {
                // the last rows, one at a time
                block::<M, 1>(x, &w[r * k..], k, y, col0 + r);
                return;
            }
            let wr: [*const f32; R] = std::array::from_fn(|j| w.as_ptr().add((r + j) * k));
            // a line holds two steps of 8
            let ahead: [*const f32; R] = std::array::from_fn(|j| wr[j].wrapping_add(ahead_rows * k));
            let mut acc = [[_mm256_setzero_ps(); M]; R];
            let mut c = 0;
            while c < body {
                if c % 16 == 0 {
                    for p in ahead {
                        _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(c) as *const i8);
                    }
                }
                let wv: [__m256; R] = std::array::from_fn(|j| _mm256_loadu_ps(wr[j].add(c)));
                for i in 0..M {
                    let xv = _mm256_loadu_ps(xp.add(i * k + c));
                    for j in 0..R {
                        acc[j][i] = _mm256_fmadd_ps(wv[j], xv, acc[j][i]);
                    }
                }
                c += 8;
            }
            for j in 0..R {
                for i in 0..M {
                    let mut s = hsum(acc[j][i]);
                    for t in body..k {
                        s += *wr[j].add(t) * *xp.add(i * k + t);
                    }
                    *y.at(i, col0 + r + j) = s;
                }
            }
            r += R;
        }
    }

    /// Lanes summed in order 0..8.
    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), v);
        lanes.iter().sum()
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::OutRows;
    use crate::model::isa::avx512::sums16;

    /// `avx2::block` with 16 lanes; the tail of K (K mod 16) is one masked step, so every
    /// output is one accumulator reduced once.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop)] // i and j index registers of x rows and w rows
    pub unsafe fn block<const M: usize, const R: usize>(
        x: &[f32],
        w: &[f32],
        k: usize,
        y: OutRows,
        col0: usize,
    ) {
        assert!(x.len() >= M * k);
        let rows = w.len() / k;
        let body = k / 16 * 16;
        let tail: __mmask16 = ((1u32 << (k - body)) - 1) as __mmask16;
        let xp = x.as_ptr();
        let ahead_rows = super::prefetch_rows(k, R);
        let mut r = 0;
        while r < rows {
            if rows - r < R {
                // the last rows, one at a time
                block::<M, 1>(x, &w[r * k..], k, y, col0 + r);
                return;
            }
            let wr: [*const f32; R] = std::array::from_fn(|j| w.as_ptr().add((r + j) * k));
            // one cache line per row per step, `PREFETCH_BYTES` on
            let ahead: [*const f32; R] = std::array::from_fn(|j| wr[j].wrapping_add(ahead_rows * k));
            let mut acc = [[_mm512_setzero_ps(); M]; R];
            let mut c = 0;
            while c < body {
                for p in ahead {
                    _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(c) as *const i8);
                }
                let wv: [__m512; R] = std::array::from_fn(|j| _mm512_loadu_ps(wr[j].add(c)));
                for i in 0..M {
                    let xv = _mm512_loadu_ps(xp.add(i * k + c));
                    for j in 0..R {
                        acc[j][i] = _mm512_fmadd_ps(wv[j], xv, acc[j][i]);
                    }
                }
                c += 16;
            }
            if tail != 0 {
                let wv: [__m512; R] = std::array::from_fn(|j| _mm512_maskz_loadu_ps(tail, wr[j].add(c)));
                for i in 0..M {
                    let xv = _mm512_maskz_loadu_ps(tail, xp.add(i * k + c));
                    for j in 0..R {
                        acc[j][i] = _mm512_fmadd_ps(wv[j], xv, acc[j][i]);
                    }
                }
            }
            reduce_store::<M, R>(&acc, y, col0 + r);
            r += R;
        }
    }

    /// Stores y[i, col + j] = the lanes of acc[j][i] summed: sixteen accumulators at a time
    /// reduced together (`sums16`; a lane's sum depends on its own accumulator alone, so
    /// every output gets the same bits whatever M and R). Where each was reduced alone, the
    /// 15M llama's head took 6 rows 674-680 µs, now 617-634 (`benches/decode_matmul.rs`, 2
    /// Zen 4 cores, fastest of 200 in each of 3 interleaved runs).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn reduce_store<const M: usize, const R: usize>(acc: &[[__m512; M]; R], y: OutRows, col: usize) {
        let mut n = 0;
        while n < R * M {
            let v: [__m512; 16] = std::array::from_fn(|t| {
                let at = n + t;
                if at < R * M {
                    acc[at / M][at % M]
                } else {
                    _mm512_setzero_ps()
                }
            });
            let mut lanes = [0f32; 16];
            _mm512_storeu_ps(lanes.as_mut_ptr(), sums16(v));
            for (at, &sum) in (n..R * M).zip(&lanes) {
                *y.at(at % M, col + at / M) = sum;
            }
            n += 16;
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    #[test]
    fn equals_matmul() {
        for (m, n, k) in [(1, 5, 3), (6, 300, 288), (8, 2001, 77), (3, 70_001, 20), (7, 3, 9), (2, 7, 16)] {
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

    #[test]
    fn many_products_give_the_bits_of_each_alone() {
        // q, k, v-like weights of unequal heights, large enough together to be split, and a
        // batch past one pass of MAX_ROWS
        let (m, k) = (MAX_ROWS + 2, 96);
        let x: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.125 - 1.0).collect();
        let ws: Vec<Vec<f32>> = [300, 77, 501]
            .iter()
            .enumerate()
            .map(|(s, &n)| (0..n * k).map(|i| ((i + 31 * s) % 23) as f32 * 0.0625 - 0.7).collect())
            .collect();
        assert!(ws.iter().map(Vec::len).sum::<usize>() >= PARALLEL_WEIGHTS);
        let want: Vec<Vec<f32>> = ws
            .iter()
            .map(|w| {
                let mut y = vec![0f32; m * w.len() / k];
                matmul_rows(&x, w, k, &mut y);
                y
            })
            .collect();
        let mut got: Vec<Vec<f32>> = ws.iter().map(|w| vec![f32::NAN; m * w.len() / k]).collect();
        let mut products: Vec<(&[f32], &mut [f32])> =
            ws.iter().zip(got.iter_mut()).map(|(w, y)| (w.as_slice(), y.as_mut_slice())).collect();
        matmul_rows_many(&x, k, &mut products);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                g.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                w.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn the_unfilled_product_writes_every_output() {
        // 3 rows past a pass of MAX_ROWS, 37 weight rows (not a multiple of any pass's R)
        let (m, n, k) = (MAX_ROWS + 3, 37, 21);
        let x: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.25 - 1.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 * 0.5 - 1.5).collect();
        let mut want = vec![0f32; m * n];
        matmul_rows(&x, &w, k, &mut want);
        // NaN where a write was missed
        let mut got = vec![std::mem::MaybeUninit::new(f32::NAN); m * n];
        matmul_rows_unfilled(&x, &w, k, &mut got);
        // SAFETY: every element was initialised (to NaN, then by the product)
        let got: Vec<f32> = got.into_iter().map(|v| unsafe { v.assume_init() }).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn every_instruction_set_equals_matmul() {
        let isas = Isa::available();
        for isa in isas {
            for m in 1..=MAX_ROWS {
                // K with and without a tail, N not a multiple of any pass's rows
                for (n, k) in [(23, 288), (17, 77), (9, 16), (5, 3)] {
                    let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
                    let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
                    let want: Vec<f32> =
                        x.matmul(&w.t().unwrap()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                    let (xv, wv): (Vec<f32>, Vec<f32>) = (
                        x.flatten_all().unwrap().to_vec1().unwrap(),
                        w.flatten_all().unwrap().to_vec1().unwrap(),
                    );
                    let mut got = vec![f32::NAN; m * n];
                    // SAFETY: got holds m x n outputs; isa was detected above.
                    unsafe { dot_block_with(isa, &xv, m, &wv, k, OutRows::new(&mut got, n), 0) };
                    for (a, b) in want.iter().zip(&got) {
                        // f32 dot products of length k in different summation orders
                        assert!(
                            (a - b).abs() < 1e-4 * (k as f32).sqrt(),
                            "{isa:?} m={m} n={n} k={k}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_row_gets_the_same_bits_in_any_batch() {
        // 19 rows: passes of 8, 8 and 3; W (4.5M weights) large enough to be split across
        // the decode pool (on a machine of 2 or more cores)
        let (m, n, k) = (19, 70_001, 64);
        assert!(n * k >= PARALLEL_WEIGHTS);
        let x: Vec<f32> =
            Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let w: Vec<f32> =
            Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut all = vec![0f32; m * n];
        matmul_rows(&x, &w, k, &mut all);
        // split or not, the same sums: one pass over W on this thread, 8 rows at a time
        let mut whole = vec![f32::NAN; m * n];
        for first in (0..m).step_by(MAX_ROWS) {
            let rows = (m - first).min(MAX_ROWS);
            let y = OutRows::new(&mut whole[first * n..], n);
            // SAFETY: whole holds m x n outputs; rows of x from `first` write rows from `first`.
            unsafe { dot_block(&x[first * k..(first + rows) * k], rows, &w, k, y, 0) };
        }
        assert_eq!(whole, all, "split across the pool against one pass");
        for i in 0..m {
            let mut alone = vec![0f32; n];
            matmul_rows(&x[i * k..(i + 1) * k], &w, k, &mut alone);
            assert_eq!(alone, all[i * n..(i + 1) * n], "row {i}");
        }
        // and in a group of each size up to a pass (6 is a GRPO group's)
        for rows in 2..=MAX_ROWS {
            let mut group = vec![0f32; rows * n];
            matmul_rows(&x[..rows * k], &w, k, &mut group);
            assert_eq!(group, all[..rows * n], "a group of {rows}");
        }
    }
}
