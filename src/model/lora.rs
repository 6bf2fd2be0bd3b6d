//! LoRA as HF PEFT applies it: a target projection computes
//!   y = x Wᵀ (+ b) + s · dropout(x) Aᵀ Bᵀ,   s = alpha / r  (alpha / √r with rsLoRA),
//! A: [r, in] initialised kaiming-uniform (a = √5, i.e. U(±1/√in)), B: [out, r] zeros, so a
//! fresh adapter leaves the model's function unchanged. Every architecture holds its
//! projections as `Linear`, so the same code serves llama, qwen3 and qwen3.5, on the
//! differentiable path (training) and the fused one (generation) alike.
//!
//! Dropout applies only while the model is in training mode (`Model::set_training`) and only
//! on the differentiable path. GRPO's ratio π_new/π_old assumes both log-probs come from the
//! policy that sampled the rollouts; a dropped-out forward is a different, random policy, so
//! with more than one update epoch the ratio would measure dropout noise instead of policy
//! change and clip on it. (With today's one update epoch, old = current from the same
//! forward, so the ratio stays 1 and dropout only makes the gradient that of a perturbed
//! policy.) The run configuration therefore defaults to dropout 0 (PEFT's default is 0.05);
//! with dropout > 0 the masks are drawn on the CPU from a seeded generator whose position is
//! checkpointed, so a resumed run still repeats the uninterrupted one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::layers::{linear, Kernels};

/// `target_modules` value meaning every linear projection except the output head.
pub const ALL_LINEAR: &str = "all-linear";

/// What an adapter is: rank, scale, dropout and the modules it targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Module names as PEFT matches them: `q_proj` matches every module whose path ends in
    /// `.q_proj`; `all-linear` every linear projection except lm_head.
    pub target_modules: Vec<String>,
    /// rsLoRA: scale alpha / √r (read from PEFT adapters; runs train with alpha / r).
    pub use_rslora: bool,
}

impl LoraConfig {
    /// Whether a linear projection at canonical path `module` gets an adapter.
    pub fn targets(&self, module: &str) -> bool {
        self.target_modules.iter().any(|t| {
            t == ALL_LINEAR
                || module == t
                || module.strip_suffix(t.as_str()).is_some_and(|s| s.ends_with('.'))
        })
    }

    /// The factor s in y = x Wᵀ + s · x Aᵀ Bᵀ.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            bail!("r must be at least 1");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("dropout must be in [0, 1), got {}", self.dropout);
        }
        if !self.alpha.is_finite() || self.alpha <= 0.0 {
            bail!("alpha must be positive, got {}", self.alpha);
        }
        if self.target_modules.is_empty() || self.target_modules.iter().any(|t| t.is_empty()) {
            bail!("target_modules must name at least one module (e.g. [\"q_proj\", \"v_proj\"] or [\"all-linear\"])");
        }
        Ok(())
    }
}

/// LoRA dropout shared by every adapter of a model: on only in training mode.
pub struct Dropout {
    p: f64,
    training: AtomicBool,
    rng: Mutex<ChaCha8Rng>,
}

impl Dropout {
    pub fn new(p: f64, seed: u64) -> Self {
        Self { p, training: AtomicBool::new(false), rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)) }
    }

    pub fn set_training(&self, on: bool) {
        self.training.store(on, Ordering::Relaxed);
    }

    /// Position of the mask generator (32-bit words drawn), for checkpoints.
    pub fn position(&self) -> u128 {
        self.rng.lock().expect("dropout rng").get_word_pos()
    }

    pub fn set_position(&self, words: u128) {
        self.rng.lock().expect("dropout rng").set_word_pos(words);
    }

    /// x with each element zeroed with probability p and the rest scaled by 1/(1 − p)
    /// (inverted dropout, as torch), or x itself outside training forwards.
    fn apply(&self, x: &Tensor, kernels: Kernels) -> Result<Tensor> {
        if self.p == 0.0 || kernels != Kernels::Differentiable || !self.training.load(Ordering::Relaxed) {
            return Ok(x.clone());
        }
        let keep = 1.0 / (1.0 - self.p) as f32;
        let mask: Vec<f32> = {
            let mut rng = self.rng.lock().expect("dropout rng");
            (0..x.elem_count()).map(|_| if rng.random::<f64>() < self.p { 0.0 } else { keep }).collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), &candle_core::Device::Cpu)?
            .to_dtype(x.dtype())?
            .to_device(x.device())?;
        Ok((x * mask)?)
    }
}

/// A low-rank update of one projection.
pub struct Lora {
    /// [r, in]
    pub a: Tensor,
    /// [out, r]
    pub b: Tensor,
    pub scale: f64,
    pub dropout: Arc<Dropout>,
}

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
        let xa = x.to_dtype(l.a.dtype())?;
        let down = linear(&l.dropout.apply(&xa, kernels)?, &l.a, None, kernels)?; // [..., r]
        let up = linear(&down, &l.b, None, kernels)?;
        let up = (up * l.scale)?.to_dtype(y.dtype())?;
        Ok((y + up)?)
    }
}

/// The dtype LoRA adapters are kept and trained in over a base of `base` dtype: f32 over
/// bf16, f16 and f32 bases (mixed precision: a bf16 adapter would lose updates below 2^-8
/// of its weights, and B starts at zero), f64 over f64 (the tests' finite differences).
pub fn adapter_dtype(base: DType) -> DType {
    if base == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// PEFT's initialisation of A: kaiming_uniform_(a=√5) on [r, in], i.e. gain √(2/(1+5)),
/// bound = gain·√3/√in = 1/√in.
pub fn kaiming_uniform(rng: &mut ChaCha8Rng, r: usize, inp: usize) -> Vec<f32> {
    let bound = 1.0 / (inp as f32).sqrt();
    (0..r * inp).map(|_| rng.random_range(-bound..bound)).collect()
}

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
