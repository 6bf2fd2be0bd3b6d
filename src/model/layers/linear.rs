//! The projection every architecture holds its weights in: y = x Wᵀ (+ b), plus a LoRA
//! branch when an adapter targets it, so one type serves llama, qwen3 and qwen3.5 on the
//! differentiable path (training) and the fused one (generation) alike.

use anyhow::Result;
use candle_core::Tensor;

use super::kernels::{linear, Kernels};
use crate::model::lora::layer::Lora;

/// A linear projection y = x Wᵀ (+ b), with an optional LoRA update.
pub struct Linear {
    /// [out, in]
    pub weight: Tensor,
    /// [out]
    pub bias: Option<Tensor>,
    pub lora: Option<Lora>,
}

impl Linear {
    /// x: [..., in] -> [..., out]. Over a half-precision base the adapter branch runs in its
    /// own f32 (`adapter_dtype`): x is widened for it and its output rounded to the base's
    /// dtype before the sum, so gradients reach A and B in f32.
    pub fn forward(&self, x: &Tensor, kernels: Kernels) -> Result<Tensor> {
        let y = linear(x, &self.weight, self.bias.as_ref(), kernels)?;
        let Some(l) = &self.lora else { return Ok(y) };
        let up = l.forward(x, kernels)?.to_dtype(y.dtype())?;
        Ok((y + up)?)
    }
}
