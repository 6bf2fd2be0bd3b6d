//! The gated MLP of llama-family models (llama, qwen3, qwen3.5).

use anyhow::Result;
use candle_core::Tensor;

use super::kernels::Kernels;
use super::linear::Linear;
use crate::model::fused;
use crate::model::params::ParamBuilder;

/// The gated MLP of llama-family models: down(silu(gate(x)) * up(x)).
pub struct SwiGlu {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl SwiGlu {
    pub fn load(p: &mut ParamBuilder, hidden: usize, intermediate: usize, prefix: &str) -> Result<Self> {
        Ok(Self {
            gate_proj: p.linear(&format!("{prefix}.gate_proj"), intermediate, hidden, false)?,
            up_proj: p.linear(&format!("{prefix}.up_proj"), intermediate, hidden, false)?,
            down_proj: p.linear(&format!("{prefix}.down_proj"), hidden, intermediate, false)?,
        })
    }

    /// gate, up and down projections (the decode step runs them on host rows).
    pub fn projections(&self) -> [&Linear; 3] {
        [&self.gate_proj, &self.up_proj, &self.down_proj]
    }

    pub fn forward(&self, x: &Tensor, kernels: Kernels) -> Result<Tensor> {
        let plain = |l: &Linear| l.lora.is_none() && l.bias.is_none();
        if kernels == Kernels::Differentiable && plain(&self.gate_proj) && plain(&self.up_proj) {
            // training: both projections and their product as one op (fused::gate_up)
            let h = fused::gate_up(x, &self.gate_proj.weight, &self.up_proj.weight)?;
            return self.down_proj.forward(&h, kernels);
        }
        let gate = self.gate_proj.forward(x, kernels)?;
        let up = self.up_proj.forward(x, kernels)?;
        self.down_proj.forward(&fused::swiglu(&gate, &up)?, kernels)
    }
}
