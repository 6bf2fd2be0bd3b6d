//! Hugging Face `config.json` for the decoder families this crate implements.
//!
//! Only the fields the forward pass needs are read; each one missing or of the wrong
//! type is an error naming the field and the file.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The architecture named by `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU.
    Llama,
    /// Llama plus per-head RMSNorm on q and k before RoPE.
    Qwen3,
    /// Qwen3.5's text model: Gated DeltaNet layers with gated full attention every few layers.
    Qwen35,
}

impl Architecture {
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "llama" => Some(Self::Llama),
            "qwen3" => Some(Self::Qwen3),
            "qwen3_5" | "qwen3_5_text" => Some(Self::Qwen35),
            _ => None,
        }
    }

    pub fn model_type(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen3 => "qwen3",
            Self::Qwen35 => "qwen3_5",
        }
    }
}

/// Frequency scaling applied to the rotary embedding.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    /// Llama 3.x: low frequencies divided by `factor`, a smooth ramp in between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// What a layer of a hybrid model mixes tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerType {
    FullAttention,
    /// Gated DeltaNet (linear attention)
    LinearAttention,
}

/// Gated DeltaNet sizes (qwen3_5).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearAttention {
    pub conv_kernel: usize,
    pub num_key_heads: usize,
    pub key_head_dim: usize,
    pub num_value_heads: usize,
    pub value_head_dim: usize,
}

impl LinearAttention {
    pub fn key_dim(&self) -> usize {
        self.num_key_heads * self.key_head_dim
    }
    pub fn value_dim(&self) -> usize {
        self.num_value_heads * self.value_head_dim
    }
    /// Channels of the depthwise conv: [q | k | v].
    pub fn conv_dim(&self) -> usize {
        2 * self.key_dim() + self.value_dim()
    }
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
    pub bos_token_id: Option<u32>,
    /// Every id that ends generation according to the config (`eos_token_id` may be a list).
    pub eos_token_ids: Vec<u32>,
    /// Per layer; all full attention except in hybrid models.
    pub layer_types: Vec<LayerType>,
    /// Fraction of each head's dims that RoPE rotates (qwen3_5: 0.25).
    pub partial_rotary_factor: f64,
    /// Gated DeltaNet sizes, for hybrid models.
    pub linear: Option<LinearAttention>,
}

impl ModelConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read model config {}", path.display()))?;
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON: fix or re-download it", path.display()))?;
        Self::from_json(&json).with_context(|| format!("in {}", path.display()))
    }

    pub fn from_json(json: &Value) -> Result<Self> {
        // multimodal checkpoints (Qwen3.5) keep the language model's config in text_config
        if let Some(text) = json.get("text_config").filter(|t| t.is_object()) {
            let mut text = text.clone();
            if text.get("model_type").is_none() {
                text["model_type"] = json.get("model_type").cloned().unwrap_or(Value::Null);
            }
            for key in ["tie_word_embeddings", "eos_token_id", "bos_token_id"] {
                if text.get(key).is_none() {
                    if let Some(v) = json.get(key) {
                        text[key] = v.clone();
                    }
                }
            }
            return Self::from_json(&text).context("in text_config");
        }
        let f = Fields(json);
        let model_type = f.str("model_type")?;
        let Some(architecture) = Architecture::from_model_type(model_type) else {
            bail!("unsupported model_type {model_type:?}: this build supports llama, qwen3 and qwen3_5");
        };
        let hidden_size = f.usize("hidden_size")?;
        let num_attention_heads = f.usize("num_attention_heads")?;
        let num_key_value_heads = f.opt_usize("num_key_value_heads")?.unwrap_or(num_attention_heads);
        if num_attention_heads == 0 || num_key_value_heads == 0 {
            bail!("field num_attention_heads / num_key_value_heads must be positive");
        }
        if num_attention_heads % num_key_value_heads != 0 {
            bail!(
                "field num_attention_heads ({num_attention_heads}) must be a multiple of num_key_value_heads ({num_key_value_heads})"
            );
        }
        let head_dim = match f.opt_usize("head_dim")? {
            Some(d) => d,
            None => hidden_size / num_attention_heads,
        };
        if head_dim % 2 != 0 {
            bail!("field head_dim ({head_dim}) must be even for rotary embeddings");
        }
        // transformers 5 moved rope_theta into rope_parameters; older configs keep it top level.
        let rope = json.get("rope_parameters").filter(|v| v.is_object());
        let rope_theta = match f.opt_f64("rope_theta")? {
            Some(t) => t,
            None => rope.and_then(|r| r.get("rope_theta")).and_then(Value::as_f64).unwrap_or(10_000.0),
        };
        let scaling = json.get("rope_scaling").filter(|v| !v.is_null()).or(rope);
        let rope_scaling = parse_rope_scaling(scaling)?;
        let num_hidden_layers = f.usize("num_hidden_layers")?;
        let (layer_types, linear, partial_rotary_factor) = if architecture == Architecture::Qwen35 {
            let types = layer_types(json, num_hidden_layers)?;
            let linear = LinearAttention {
                conv_kernel: f.opt_usize("linear_conv_kernel_dim")?.unwrap_or(4),
                num_key_heads: f.usize("linear_num_key_heads")?,
                key_head_dim: f.usize("linear_key_head_dim")?,
                num_value_heads: f.usize("linear_num_value_heads")?,
                value_head_dim: f.usize("linear_value_head_dim")?,
            };
            if linear.num_key_heads == 0 || !linear.num_value_heads.is_multiple_of(linear.num_key_heads) {
                bail!(
                    "field linear_num_value_heads ({}) must be a multiple of linear_num_key_heads ({})",
                    linear.num_value_heads,
                    linear.num_key_heads
                );
            }
            let factor = match f.opt_f64("partial_rotary_factor")? {
                Some(p) => p,
                None => {
                    rope.and_then(|r| r.get("partial_rotary_factor")).and_then(Value::as_f64).unwrap_or(0.25)
                }
            };
            (types, Some(linear), factor)
        } else {
            (vec![LayerType::FullAttention; num_hidden_layers], None, 1.0)
        };
        let rotary = (head_dim as f64 * partial_rotary_factor) as usize;
        if !rotary.is_multiple_of(2) || rotary == 0 {
            bail!("field partial_rotary_factor ({partial_rotary_factor}) x head_dim ({head_dim}) must give an even number of dims");
        }
        Ok(Self {
            architecture,
            vocab_size: f.usize("vocab_size")?,
            hidden_size,
            intermediate_size: f.usize("intermediate_size")?,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: f.opt_f64("rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: f.opt_usize("max_position_embeddings")?.unwrap_or(4096),
            tie_word_embeddings: f.opt_bool("tie_word_embeddings")?.unwrap_or(false),
            attention_bias: f.opt_bool("attention_bias")?.unwrap_or(false),
            bos_token_id: f.opt_usize("bos_token_id")?.map(|v| v as u32),
            eos_token_ids: token_id_list(json.get("eos_token_id"), "eos_token_id")?,
            layer_types,
            partial_rotary_factor,
            linear,
        })
    }

    /// Dims of each head that RoPE rotates.
    pub fn rotary_dim(&self) -> usize {
        (self.head_dim as f64 * self.partial_rotary_factor) as usize
    }

    /// Number of parameters the checkpoint holds for this config (tied head counted once).
    pub fn parameter_count(&self) -> usize {
        let (d, f, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        let mut attn = d * q + 2 * d * kv + q * d;
        if self.attention_bias {
            attn += q + 2 * kv;
        }
        if self.architecture != Architecture::Llama {
            attn += 2 * self.head_dim; // q_norm, k_norm
        }
        if self.architecture == Architecture::Qwen35 {
            attn += q * d; // the output gate doubles q_proj
        }
        let mixer = |t: &LayerType| match (t, &self.linear) {
            (LayerType::LinearAttention, Some(l)) => {
                let (nv, conv) = (l.num_value_heads, l.conv_dim());
                // in_proj_qkv, in_proj_z, in_proj_b, in_proj_a, conv1d, A_log, dt_bias, norm, out_proj
                d * conv
                    + d * l.value_dim()
                    + 2 * d * nv
                    + conv * l.conv_kernel
                    + 2 * nv
                    + l.value_head_dim
                    + l.value_dim() * d
            }
            _ => attn,
        };
        let layers: usize = self.layer_types.iter().map(|t| mixer(t) + 3 * d * f + 2 * d).sum();
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + layers + d + head
    }

    /// Whether q and k get a per-head RMSNorm before RoPE (qwen3).
    pub fn qk_norm(&self) -> bool {
        self.architecture == Architecture::Qwen3
    }
}

fn parse_rope_scaling(v: Option<&Value>) -> Result<RopeScaling> {
    let Some(v) = v else {
        return Ok(RopeScaling::None);
    };
    let kind = v.get("rope_type").or_else(|| v.get("type")).and_then(Value::as_str).unwrap_or("default");
    match kind {
        "default" => Ok(RopeScaling::None),
        "llama3" => {
            let f = Fields(v);
            Ok(RopeScaling::Llama3 {
                factor: f.f64("factor")?,
                low_freq_factor: f.f64("low_freq_factor")?,
                high_freq_factor: f.f64("high_freq_factor")?,
                original_max_position_embeddings: f.usize("original_max_position_embeddings")?,
            })
        }
        other => {
            bail!("field rope_scaling: rope_type {other:?} is not supported (supported: default, llama3)")
        }
    }
}

/// `layer_types`, else every `full_attention_interval`-th layer (default 4) is full attention.
fn layer_types(json: &Value, n: usize) -> Result<Vec<LayerType>> {
    if let Some(list) = json.get("layer_types").filter(|v| !v.is_null()) {
        let Some(items) = list.as_array() else { bail!("field layer_types must be a list") };
        if items.len() != n {
            bail!("field layer_types has {} entries but num_hidden_layers is {n}", items.len());
        }
        return items
            .iter()
            .enumerate()
            .map(|(i, t)| match t.as_str() {
                Some("full_attention") => Ok(LayerType::FullAttention),
                Some("linear_attention") => Ok(LayerType::LinearAttention),
                _ => bail!(
                    "field layer_types[{i}]: expected \"full_attention\" or \"linear_attention\", got {t}"
                ),
            })
            .collect();
    }
    let interval = Fields(json).opt_usize("full_attention_interval")?.unwrap_or(4).max(1);
    Ok((0..n)
        .map(|i| if (i + 1) % interval == 0 { LayerType::FullAttention } else { LayerType::LinearAttention })
        .collect())
}

/// `eos_token_id` as an int, a list of ints, or absent.
pub fn token_id_list(v: Option<&Value>, field: &str) -> Result<Vec<u32>> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(id) => Ok(vec![id as u32]),
            None => bail!("field {field} must be a non-negative integer, got {n}"),
        },
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_u64()
                    .map(|id| id as u32)
                    .with_context(|| format!("field {field} must hold integers, got {i}"))
            })
            .collect(),
        Some(other) => bail!("field {field} must be an integer or a list, got {other}"),
    }
}

/// Typed field access with errors that name the field.
struct Fields<'a>(&'a Value);

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }
    fn str(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s),
            Some(v) => bail!("field {key} must be a string, got {v}"),
            None => bail!("missing field {key}"),
        }
    }
    fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?.with_context(|| format!("missing field {key}"))
    }
    fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n as usize)),
                None => bail!("field {key} must be a non-negative integer, got {v}"),
            },
        }
    }
    fn f64(&self, key: &str) -> Result<f64> {
        self.opt_f64(key)?.with_context(|| format!("missing field {key}"))
    }
    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) => Ok(Some(n)),
                None => bail!("field {key} must be a number, got {v}"),
            },
        }
    }
    fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => bail!("field {key} must be true or false, got {v}"),
        }
    }
}
