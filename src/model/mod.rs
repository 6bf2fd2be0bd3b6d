//! Models: Hugging Face configs, checkpoint loading, differentiable layers, one file per
//! architecture, generation caches, and chunked per-token log-probs with gradients.

pub mod config;
pub mod decode_attention;
pub mod decode_cache;
pub mod decode_pool;
pub mod decode_step;
mod decoder;
pub mod deltanet;
pub mod export;
pub mod finite;
pub mod flash_attention;
pub mod fused;
pub mod huge_pages;
mod isa;
pub mod layers;
pub mod llama;
pub mod logprobs;
pub mod lora;
pub mod merge;
pub mod params;
pub mod qwen3_5;
pub mod small_matmul;
pub mod tiny;
pub mod weights;

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};

pub use config::{Architecture, ModelConfig};
pub use decoder::Cache;
pub use layers::kernels::Kernels;
pub use lora::config::LoraConfig;
pub use lora::spec::{LoraInit, LoraSpec};
pub use params::{adapters_only, all_trainable, frozen, LoadOptions, Source, TrainableFn};

use decoder::Decoder;
use deltanet::DeltaForm;
use layers::TrainContext;
use params::ParamBuilder;
use weights::Checkpoint;

/// A causal language model of any supported architecture.
pub struct Model {
    arch: Box<dyn Decoder>,
    /// Trainable parameters by canonical name (empty when frozen).
    params: Vec<(String, Var)>,
    /// Every parameter tensor by canonical name (tied tensors once).
    tensors: Vec<(String, Tensor)>,
    /// Checkpoint tensors outside the text model (vision tower, MTP head), not loaded.
    pub skipped: Vec<String>,
    /// LoRA adapters, when the model was built with some.
    adapters: Option<lora::adapters::Adapters>,
}

impl Model {
    /// Loads config.json and the safetensors weights from a model directory.
    pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
        let ckpt = Checkpoint::open(dir)?;
        let mut model = Self::build(&cfg, Source::Checkpoint(&ckpt), opts)
            .with_context(|| format!("loading the model in {}", dir.display()))?;
        model.skipped = ckpt.ignored.clone();
        if let Some(a) = &mut model.adapters {
            a.base_model = Some(dir.display().to_string());
        }
        Ok(model)
    }

    /// Builds the architecture from any source of weights.
    pub fn build(cfg: &ModelConfig, source: Source, opts: &LoadOptions) -> Result<Self> {
        let mut p = ParamBuilder::new(source, opts.clone());
        let arch: Box<dyn Decoder> = match cfg.architecture {
            Architecture::Llama | Architecture::Qwen3 => Box::new(llama::Llama::load(&mut p, cfg)?),
            Architecture::Qwen35 => Box::new(qwen3_5::Qwen35::load(&mut p, cfg)?),
        };
        let adapters = p.finish_adapters()?;
        Ok(Self { arch, params: p.trainable, tensors: p.all, skipped: Vec::new(), adapters })
    }

    /// The LoRA adapters, if the model has any.
    pub fn adapters(&self) -> Option<&lora::adapters::Adapters> {
        self.adapters.as_ref()
    }

    /// Training mode turns LoRA dropout on in differentiable forwards (off by default).
    pub fn set_training(&self, on: bool) {
        if let Some(a) = &self.adapters {
            a.dropout.set_training(on);
        }
    }

    pub fn config(&self) -> &ModelConfig {
        self.arch.config()
    }

    pub fn device(&self) -> &Device {
        self.tensors[0].1.device()
    }

    pub fn dtype(&self) -> DType {
        self.tensors[0].1.dtype()
    }

    /// Trainable parameters by canonical name.
    pub fn trainable(&self) -> &[(String, Var)] {
        &self.params
    }

    /// Every parameter tensor by canonical name.
    pub fn tensors(&self) -> &[(String, Tensor)] {
        &self.tensors
    }

    /// One line on the checkpoint parts that were not loaded, if any.
    pub fn skipped_note(&self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let mut prefixes: Vec<&str> = self.skipped.iter().map(|n| prefix_of(n)).collect();
        prefixes.dedup();
        prefixes.sort_unstable();
        prefixes.dedup();
        Some(format!(
            "skipped {} checkpoint tensors outside the text model ({})",
            self.skipped.len(),
            prefixes.iter().map(|p| format!("{p}*")).collect::<Vec<_>>().join(", ")
        ))
    }

    /// How much of the weights the host decode step put on 2 MiB pages, once it has run
    /// (the pages stay: the optimizer updates weights in place).
    pub fn huge_pages(&self) -> Option<huge_pages::Backing> {
        self.arch.huge_pages()
    }

    pub fn parameter_count(&self) -> usize {
        self.tensors.iter().map(|(_, t)| t.elem_count()).sum()
    }

    /// Final-normed hidden states [B, T, D] for ids [B, T], differentiable (each row causal
    /// on its own; right padding stays out of the real positions).
    pub fn hidden_states(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let h = self.hidden_states_packed(&ids.flatten_all()?, &layers::uniform_segments(b, t))?;
        Ok(h.reshape((b, t, self.config().hidden_size))?)
    }

    /// Final-normed hidden states [1, N, D] of a packed stream ids [N] whose rows end at
    /// `cu_seqlens`: each row as if it ran alone, differentiable.
    pub fn hidden_states_packed(&self, ids: &Tensor, cu_seqlens: &[usize]) -> Result<Tensor> {
        let ctx = self.train_context(cu_seqlens)?;
        let mut x = self.embed(ids)?;
        for i in 0..self.num_layers() {
            x = self.layer(&ctx, i, &x)?;
        }
        self.final_norm(&x)
    }

    /// The final-normed hidden state at each row's last token, [R, D], for rows of ids [N]
    /// packed as `cu_seqlens` says ([0, l0, l0+l1, ..., N], every row at least one token):
    /// what a scalar head reads (the reward model, `rm`). Differentiable.
    pub fn last_hidden_states(&self, ids: &Tensor, cu_seqlens: &[usize]) -> Result<Tensor> {
        if cu_seqlens.windows(2).any(|w| w[1] <= w[0]) {
            anyhow::bail!("last_hidden_states: every row needs at least one token ({cu_seqlens:?})");
        }
        let h = self.hidden_states_packed(ids, cu_seqlens)?.squeeze(0)?;
        let last: Vec<u32> = cu_seqlens[1..].iter().map(|&end| (end - 1) as u32).collect();
        let last = Tensor::new(last.as_slice(), h.device())?;
        Ok(h.index_select(&last, 0)?)
    }

    /// The pieces of `hidden_states_packed`, for a backward that recomputes one layer at a
    /// time: embed ids [N] -> [1, N, D], then each layer under one shared context, then the
    /// final norm.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        self.arch.embed(ids)
    }

    /// The context of a packed stream whose rows end at `cu_seqlens` ([0, l0, l0+l1, ..., N]).
    pub fn train_context(&self, cu_seqlens: &[usize]) -> Result<TrainContext> {
        self.arch.train_context(cu_seqlens)
    }

    /// Layer i over a packed stream x: [1, N, D].
    pub fn layer(&self, ctx: &TrainContext, i: usize, x: &Tensor) -> Result<Tensor> {
        self.arch.layer(ctx, i, x)
    }

    pub fn num_layers(&self) -> usize {
        self.arch.num_layers()
    }

    pub fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        self.arch.final_norm(x)
    }

    /// Output projection [V, D] (the embedding when tied).
    pub fn lm_head(&self) -> &Tensor {
        self.arch.lm_head()
    }

    /// Full-sequence logits [B, T, V]: materialises every row, so for short inputs and
    /// tests; training and scoring use `logprobs`, which works in chunks.
    pub fn logits(&self, ids: &Tensor) -> Result<Tensor> {
        let h = self.hidden_states(ids)?;
        layers::kernels::linear(&h, self.lm_head(), None, Kernels::Differentiable)
    }

    /// A fresh cache for a batch whose rows are left-padded by `pad[r]` positions.
    pub fn new_cache(&self, pad: Vec<usize>) -> Cache {
        self.arch.new_cache(pad)
    }

    /// Which form of the gated delta rule multi-position forwards use (hybrid models only).
    pub fn set_delta_form(&mut self, form: DeltaForm) {
        self.arch.set_delta_form(form);
    }

    /// Feeds ids [B, T] after what the cache holds; returns last-position logits [B, V] (f32).
    pub fn forward_cached(&self, ids: &Tensor, cache: &mut Cache, kernels: Kernels) -> Result<Tensor> {
        self.arch.forward_cached(ids, cache, kernels)
    }
}

/// `model.visual.blocks.0.x` -> `model.visual.`; `mtp.fc.weight` -> `mtp.`
fn prefix_of(name: &str) -> &str {
    let cut = if name.starts_with("model.") { 2 } else { 1 };
    match name.match_indices('.').nth(cut - 1) {
        Some((i, _)) => &name[..=i],
        None => name,
    }
}
