//! The CPU kernel: rayon over (block, head), gemm for the block matmuls.

use super::*;
use crate::model::fused::gemm::{matmul as gemm_matmul, Mat};

/// One block's matmul, single-threaded: it runs inside rayon tasks.
fn matmul<F: Real>(
    shape: (usize, usize, usize),
    dst: &mut [F],
    dst_rs: usize,
    accumulate: bool,
    a: Mat<F>,
    b: Mat<F>,
    alpha: F,
) {
    gemm_matmul(shape, dst, dst_rs, accumulate, a, b, alpha, gemm::Parallelism::None)
}

/// Element type of the kernel: f32 or f64.
pub(crate) trait Real: WithDType {
    const ZERO: Self;
    const ONE: Self;
    const NEG_INF: Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    /// Largest element of a non-empty slice.
    fn max_of(xs: &[Self]) -> Self;
    /// xs <- exp(xs - shift); returns the sum of the new xs.
    fn exp_shifted(xs: &mut [Self], shift: Self) -> Self;
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INF: Self = f64::NEG_INFINITY;
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn max_of(xs: &[Self]) -> Self {
        xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
    fn exp_shifted(xs: &mut [Self], shift: Self) -> Self {
        xs.iter_mut()
            .map(|x| {
                *x = (*x - shift).exp();
                *x
            })
            .sum()
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INF: Self = f32::NEG_INFINITY;
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    fn max_of(xs: &[Self]) -> Self {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { simd::max_avx512(xs) };
        }
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { simd::max_avx2(xs) };
        }
        simd::max(xs)
    }
    fn exp_shifted(xs: &mut [Self], shift: Self) -> Self {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { simd::exp_shifted_avx512(xs, shift) };
        }
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { simd::exp_shifted_avx2(xs, shift) };
        }
        simd::exp_shifted(xs, shift)
    }
}

/// f32 row operations of the online softmax: portable loops, and AVX2 + FMA or AVX-512
/// intrinsics chosen at run time (the exp is a third of the kernel's time when scalar; the
/// 16-lane form is 1.46x the 8-lane one, best of 50 rounds of 128-element rows, loaded machine).
pub(crate) mod simd {
    #[inline(always)]
    pub fn max(xs: &[f32]) -> f32 {
        let mut lanes = [f32::NEG_INFINITY; 8];
        let chunks = xs.chunks_exact(8);
        let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for c in chunks {
            for l in 0..8 {
                lanes[l] = if c[l] > lanes[l] { c[l] } else { lanes[l] };
            }
        }
        lanes.iter().copied().fold(tail, f32::max)
    }

    #[inline(always)]
    pub fn exp_shifted(xs: &mut [f32], shift: f32) -> f32 {
        let mut lanes = [0f32; 8];
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            for l in 0..8 {
                c[l] = exp(c[l] - shift);
                lanes[l] += c[l];
            }
        }
        let mut sum: f32 = lanes.iter().sum();
        for x in chunks.into_remainder() {
            *x = exp(*x - shift);
            sum += *x;
        }
        sum
    }

    /// e^x to about 2 ulp, branch-free so it vectorises (Cephes' expf): x = n ln2 + r with
    /// |r| <= ln2 / 2, e^r by a degree-6 polynomial, 2^n through the exponent bits.
    /// Exactly 0 below -87 (masked and far-below-max scores), and NaN stays NaN.
    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        const LN2_HI: f32 = 0.693_359_4;
        const LN2_LO: f32 = -2.121_944_4e-4;
        // adding 1.5 * 2^23 rounds to an integer, held in the low mantissa bits
        const ROUND: f32 = 12_582_912.0;
        let xc = x.clamp(-87.0, 88.0);
        let t = xc * std::f32::consts::LOG2_E + ROUND;
        let n = t - ROUND;
        let r = xc - n * LN2_HI - n * LN2_LO;
        let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
            + 0.166_666_65)
            * r
            + 0.5;
        let er = p * (r * r) + r + 1.0;
        let pow2 = f32::from_bits(((t.to_bits() as i32 - ROUND.to_bits() as i32 + 127) << 23) as u32);
        if x < -87.0 {
            0.0
        } else {
            er * pow2
        }
    }

    /// The same functions in AVX2 + FMA intrinsics, eight lanes at a time (the compiler
    /// does not vectorise the loops above by itself).
    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use std::arch::x86_64::*;

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn max(xs: &[f32]) -> f32 {
            let body = xs.len() / 8 * 8;
            let mut acc = _mm256_set1_ps(f32::NEG_INFINITY);
            for i in (0..body).step_by(8) {
                acc = _mm256_max_ps(acc, _mm256_loadu_ps(xs.as_ptr().add(i)));
            }
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
            xs[body..].iter().chain(&lanes).copied().fold(f32::NEG_INFINITY, f32::max)
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn exp_shifted(xs: &mut [f32], shift: f32) -> f32 {
            let body = xs.len() / 8 * 8;
            let (p, shift_v) = (xs.as_mut_ptr(), _mm256_set1_ps(shift));
            let mut acc = _mm256_setzero_ps();
            for i in (0..body).step_by(8) {
                let e = exp(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), shift_v));
                _mm256_storeu_ps(p.add(i), e);
                acc = _mm256_add_ps(acc, e);
            }
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
            let mut sum: f32 = lanes.iter().sum();
            for x in &mut xs[body..] {
                *x = super::exp(*x - shift);
                sum += *x;
            }
            sum
        }

        /// super::exp on eight lanes.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn exp(x: __m256) -> __m256 {
            const ROUND: f32 = 12_582_912.0;
            let c = _mm256_set1_ps;
            // max/min return their second operand when either is NaN: x goes second
            let xc = _mm256_min_ps(c(88.0), _mm256_max_ps(c(-87.0), x));
            let t = _mm256_fmadd_ps(xc, c(std::f32::consts::LOG2_E), c(ROUND));
            let n = _mm256_sub_ps(t, c(ROUND));
            let r = _mm256_fnmadd_ps(n, c(0.693_359_4), xc);
            let r = _mm256_fnmadd_ps(n, c(-2.121_944_4e-4), r);
            let mut p = _mm256_fmadd_ps(c(1.987_569_1e-4), r, c(1.398_199_9e-3));
            p = _mm256_fmadd_ps(p, r, c(8.333_452e-3));
            p = _mm256_fmadd_ps(p, r, c(4.166_579_6e-2));
            p = _mm256_fmadd_ps(p, r, c(0.166_666_65));
            p = _mm256_fmadd_ps(p, r, c(0.5));
            let er = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, c(1.0)));
            let n_int = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(ROUND.to_bits() as i32));
            let pow2 =
                _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n_int, _mm256_set1_epi32(127)), 23));
            let below = _mm256_cmp_ps(x, c(-87.0), _CMP_LT_OQ);
            _mm256_andnot_ps(below, _mm256_mul_ps(er, pow2))
        }
    }
    #[cfg(target_arch = "x86_64")]
    pub use avx2::{exp as exp_avx2, exp_shifted as exp_shifted_avx2, max as max_avx2};

    /// The same with sixteen lanes and a masked tail (no scalar loop): the exp was 6% of a
    /// training step at 4096 tokens with eight lanes.
    #[cfg(target_arch = "x86_64")]
    mod avx512 {
        use std::arch::x86_64::*;

        /// Lanes of the last, partial vector of `len` elements.
        fn tail_mask(len: usize) -> __mmask16 {
            match len % 16 {
                0 => 0,
                r => ((1u32 << r) - 1) as __mmask16,
            }
        }

        #[target_feature(enable = "avx512f")]
        pub unsafe fn max(xs: &[f32]) -> f32 {
            let body = xs.len() / 16 * 16;
            let neg = _mm512_set1_ps(f32::NEG_INFINITY);
            let mut acc = neg;
            for i in (0..body).step_by(16) {
                acc = _mm512_max_ps(acc, _mm512_loadu_ps(xs.as_ptr().add(i)));
            }
            let tail = _mm512_mask_loadu_ps(neg, tail_mask(xs.len()), xs.as_ptr().add(body));
            _mm512_reduce_max_ps(_mm512_max_ps(acc, tail))
        }

        #[target_feature(enable = "avx512f")]
        pub unsafe fn exp_shifted(xs: &mut [f32], shift: f32) -> f32 {
            let body = xs.len() / 16 * 16;
            let (p, shift_v) = (xs.as_mut_ptr(), _mm512_set1_ps(shift));
            let mut acc = _mm512_setzero_ps();
            for i in (0..body).step_by(16) {
                let e = exp(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), shift_v));
                _mm512_storeu_ps(p.add(i), e);
                acc = _mm512_add_ps(acc, e);
            }
            let mask = tail_mask(xs.len());
            if mask != 0 {
                let e = exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, p.add(body)), shift_v));
                _mm512_mask_storeu_ps(p.add(body), mask, e);
                acc = _mm512_mask_add_ps(acc, mask, acc, e);
            }
            _mm512_reduce_add_ps(acc)
        }

        /// super::exp on sixteen lanes (the constants and steps of the AVX2 form).
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub unsafe fn exp(x: __m512) -> __m512 {
            const ROUND: f32 = 12_582_912.0;
            let c = _mm512_set1_ps;
            // max/min return their second operand when either is NaN: x goes second
            let xc = _mm512_min_ps(c(88.0), _mm512_max_ps(c(-87.0), x));
            let t = _mm512_fmadd_ps(xc, c(std::f32::consts::LOG2_E), c(ROUND));
            let n = _mm512_sub_ps(t, c(ROUND));
            let r = _mm512_fnmadd_ps(n, c(0.693_359_4), xc);
            let r = _mm512_fnmadd_ps(n, c(-2.121_944_4e-4), r);
            let mut poly = _mm512_fmadd_ps(c(1.987_569_1e-4), r, c(1.398_199_9e-3));
            poly = _mm512_fmadd_ps(poly, r, c(8.333_452e-3));
            poly = _mm512_fmadd_ps(poly, r, c(4.166_579_6e-2));
            poly = _mm512_fmadd_ps(poly, r, c(0.166_666_65));
            poly = _mm512_fmadd_ps(poly, r, c(0.5));
            let er = _mm512_fmadd_ps(poly, _mm512_mul_ps(r, r), _mm512_add_ps(r, c(1.0)));
            let n_int = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(ROUND.to_bits() as i32));
            let pow2 =
                _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(n_int, _mm512_set1_epi32(127))));
            let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, c(-87.0));
            _mm512_maskz_mul_ps(!below, er, pow2)
        }
    }
    #[cfg(target_arch = "x86_64")]
    pub use avx512::{exp as exp_avx512, exp_shifted as exp_shifted_avx512, max as max_avx512};
}

/// The inputs as row-major [T, heads, Dh] slices.
struct Inputs<'a, F> {
    q: &'a [F],
    k: &'a [F],
    v: &'a [F],
    h: usize,
    hkv: usize,
    dh: usize,
    scale: F,
}

impl<F> Inputs<'_, F> {
    /// Rows of query head `h` from position `t`: [.., Dh], H·Dh apart.
    fn q_at(&self, t: usize, h: usize) -> Mat<'_, F> {
        Mat::rows(self.q, (t * self.h + h) * self.dh, self.h * self.dh)
    }
    fn k_at(&self, t: usize, g: usize) -> Mat<'_, F> {
        Mat::rows(self.k, (t * self.hkv + g) * self.dh, self.hkv * self.dh)
    }
    fn v_at(&self, t: usize, g: usize) -> Mat<'_, F> {
        Mat::rows(self.v, (t * self.hkv + g) * self.dh, self.hkv * self.dh)
    }
    fn group(&self, h: usize) -> usize {
        h / (self.h / self.hkv)
    }
}

/// Keys k0.. that query `query` may see among `bk` of them: those at or before it.
fn visible(query: usize, k0: usize, bk: usize) -> usize {
    (query + 1).saturating_sub(k0).min(bk)
}

fn slice<'a, F: Real>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [F]> {
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("varlen-attention: inputs must be contiguous")
    };
    Ok(&F::cpu_storage_as_slice(s)?[start..end])
}

/// Output storage [T, H, Dh] and lse [T, H] (a CPU tensor in F).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward<F: Real>(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    s3: &CpuStorage,
    l3: &Layout,
    cu_seqlens: &[usize],
    scale: f64,
) -> candle_core::Result<(CpuStorage, Tensor)> {
    let (t, h, dh) = l1.shape().dims3()?;
    let hkv = l2.shape().dims3()?.1;
    let x = Inputs {
        q: slice(s1, l1)?,
        k: slice(s2, l2)?,
        v: slice(s3, l3)?,
        h,
        hkv,
        dh,
        scale: F::from_f64(scale),
    };
    let blocks = blocks(cu_seqlens, FWD_BLOCK_Q);
    // heaviest first (the most keys), so the last tasks to run are short ones
    let mut items: Vec<(usize, usize)> =
        (0..blocks.len()).flat_map(|b| (0..h).map(move |hi| (b, hi))).collect();
    items.sort_by_key(|&(b, _)| std::cmp::Reverse(blocks[b].end - blocks[b].row_start));
    let results: Vec<(Vec<F>, Vec<F>)> =
        // the score block's buffer is kept per rayon split rather than allocated per task
        items.par_iter().map_init(Vec::new, |s, &(b, hi)| forward_block(&x, blocks[b], hi, s)).collect();
    let mut o = vec![F::ZERO; t * h * dh];
    let mut lse = vec![F::ZERO; t * h];
    for (&(b, hi), (ob, lb)) in items.iter().zip(&results) {
        for (i, pos) in (blocks[b].start..blocks[b].end).enumerate() {
            let at = (pos * h + hi) * dh;
            o[at..at + dh].copy_from_slice(&ob[i * dh..(i + 1) * dh]);
            lse[pos * h + hi] = lb[i];
        }
    }
    let lse = Tensor::from_vec(lse, (t, h), &candle_core::Device::Cpu)?;
    Ok((F::to_cpu_storage_owned(o), lse))
}

/// One query block of one head: (O [bq, Dh], lse [bq]).
/// `s` is scratch for the scores, resized here.
fn forward_block<F: Real>(x: &Inputs<F>, blk: Block, hi: usize, s: &mut Vec<F>) -> (Vec<F>, Vec<F>) {
    let (bq, dh, g) = (blk.len(), x.dh, x.group(hi));
    let mut m = vec![F::NEG_INF; bq]; // running max of each query's scores
    let mut l = vec![F::ZERO; bq]; // running sum of exp(score - m)
    let mut acc = vec![F::ZERO; bq * dh]; // running sum of exp(score - m) v
    s.resize(bq * FWD_BLOCK_K, F::ZERO);
    for k0 in (blk.row_start..blk.end).step_by(FWD_BLOCK_K) {
        let bk = FWD_BLOCK_K.min(blk.end - k0);
        // S = scale Q Kᵀ: [bq, bk], row stride bk
        matmul((bq, bk, dh), s, bk, false, x.q_at(blk.start, hi), x.k_at(k0, g).t(), x.scale);
        for i in 0..bq {
            let row = &mut s[i * bk..(i + 1) * bk];
            let vis = visible(blk.start + i, k0, bk);
            let m_new = if vis == 0 { m[i] } else { F::max_of(&row[..vis]).max_with(m[i]) };
            // m is -inf only before the first key block, which holds the row's first key
            let correction = if m[i] == F::NEG_INF { F::ZERO } else { (m[i] - m_new).exp() };
            let sum = F::exp_shifted(&mut row[..vis], m_new);
            row[vis..].fill(F::ZERO);
            l[i] = l[i] * correction + sum;
            m[i] = m_new;
            if correction != F::ONE {
                acc[i * dh..(i + 1) * dh].iter_mut().for_each(|a| *a *= correction);
            }
        }
        // acc += P V: [bq, Dh]
        matmul((bq, dh, bk), &mut acc, dh, true, Mat::rows(s, 0, bk), x.v_at(k0, g), F::ONE);
    }
    for i in 0..bq {
        let inv = F::ONE / l[i];
        acc[i * dh..(i + 1) * dh].iter_mut().for_each(|a| *a *= inv);
        m[i] += l[i].ln();
    }
    (acc, m)
}

trait MaxWith {
    fn max_with(self, other: Self) -> Self;
}

impl<F: Real> MaxWith for F {
    fn max_with(self, other: Self) -> Self {
        if other > self {
            other
        } else {
            self
        }
    }
}

/// A contiguous CPU tensor's elements, read in place through its storage guard.
fn cpu_slice<'a, F: Real>(storage: &'a Storage, layout: &Layout) -> candle_core::Result<&'a [F]> {
    let Storage::Cpu(cpu) = storage else { candle_core::bail!("varlen-attention: not a CPU tensor") };
    slice(cpu, layout)
}

/// (dq, dk, dv) as CPU tensors in the inputs' dtype.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    d_o: &Tensor,
    lse: &Tensor,
    cu_seqlens: &[usize],
    scale: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    match q.dtype() {
        DType::F32 => backward_typed::<f32>(q, k, v, o, d_o, lse, cu_seqlens, scale),
        DType::F64 => backward_typed::<f64>(q, k, v, o, d_o, lse, cu_seqlens, scale),
        other => anyhow::bail!("varlen-attention: the kernel takes f32 or f64, not {other:?}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn backward_typed<F: Real>(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    d_o: &Tensor,
    lse: &Tensor,
    cu_seqlens: &[usize],
    scale: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (t, h, dh) = q.dims3()?;
    let hkv = k.dim(1)?;
    let guards = [q, k, v, o, d_o, lse].map(|x| x.storage_and_layout());
    let [qs, ks, vs, os, dos, lses] = [0, 1, 2, 3, 4, 5].map(|i| cpu_slice::<F>(&guards[i].0, guards[i].1));
    let (x, d_o, lse) =
        (Inputs { q: qs?, k: ks?, v: vs?, h, hkv, dh, scale: F::from_f64(scale) }, dos?, lses?);
    // D [T, H] = rowsum(dO ∘ O)
    let d: Vec<F> = os?
        .par_chunks(dh)
        .zip(d_o.par_chunks(dh))
        .map(|(a, b)| a.iter().zip(b).fold(F::ZERO, |s, (&x, &y)| s + x * y))
        .collect();
    let blocks = blocks(cu_seqlens, BWD_BLOCK);
    let grads = Grads { d_o, lse, d: &d, blocks: &blocks };
    // dK, dV per (key block, kv head) and dQ per (query block, head), each summed by one
    // task in block order, so a backward gives the same bits on every run (dQ added into
    // shared blocks as key blocks finished made two identical training runs differ after
    // a step at rows longer than a block)
    let kv_grads: Vec<(Vec<F>, Vec<F>)> = (0..blocks.len() * hkv)
        .into_par_iter()
        .map(|i| backward_kv_block(&x, &grads, i / hkv, i % hkv))
        .collect();
    let dq_blocks: Vec<Vec<F>> =
        (0..blocks.len() * h).into_par_iter().map(|i| backward_q_block(&x, &grads, i / h, i % h)).collect();
    drop(guards);
    let mut dq = vec![F::ZERO; t * h * dh];
    for (i, acc) in dq_blocks.iter().enumerate() {
        let (blk, hi) = (blocks[i / h], i % h);
        for (j, pos) in (blk.start..blk.end).enumerate() {
            let at = (pos * h + hi) * dh;
            dq[at..at + dh].copy_from_slice(&acc[j * dh..(j + 1) * dh]);
        }
    }
    let (mut dk, mut dv) = (vec![F::ZERO; t * hkv * dh], vec![F::ZERO; t * hkv * dh]);
    for (i, (dkb, dvb)) in kv_grads.iter().enumerate() {
        let (blk, g) = (blocks[i / hkv], i % hkv);
        for (j, pos) in (blk.start..blk.end).enumerate() {
            let at = (pos * hkv + g) * dh;
            dk[at..at + dh].copy_from_slice(&dkb[j * dh..(j + 1) * dh]);
            dv[at..at + dh].copy_from_slice(&dvb[j * dh..(j + 1) * dh]);
        }
    }
    let dev = q.device();
    Ok((
        Tensor::from_vec(dq, (t, h, dh), dev)?,
        Tensor::from_vec(dk, (t, hkv, dh), dev)?,
        Tensor::from_vec(dv, (t, hkv, dh), dev)?,
    ))
}

/// What the backward reads besides the inputs.
struct Grads<'a, F> {
    d_o: &'a [F],
    lse: &'a [F],
    d: &'a [F],
    blocks: &'a [Block],
}

/// P = exp(scale Q Kᵀ - lse) and dS = P ∘ (dO Vᵀ - D), both [bq, bk], of query block
/// `qblk` of head `hi` against key block `kblk` of its kv head.
fn probabilities_and_ds<F: Real>(
    x: &Inputs<F>,
    gr: &Grads<F>,
    (qblk, kblk): (Block, Block),
    hi: usize,
    p: &mut [F],
    ds: &mut [F],
) {
    let (bq, bk, dh, q0, k0, g) = (qblk.len(), kblk.len(), x.dh, qblk.start, kblk.start, x.group(hi));
    let d_o = Mat::rows(gr.d_o, (q0 * x.h + hi) * dh, x.h * dh);
    matmul((bq, bk, dh), p, bk, false, x.q_at(q0, hi), x.k_at(k0, g).t(), x.scale);
    for i in 0..bq {
        let row = &mut p[i * bk..(i + 1) * bk];
        let vis = visible(q0 + i, k0, bk);
        F::exp_shifted(&mut row[..vis], gr.lse[(q0 + i) * x.h + hi]);
        row[vis..].fill(F::ZERO);
    }
    matmul((bq, bk, dh), ds, bk, false, d_o, x.v_at(k0, g).t(), F::ONE);
    for i in 0..bq {
        let d_i = gr.d[(q0 + i) * x.h + hi];
        for (s, &pv) in ds[i * bk..(i + 1) * bk].iter_mut().zip(&p[i * bk..(i + 1) * bk]) {
            *s = pv * (*s - d_i);
        }
    }
}

/// Key block `kb` of kv head `g` against every later query block of its row and every
/// query head of the group: (dK, dV) [bk, Dh].
fn backward_kv_block<F: Real>(x: &Inputs<F>, gr: &Grads<F>, kb: usize, g: usize) -> (Vec<F>, Vec<F>) {
    let kblk = gr.blocks[kb];
    let (bk, dh) = (kblk.len(), x.dh);
    let rep = x.h / x.hkv;
    let mut dk = vec![F::ZERO; bk * dh];
    let mut dv = vec![F::ZERO; bk * dh];
    let mut p = vec![F::ZERO; BWD_BLOCK * bk];
    let mut ds = vec![F::ZERO; BWD_BLOCK * bk];
    // query blocks of the row from this key block's on: the blocks are consecutive
    let last = kb + gr.blocks[kb..].iter().take_while(|b| b.row_start == kblk.row_start).count();
    for hi in g * rep..(g + 1) * rep {
        for &qblk in &gr.blocks[kb..last] {
            let (bq, q0) = (qblk.len(), qblk.start);
            probabilities_and_ds(x, gr, (qblk, kblk), hi, &mut p, &mut ds);
            // dV += Pᵀ dO
            let d_o = Mat::rows(gr.d_o, (q0 * x.h + hi) * dh, x.h * dh);
            matmul((bk, dh, bq), &mut dv, dh, true, Mat::rows(&p, 0, bk).t(), d_o, F::ONE);
            // dK += scale dSᵀ Q
            matmul((bk, dh, bq), &mut dk, dh, true, Mat::rows(&ds, 0, bk).t(), x.q_at(q0, hi), x.scale);
        }
    }
    (dk, dv)
}

/// Query block `qb` of head `hi` against every earlier key block of its row: dQ [bq, Dh]
/// = scale Σ dS K, summed in key-block order. P and dS are computed again here rather than
/// kept from `backward_kv_block` (two more block matmuls a pair, no T²-sized buffer).
fn backward_q_block<F: Real>(x: &Inputs<F>, gr: &Grads<F>, qb: usize, hi: usize) -> Vec<F> {
    let qblk = gr.blocks[qb];
    let (bq, dh, g) = (qblk.len(), x.dh, x.group(hi));
    let mut dq = vec![F::ZERO; bq * dh];
    let mut p = vec![F::ZERO; bq * BWD_BLOCK];
    let mut ds = vec![F::ZERO; bq * BWD_BLOCK];
    // key blocks of the row up to this query block's: the blocks are consecutive
    let first = qb - gr.blocks[..qb].iter().rev().take_while(|b| b.row_start == qblk.row_start).count();
    for &kblk in &gr.blocks[first..=qb] {
        let bk = kblk.len();
        probabilities_and_ds(x, gr, (qblk, kblk), hi, &mut p, &mut ds);
        matmul((bq, dh, bk), &mut dq, dh, true, Mat::rows(&ds, 0, bk), x.k_at(kblk.start, g), x.scale);
    }
    dq
}
