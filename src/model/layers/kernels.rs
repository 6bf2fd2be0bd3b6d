//! The primitives every layer is made of, in both forms: `linear`, RMSNorm and softmax.

use anyhow::Result;
use candle_core::{DType, Tensor, D};

use crate::model::{fused, small_matmul};

/// Which implementation of normalisation, rotary embedding and softmax to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Composed candle ops: gradients flow through every parameter.
    Differentiable,
    /// candle's fused CPU/CUDA kernels: faster, no gradient.
    Fused,
}

/// y = x W^T (+ b). x: [..., in], w: [out, in]. Fused kernels with a few rows of f32 on
/// the CPU (decode steps) use the small-batch kernel instead of gemm.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, kernels: Kernels) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (out, inp) = w.dims2()?;
    let n: usize = dims[..dims.len() - 1].iter().product();
    let x2 = x.reshape((n, inp))?;
    let small = kernels == Kernels::Fused
        && n <= small_matmul::MAX_ROWS
        && w.dtype() == DType::F32
        && fused::host_kernels(w);
    let y = if small { small_matmul::small_batch_matmul(&x2, w)? } else { x2.matmul(&w.t()?)? };
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut out_dims = dims;
    *out_dims.last_mut().unwrap() = out;
    Ok(y.reshape(out_dims)?)
}

/// RMSNorm over the last dim, `x / rms(x) * w`, statistics in at least f32.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, kernels: Kernels) -> Result<Tensor> {
    // candle's fused kernel has no f64 variant
    Ok(match kernels {
        Kernels::Fused if x.dtype() != DType::F64 => {
            candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32)?
        }
        _ => fused::rms_norm(x, w, eps)?,
    })
}

/// Softmax over the last dim.
pub fn softmax_last(x: &Tensor, kernels: Kernels) -> Result<Tensor> {
    Ok(match kernels {
        Kernels::Differentiable => candle_nn::ops::softmax(x, D::Minus1)?,
        Kernels::Fused => candle_nn::ops::softmax_last_dim(&x.contiguous()?)?,
    })
}
