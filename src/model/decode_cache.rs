//! A layer's KV cache for decoding on the CPU: keys and values [B, Hkv, capacity, Dh] each,
//! in buffers of our own that the decode step writes in place and its attention reads in
//! place (`decode_attention::CacheView`).
//!
//! candle_nn's cache took a group of 6 on the 15M llama ~100 µs a step to append one
//! position (two tensors made from the step's keys and values, then `slice_set`, on the
//! calling thread while the decode pool's helpers waited), and grew by a fixed 512 positions
//! with `Tensor::cat`, a copy of all it held each time. Here a step's keys and values are
//! copied straight in, split across the decode pool with the (row, kv head) blocks, and the
//! capacity doubles. The prefill, and any cached forward that is not the host step, appends
//! tensors and gets everything cached back as tensors (`append_tensors`).

use anyhow::{bail, ensure, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::kv_cache::KvCache;

use super::decode_attention::CacheView;
use super::decode_pool::{self, Disjoint};
use super::layers::select_kv_rows;

/// Positions a cache first holds (more when the first append needs them).
const FIRST_CAPACITY: usize = 256;

/// Floats of a step's keys from which `append_step` splits its copies across the decode
/// pool: a group of 6 on the 15M llama (6 x 6 x 48) is, one stream is not.
const SPLIT_FLOATS: usize = 1024;

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
        let s = self.len;
        let gather = |buf: &[f32]| -> Result<Tensor> {
            let mut all = Vec::with_capacity(b * hkv * s * d);
            for blk in 0..b * hkv {
                all.extend_from_slice(&buf[blk * self.capacity * d..(blk * self.capacity + s) * d]);
            }
            Ok(Tensor::from_vec(all, (b, hkv, s, d), &Device::Cpu)?)
        };
        Ok((gather(&self.keys)?, gather(&self.values)?))
    }

    /// Appends one position per (row, kv head): k, v [B, Hkv, Dh] row-major.
    pub fn append_step(
        &mut self,
        k: &[f32],
        v: &[f32],
        rows: usize,
        kv_heads: usize,
        head_dim: usize,
    ) -> Result<()> {
        let floats = rows * kv_heads * head_dim;
        ensure!(k.len() == floats && v.len() == floats, "KV cache: a step of {} keys for {floats}", k.len());
        self.fit(rows, kv_heads, head_dim)?;
        self.reserve(self.len + 1);
        let (blocks, d, at) = (rows * kv_heads, head_dim, self.len * head_dim);
        let block = self.capacity * d;
        let (keys, values) = (Disjoint::new(&mut self.keys), Disjoint::new(&mut self.values));
        let copy = |from: usize, to: usize| {
            for blk in from..to {
                // SAFETY: block blk's slot at position len lies in the buffers (reserved
                // above), and each block is copied by one part alone
                unsafe {
                    let (kd, vd) = (keys.get().add(blk * block + at), values.get().add(blk * block + at));
                    std::ptr::copy_nonoverlapping(k.as_ptr().add(blk * d), kd, d);
                    std::ptr::copy_nonoverlapping(v.as_ptr().add(blk * d), vd, d);
                }
            }
        };
        if floats >= SPLIT_FLOATS {
            let parts = decode_pool::threads().min(blocks);
            let per = blocks.div_ceil(parts);
            decode_pool::split(parts, |p| copy(p * per, ((p + 1) * per).min(blocks)));
        } else {
            copy(0, blocks);
        }
        self.len += 1;
        Ok(())
    }

    /// The cached keys and values, as decode attention reads them.
    pub fn views(&self) -> (CacheView<'_>, CacheView<'_>) {
        let (_, hkv, d) = self.shape.unwrap_or((0, 0, 0));
        let strides = [hkv * self.capacity * d, self.capacity * d, d];
        (
            CacheView { data: &self.keys, start: 0, strides },
            CacheView { data: &self.values, start: 0, strides },
        )
    }

    /// Keeps the given rows, in that order (finished sequences dropped from a batch).
    pub fn retain_rows(&mut self, rows: &[usize]) -> Result<()> {
        let Some((b, hkv, d)) = self.shape else { return Ok(()) };
        if let Some(&bad) = rows.iter().find(|&&r| r >= b) {
            bail!("KV cache: row {bad} kept of {b}");
        }
        let per_row = hkv * self.capacity * d;
        let keep =
            |buf: &[f32]| rows.iter().flat_map(|&r| &buf[r * per_row..(r + 1) * per_row]).copied().collect();
        self.keys = keep(&self.keys);
        self.values = keep(&self.values);
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
        if positions <= self.capacity {
            return;
        }
        let (b, hkv, d) = self.shape.expect("fit before reserve");
        let capacity = positions.max(2 * self.capacity).max(FIRST_CAPACITY);
        let grow = |old: &[f32]| {
            let mut new = vec![0f32; b * hkv * capacity * d];
            for blk in 0..b * hkv {
                let held = &old[blk * self.capacity * d..(blk * self.capacity + self.len) * d];
                new[blk * capacity * d..blk * capacity * d + held.len()].copy_from_slice(held);
            }
            new
        };
        self.keys = grow(&self.keys);
        self.values = grow(&self.values);
        self.capacity = capacity;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn appends_grow_and_read_back_what_was_written() {
        let (b, h, d) = (3, 2, 5);
        let mut kv = HostKv::new();
        // a prefill of 250 positions, then steps across the first growth (256)
        let (k, v) = kv.append_tensors(&steps(b, h, 250, d, 0, 0.0), &steps(b, h, 250, d, 0, 0.5)).unwrap();
        assert_eq!((k.dims(), v.dims()), (&[b, h, 250, d][..], &[b, h, 250, d][..]));
        for pos in 250..300 {
            let k = steps(b, h, 1, d, pos, 0.0).flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let v = steps(b, h, 1, d, pos, 0.5).flatten_all().unwrap().to_vec1::<f32>().unwrap();
            kv.append_step(&k, &v, b, h, d).unwrap();
        }
        assert_eq!(kv.len(), 300);
        let (kc, vc) = kv.views();
        for (bi, hi, t, e) in [(0, 0, 0, 0), (2, 1, 299, 4), (1, 0, 255, 2), (1, 1, 256, 3)] {
            let at = bi * kc.strides[0] + hi * kc.strides[1] + t * kc.strides[2] + e;
            let want = 1000.0 * bi as f32 + 100.0 * hi as f32 + t as f32 + e as f32 / 100.0;
            assert_eq!(kc.data[at], want, "key ({bi}, {hi}, {t}, {e})");
            assert_eq!(vc.data[at], want + 0.5, "value ({bi}, {hi}, {t}, {e})");
        }
        // the tensors a later cached forward gets hold every position
        let (k, _) = kv.append_tensors(&steps(b, h, 2, d, 300, 0.0), &steps(b, h, 2, d, 300, 0.5)).unwrap();
        assert_eq!(k.dims(), &[b, h, 302, d]);
        assert_eq!(k.get(2).unwrap().get(1).unwrap().get(301).unwrap().to_vec1::<f32>().unwrap()[0], 2401.0);
    }

    #[test]
    fn a_step_split_across_the_pool_writes_every_block() {
        // 6 rows x 6 heads x 48 dims: split where the pool has helpers
        let (b, h, d) = (6, 6, 48);
        let mut kv = HostKv::new();
        kv.append_tensors(&steps(b, h, 1, d, 0, 0.0), &steps(b, h, 1, d, 0, 0.5)).unwrap();
        let k = steps(b, h, 1, d, 1, 0.0).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let v = steps(b, h, 1, d, 1, 0.5).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        kv.append_step(&k, &v, b, h, d).unwrap();
        let (kc, vc) = kv.views();
        for blk in 0..b * h {
            for e in 0..d {
                let at = blk * kc.strides[1] + kc.strides[2] + e;
                assert_eq!(kc.data[at], k[blk * d + e]);
                assert_eq!(vc.data[at], v[blk * d + e]);
            }
        }
    }

    #[test]
    fn retained_rows_keep_their_positions_and_bad_input_is_refused() {
        let (b, h, d) = (4, 1, 2);
        let mut kv = HostKv::new();
        kv.append_tensors(&steps(b, h, 3, d, 0, 0.0), &steps(b, h, 3, d, 0, 0.5)).unwrap();
        kv.retain_rows(&[3, 1]).unwrap();
        let (k, _) = kv.append_tensors(&steps(2, h, 1, d, 3, 0.0), &steps(2, h, 1, d, 3, 0.5)).unwrap();
        let k = k.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // row 0 is the old row 3: positions 0..3 then the new one (written as row 0)
        assert_eq!(&k[..2], &[3000.0, 3000.01]);
        assert_eq!(&k[8..10], &[1000.0, 1000.01], "row 1 is the old row 1");
        assert_eq!(&k[6..8], &[3.0, 3.01], "the new position of row 0");
        assert!(kv.retain_rows(&[2]).is_err(), "row 2 of 2");
        assert!(kv.append_step(&[0.0; 3], &[0.0; 3], 2, 1, 2).is_err(), "3 keys for 4");
        assert!(
            kv.append_tensors(&steps(2, 2, 1, d, 0, 0.0), &steps(2, 2, 1, d, 0, 0.0)).is_err(),
            "2 heads for 1"
        );
    }
}
