//! SwiGLU's product silu(gate) ⊙ up, the MLP's widest activation ([tokens, intermediate]).
//!
//! With σ = sigmoid(gate): silu = gate σ, silu' = σ (1 + gate (1 − σ)); backward
//! dgate = dy ⊙ up ⊙ silu', dup = dy ⊙ silu, both written by one pass over (gate, up, dy).

use std::mem::MaybeUninit;

use anyhow::{ensure, Result};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{buffer, contiguous, kernel_serves, Real};

/// Elements per rayon task.
const ELEMS_PER_TASK: usize = 16 * 1024;

/// silu(gate) ⊙ up; gate and up of one shape. Differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    ensure!(gate.dims() == up.dims(), "swiglu: gate {:?} and up {:?} differ", gate.dims(), up.dims());
    if !kernel_serves(&[gate, up]) {
        return Ok((gate.silu()? * up)?);
    }
    Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)?)
}

#[inline(always)]
fn sigmoid<T: Real>(x: T) -> T {
    (T::one() + (-x).exp()).recip()
}

/// silu(gate) ⊙ up, elementwise over slices of one length, in parallel.
pub(super) fn product<T: Real>(gate: &[T], up: &[T]) -> Vec<T> {
    assert_eq!(gate.len(), up.len());
    let mut y = buffer::unfilled(gate.len());
    y.par_chunks_mut(ELEMS_PER_TASK)
        .zip(gate.par_chunks(ELEMS_PER_TASK).zip(up.par_chunks(ELEMS_PER_TASK)))
        .for_each(|(ys, (gs, us))| {
            for ((y, &g), &u) in ys.iter_mut().zip(gs).zip(us) {
                y.write(g * sigmoid(g) * u);
            }
        });
    // SAFETY: the chunks cover y, and every element of each was written
    unsafe { buffer::filled(y) }
}

/// The product's backward: dgate = dy ⊙ up ⊙ silu'(gate), dup = dy ⊙ silu(gate).
/// Every element of dgate and dup is written (their lengths are gate's).
pub(super) fn product_grad<T: Real>(
    gate: &[T],
    up: &[T],
    dy: &[T],
    dgate: &mut [MaybeUninit<T>],
    dup: &mut [MaybeUninit<T>],
) {
    let n = gate.len();
    assert!(up.len() == n && dy.len() == n && dgate.len() == n && dup.len() == n);
    dgate
        .par_chunks_mut(ELEMS_PER_TASK)
        .zip(dup.par_chunks_mut(ELEMS_PER_TASK))
        .zip(gate.par_chunks(ELEMS_PER_TASK).zip(up.par_chunks(ELEMS_PER_TASK)))
        .zip(dy.par_chunks(ELEMS_PER_TASK))
        .for_each(|(((dgs, dus), (gs, us)), dys)| {
            for ((((dg, du), &g), &u), &d) in dgs.iter_mut().zip(dus).zip(gs).zip(us).zip(dys) {
                let (s, ds) = silu_and_grad(g);
                du.write(d * s);
                dg.write(d * u * ds);
            }
        });
}

/// (silu(x), silu'(x)): with σ = sigmoid(x), silu = x σ and silu' = σ (1 + x (1 − σ)).
#[inline(always)]
pub(super) fn silu_and_grad<T: Real>(x: T) -> (T, T) {
    let s = sigmoid(x);
    (x * s, s * (T::one() + x * (T::one() - s)))
}

struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            gs: &CpuStorage,
            gl: &Layout,
            us: &CpuStorage,
            ul: &Layout,
        ) -> candle_core::Result<CpuStorage> {
            let gate = contiguous::<T>("swiglu", gs, gl)?;
            let up = contiguous::<T>("swiglu", us, ul)?;
            Ok(T::to_cpu_storage_owned(product(gate, up)))
        }
        let out = match gs {
            CpuStorage::F32(_) => run::<f32>(gs, gl, us, ul)?,
            CpuStorage::F64(_) => run::<f64>(gs, gl, us, ul)?,
            _ => candle_core::bail!("fused swiglu: f32 or f64 only"),
        };
        Ok((out, gl.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let both = gate.apply_op3_no_bwd(up, &dy.contiguous()?, &SwiGluBackward)?; // [2, elems]
        let dgate = both.get(0)?.reshape(gate.shape())?;
        let dup = both.get(1)?.reshape(up.shape())?;
        Ok((Some(dgate), Some(dup)))
    }
}

/// (gate, up, dy) -> [2, elems]: dgate, then dup.
struct SwiGluBackward;

impl CustomOp3 for SwiGluBackward {
    fn name(&self) -> &'static str {
        "fused-swiglu-backward"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            (gs, gl): (&CpuStorage, &Layout),
            (us, ul): (&CpuStorage, &Layout),
            (ds, dl): (&CpuStorage, &Layout),
        ) -> candle_core::Result<(CpuStorage, Shape)> {
            let gate = contiguous::<T>("swiglu backward", gs, gl)?;
            let up = contiguous::<T>("swiglu backward", us, ul)?;
            let dy = contiguous::<T>("swiglu backward", ds, dl)?;
            let n = gate.len();
            let mut out = buffer::unfilled(2 * n);
            let (dgate, dup) = out.split_at_mut(n);
            product_grad(gate, up, dy, dgate, dup);
            // SAFETY: product_grad wrote both halves
            let out = unsafe { buffer::filled(out) };
            Ok((T::to_cpu_storage_owned(out), Shape::from((2, n))))
        }
        match gs {
            CpuStorage::F32(_) => run::<f32>((gs, gl), (us, ul), (ds, dl)),
            CpuStorage::F64(_) => run::<f64>((gs, gl), (us, ul), (ds, dl)),
            _ => candle_core::bail!("fused swiglu backward: f32 or f64 only"),
        }
    }
}
