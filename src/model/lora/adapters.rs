//! The adapters of a built model, as the model holds them: for saving and merging.

use std::sync::Arc;

use candle_core::Tensor;

use super::config::LoraConfig;
use super::layer::Dropout;

/// The adapters of a built model, for saving in PEFT's layout and for merging.
pub struct Adapters {
    pub config: LoraConfig,
    /// In the order the model built them.
    pub modules: Vec<AdapterModule>,
    pub dropout: Arc<Dropout>,
    /// The base model directory (adapter_config.json's base_model_name_or_path), when known.
    pub base_model: Option<String>,
}

/// One adapted projection.
pub struct AdapterModule {
    /// Canonical module path (`model.layers.0.self_attn.q_proj`).
    pub name: String,
    /// The module's path in the checkpoint the model came from
    /// (`model.language_model.layers.0.…` for Qwen3.5): PEFT's keys use it.
    pub path: String,
    /// [r, in] and [out, r]: the model's own tensors (a trained `Var` reads through).
    pub a: Tensor,
    pub b: Tensor,
}
