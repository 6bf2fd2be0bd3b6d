//! Throughput per device and model FLOPs utilisation (MFU) of a step's training phase.
//!
//! Model FLOPs of training on a row of T tokens (PaLM, appendix B, the convention published
//! MFU figures use): T · (c·N + 12·L·H·T), where N counts the weights a token is multiplied
//! by (every matmul weight, the output head included, the input embedding lookup not),
//! L the full-attention layers, H their query width (heads × head dim), and c the FLOPs per
//! weight: 2 forward, 2 for the gradient of the activations, and 2 × the trainable share of
//! N for the gradient of the weights: 6 for a full fine-tune, about 4 for LoRA, whose frozen
//! weights get no gradient.
//! The attention term counts the whole T × T score matrix as PaLM does, though causal
//! attention computes about half of it. Gated DeltaNet layers (Qwen3.5's linear attention)
//! add a state update linear in T that is left out (a few percent of the 6N term at these
//! widths). Recomputation (activation checkpointing), the old-policy and reference
//! log-prob passes are not model FLOPs: MFU measures useful work, not all work.
//!
//! MFU = model FLOPs / seconds of the training phase / the device's peak (`gpu::peak`).
//! Devices without a known peak (every CPU, an unlisted GPU) have tokens/s and no MFU.

use serde::{Deserialize, Serialize};

use crate::model::config::{LayerType, ModelConfig};

/// One device's share of a step (the `devices` list of a step event).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceThroughput {
    /// `cpu`, `cpu:1`, `cuda:0`: the worker's device.
    pub device: String,
    /// What the driver calls it (GPUs: `NVIDIA H100 80GB HBM3`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Prompt + response tokens its worker put through forward and backward per second of
    /// the step's training phase (update epochs included).
    pub train_tokens_per_second: f64,
    /// Policy response tokens it sampled per second of its own sampling.
    pub generate_tokens_per_second: f64,
    /// Model FLOPs utilisation of the training phase (0..1); absent where the device's peak
    /// is unknown (CPUs, GPUs not in `gpu::peak`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfu: Option<f64>,
}

/// A worker's device, as the run knows it before the first step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceInfo {
    pub device: String,
    pub name: Option<String>,
    /// Dense peak FLOP/s at the run's dtype.
    pub peak_flops: Option<f64>,
}

impl DeviceInfo {
    /// The workers' devices of `run.devices` (`cpu`, `cpu:4`, `cuda:0,cuda:1`), GPU names
    /// from NVML where it answers, peaks from `gpu::peak` at `dtype`.
    pub fn of_run(devices: &str, dtype: &str) -> Vec<Self> {
        let spec = devices.trim();
        if let Some(n) = spec.strip_prefix("cpu:").and_then(|n| n.parse::<usize>().ok()) {
            return (0..n).map(|i| Self { device: format!("cpu:{i}"), ..Default::default() }).collect();
        }
        if spec == "cpu" {
            return vec![Self { device: "cpu".into(), ..Default::default() }];
        }
        let nvml = nvml_wrapper::Nvml::init().ok();
        spec.split(',')
            .map(|d| {
                let d = d.trim().to_string();
                let index = d.strip_prefix("cuda:").and_then(|i| i.parse::<u32>().ok());
                let name = index.and_then(|i| nvml.as_ref()?.device_by_index(i).ok()?.name().ok());
                let peak_flops = name.as_deref().and_then(|n| crate::gpu::peak::peak_flops(n, dtype));
                Self { device: d, name, peak_flops }
            })
            .collect()
    }
}

/// The model's FLOPs per trained token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingFlops {
    /// Matmul weights a token meets (N).
    pub matmul_params: f64,
    /// c above: 6 for a full fine-tune.
    pub per_param: f64,
    /// L · H of the full-attention layers.
    pub attention_width: f64,
}

impl TrainingFlops {
    /// For `config`, with `trainable_share` of its weights trained (1 for a full fine-tune).
    pub fn new(config: &ModelConfig, trainable_share: f64) -> Self {
        let embedding = config.vocab_size * config.hidden_size;
        // tied: the embedding is the head's matmul too, counted once in parameter_count
        let lookup = if config.tie_word_embeddings { 0 } else { embedding };
        let matmul_params = config.parameter_count().saturating_sub(lookup) as f64;
        let layers = config.layer_types.iter().filter(|t| **t == LayerType::FullAttention).count();
        Self {
            matmul_params,
            per_param: 4.0 + 2.0 * trainable_share.clamp(0.0, 1.0),
            attention_width: (layers * config.num_attention_heads * config.head_dim) as f64,
        }
    }

    /// Model FLOPs of training once on a row of `tokens` tokens.
    pub fn row(&self, tokens: usize) -> f64 {
        let t = tokens as f64;
        t * (self.per_param * self.matmul_params + 12.0 * self.attention_width * t)
    }
}
