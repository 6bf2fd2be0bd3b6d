//! Rotate-half RoPE of packed heads: y = x ⊙ cos + rot(x) ⊙ sin, rot(x) = [−x₂, x₁].
//!
//! With tables whose halves repeat (cos[i] = cos[i + half], as `TrainContext` builds them)
//! this rotates each pair (x_i, x_{i+half}) by its angle, so the backward, the transpose of
//! a rotation, is the same kernel rotating by minus the angle: dx = rope(dy, cos, −sin).

use anyhow::{ensure, Result};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, kernel_serves, Real, ROWS_PER_TASK};

/// x: [N, H, R]; cos, sin: [N, 1, R] with repeating halves. Differentiable in x (the
/// tables are constants).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (n, _, r) = x.dims3()?;
    ensure!(
        cos.dims() == [n, 1, r] && sin.dims() == [n, 1, r] && r % 2 == 0,
        "rope: tables {:?} / {:?} do not fit heads {:?}",
        cos.dims(),
        sin.dims(),
        x.dims()
    );
    if !kernel_serves(&[x, cos, sin]) {
        return composed(x, cos, sin);
    }
    Ok(x.contiguous()?.apply_op3(&cos.contiguous()?, &sin.contiguous()?, Rope { inverse: false })?)
}

/// The same function in candle ops (other devices and dtypes).
pub fn composed(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(candle_core::D::Minus1)? / 2;
    let x1 = x.narrow(candle_core::D::Minus1, 0, half)?;
    let x2 = x.narrow(candle_core::D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], candle_core::D::Minus1)?;
    Ok((x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
}

struct Rope {
    /// Rotate by minus the angle (the backward).
    inverse: bool,
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        cs: &CpuStorage,
        cl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            inverse: bool,
            (xs, xl): (&CpuStorage, &Layout),
            (cs, cl): (&CpuStorage, &Layout),
            (ss, sl): (&CpuStorage, &Layout),
        ) -> candle_core::Result<CpuStorage> {
            let x = contiguous::<T>("rope", xs, xl)?;
            let cos = contiguous::<T>("rope", cs, cl)?;
            let sin = contiguous::<T>("rope", ss, sl)?;
            let (n, _, r) = xl.shape().dims3()?;
            let per_pos = x.len() / n.max(1); // H x R
            let half = r / 2;
            let mut y = vec![T::zero(); x.len()];
            y.par_chunks_mut(per_pos * ROWS_PER_TASK)
                .zip(x.par_chunks(per_pos * ROWS_PER_TASK))
                .enumerate()
                .for_each(|(task, (ys, xs))| {
                    for (p, (y, x)) in ys.chunks_exact_mut(per_pos).zip(xs.chunks_exact(per_pos)).enumerate()
                    {
                        let pos = task * ROWS_PER_TASK + p;
                        let c = &cos[pos * r..pos * r + half];
                        let s = &sin[pos * r..pos * r + half];
                        for (y, x) in y.chunks_exact_mut(r).zip(x.chunks_exact(r)) {
                            let (y1, y2) = y.split_at_mut(half);
                            let (x1, x2) = x.split_at(half);
                            for i in 0..half {
                                let s = if inverse { -s[i] } else { s[i] };
                                y1[i] = x1[i] * c[i] - x2[i] * s;
                                y2[i] = x2[i] * c[i] + x1[i] * s;
                            }
                        }
                    }
                });
            Ok(T::to_cpu_storage_owned(y))
        }
        let out = match xs {
            CpuStorage::F32(_) => run::<f32>(self.inverse, (xs, xl), (cs, cl), (ss, sl))?,
            CpuStorage::F64(_) => run::<f64>(self.inverse, (xs, xl), (cs, cl), (ss, sl))?,
            _ => candle_core::bail!("fused rope: f32 or f64 only"),
        };
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = dy.contiguous()?.apply_op3_no_bwd(cos, sin, &Rope { inverse: !self.inverse })?;
        Ok((Some(dx), None, None))
    }
}
