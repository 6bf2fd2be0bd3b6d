//! Attention for one new position per sequence (a decode step), reading the KV cache in
//! place. candle's batched matmul runs one small gemm per (row, head); at a group of 6 that
//! per-call cost outweighs the arithmetic. Forward only; f32 on CPU.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use std::marker::PhantomData;

use super::decode_pool::{self, Disjoint};
use super::flash_attention::cpu::Real;

/// q: [B, H, 1, Dh]; k, v: [B, Hkv, S, Dh] (strided views allowed, last dim contiguous);
/// row b attends to keys pad[b]..S. Returns [B, H, 1, Dh].
pub fn decode_attention(q: &Tensor, k: &Tensor, v: &Tensor, pad: &[usize]) -> Result<Tensor> {
    q.contiguous()?.apply_op3_no_bwd(k, v, &DecodeAttention { pad: pad.to_vec() })
}

struct DecodeAttention {
    pad: Vec<usize>,
}

/// A KV cache [B, Hkv, S, Dh] read in place: element [b, h, s, e] lies at
/// start + b * strides[0] + h * strides[1] + s * strides[2] + e of `len` floats from `ptr`.
///
/// A pointer, not a slice: while a split attends, each part appends its own (row, kv head)
/// blocks' new position into the same buffer (`Append`), so no reference may cover it whole;
/// each pair's positions are borrowed only after its part wrote them.
#[derive(Clone, Copy)]
pub struct CacheView<'a> {
    ptr: *const f32,
    len: usize,
    pub start: usize,
    pub strides: [usize; 3],
    data: PhantomData<&'a [f32]>,
}

// SAFETY: the view reads the buffer its lifetime borrows; the parts of a split read disjoint
// blocks of it and write (`Append`) only their own
unsafe impl Send for CacheView<'_> {}
unsafe impl Sync for CacheView<'_> {}

impl<'a> CacheView<'a> {
    /// The view of a 4-d tensor stored in `data` with layout `l` (last dim contiguous).
    pub fn new(data: &'a [f32], l: &Layout) -> Self {
        let st = l.stride();
        Self::strided(data, l.start_offset(), [st[0], st[1], st[2]])
    }

    /// `data` read with the given start and strides.
    pub fn strided(data: &'a [f32], start: usize, strides: [usize; 3]) -> Self {
        Self { ptr: data.as_ptr(), len: data.len(), start, strides, data: PhantomData }
    }

    /// A buffer of `len` floats from `ptr` that an `Append` writes into while this reads it.
    ///
    /// # Safety
    /// ptr is valid for reads of len floats for 'a, and nothing but the attention's own
    /// `Append` writes it meanwhile.
    pub unsafe fn from_raw(ptr: *const f32, len: usize, start: usize, strides: [usize; 3]) -> Self {
        Self { ptr, len, start, strides, data: PhantomData }
    }

    /// Where element [b, h, s, 0] lies, from `ptr`.
    fn offset(&self, b: usize, h: usize, s: usize) -> usize {
        self.start + b * self.strides[0] + h * self.strides[1] + s * self.strides[2]
    }

    /// Positions first..last of row b, kv head h, each `d` head dims (checked to lie in
    /// the data).
    fn positions(&self, b: usize, h: usize, first: usize, last: usize, d: usize) -> Positions<'a> {
        let o = self.offset(b, h, first);
        let count = last - first;
        let end = o + (count - 1) * self.strides[2] + d;
        assert!(count > 0 && end <= self.len, "decode attention: the cache view leaves its data");
        // SAFETY: [o, end) lies in the buffer (checked), which nothing writes while this
        // borrow lives: a split's `Append` writes a block before its pairs borrow it
        let data = unsafe { std::slice::from_raw_parts(self.ptr.add(o), end - o) };
        Positions { data, stride: self.strides[2], count, width: d }
    }
}

/// `count` cached vectors of `width` floats, `stride` apart in `data`.
#[derive(Clone, Copy)]
struct Positions<'a> {
    data: &'a [f32],
    stride: usize,
    count: usize,
    width: usize,
}

impl Positions<'_> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn ptr(&self, i: usize) -> *const f32 {
        debug_assert!(i < self.count);
        // in bounds: `CacheView::positions` checked the last vector's end
        self.data[i * self.stride..].as_ptr()
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.stride..i * self.stride + self.width]
    }
}

/// The shape of one decode step's attention: B rows, H query heads sharing Hkv kv heads,
/// S cached positions (the new one included), Dh dims per head.
#[derive(Clone, Copy, Debug)]
pub struct StepShape {
    pub rows: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub positions: usize,
    pub head_dim: usize,
}

/// The step's new keys and values, [B, Hkv, Dh] each, which `attend` writes at position
/// S - 1 of the cache it reads as it goes: each part writes the (row, kv head) blocks whose
/// pairs it attends, just before it reads them. The copy is split with the attention, and
/// its cache lines (cold: the weights' stream evicts the cache between steps) are fetched by
/// the thread that reads them next; copied on the calling thread beforehand, a group of 6's
/// 432 scattered slots a step on the 15M llama took 40-100 µs.
#[derive(Clone, Copy)]
pub struct Append<'a> {
    pub keys: &'a [f32],
    pub values: &'a [f32],
}

/// out [B, H, Dh] = softmax(q kᵀ / sqrt(Dh)) v for every row and head, q: [B, H, Dh];
/// row b sees positions pad[b]..S. `scores` is scratch, grown to S per part. From
/// `SPLIT_MULTIPLY_ADDS` on, the (row, head) pairs are split across the decode pool, a kv
/// head's query heads always in one part. With `append`, the new position is written first
/// (the views must then come from `CacheView::from_raw` over writable buffers).
///
/// Each (row, head) is computed alone, by the same instructions whatever B is and whichever
/// thread takes it, so a row gets the same bits alone and in a group.
#[allow(clippy::too_many_arguments)] // the attention's inputs, its scratch and output
pub fn attend(
    q: &[f32],
    k: CacheView,
    v: CacheView,
    append: Option<Append>,
    shape: StepShape,
    pad: &[usize],
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let StepShape { rows: b, heads: h, kv_heads: hkv, positions: s, head_dim: d } = shape;
    assert!(q.len() == b * h * d && out.len() == b * h * d && pad.len() == b && s > 0);
    if let Some(new) = append {
        assert!(
            new.keys.len() == b * hkv * d && new.values.len() == b * hkv * d,
            "decode attention: new keys"
        );
    }
    let pairs = b * h;
    let split = pairs * s * d >= SPLIT_MULTIPLY_ADDS;
    // a multiple of the query heads per kv head, so one part writes and reads each block
    let rep = h / hkv;
    let per_part =
        if split { pairs.div_ceil(decode_pool::threads()) } else { pairs }.max(1).next_multiple_of(rep);
    let parts = pairs.div_ceil(per_part);
    // each part's S scores at least a cache line from the next part's (no line shared
    // between two cores' writes)
    let stride = (s + 16).next_multiple_of(16);
    scores.resize(parts * stride, 0.0);
    let (scores, out) = (Disjoint::new(scores), Disjoint::new(out));
    decode_pool::split(parts, |t| {
        let range = t * per_part..((t + 1) * per_part).min(pairs);
        // SAFETY: part t alone uses scores t x stride.. (S of them) and its pairs' outputs
        unsafe {
            let scores = std::slice::from_raw_parts_mut(scores.get().add(t * stride), s);
            attend_pairs(q, k, v, append, shape, pad, range, scores, out.get())
        }
    });
}

/// Multiply-adds of a step's scores (pairs x S x Dh) from which its attention is split
/// across threads: below, a split's hand-off costs more than the second thread saves.
const SPLIT_MULTIPLY_ADDS: usize = 1 << 15;

/// `attend` for the (row, head) pairs in `range` (pair = row x H + head); `scores` holds S.
///
/// # Safety
/// `out` must be valid for writes of the pairs' outputs, at pair x Dh; with `append`, the
/// views' buffers for writes of the range's blocks at position S - 1, which no other thread
/// reads or writes meanwhile.
#[allow(clippy::too_many_arguments)] // `attend`'s arguments and the range of pairs
unsafe fn attend_pairs(
    q: &[f32],
    k: CacheView,
    v: CacheView,
    append: Option<Append>,
    shape: StepShape,
    pad: &[usize],
    range: std::ops::Range<usize>,
    scores: &mut [f32],
    out: *mut f32,
) {
    let StepShape { heads: h, kv_heads: hkv, positions: s, head_dim: d, .. } = shape;
    let rep = h / hkv;
    let scale = 1.0 / (d as f32).sqrt();
    let isa = lanes::Isa::best();
    let cached = |pair: usize| {
        let (bi, hi) = (pair / h, pair % h);
        let first = pad[bi].min(s - 1);
        (first, k.positions(bi, hi / rep, first, s, d), v.positions(bi, hi / rep, first, s, d))
    };
    for pair in range.clone() {
        if let Some(new) = append.filter(|_| pair % rep == 0) {
            // the block's first query head writes its new key and value
            let (bi, g) = (pair / h, pair % h / rep);
            let (from, to) = ((bi * hkv + g) * d, (k.offset(bi, g, s - 1), v.offset(bi, g, s - 1)));
            assert!(
                to.0 + d <= k.len && to.1 + d <= v.len,
                "decode attention: a new position past the cache"
            );
            std::ptr::copy_nonoverlapping(new.keys.as_ptr().add(from), k.ptr.add(to.0) as *mut f32, d);
            std::ptr::copy_nonoverlapping(new.values.as_ptr().add(from), v.ptr.add(to.1) as *mut f32, d);
        }
        let (first, keys, values) = cached(pair);
        // the next pair's first positions stream in while this one computes
        if pair + 1 < range.end {
            let (_, next_keys, next_values) = cached(pair + 1);
            lanes::prefetch_first(next_keys);
            lanes::prefetch_first(next_values);
        }
        let at = pair * d;
        let p = &mut scores[first..s];
        lanes::scores(isa, &q[at..at + d], keys, scale, p);
        let max = <f32 as Real>::max_of(p);
        let total = <f32 as Real>::exp_shifted(p, max);
        let o = std::slice::from_raw_parts_mut(out.add(at), d);
        lanes::weighted_sum(isa, p, values, o);
        let inv = 1.0 / total;
        o.iter_mut().for_each(|x| *x *= inv);
    }
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) = (s1, s2, s3) else {
            candle_core::bail!("decode-attention: f32 only");
        };
        let (b, h, t, d) = l1.shape().dims4()?;
        let (_, hkv, s, dk) = l2.shape().dims4()?;
        if t != 1
            || dk != d
            || l2.shape() != l3.shape()
            || l2.stride()[3] != 1
            || l3.stride()[3] != 1
            || self.pad.len() != b
            || !l1.is_contiguous()
        {
            candle_core::bail!(
                "decode-attention: unexpected shapes q {:?} k {:?} v {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let q = &q[l1.start_offset()..l1.start_offset() + b * h * d];
        let shape = StepShape { rows: b, heads: h, kv_heads: hkv, positions: s, head_dim: d };
        let mut out = vec![0f32; b * h * d];
        let (k, v) = (CacheView::new(k, l2), CacheView::new(v, l3));
        attend(q, k, v, None, shape, &self.pad, &mut Vec::new(), &mut out);
        Ok((CpuStorage::F32(out), Shape::from((b, h, 1, d))))
    }
}

/// The two products of a (row, head): scores against each cached key, and the
/// probability-weighted sum of the cached values; AVX-512 or AVX2 + FMA when the CPU has
/// them (the scalar loops were a fifth of a group's decode step), else portable loops.
mod lanes {
    use super::Positions;
    pub(super) use crate::model::isa::Isa;

    /// p[i] = <q, key i> * scale.
    pub fn scores(isa: Isa, q: &[f32], keys: Positions, scale: f32, p: &mut [f32]) {
        assert!(q.len() == keys.width && p.len() == keys.count);
        match isa {
            // SAFETY: `Isa::best` found the instructions; `keys` lies inside its data.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx512::scores(q, keys, scale, p) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { avx2::scores(q, keys, scale, p) },
            Isa::Portable => {
                for (i, pi) in p.iter_mut().enumerate() {
                    *pi = dot(q, keys.row(i)) * scale;
                }
            }
        }
    }

    /// o = Σ_i p[i] · value i.
    pub fn weighted_sum(isa: Isa, p: &[f32], values: Positions, o: &mut [f32]) {
        assert!(o.len() == values.width && p.len() == values.count);
        match isa {
            // SAFETY: as in `scores`.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx512::weighted_sum(p, values, o) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { avx2::weighted_sum(p, values, o) },
            Isa::Portable => {
                o.fill(0.0);
                for (i, &pi) in p.iter().enumerate() {
                    for (acc, &x) in o.iter_mut().zip(values.row(i)) {
                        *acc += pi * x;
                    }
                }
            }
        }
    }

    /// Cached positions between those a kernel reads and those it asks into L2 (6 KiB at
    /// 48 head dims). A decode step's cache comes from memory (the output head's stream
    /// evicts it), and the hardware prefetcher alone left a group's attention reading it at
    /// about 9 GB/s: a group of 6 on the 15M llama, one Zen 4 thread, decoded 1410 tokens/s
    /// (medians of 7) without prefetching, 1556 with the kernels' own, and with
    /// `prefetch_first` too, 1368 -> 1513 in a later, noisier pairing.
    const AHEAD: usize = 32;

    /// Asks L2 for the first `AHEAD` positions, which the kernels' own prefetches do not
    /// reach (the next (row, head) is called for while the current one computes).
    pub fn prefetch_first(positions: Positions) {
        let count = positions.count.min(AHEAD);
        prefetch_span(positions.ptr(0), (count - 1) * positions.stride + positions.width);
    }

    /// Asks L2 for the cache lines of `floats` floats from `from` (one hint per 64 bytes, so
    /// small head dims cost a hint per line, not per position). Addresses past the data are
    /// harmless: a prefetch never faults.
    #[inline(always)]
    fn prefetch_span(from: *const f32, floats: usize) {
        #[cfg(target_arch = "x86_64")]
        for off in (0..floats).step_by(16) {
            // SAFETY: a prefetch reads nothing the program sees and never faults
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                    from.wrapping_add(off) as *const i8
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (from, floats);
    }

    /// Dot product with eight independent partial sums, so the compiler can vectorise it.
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
        let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
        for (x, y) in ac.zip(bc) {
            for l in 0..8 {
                acc[l] += x[l] * y[l];
            }
        }
        acc.iter().sum::<f32>() + tail
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::needless_range_loop)] // j indexes registers of accumulators and masks alike
    mod avx512 {
        use std::arch::x86_64::*;

        use super::Positions;
        use crate::model::isa::avx512::sums16;

        fn mask(len: usize) -> __mmask16 {
            ((1u32 << len.min(16)) - 1) as __mmask16
        }

        /// Sixteen positions at a time, their sums reduced together (`sums16`); the last
        /// count mod 16 one at a time.
        #[target_feature(enable = "avx512f")]
        pub unsafe fn scores(q: &[f32], keys: Positions, scale: f32, p: &mut [f32]) {
            let d = keys.width;
            let chunks = d.div_ceil(16);
            let scale_v = _mm512_set1_ps(scale);
            let base = keys.ptr(0);
            let mut i = 0;
            while i + 16 <= p.len() {
                let kp: [*const f32; 16] = std::array::from_fn(|j| base.add((i + j) * keys.stride));
                super::prefetch_span(base.wrapping_add((i + super::AHEAD) * keys.stride), 16 * keys.stride);
                let mut acc = [_mm512_setzero_ps(); 16];
                for c in 0..chunks {
                    let m = mask(d - 16 * c);
                    let qv = _mm512_maskz_loadu_ps(m, q.as_ptr().add(16 * c));
                    for j in 0..16 {
                        acc[j] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, kp[j].add(16 * c)), acc[j]);
                    }
                }
                _mm512_storeu_ps(p.as_mut_ptr().add(i), _mm512_mul_ps(sums16(acc), scale_v));
                i += 16;
            }
            for (j, pi) in p.iter_mut().enumerate().skip(i) {
                let kp = keys.ptr(j);
                let mut acc = _mm512_setzero_ps();
                for c in 0..chunks {
                    let m = mask(d - 16 * c);
                    let (qv, kv) = (
                        _mm512_maskz_loadu_ps(m, q.as_ptr().add(16 * c)),
                        _mm512_maskz_loadu_ps(m, kp.add(16 * c)),
                    );
                    acc = _mm512_fmadd_ps(qv, kv, acc);
                }
                *pi = _mm512_reduce_add_ps(acc) * scale;
            }
        }

        /// In passes of up to 64 head dims (four registers), four accumulator sets over the
        /// positions (i mod 4), so the FMAs of one set do not wait on each other.
        #[target_feature(enable = "avx512f")]
        pub unsafe fn weighted_sum(p: &[f32], values: Positions, o: &mut [f32]) {
            let d = values.width;
            let mut c0 = 0;
            while c0 < d {
                let width = (d - c0).min(64);
                match width.div_ceil(16) {
                    1 => pass::<1>(p, values, c0, width, o),
                    2 => pass::<2>(p, values, c0, width, o),
                    3 => pass::<3>(p, values, c0, width, o),
                    _ => pass::<4>(p, values, c0, width, o),
                }
                c0 += width;
            }
        }

        /// o[c0..c0 + width] of `weighted_sum`, width in (16 (V - 1), 16 V].
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn pass<const V: usize>(p: &[f32], values: Positions, c0: usize, width: usize, o: &mut [f32]) {
            let masks: [__mmask16; V] = std::array::from_fn(|j| mask(width - 16 * j));
            let (base, stride) = (values.ptr(0).add(c0), values.stride);
            let mut acc = [[_mm512_setzero_ps(); V]; 4];
            let mut i = 0;
            while i + 4 <= p.len() {
                // the first pass over the head dims asks for whole positions
                if c0 == 0 {
                    super::prefetch_span(base.wrapping_add((i + super::AHEAD) * stride), 4 * stride);
                }
                for (set, a) in acc.iter_mut().enumerate() {
                    let (pv, vp) = (_mm512_set1_ps(*p.get_unchecked(i + set)), base.add((i + set) * stride));
                    for j in 0..V {
                        a[j] = _mm512_fmadd_ps(pv, _mm512_maskz_loadu_ps(masks[j], vp.add(16 * j)), a[j]);
                    }
                }
                i += 4;
            }
            for (set, a) in acc.iter_mut().enumerate().take(p.len() - i) {
                let (pv, vp) = (_mm512_set1_ps(p[i + set]), base.add((i + set) * stride));
                for j in 0..V {
                    a[j] = _mm512_fmadd_ps(pv, _mm512_maskz_loadu_ps(masks[j], vp.add(16 * j)), a[j]);
                }
            }
            for j in 0..V {
                let sum =
                    _mm512_add_ps(_mm512_add_ps(acc[0][j], acc[1][j]), _mm512_add_ps(acc[2][j], acc[3][j]));
                _mm512_mask_storeu_ps(o.as_mut_ptr().add(c0 + 16 * j), masks[j], sum);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::needless_range_loop)] // j indexes registers of accumulators
    mod avx2 {
        use std::arch::x86_64::*;

        use super::Positions;

        /// Lanes summed in order 0..8.
        #[inline(always)]
        unsafe fn hsum(v: __m256) -> f32 {
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), v);
            lanes.iter().sum()
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn scores(q: &[f32], keys: Positions, scale: f32, p: &mut [f32]) {
            let d = keys.width;
            let body = d / 8 * 8;
            for (i, pi) in p.iter_mut().enumerate() {
                let kp = keys.ptr(i);
                if i % 4 == 0 {
                    super::prefetch_span(kp.wrapping_add(super::AHEAD * keys.stride), 4 * keys.stride);
                }
                let mut acc = _mm256_setzero_ps();
                for c in (0..body).step_by(8) {
                    acc =
                        _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(c)), _mm256_loadu_ps(kp.add(c)), acc);
                }
                let s = (body..d).fold(hsum(acc), |s, c| s + q[c] * *kp.add(c));
                *pi = s * scale;
            }
        }

        /// As `avx512::weighted_sum`: passes of up to 32 head dims (four registers), four
        /// accumulator sets; dims past the last multiple of 8 in plain loops.
        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn weighted_sum(p: &[f32], values: Positions, o: &mut [f32]) {
            let d = values.width;
            let body = d / 8 * 8;
            let mut c0 = 0;
            while c0 < body {
                let vecs = ((body - c0) / 8).min(4);
                match vecs {
                    1 => pass::<1>(p, values, c0, o),
                    2 => pass::<2>(p, values, c0, o),
                    3 => pass::<3>(p, values, c0, o),
                    _ => pass::<4>(p, values, c0, o),
                }
                c0 += 8 * vecs;
            }
            for (c, oc) in o.iter_mut().enumerate().skip(body) {
                *oc = p.iter().enumerate().map(|(i, &pi)| pi * *values.ptr(i).add(c)).sum();
            }
        }

        /// o[c0..c0 + 8 V] of `weighted_sum`.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn pass<const V: usize>(p: &[f32], values: Positions, c0: usize, o: &mut [f32]) {
            let (base, stride) = (values.ptr(0).add(c0), values.stride);
            let mut acc = [[_mm256_setzero_ps(); V]; 4];
            let mut i = 0;
            while i + 4 <= p.len() {
                // the first pass over the head dims asks for whole positions
                if c0 == 0 {
                    super::prefetch_span(base.wrapping_add((i + super::AHEAD) * stride), 4 * stride);
                }
                for (set, a) in acc.iter_mut().enumerate() {
                    let (pv, vp) = (_mm256_set1_ps(*p.get_unchecked(i + set)), base.add((i + set) * stride));
                    for j in 0..V {
                        a[j] = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vp.add(8 * j)), a[j]);
                    }
                }
                i += 4;
            }
            for (set, a) in acc.iter_mut().enumerate().take(p.len() - i) {
                let (pv, vp) = (_mm256_set1_ps(p[i + set]), base.add((i + set) * stride));
                for j in 0..V {
                    a[j] = _mm256_fmadd_ps(pv, _mm256_loadu_ps(vp.add(8 * j)), a[j]);
                }
            }
            for j in 0..V {
                let sum =
                    _mm256_add_ps(_mm256_add_ps(acc[0][j], acc[1][j]), _mm256_add_ps(acc[2][j], acc[3][j]));
                _mm256_storeu_ps(o.as_mut_ptr().add(c0 + 8 * j), sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lanes::{self, Isa};
    use super::{attend, attend_pairs, CacheView, Positions, StepShape};
    use candle_core::{DType, Device, Tensor};

    use crate::model::layers::kernels::Kernels;
    use crate::model::layers::{attention, Mask};

    #[test]
    fn equals_the_composed_attention_with_padding_and_gqa() {
        let (b, h, hkv, s, d) = (3, 4, 2, 9, 16);
        let q = Tensor::randn(0f32, 1.0, (b, h, 1, d), &Device::Cpu).unwrap();
        // k and v as strided views, like the cache's narrowed buffer
        let k = Tensor::randn(0f32, 1.0, (b, hkv, s + 5, d), &Device::Cpu).unwrap().narrow(2, 0, s).unwrap();
        let v = Tensor::randn(0f32, 1.0, (b, hkv, s + 5, d), &Device::Cpu).unwrap().narrow(2, 0, s).unwrap();
        let pad = [0usize, 3, 8];
        let fast = attention(&q, &k, &v, Mask::DecodeStep { pad: &pad }, Kernels::Fused).unwrap();
        let slow = attention(
            &q,
            &k.contiguous().unwrap(),
            &v.contiguous().unwrap(),
            Mask::DecodeStep { pad: &pad },
            Kernels::Differentiable,
        )
        .unwrap();
        let diff = (fast - slow)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // f32 softmax-weighted sums of O(1) values in two summation orders
        assert!(diff < 1e-5, "max diff {diff}");
    }

    #[test]
    fn split_across_threads_gives_the_bits_of_one_pass() {
        // a group of 6 at 300 positions: 6 x 4 pairs x 300 x 48 multiply-adds, split on a
        // machine of 2 or more cores; rows of different padding, so parts differ in length
        let (b, h, hkv, s, d) = (6, 4, 2, 300, 48);
        assert!(b * h * s * d >= super::SPLIT_MULTIPLY_ADDS);
        let data = |n: usize, seed: usize| -> Vec<f32> {
            (0..n).map(|i| (((i + seed) * 7919 % 2003) as f32 / 1000.0) - 1.0).collect()
        };
        let q = data(b * h * d, 1);
        let (k, v) = (data(b * hkv * s * d, 2), data(b * hkv * s * d, 3));
        let strides = [hkv * s * d, s * d, d];
        let (kc, vc) = (CacheView::strided(&k, 0, strides), CacheView::strided(&v, 0, strides));
        let shape = StepShape { rows: b, heads: h, kv_heads: hkv, positions: s, head_dim: d };
        let pad = [0, 5, 0, 299, 17, 100];
        let mut split = vec![f32::NAN; b * h * d];
        attend(&q, kc, vc, None, shape, &pad, &mut Vec::new(), &mut split);
        let mut one_pass = vec![f32::NAN; b * h * d];
        // SAFETY: one_pass holds every pair's outputs
        unsafe {
            attend_pairs(&q, kc, vc, None, shape, &pad, 0..b * h, &mut vec![0f32; s], one_pass.as_mut_ptr())
        };
        assert!(split.iter().all(|x| x.is_finite()));
        assert_eq!(split, one_pass);
    }

    #[test]
    fn every_instruction_set_equals_the_portable_loops() {
        // the portable loops are the reference
        let isas = &Isa::available()[1..];
        // head dims with and without a 8- and 16-lane tail, and past one 128-dim pass;
        // odd and even position counts (the sum's two accumulator sets)
        for d in [5, 16, 20, 48, 64, 136, 264] {
            for count in [1, 2, 7, 40] {
                let stride = d + 3;
                let data: Vec<f32> =
                    (0..count * stride).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
                let keys = Positions { data: &data, stride, count, width: d };
                let q: Vec<f32> = (0..d).map(|i| ((i * 31 % 17) as f32 / 8.0) - 1.0).collect();
                let mut want = vec![0f32; count];
                lanes::scores(Isa::Portable, &q, keys, 0.5, &mut want);
                let p: Vec<f32> = (0..count).map(|i| 1.0 / (i + 1) as f32).collect();
                let mut want_o = vec![f32::NAN; d];
                lanes::weighted_sum(Isa::Portable, &p, keys, &mut want_o);
                for &isa in isas {
                    let mut got = vec![f32::NAN; count];
                    lanes::scores(isa, &q, keys, 0.5, &mut got);
                    let mut got_o = vec![f32::NAN; d];
                    lanes::weighted_sum(isa, &p, keys, &mut got_o);
                    // f32 sums of at most 264 products of O(1) terms in other orders: a few
                    // ulp of sums that reach ~100
                    for (a, b) in want.iter().zip(&got).chain(want_o.iter().zip(&got_o)) {
                        assert!(
                            (a - b).abs() < 1e-4 * (1.0 + a.abs()),
                            "{isa:?} d={d} count={count}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}
