//! The pieces of one decode step on host f32 buffers: B rows, each feeding one new token.
//! Activations are [B, width] row-major slices; each piece is one call over all rows
//! (a projection is one pass over its weights for the whole group), and the buffers live
//! in `StepScratch`, kept in the cache, so a step allocates nothing but its outputs.
//!
//! The arithmetic mirrors the kernels of the general path (candle's fused RMSNorm and
//! RoPE, `fused::swiglu`, `small_matmul`, `decode_attention`) operation for operation, so a
//! step gives the same bits as that path: greedy decoding picks the same tokens.

use anyhow::{bail, Result};
use candle_core::{CpuStorage, Layout, Storage, Tensor};

use super::decode_pool::{self, Disjoint};
use super::fused::rms_norm::inv_rms;
use super::fused::swiglu::silu_product_in_place;
use super::layers::linear::Linear;
use super::small_matmul::{matmul_rows, matmul_rows_many};

/// Reusable activations of a step, each [B, width] (grown on first use, then reused).
#[derive(Default)]
pub struct StepScratch {
    /// residual stream [B, D]
    pub x: Vec<f32>,
    /// normed input of a block [B, D]
    pub xb: Vec<f32>,
    /// [B, H * Dh], [B, Hkv * Dh], [B, Hkv * Dh]
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// attention output [B, H * Dh]
    pub att: Vec<f32>,
    /// a block's output before the residual add [B, D]
    pub out: Vec<f32>,
    /// MLP gate and up [B, I]
    pub gate: Vec<f32>,
    pub up: Vec<f32>,
    /// LoRA's [B, r] and [B, out] intermediates
    pub lora_down: Vec<f32>,
    pub lora_up: Vec<f32>,
    /// RoPE angles per row [B, Dh / 2]
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
    /// attention scores of one (row, head) per split part [parts, S and a cache line]
    pub scores: Vec<f32>,
}

/// `buf` sized to `len` (contents unspecified until written).
pub fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len, 0.0);
    &mut buf[..len]
}

/// Runs `f` on a contiguous f32 CPU tensor's elements.
pub fn with_host<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    Ok(f(host_elements(&storage, layout)?))
}

/// The elements of a tensor's storage and layout (held by the caller's read guard), if it
/// is f32 on the CPU and contiguous.
fn host_elements<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    let Storage::Cpu(CpuStorage::F32(data)) = storage else {
        bail!("decode step: a tensor that is not f32 on the CPU");
    };
    let Some((from, to)) = layout.contiguous_offsets() else {
        bail!("decode step: a weight of shape {:?} that is not contiguous", layout.dims());
    };
    Ok(&data[from..to])
}

/// Whether every tensor is f32 on the CPU and contiguous (the step reads them in place).
pub fn serves(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.dtype() == candle_core::DType::F32 && super::fused::host_kernels(t) && t.is_contiguous())
}

impl Linear {
    /// The tensors a step reads: weight, bias, LoRA factors.
    pub fn tensors(&self) -> Vec<&Tensor> {
        let mut all = vec![&self.weight];
        all.extend(&self.bias);
        if let Some(l) = &self.lora {
            all.extend([&l.a, &l.b]);
        }
        all
    }

    /// y [B, out] = x [B, in] Wᵀ (+ b) (+ scale · (x Aᵀ) Bᵀ), as `forward` computes it.
    pub fn forward_rows(
        &self,
        x: &[f32],
        y: &mut [f32],
        lora_down: &mut Vec<f32>,
        lora_up: &mut Vec<f32>,
    ) -> Result<()> {
        let (out, inp) = self.weight.dims2()?;
        let rows = x.len() / inp;
        with_host(&self.weight, |w| matmul_rows(x, w, inp, y))?;
        if let Some(b) = &self.bias {
            with_host(b, |b| {
                for row in y.chunks_exact_mut(out) {
                    row.iter_mut().zip(b).for_each(|(y, b)| *y += b);
                }
            })?;
        }
        if let Some(l) = &self.lora {
            let r = l.a.dim(0)?;
            let down = sized(lora_down, rows * r);
            with_host(&l.a, |a| matmul_rows(x, a, inp, down))?;
            let up = sized(lora_up, rows * out);
            with_host(&l.b, |b| matmul_rows(down, b, r, up))?;
            // candle's affine: v * scale + 0, then the add
            let scale = l.scale as f32;
            y.iter_mut().zip(up.iter()).for_each(|(y, u)| *y += *u * scale + 0.0);
        }
        Ok(())
    }
}

/// The projections of one input x [B, in] into their outputs ([B, out_i] each), as
/// `Linear::forward_rows` computes them; when none has a bias or an adapter, as one split
/// across the decode pool (`matmul_rows_many`: a layer's q, k and v, or gate and up, wait at
/// one barrier).
pub fn project_rows(
    x: &[f32],
    projections: &[&Linear],
    outs: &mut [&mut [f32]],
    lora_down: &mut Vec<f32>,
    lora_up: &mut Vec<f32>,
) -> Result<()> {
    assert_eq!(projections.len(), outs.len());
    if projections.iter().any(|l| l.bias.is_some() || l.lora.is_some()) {
        for (l, y) in projections.iter().zip(outs) {
            l.forward_rows(x, y, lora_down, lora_up)?;
        }
        return Ok(());
    }
    let guards: Vec<_> = projections.iter().map(|l| l.weight.storage_and_layout()).collect();
    let mut products = Vec::with_capacity(outs.len());
    for ((storage, layout), y) in guards.iter().zip(outs.iter_mut()) {
        products.push((host_elements(storage, layout)?, &mut **y));
    }
    let inp = projections[0].weight.dim(1)?;
    matmul_rows_many(x, inp, &mut products);
    Ok(())
}

/// out = x / rms(x) * w over each row of width w.len(), with `fused::rms_norm`'s bits (its
/// `inv_rms`, whose eight partial sums vectorise: a running sum was a chain of 288 dependent
/// adds per row, 26-42 µs of a group's step on the 15M llama).
pub fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let n = w.len();
    for (src, dst) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let r = inv_rms(src, eps);
        for ((d, &s), &a) in dst.iter_mut().zip(src).zip(w) {
            *d = s * r * a;
        }
    }
}

/// RMSNorm in place over each row of width w.len() (qwen3's per-head q and k norms).
pub fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let n = w.len();
    for row in x.chunks_exact_mut(n) {
        let r = inv_rms(row, eps);
        for (d, &a) in row.iter_mut().zip(w) {
            *d = *d * r * a;
        }
    }
}

/// Rotate-half RoPE in place on x [B, heads, Dh] with cos, sin [B, Dh / 2] (row b's
/// angles), as candle's fused rope computes it.
pub fn rope_rows(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    let rows = cos.len() / half;
    let per_row = x.len() / rows; // heads * Dh
    for (row, xr) in x.chunks_exact_mut(per_row).enumerate() {
        let (c, s) = (&cos[row * half..(row + 1) * half], &sin[row * half..(row + 1) * half]);
        for head in xr.chunks_exact_mut(head_dim) {
            let (x1, x2) = head.split_at_mut(half);
            for i in 0..half {
                let (a, b) = (x1[i], x2[i]);
                x1[i] = a * c[i] - b * s[i];
                x2[i] = a * s[i] + b * c[i];
            }
        }
    }
}

/// cos and sin [B, Dh / 2] of each row's position, as `layers::rope_tables` computes them.
pub fn rope_angles(
    positions: impl Iterator<Item = u32>,
    inv_freq: &[f32],
    cos: &mut Vec<f32>,
    sin: &mut Vec<f32>,
) {
    cos.clear();
    sin.clear();
    for p in positions {
        for &f in inv_freq {
            let angle = p as f32 * f;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
}

/// Elements of a SwiGLU product from which it is split across the decode pool: a group of 6
/// on the 15M llama ([6, 768]) is, one stream ([1, 768]) is not. Vectorised, a group's
/// product takes ~3.9 µs in one pass and ~2.3 µs split over 2 Zen 4 cores (hot caches, mean
/// of 20000): ~10 µs a step of 6 layers.
const SPLIT_SWIGLU: usize = 4096;

/// silu(gate) ⊙ up into gate, as `fused::swiglu` computes it (element by element, so any
/// split gives the same bits).
pub fn swiglu_rows(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    let n = gate.len();
    let parts = decode_pool::threads().min(n / (SPLIT_SWIGLU / 2)).max(1);
    if parts == 1 {
        return silu_product_in_place(gate, up);
    }
    let per = n.div_ceil(parts);
    let g = Disjoint::new(gate);
    decode_pool::split(parts, |p| {
        let (from, to) = (p * per, ((p + 1) * per).min(n));
        // SAFETY: the parts' ranges [from, to) are disjoint and lie in gate
        let gate = unsafe { std::slice::from_raw_parts_mut(g.get().add(from), to - from) };
        silu_product_in_place(gate, &up[from..to]);
    });
}

/// x += y, elementwise.
pub fn add_rows(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_norms_rows_with_the_fused_kernels_bits() {
        use candle_core::Device;
        let (rows, d) = (6, 288);
        let x: Vec<f32> = (0..rows * d).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.03).collect();
        let w: Vec<f32> = (0..d).map(|i| 0.5 + (i % 9) as f32 * 0.1).collect();
        let eps = 1e-5;
        let mut got = vec![0f32; rows * d];
        rms_norm_rows(&x, &w, eps, &mut got);
        let xt = Tensor::from_slice(&x, (rows, d), &Device::Cpu).unwrap();
        let wt = Tensor::from_slice(&w, d, &Device::Cpu).unwrap();
        let want = crate::model::fused::rms_norm(&xt, &wt, eps as f64).unwrap().flatten_all().unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want.to_vec1::<f32>().unwrap()));
        let mut in_place = x.clone();
        rms_norm_in_place(&mut in_place, &w, eps);
        assert_eq!(bits(&in_place), bits(&got));
    }

    #[test]
    fn a_split_swiglu_gives_the_bits_of_one_pass() {
        // a group's width (split when the pool has helpers) and one stream's (never split)
        for n in [6 * 768 + 5, 768] {
            let gate: Vec<f32> = (0..n).map(|i| (i % 101) as f32 * 0.17 - 8.0).collect();
            let up: Vec<f32> = (0..n).map(|i| (i % 37) as f32 * 0.11 - 2.0).collect();
            let mut want = gate.clone();
            silu_product_in_place(&mut want, &up);
            let mut got = gate.clone();
            swiglu_rows(&mut got, &up);
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
            // and it is silu(gate) * up
            let i = n / 3;
            let silu = gate[i] / (1.0 + (-gate[i]).exp());
            assert!(
                (got[i] - silu * up[i]).abs() <= 1e-6 * (1.0 + got[i].abs()),
                "{} vs {}",
                got[i],
                silu * up[i]
            );
        }
    }
}
