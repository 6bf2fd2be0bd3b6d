//! RMSNorm over the last dim, y = x r w with r = 1 / sqrt(mean(x²) + eps) per row.
//!
//! Backward, per row with g = dy ⊙ w: dx = r g − x r³ (Σ g x) / D; and over all rows
//! dw = Σ dy ⊙ x r. One pass reads x and dy once for both: it writes dx, and per chunk of
//! rows a partial dw, summed afterwards in chunk order.

use anyhow::Result;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{buffer, contiguous, dot, kernel_serves, Real, ROWS_PER_TASK};

/// x / rms(x) ⊙ w over the last dim. x: [..., D], w: [D]. Differentiable in x and w.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    if !kernel_serves(&[x, w]) {
        return Ok(candle_nn::ops::rms_norm_slow(x, w, eps as f32)?);
    }
    let d = x.dim(candle_core::D::Minus1)?;
    anyhow::ensure!(w.dims() == [d], "rms_norm: weight {:?} does not fit rows of {d}", w.dims());
    Ok(x.contiguous()?.apply_op2(&w.contiguous()?, RmsNorm { eps })?)
}

struct RmsNorm {
    eps: f64,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            eps: f64,
            xs: &CpuStorage,
            xl: &Layout,
            ws: &CpuStorage,
            wl: &Layout,
        ) -> candle_core::Result<CpuStorage> {
            let x = contiguous::<T>("rms_norm", xs, xl)?;
            let w = contiguous::<T>("rms_norm", ws, wl)?;
            let d = w.len();
            let eps = T::from(eps).unwrap_or_else(T::zero);
            if d == 0 || x.len() % d != 0 {
                candle_core::bail!("fused rms_norm: x of {} elements in rows of {d}", x.len());
            }
            let mut y = buffer::unfilled(x.len());
            y.par_chunks_mut(d * ROWS_PER_TASK).zip(x.par_chunks(d * ROWS_PER_TASK)).for_each(|(ys, xs)| {
                for (y, x) in ys.chunks_exact_mut(d).zip(xs.chunks_exact(d)) {
                    let r = inv_rms(x, eps);
                    for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                        y.write(x * r * w);
                    }
                }
            });
            // SAFETY: the rows (x.len() / d of them, checked) cover y and each was written
            Ok(T::to_cpu_storage_owned(unsafe { buffer::filled(y) }))
        }
        let out = match xs {
            CpuStorage::F32(_) => run::<f32>(self.eps, xs, xl, ws, wl)?,
            CpuStorage::F64(_) => run::<f64>(self.eps, xs, xl, ws, wl)?,
            _ => candle_core::bail!("fused rms_norm: f32 or f64 only"),
        };
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let d = w.dim(0)?;
        let rows = x.elem_count() / d.max(1);
        let both = x.apply_op3_no_bwd(w, &dy.contiguous()?, &RmsNormBackward { eps: self.eps })?;
        let dx = both.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = both.narrow(0, rows, both.dim(0)? - rows)?.sum(0)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// 1 / sqrt(mean(x²) + eps) (the decode step's norms use it too, so theirs are these bits).
#[inline(always)]
pub(crate) fn inv_rms<T: Real>(x: &[T], eps: T) -> T {
    let n = T::from(x.len()).unwrap_or_else(T::one);
    (dot(x, x) / n + eps).sqrt().recip()
}

/// (x, w, dy) -> [rows + tasks, D]: dx's rows, then one partial dw per task of rows.
struct RmsNormBackward {
    eps: f64,
}

impl CustomOp3 for RmsNormBackward {
    fn name(&self) -> &'static str {
        "fused-rms-norm-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            eps: f64,
            (xs, xl): (&CpuStorage, &Layout),
            (ws, wl): (&CpuStorage, &Layout),
            (gs, gl): (&CpuStorage, &Layout),
        ) -> candle_core::Result<(CpuStorage, Shape)> {
            let x = contiguous::<T>("rms_norm backward", xs, xl)?;
            let w = contiguous::<T>("rms_norm backward", ws, wl)?;
            let dy = contiguous::<T>("rms_norm backward", gs, gl)?;
            let d = w.len();
            let rows = x.len() / d;
            let tasks = rows.div_ceil(ROWS_PER_TASK);
            let eps = T::from(eps).unwrap_or_else(T::zero);
            let n = T::from(d).unwrap_or_else(T::one);
            if d == 0 || x.len() % d != 0 || dy.len() != x.len() {
                candle_core::bail!("fused rms_norm backward: x of {} elements in rows of {d}", x.len());
            }
            let mut out = buffer::unfilled((rows + tasks) * d);
            let (dx, dw) = out.split_at_mut(rows * d);
            // one partial weight gradient per task, summed into
            let dw = buffer::fill(dw, T::zero());
            dx.par_chunks_mut(d * ROWS_PER_TASK)
                .zip(dw.par_chunks_mut(d))
                .zip(x.par_chunks(d * ROWS_PER_TASK).zip(dy.par_chunks(d * ROWS_PER_TASK)))
                .for_each(|((dxs, dw), (xs, dys))| {
                    let mut g = vec![T::zero(); d];
                    for ((dx, x), dy) in
                        dxs.chunks_exact_mut(d).zip(xs.chunks_exact(d)).zip(dys.chunks_exact(d))
                    {
                        let r = inv_rms(x, eps);
                        for ((g, &dy), &w) in g.iter_mut().zip(dy).zip(w) {
                            *g = dy * w;
                        }
                        let k = dot(&g, x) * r * r * r / n;
                        for (((dx, &g), &x), (dw, &dy)) in
                            dx.iter_mut().zip(&g).zip(x).zip(dw.iter_mut().zip(dy))
                        {
                            dx.write(r * g - x * k);
                            *dw += dy * x * r;
                        }
                    }
                });
            // SAFETY: every row of dx was written (rows x d, checked), dw filled with zeros
            let out = unsafe { buffer::filled(out) };
            Ok((T::to_cpu_storage_owned(out), Shape::from((rows + tasks, d))))
        }
        match xs {
            CpuStorage::F32(_) => run::<f32>(self.eps, (xs, xl), (ws, wl), (gs, gl)),
            CpuStorage::F64(_) => run::<f64>(self.eps, (xs, xl), (ws, wl), (gs, gl)),
            _ => candle_core::bail!("fused rms_norm backward: f32 or f64 only"),
        }
    }
}
