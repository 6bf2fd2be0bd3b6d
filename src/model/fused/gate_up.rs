//! SwiGLU's two input projections and their product as one op: h = silu(x W_gᵀ) ⊙ (x W_uᵀ).
//!
//! Composed, the gate and the up projection are two matmul nodes and the product a third,
//! and autograd sums x's gradient from the two projections and keeps every node's gradient
//! in its store (candle adds each into a fresh zeroed tensor): per layer three [N, F] and
//! one [N, D] gradient buffers zeroed and summed, F = 3-4 D. Here the forward keeps the
//! projections g, u [N, F] (what the composed graph keeps too) and backward forms
//!   dg = dh ⊙ u ⊙ silu'(g),  du = dh ⊙ silu(g)   (one pass),
//!   dx = dg W_g + du W_u,  dW_g = dgᵀ x,  dW_u = duᵀ x   (gemm, the second summing in place).

use std::sync::{Arc, Mutex};

use anyhow::{ensure, Result};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::buffer;
use super::gemm::{matmul, matmul_into, Mat};
use super::{contiguous, kernel_serves, Real};

/// silu(x W_gᵀ) ⊙ (x W_uᵀ) for x [..., D], w_gate and w_up [F, D]: [..., F]. Differentiable
/// in all three. Any device or dtype the kernel does not serve takes composed ops.
pub fn gate_up(x: &Tensor, w_gate: &Tensor, w_up: &Tensor) -> Result<Tensor> {
    let d = x.dim(candle_core::D::Minus1)?;
    let (f, dg) = w_gate.dims2()?;
    ensure!(
        dg == d && w_up.dims() == [f, d],
        "gate_up: x [.., {d}] with gate {:?} and up {:?}",
        w_gate.dims(),
        w_up.dims()
    );
    if !kernel_serves(&[x, w_gate, w_up]) {
        let gate = x.broadcast_matmul(&w_gate.t()?)?;
        let up = x.broadcast_matmul(&w_up.t()?)?;
        return super::swiglu(&gate, &up);
    }
    let op = GateUp { saved: Mutex::new(None) };
    Ok(x.contiguous()?.apply_op3(&w_gate.contiguous()?, &w_up.contiguous()?, op)?)
}

fn parallel() -> gemm::Parallelism {
    gemm::Parallelism::Rayon(rayon::current_num_threads())
}

/// The projections g, u [N, F] of a forward, for its backward (f32 or f64 storage).
type Saved = Arc<(CpuStorage, CpuStorage)>;

struct GateUp {
    saved: Mutex<Option<Saved>>,
}

impl CustomOp3 for GateUp {
    fn name(&self) -> &'static str {
        "fused-gate-up"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            (xs, xl): (&CpuStorage, &Layout),
            (gs, gl): (&CpuStorage, &Layout),
            (us, ul): (&CpuStorage, &Layout),
        ) -> candle_core::Result<(CpuStorage, CpuStorage, CpuStorage)> {
            let x = contiguous::<T>("gate_up", xs, xl)?;
            let (wg, wu) = (contiguous::<T>("gate_up", gs, gl)?, contiguous::<T>("gate_up", us, ul)?);
            let (f, d) = gl.shape().dims2()?;
            let n = x.len() / d;
            let (mut g, mut u) = (buffer::unfilled(n * f), buffer::unfilled(n * f));
            // g = x W_gᵀ: W_gᵀ[k, j] = W_g[j, k]
            matmul_into(
                (n, f, d),
                &mut g,
                f,
                Mat::rows(x, 0, d),
                Mat::rows(wg, 0, d).t(),
                T::one(),
                parallel(),
            );
            matmul_into(
                (n, f, d),
                &mut u,
                f,
                Mat::rows(x, 0, d),
                Mat::rows(wu, 0, d).t(),
                T::one(),
                parallel(),
            );
            // SAFETY: each product wrote all n x f elements
            let (g, u) = unsafe { (buffer::filled(g), buffer::filled(u)) };
            let h = super::swiglu::product(&g, &u);
            Ok((T::to_cpu_storage_owned(h), T::to_cpu_storage_owned(g), T::to_cpu_storage_owned(u)))
        }
        let (h, g, u) = match xs {
            CpuStorage::F32(_) => run::<f32>((xs, xl), (gs, gl), (us, ul))?,
            CpuStorage::F64(_) => run::<f64>((xs, xl), (gs, gl), (us, ul))?,
            _ => candle_core::bail!("fused gate_up: f32 or f64 only"),
        };
        *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new((g, u)));
        let mut dims = xl.dims().to_vec();
        *dims.last_mut().expect("x has a last dim") = gl.dims()[0];
        Ok((h, Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w_gate: &Tensor,
        w_up: &Tensor,
        _h: &Tensor,
        dh: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(saved) = self.saved.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            candle_core::bail!("fused gate_up: backward before forward")
        };
        let back = GateUpBackward { saved, w_up: w_up.clone() };
        // (x, W_g, dh) -> [N D + 2 F D]: dx, dW_g, dW_u
        let all = x.apply_op3_no_bwd(w_gate, &dh.contiguous()?, &back)?;
        let (nd, fd) = (x.elem_count(), w_gate.elem_count());
        let dx = all.narrow(0, 0, nd)?.reshape(x.shape())?;
        let dwg = all.narrow(0, nd, fd)?.reshape(w_gate.shape())?;
        let dwu = all.narrow(0, nd + fd, fd)?.reshape(w_up.shape())?;
        Ok((Some(dx), Some(dwg), Some(dwu)))
    }
}

struct GateUpBackward {
    saved: Saved,
    /// W_u [F, D] (contiguous; read through its storage in cpu_fwd).
    w_up: Tensor,
}

impl CustomOp3 for GateUpBackward {
    fn name(&self) -> &'static str {
        "fused-gate-up-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            op: &GateUpBackward,
            (xs, xl): (&CpuStorage, &Layout),
            (gs, gl): (&CpuStorage, &Layout),
            (ds, dl): (&CpuStorage, &Layout),
        ) -> candle_core::Result<(CpuStorage, Shape)> {
            let x = contiguous::<T>("gate_up backward", xs, xl)?;
            let wg = contiguous::<T>("gate_up backward", gs, gl)?;
            let dh = contiguous::<T>("gate_up backward", ds, dl)?;
            let (store, layout) = op.w_up.storage_and_layout();
            let candle_core::Storage::Cpu(us) = &*store else {
                candle_core::bail!("fused gate_up backward: W_u is not on the CPU")
            };
            let wu = contiguous::<T>("gate_up backward", us, layout)?;
            let (g, u) = (T::cpu_storage_as_slice(&op.saved.0)?, T::cpu_storage_as_slice(&op.saved.1)?);
            let (f, d) = gl.shape().dims2()?;
            let n = x.len() / d;
            if dh.len() != n * f || g.len() != n * f || wu.len() != f * d {
                candle_core::bail!("fused gate_up backward: shapes do not match the forward");
            }
            let (mut dg, mut du) = (buffer::unfilled(n * f), buffer::unfilled(n * f));
            super::swiglu::product_grad(g, u, dh, &mut dg, &mut du);
            // SAFETY: product_grad wrote both
            let (dg, du) = unsafe { (buffer::filled(dg), buffer::filled(du)) };
            let mut out = buffer::unfilled(n * d + 2 * f * d);
            let (dx, dw) = out.split_at_mut(n * d);
            let (dwg, dwu) = dw.split_at_mut(f * d);
            let (dg, du) = (Mat::rows(&dg, 0, f), Mat::rows(&du, 0, f));
            // dx = dg W_g + du W_u
            matmul_into((n, d, f), dx, d, dg, Mat::rows(wg, 0, d), T::one(), parallel());
            // SAFETY: the product above wrote all n x d elements of dx
            let dx = unsafe { buffer::written(dx) };
            matmul((n, d, f), dx, d, true, du, Mat::rows(wu, 0, d), T::one(), parallel());
            // dW = dᵀ x: [F, N] · [N, D]
            matmul_into((f, d, n), dwg, d, dg.t(), Mat::rows(x, 0, d), T::one(), parallel());
            matmul_into((f, d, n), dwu, d, du.t(), Mat::rows(x, 0, d), T::one(), parallel());
            // SAFETY: dx, dwg and dwu, which tile out, were written in full
            let out = unsafe { buffer::filled(out) };
            let len = out.len();
            Ok((T::to_cpu_storage_owned(out), Shape::from(len)))
        }
        match xs {
            CpuStorage::F32(_) => run::<f32>(self, (xs, xl), (gs, gl), (ds, dl)),
            CpuStorage::F64(_) => run::<f64>(self, (xs, xl), (gs, gl), (ds, dl)),
            _ => candle_core::bail!("fused gate_up backward: f32 or f64 only"),
        }
    }
}
