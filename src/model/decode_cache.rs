//! A layer's KV cache for decoding on the CPU: keys and values [B, Hkv, capacity, Dh] each,
//! in buffers of our own that the decode step writes in place and its attention reads in
//! place (`decode_attention::CacheView`).
//!
//! candle_nn's cache took a group of 6 on the 15M llama ~100 µs a step to append one
//! position (two tensors made from the step's keys and values, then `slice_set`, on the
//! calling thread while the decode pool's helpers waited), and grew by a fixed 512 positions
//! with `Tensor::cat`, a copy of all it held each time. Here the step's attention writes its
//! keys and values in place as it goes (`attend_step`); a generation reserves its longest
//! once (`reserve_exact`), and past that the capacity doubles. The prefill, and any cached
//! forward that is not the host step, appends tensors and gets everything cached back as
//! tensors (`append_tensors`).

use anyhow::{bail, ensure, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::kv_cache::KvCache;

use super::decode_attention::{attend, Append, CacheView, StepShape};
use super::layers::select_kv_rows;

/// Positions a cache first holds (more when the first append needs them).
const FIRST_CAPACITY: usize = 256;

/// A layer's KV cache: ours where the host kernels run (the CPU, f32), candle_nn's on other
/// devices (and on the CPU under `fused::generic_only`, which runs what a GPU runs).
pub enum LayerKv {
    Host(HostKv),
    Tensors(KvCache),
}

impl LayerKv {
    pub fn new(host: bool) -> Self {
        if host {
            Self::Host(HostKv::new())
        } else {
            Self::Tensors(KvCache::new(2, 512))
        }
    }

    /// Appends k, v [B, Hkv, T, Dh]; returns everything cached, [B, Hkv, S, Dh].
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        match self {
            Self::Host(c) => c.append_tensors(k, v),
            Self::Tensors(c) => Ok(c.append(&k.contiguous()?, &v.contiguous()?)?),
        }
    }

    /// Keeps the given rows, in that order.
    pub fn retain_rows(&mut self, rows: &[usize]) -> Result<()> {
        match self {
            Self::Host(c) => c.retain_rows(rows),
            Self::Tensors(c) => {
                let idx = Tensor::new(rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), &Device::Cpu)?;
                select_kv_rows(c, &idx)
            }
        }
    }

    /// Room for `positions` in our cache (candle_nn's grows its own way).
    pub fn reserve(&mut self, positions: usize) {
        if let Self::Host(c) = self {
            c.reserve_exact(positions);
        }
    }

    /// Whether this is ours.
    pub fn is_host(&self) -> bool {
        matches!(self, Self::Host(_))
    }

    /// Ours, if this is.
    pub fn host(&mut self) -> Option<&mut HostKv> {
        match self {
            Self::Host(c) => Some(c),
            Self::Tensors(_) => None,
        }
    }
}

/// One layer's cached keys and values (f32).
#[derive(Default)]
pub struct HostKv {
    /// (rows B, kv heads Hkv, head dim Dh), from the first append.
    shape: Option<(usize, usize, usize)>,
    /// Positions each (row, kv head) has room for.
    capacity: usize,
    /// Positions cached.
    len: usize,
    /// [B, Hkv, capacity, Dh]; positions from `len` on are unused.
    keys: Vec<f32>,
    values: Vec<f32>,
}

impl HostKv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends k, v [B, Hkv, T, Dh] (f32, any layout) and returns all that is cached as
    /// contiguous tensors [B, Hkv, S, Dh] on the CPU (the cached forward's attention takes
    /// tensors; a copy of the cache, which the host step never makes).
    pub fn append_tensors(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, hkv, t, d) = k.dims4()?;
        ensure!(
            v.dims4()? == (b, hkv, t, d),
            "KV cache: keys {:?} and values {:?} differ",
            k.dims(),
            v.dims()
        );
        ensure!(k.dtype() == DType::F32, "KV cache: {:?} keys, the host cache holds f32", k.dtype());
        self.fit(b, hkv, d)?;
        self.reserve(self.len + t);
        let (k, v) = (k.flatten_all()?.to_vec1::<f32>()?, v.flatten_all()?.to_vec1::<f32>()?);
        for blk in 0..b * hkv {
            let to = (blk * self.capacity + self.len) * d;
            self.keys[to..to + t * d].copy_from_slice(&k[blk * t * d..(blk + 1) * t * d]);
            self.values[to..to + t * d].copy_from_slice(&v[blk * t * d..(blk + 1) * t * d]);
        }
        self.len += t;
        self.cached()
    }

    /// Everything cached, as contiguous tensors [B, Hkv, S, Dh] on the CPU.
    pub fn cached(&self) -> Result<(Tensor, Tensor)> {
        let ((b, hkv, d), s) = (self.shape.unwrap_or((0, 0, 0)), self.len);
        let gather = |buf: &[f32]| -> Result<Tensor> {
            let mut all = Vec::with_capacity(b * hkv * s * d);
            for blk in 0..b * hkv {
                all.extend_from_slice(&buf[blk * self.capacity * d..(blk * self.capacity + s) * d]);
            }
            Ok(Tensor::from_vec(all, (b, hkv, s, d), &Device::Cpu)?)
        };
        Ok((gather(&self.keys)?, gather(&self.values)?))
    }

    /// One decode step's attention (`decode_attention::attend`) over the cache and the new
    /// position, whose keys and values k, v [B, Hkv, Dh] it appends as it goes (each part of
    /// the split writes the blocks it then reads). q, out: [B, H, Dh]; the shape's positions
    /// are the cache's and the new one.
    #[allow(clippy::too_many_arguments)] // the step's inputs, its scratch and output
    pub fn attend_step(
        &mut self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: StepShape,
        pad: &[usize],
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) -> Result<()> {
        let StepShape { rows, kv_heads, head_dim, positions, .. } = shape;
        let floats = rows * kv_heads * head_dim;
        ensure!(k.len() == floats && v.len() == floats, "KV cache: a step of {} keys for {floats}", k.len());
        ensure!(positions == self.len + 1, "KV cache of {} positions attended as {positions}", self.len);
        self.fit(rows, kv_heads, head_dim)?;
        self.reserve(self.len + 1);
        let strides = [kv_heads * self.capacity * head_dim, self.capacity * head_dim, head_dim];
        let (kp, vp) = (self.keys.as_mut_ptr(), self.values.as_mut_ptr());
        // SAFETY: the buffers live (and nothing else touches them) while `attend` runs: it
        // reads positions ..len + 1 and writes position len through these pointers
        let (keys, values) = unsafe {
            (
                CacheView::from_raw(kp, self.keys.len(), 0, strides),
                CacheView::from_raw(vp, self.values.len(), 0, strides),
            )
        };
        attend(q, keys, values, Some(Append { keys: k, values: v }), shape, pad, scores, out);
        self.len += 1;
        Ok(())
    }

    /// Keeps the given rows, in that order (finished sequences dropped from a batch).
    pub fn retain_rows(&mut self, rows: &[usize]) -> Result<()> {
        let Some((b, hkv, d)) = self.shape else { return Ok(()) };
        if let Some(&bad) = rows.iter().find(|&&r| r >= b) {
            bail!("KV cache: row {bad} kept of {b}");
        }
        let (per_row, per_block, used) = (hkv * self.capacity * d, self.capacity * d, self.len * d);
        if rows.windows(2).all(|w| w[0] < w[1]) {
            // finished rows dropped, the others in order (a generation's case, with the
            // capacity reserved for its longest): each kept row moves down in place, its
            // cached positions only
            for buf in [&mut self.keys, &mut self.values] {
                for (to, &from) in rows.iter().enumerate().filter(|(to, from)| to != *from) {
                    for h in 0..hkv {
                        let src = from * per_row + h * per_block;
                        buf.copy_within(src..src + used, to * per_row + h * per_block);
                    }
                }
                buf.truncate(rows.len() * per_row);
            }
        } else {
            // repeated or reordered (a shared prompt's prefill copied to a group)
            let keep = |buf: &[f32]| {
                rows.iter().flat_map(|&r| &buf[r * per_row..(r + 1) * per_row]).copied().collect()
            };
            self.keys = keep(&self.keys);
            self.values = keep(&self.values);
        }
        self.shape = Some((rows.len(), hkv, d));
        Ok(())
    }

    /// Takes the shape from the first append; later ones must match it.
    fn fit(&mut self, rows: usize, kv_heads: usize, head_dim: usize) -> Result<()> {
        match self.shape {
            None => self.shape = Some((rows, kv_heads, head_dim)),
            Some(s) if s == (rows, kv_heads, head_dim) => {}
            Some((b, h, d)) => {
                bail!("KV cache of [{b}, {h}, _, {d}] appended [{rows}, {kv_heads}, _, {head_dim}]")
            }
        }
        Ok(())
    }

    /// Room for `positions` in every block: the capacity at least doubles, so a long
    /// generation copies what it holds a logarithmic number of times.
    fn reserve(&mut self, positions: usize) {
        if positions > self.capacity {
            self.grow_or_abort(positions.max(2 * self.capacity).max(FIRST_CAPACITY));
        }
    }

    /// Room for exactly `positions` (at least), once the shape is known: a generation that
    /// knows its longest (prompt + max_new_tokens) grows once, to that, and no further, where
    /// doubling could hold twice the memory (6 rows of Qwen3-0.6B at 8192 new tokens keep
    /// 11 GiB of keys and values). Zeroed pages the allocator has fresh from the system cost
    /// nothing until a position reaches them. A reservation the allocator refuses (a huge
    /// max_new_tokens) is skipped: the cache then grows as it fills.
    pub fn reserve_exact(&mut self, positions: usize) {
        if self.shape.is_some() && positions > self.capacity {
            // refused: nothing moved, and the cache grows as it fills
            let _ = self.grow_to(positions);
        }
    }

    /// Room for positions as they come (doubling); the allocator's refusal ends the process
    /// here, as it does for any tensor.
    fn grow_or_abort(&mut self, capacity: usize) {
        if !self.grow_to(capacity) {
            let (b, hkv, d) = self.shape.unwrap_or((0, 0, 0));
            let floats = b.saturating_mul(hkv).saturating_mul(capacity).saturating_mul(d);
            std::alloc::handle_alloc_error(
                std::alloc::Layout::array::<f32>(floats).unwrap_or(std::alloc::Layout::new::<[f32; 1]>()),
            );
        }
    }

    /// Moves what is cached into buffers of `capacity` positions a block; false (and nothing
    /// moved) when the allocator refuses them.
    fn grow_to(&mut self, capacity: usize) -> bool {
        let (b, hkv, d) = self.shape.expect("fit before growing");
        let Some(n) = b.checked_mul(hkv).and_then(|x| x.checked_mul(capacity)).and_then(|x| x.checked_mul(d))
        else {
            return false;
        };
        let (Some(mut keys), Some(mut values)) = (zeroed(n), zeroed(n)) else { return false };
        for (new, old) in [(&mut keys, &self.keys), (&mut values, &self.values)] {
            for blk in 0..b * hkv {
                let held = &old[blk * self.capacity * d..(blk * self.capacity + self.len) * d];
                new[blk * capacity * d..blk * capacity * d + held.len()].copy_from_slice(held);
            }
        }
        (self.keys, self.values, self.capacity) = (keys, values, capacity);
        true
    }
}

/// n zeroed floats, or None where the allocator refuses (`vec!` would abort the process).
fn zeroed(n: usize) -> Option<Vec<f32>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<f32>(n).ok()?;
    // SAFETY: the layout has a non-zero size
    let p = unsafe { std::alloc::alloc_zeroed(layout) } as *mut f32;
    // SAFETY: allocated by the global allocator with the layout of n f32s, all zero bits
    (!p.is_null()).then(|| unsafe { Vec::from_raw_parts(p, n, n) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::kernels::Kernels;
    use crate::model::layers::{attention, Mask};

    /// k [B, Hkv, T, Dh] with element (b, h, t, e) = 1000 b + 100 h + t + e / 100 + offset.
    fn steps(b: usize, h: usize, t: usize, d: usize, first: usize, offset: f32) -> Tensor {
        let data: Vec<f32> = (0..b * h * t * d)
            .map(|i| {
                let (e, t_, h_, b_) = (i % d, i / d % t, i / (d * t) % h, i / (d * t * h));
                1000.0 * b_ as f32 + 100.0 * h_ as f32 + (first + t_) as f32 + e as f32 / 100.0 + offset
            })
            .collect();
        Tensor::from_vec(data, (b, h, t, d), &Device::Cpu).unwrap()
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    /// One host step at position `pos`: keys and values `steps` of it, queries from `seed`.
    fn step(kv: &mut HostKv, shape: StepShape, pad: &[usize], pos: usize, seed: usize) {
        let StepShape { rows: b, heads: h, kv_heads: hkv, head_dim: d, .. } = shape;
        let q: Vec<f32> =
            (0..b * h * d).map(|i| (((i + seed) * 7919 % 2003) as f32 / 1000.0) - 1.0).collect();
        let (k, v) = (flat(&steps(b, hkv, 1, d, pos, 0.0)), flat(&steps(b, hkv, 1, d, pos, 0.5)));
        let mut out = vec![f32::NAN; b * h * d];
        let shape = StepShape { positions: kv.len() + 1, ..shape };
        kv.attend_step(&q, &k, &v, shape, pad, &mut Vec::new(), &mut out).unwrap();
        assert!(out.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn steps_append_as_they_attend_and_the_cache_grows() {
        let (b, h, hkv, d) = (3, 4, 2, 5);
        let mut kv = HostKv::new();
        // a prefill of 250 positions, then steps across the first growth (256)
        let (k, v) =
            kv.append_tensors(&steps(b, hkv, 250, d, 0, 0.0), &steps(b, hkv, 250, d, 0, 0.5)).unwrap();
        assert_eq!((k.dims(), v.dims()), (&[b, hkv, 250, d][..], &[b, hkv, 250, d][..]));
        let shape = StepShape { rows: b, heads: h, kv_heads: hkv, positions: 0, head_dim: d };
        for pos in 250..300 {
            step(&mut kv, shape, &[0, 7, 249], pos, pos);
        }
        assert_eq!(kv.len(), 300);
        let (k, v) = kv.cached().unwrap();
        assert_eq!(flat(&k), flat(&steps(b, hkv, 300, d, 0, 0.0)), "every key in its place");
        assert_eq!(flat(&v), flat(&steps(b, hkv, 300, d, 0, 0.5)), "every value in its place");
        // a later cached forward's tensors hold every position
        let (k, _) =
            kv.append_tensors(&steps(b, hkv, 2, d, 300, 0.0), &steps(b, hkv, 2, d, 300, 0.5)).unwrap();
        assert_eq!(flat(&k), flat(&steps(b, hkv, 302, d, 0, 0.0)));
    }

    #[test]
    fn a_reserved_cache_grows_once_to_what_was_asked() {
        let (b, h, d) = (2, 1, 4);
        let shape = StepShape { rows: b, heads: h, kv_heads: h, positions: 0, head_dim: d };
        let mut kv = HostKv::new();
        kv.reserve_exact(1000);
        assert_eq!(kv.capacity, 0, "no shape yet: nothing to reserve");
        kv.append_tensors(&steps(b, h, 10, d, 0, 0.0), &steps(b, h, 10, d, 0, 0.5)).unwrap();
        kv.reserve_exact(300);
        assert_eq!(kv.capacity, 300);
        for pos in 10..300 {
            step(&mut kv, shape, &[0, 4], pos, pos);
        }
        assert_eq!(kv.capacity, 300, "no growth within the reservation");
        step(&mut kv, shape, &[0, 4], 300, 0);
        assert_eq!(kv.capacity, 600, "past it, doubling");
        assert_eq!(flat(&kv.cached().unwrap().0), flat(&steps(b, h, 301, d, 0, 0.0)));
    }

    #[test]
    fn a_reservation_the_allocator_refuses_is_skipped() {
        let mut kv = HostKv::new();
        kv.append_tensors(&steps(2, 1, 3, 4, 0, 0.0), &steps(2, 1, 3, 4, 0, 0.5)).unwrap();
        let capacity = kv.capacity;
        // 2 x 1 x 2^60 x 4 floats: past what any allocator gives (or any address space holds)
        kv.reserve_exact(1 << 60);
        assert_eq!(kv.capacity, capacity);
        assert_eq!(flat(&kv.cached().unwrap().0), flat(&steps(2, 1, 3, 4, 0, 0.0)));
    }

    #[test]
    fn a_split_step_attends_over_what_it_appended() {
        // a group of 6 at 48 head dims and 4 query heads on 2 kv heads: split where the pool
        // has helpers, each part writing the blocks it reads
        let (b, h, hkv, d) = (6, 4, 2, 48);
        let shape = StepShape { rows: b, heads: h, kv_heads: hkv, positions: 0, head_dim: d };
        // keys scaled down, so the softmax is not one-hot
        let mut small = HostKv::new();
        let scale = |t: Tensor| (t * 0.001).unwrap();
        small.append_tensors(&scale(steps(b, hkv, 40, d, 0, 0.0)), &steps(b, hkv, 40, d, 0, 0.5)).unwrap();
        let pad = [0, 3, 0, 39, 10, 20];
        let q: Vec<f32> = (0..b * h * d).map(|i| ((i * 7919 % 2003) as f32 / 1000.0) - 1.0).collect();
        let (k, v) = (flat(&scale(steps(b, hkv, 1, d, 40, 0.0))), flat(&steps(b, hkv, 1, d, 40, 0.5)));
        let mut out = vec![f32::NAN; b * h * d];
        let shape = StepShape { positions: 41, ..shape };
        small.attend_step(&q, &k, &v, shape, &pad, &mut Vec::new(), &mut out).unwrap();
        let (kc, vc) = small.cached().unwrap();
        assert_eq!(flat(&kc), flat(&scale(steps(b, hkv, 41, d, 0, 0.0))));
        assert_eq!(flat(&vc), flat(&steps(b, hkv, 41, d, 0, 0.5)));
        let qt = Tensor::from_vec(q, (b, h, 1, d), &Device::Cpu).unwrap();
        let want =
            flat(&attention(&qt, &kc, &vc, Mask::DecodeStep { pad: &pad }, Kernels::Differentiable).unwrap());
        // f32 softmax-weighted sums of values up to ~6000 in two summation orders
        for (i, (g, w)) in out.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "output {i}: {g} vs {w}");
        }
    }

    #[test]
    fn retained_rows_keep_their_positions_and_bad_input_is_refused() {
        let (b, h, d) = (4, 1, 2);
        let mut kv = HostKv::new();
        kv.append_tensors(&steps(b, h, 3, d, 0, 0.0), &steps(b, h, 3, d, 0, 0.5)).unwrap();
        kv.retain_rows(&[3, 1]).unwrap();
        let (k, _) = kv.append_tensors(&steps(2, h, 1, d, 3, 0.0), &steps(2, h, 1, d, 3, 0.5)).unwrap();
        let k = flat(&k);
        // row 0 is the old row 3: positions 0..3 then the new one (written as row 0)
        assert_eq!(&k[..2], &[3000.0, 3000.01]);
        assert_eq!(&k[6..8], &[3.0, 3.01], "the new position of row 0");
        assert_eq!(&k[8..10], &[1000.0, 1000.01], "row 1 is the old row 1");
        assert!(kv.retain_rows(&[2]).is_err(), "row 2 of 2");
        // in place when rows are only dropped; and a shared prompt copied to a group
        let mut kv = HostKv::new();
        kv.append_tensors(&steps(5, 2, 3, d, 0, 0.0), &steps(5, 2, 3, d, 0, 0.5)).unwrap();
        kv.retain_rows(&[1, 2, 4]).unwrap();
        let (k, v) = kv.cached().unwrap();
        let rows =
            |t: Tensor, r: &[u32]| flat(&t.index_select(&Tensor::new(r, &Device::Cpu).unwrap(), 0).unwrap());
        assert_eq!(flat(&k), rows(steps(5, 2, 3, d, 0, 0.0), &[1, 2, 4]));
        assert_eq!(flat(&v), rows(steps(5, 2, 3, d, 0, 0.5), &[1, 2, 4]));
        kv.retain_rows(&[0, 0, 2, 0]).unwrap();
        assert_eq!(flat(&kv.cached().unwrap().0), rows(steps(5, 2, 3, d, 0, 0.0), &[1, 1, 4, 1]));
        // 4 rows x 2 kv heads x 2 dims: 16 keys a step, at position 4
        let shape = StepShape { rows: 4, heads: 2, kv_heads: 2, positions: 4, head_dim: 2 };
        let (q, pad) = ([0.0; 16], [0; 4]);
        let mut step =
            |k: &[f32], shape| kv.attend_step(&q, k, k, shape, &pad, &mut Vec::new(), &mut [0.0; 16]);
        assert!(step(&[0.0; 15], shape).is_err(), "15 keys for 16");
        assert!(step(&[0.0; 16], StepShape { positions: 9, ..shape }).is_err(), "a cache of 3 attended as 9");
        assert!(step(&[0.0; 16], shape).is_ok());
        assert!(
            kv.append_tensors(&steps(2, 2, 1, d, 0, 0.0), &steps(2, 2, 1, d, 0, 0.0)).is_err(),
            "2 heads for 1"
        );
    }
}
