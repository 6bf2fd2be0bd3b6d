//! Blockwise causal attention over a packed stream of rows (flash-attention style), with a
//! backward that recomputes the scores: memory O(T x heads x head_dim), never O(T^2).
//!
//! Rows are packed one after another (varlen): row r occupies positions
//! cu_seqlens[r]..cu_seqlens[r+1], and query i sees the keys j of its own row with j <= i.
//! Causality and row boundaries are index comparisons; blocks of keys no query of a block
//! can see are never visited, and no [T, T] tensor or dense mask exists.
//!
//! Forward, per block of queries Q_b and head (FlashAttention-2): for each key block K_j of
//! the row up to the diagonal, S = scale Q_b K_jᵀ; an online softmax keeps the running max m
//! and sum l per query and rescales the accumulator, O_b += exp(S - m) V_j; at the end
//! O_b /= l and lse = m + ln l. Only O and lse ([T, H]) are kept for the backward.
//!
//! Backward, per block pair: D_i = rowsum(dO_i ∘ O_i); P = exp(S - lse); dV += Pᵀ dO;
//! dP = dO Vᵀ; dS = P ∘ (dP - D); dQ += scale dS K; dK += scale dSᵀ Q.
//!
//! Two implementations of the same function, tested equal:
//! - the CPU kernel: a candle `CustomOp3` parallel with rayon over (block, head) work items,
//!   block matmuls through `gemm` (single-threaded inside each task, so rayon owns the cores);
//!   the backward walks key blocks and adds each dQ block under that block's lock;
//! - the device-generic path (CUDA, Metal; forced on any device by
//!   `varlen_attention_generic`): composed candle ops one query block at a time, run detached
//!   before the op, whose forward then only copies the precomputed output's storage; its
//!   backward is composed ops again, a dQ pass over query blocks and a dK/dV pass over key
//!   blocks (a little recomputation in exchange for no accumulation across blocks).
//!
//! Compute dtype: f32, or f64 for f64 inputs (the tests' finite differences); bf16 and f16
//! inputs are computed in f32 and returned in their dtype. lse is kept in the compute dtype.

use std::sync::Mutex;

use anyhow::{ensure, Result};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Storage, Tensor, WithDType, D};
use rayon::prelude::*;

/// Positions per query and key block of the CPU kernel's forward (measured at T = 4096:
/// 64/128 was 5% slower; larger blocks gain nothing and leave fewer tasks for short rows).
const FWD_BLOCK_Q: usize = 128;
const FWD_BLOCK_K: usize = 256;
/// Positions per query and key block of the CPU kernel's backward (one partition of each row
/// serves both, so only diagonal blocks need masking).
const BWD_BLOCK: usize = 128;
/// Positions per block of the device-generic path: its score blocks are [H, block, row length].
const GENERIC_BLOCK: usize = 128;

/// Causal attention over a packed stream of rows (varlen): row r occupies positions
/// cu_seqlens[r]..cu_seqlens[r+1]; a query sees keys of its own row at or before it.
/// q: [T, H, Dh]; k, v: [T, Hkv, Dh] (H % Hkv == 0; query head h uses kv head h / (H / Hkv),
/// as transformers' repeat_kv). Returns [T, H, Dh] in q's dtype. Differentiable in q, k, v.
/// The CPU kernel on the CPU, the device-generic path elsewhere.
pub fn varlen_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cu_seqlens: &[usize],
    scale: f64,
) -> Result<Tensor> {
    apply(q, k, v, cu_seqlens, scale, !crate::model::fused::host_kernels(q))
}

/// `varlen_attention` through the device-generic path (composed candle ops) on any device:
/// what CUDA and Metal run, testable on the CPU.
pub fn varlen_attention_generic(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cu_seqlens: &[usize],
    scale: f64,
) -> Result<Tensor> {
    apply(q, k, v, cu_seqlens, scale, true)
}

fn apply(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cu_seqlens: &[usize],
    scale: f64,
    generic: bool,
) -> Result<Tensor> {
    let (t, h, dh) = q.dims3()?;
    let (tk, hkv, dk) = k.dims3()?;
    ensure!(k.dims() == v.dims(), "varlen_attention: k {:?} and v {:?} differ", k.dims(), v.dims());
    ensure!(tk == t && dk == dh, "varlen_attention: q {:?} and k {:?} do not fit", q.dims(), k.dims());
    ensure!(hkv > 0 && h % hkv == 0, "varlen_attention: {h} query heads over {hkv} kv heads");
    ensure!(q.dtype() == k.dtype() && q.dtype() == v.dtype(), "varlen_attention: mixed dtypes");
    ensure!(
        cu_seqlens.first() == Some(&0)
            && cu_seqlens.last() == Some(&t)
            && cu_seqlens.windows(2).all(|w| w[0] <= w[1]),
        "varlen_attention: cu_seqlens {cu_seqlens:?} must rise from 0 to T = {t}"
    );
    let dtype = q.dtype();
    let inner = if dtype == DType::F64 { DType::F64 } else { DType::F32 };
    // the kernel reads plain row-major [T, heads, Dh] storage
    let (q, k, v) = (
        q.to_dtype(inner)?.contiguous()?,
        k.to_dtype(inner)?.contiguous()?,
        v.to_dtype(inner)?.contiguous()?,
    );
    let op = VarlenAttention {
        cu_seqlens: cu_seqlens.to_vec(),
        scale,
        generic,
        precomputed: Mutex::new(None),
        lse: Mutex::new(None),
    };
    if generic {
        let (o, lse) = generic::forward(&q.detach(), &k.detach(), &v.detach(), cu_seqlens, scale)?;
        *op.precomputed.lock().unwrap() = Some(o);
        *op.lse.lock().unwrap() = Some(lse);
    }
    Ok(q.apply_op3(&k, &v, op)?.to_dtype(dtype)?)
}

struct VarlenAttention {
    cu_seqlens: Vec<usize>,
    scale: f64,
    /// Forward and backward through composed ops instead of the CPU kernel.
    generic: bool,
    /// The generic path's output [T, H, Dh], computed before the op; its forward takes it.
    precomputed: Mutex<Option<Tensor>>,
    /// log-sum-exp of each (position, head)'s scaled scores [T, H], compute dtype: written
    /// by the forward, read by the backward.
    lse: Mutex<Option<Tensor>>,
}

impl VarlenAttention {
    /// The generic forward's output, moved out of the op into a fresh storage.
    fn take_precomputed(&self) -> candle_core::Result<(Storage, Shape)> {
        let o = self.precomputed.lock().unwrap().take();
        let Some(o) = o else { candle_core::bail!("varlen-attention: no precomputed output") };
        let (storage, layout) = o.storage_and_layout();
        Ok((storage.try_clone(layout)?, layout.shape().clone()))
    }
}

impl CustomOp3 for VarlenAttention {
    fn name(&self) -> &'static str {
        "varlen-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if self.generic {
            return match self.take_precomputed()? {
                (Storage::Cpu(s), shape) => Ok((s, shape)),
                _ => candle_core::bail!("varlen-attention: precomputed output on another device"),
            };
        }
        let (o, lse) = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => {
                cpu::forward::<f32>(s1, l1, s2, l2, s3, l3, &self.cu_seqlens, self.scale)?
            }
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => {
                cpu::forward::<f64>(s1, l1, s2, l2, s3, l3, &self.cu_seqlens, self.scale)?
            }
            _ => candle_core::bail!("varlen-attention: the kernel takes f32 or f64"),
        };
        *self.lse.lock().unwrap() = Some(lse);
        Ok((o, l1.shape().clone()))
    }

    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        match self.take_precomputed()? {
            (Storage::Cuda(s), shape) => Ok((s, shape)),
            _ => candle_core::bail!("varlen-attention: precomputed output on another device"),
        }
    }

    fn metal_fwd(
        &self,
        _: &candle_core::MetalStorage,
        _: &Layout,
        _: &candle_core::MetalStorage,
        _: &Layout,
        _: &candle_core::MetalStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::MetalStorage, Shape)> {
        match self.take_precomputed()? {
            (Storage::Metal(s), shape) => Ok((s, shape)),
            _ => candle_core::bail!("varlen-attention: precomputed output on another device"),
        }
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        o: &Tensor,
        d_o: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let lse = self.lse.lock().unwrap().clone();
        let Some(lse) = lse else { candle_core::bail!("varlen-attention: backward before forward") };
        let d_o = d_o.contiguous()?;
        let grads = if self.generic || !q.device().is_cpu() {
            generic::backward(q, k, v, o, &d_o, &lse, &self.cu_seqlens, self.scale)
        } else {
            cpu::backward(q, k, v, o, &d_o, &lse, &self.cu_seqlens, self.scale)
        };
        let (dq, dk, dv) = grads.map_err(candle_core::Error::wrap)?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// One block of positions start..end inside the row row_start..row_end.
#[derive(Clone, Copy, Debug)]
struct Block {
    row_start: usize,
    row_end: usize,
    start: usize,
    end: usize,
}

impl Block {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Every row cut into blocks of `size` positions from its start (the last one shorter).
fn blocks(cu_seqlens: &[usize], size: usize) -> Vec<Block> {
    let mut out = Vec::new();
    for w in cu_seqlens.windows(2) {
        let (row_start, row_end) = (w[0], w[1]);
        for start in (row_start..row_end).step_by(size) {
            out.push(Block { row_start, row_end, start, end: (start + size).min(row_end) });
        }
    }
    out
}

pub(crate) mod cpu;
mod generic;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_fast_exp_is_within_a_few_ulp() {
        let xs: Vec<f32> = (0..200_000).map(|i| -87.0 + 175.0 * i as f32 / 200_000.0).collect();
        // one long slice (the eight-lane body) and single elements (the scalar tail)
        let mut long = xs.clone();
        cpu::Real::exp_shifted(&mut long[..], 0.0);
        let single: Vec<f32> = xs
            .iter()
            .map(|&x| {
                let mut one = [x];
                cpu::Real::exp_shifted(&mut one[..], 0.0);
                one[0]
            })
            .collect();
        for got in [long, single] {
            let worst = xs
                .iter()
                .zip(&got)
                .map(|(&x, &y)| (y as f64 - (x as f64).exp()).abs() / (x as f64).exp())
                .fold(0f64, f64::max);
            // 2^-23 = 1.2e-7 is one ulp
            assert!(worst < 4e-7, "worst relative error {worst:e}");
        }
        let mut edge = [-1000f32, f32::NEG_INFINITY, 0.0];
        // exactly 0 below -87: masked scores and those far below the max
        let sum = cpu::Real::exp_shifted(&mut edge[..], 0.0);
        assert_eq!((edge, sum), ([0.0, 0.0, 1.0], 1.0));
        // the vectorised body (8 lanes) and the scalar tail agree
        let mut long: Vec<f32> = (0..19).map(|i| i as f32 * -0.37).collect();
        assert_eq!(<f32 as cpu::Real>::max_of(&long), 0.0);
        let sum = cpu::Real::exp_shifted(&mut long[..], 1.5);
        for (i, &y) in long.iter().enumerate() {
            let want = (i as f64 * -0.37 - 1.5).exp();
            assert!((y as f64 - want).abs() < 4e-7 * want, "element {i}: {y} vs {want}");
        }
        assert!((sum - long.iter().sum::<f32>()).abs() < 1e-6);
    }

    /// Each instruction set's exp and max against f64 and against each other, whichever
    /// this CPU has (the dispatch above takes only the widest).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn flash_exp_and_max_agree_across_instruction_sets() {
        // shifted by 1.25: [-90, 30), past the flush to 0 below -87 (the sum stays finite in f32)
        let xs: Vec<f32> = (0..10_007).map(|i| -88.75 + 120.0 * i as f32 / 10_007.0).collect();
        // of the shifted argument as f32 holds it (its rounding is not the exp's error)
        let reference: Vec<f64> = xs.iter().map(|&x| ((x - 1.25) as f64).exp()).collect();
        type Exp = fn(&mut [f32], f32) -> f32;
        type Max = fn(&[f32]) -> f32;
        let mut paths: Vec<(&str, Exp, Max)> = vec![("portable", cpu::simd::exp_shifted, cpu::simd::max)];
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY (both closures): the CPU has the instruction set
            paths.push((
                "avx2",
                |x, s| unsafe { cpu::simd::exp_shifted_avx2(x, s) },
                |x| unsafe { cpu::simd::max_avx2(x) },
            ));
        }
        if is_x86_feature_detected!("avx512f") {
            paths.push((
                "avx512",
                |x, s| unsafe { cpu::simd::exp_shifted_avx512(x, s) },
                |x| unsafe { cpu::simd::max_avx512(x) },
            ));
        }
        for (name, exp, max) in paths {
            // lengths that end mid-vector, and a NaN-free max at the end of a ragged tail
            for len in [0, 1, 7, 15, 16, 17, 33, 10_007] {
                let mut got = xs[..len].to_vec();
                let sum = exp(&mut got, 1.25);
                for (i, (&y, &want)) in got.iter().zip(&reference).enumerate() {
                    // below -87 (after the shift) exactly 0; else within 4e-7 relative (~3 ulp)
                    let ok =
                        if xs[i] - 1.25 < -87.0 { y == 0.0 } else { (y as f64 - want).abs() <= 4e-7 * want };
                    assert!(ok, "{name} len {len} element {i}: {y} vs {want}");
                }
                let want_sum: f64 = got.iter().map(|&y| y as f64).sum();
                assert!((sum as f64 - want_sum).abs() <= 1e-5 * want_sum.max(1e-30), "{name} len {len} sum");
                let want_max = xs[..len].iter().copied().fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(max(&xs[..len]), want_max, "{name} len {len} max");
            }
        }
    }

    #[test]
    fn flash_blocks_cut_each_row_from_its_start() {
        let b: Vec<(usize, usize, usize)> =
            blocks(&[0, 1, 1, 6, 13], 4).iter().map(|b| (b.row_start, b.start, b.end)).collect();
        // the empty row has no block; each row's last block is short
        assert_eq!(b, [(0, 0, 1), (1, 1, 5), (1, 5, 6), (6, 6, 10), (6, 10, 13)]);
    }
}
