//! Supervised fine-tuning on human stories: the warm start before GRPO. Each example's
//! prompt is rendered with the chat template and its story (with the reasoning trace when
//! thinking is on, as the reference row of a GRPO group) is the response; the loss is the
//! mean negative log-likelihood over response tokens.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::batch::{pack, response_rows, spread, Packed};
use super::data::Example;
use super::optim::{clip_grad_norm, AdamW, AdamWConfig};
use crate::lm::LanguageModel;
use crate::model::logprobs::{backward_packed, BackwardOptions, DEFAULT_CHUNK};
use crate::run::stats::SftStep;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    pub epochs: usize,
    /// Examples per optimizer step.
    pub batch_size: usize,
    pub lr: f64,
    pub max_grad_norm: f64,
    /// Response tokens kept per example (longer stories are cut; 0 = no limit).
    pub max_response_tokens: usize,
    pub thinking: bool,
    pub seed: u64,
    /// Per-layer activation checkpointing (recompute in backward).
    pub checkpoint_layers: bool,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            epochs: 0,
            batch_size: 4,
            lr: 1e-5,
            max_grad_norm: 1.0,
            max_response_tokens: 0,
            thinking: true,
            seed: 0,
            checkpoint_layers: false,
        }
    }
}

/// Trains `lm`'s trainable parameters on the examples that have a story; calls `on_step`
/// after every update. Stops early (between steps) when `cancel` is set.
pub fn sft(
    lm: &LanguageModel,
    examples: &[Example],
    cfg: &SftConfig,
    cancel: &AtomicBool,
    mut on_step: impl FnMut(&SftStep) -> Result<()>,
) -> Result<Vec<SftStep>> {
    if lm.model.trainable().is_empty() {
        bail!("the model has no trainable parameters");
    }
    let mut rows: Vec<(Vec<u32>, Vec<u32>)> = Vec::new();
    for e in examples {
        let Some(story) = &e.story else { continue };
        let (rendered, prompt_ids) = lm.prompt(&e.prompt, false, cfg.thinking)?;
        let mut response = lm.response_ids(&rendered, cfg.thinking, e.reasoning.as_deref(), story)?;
        if cfg.max_response_tokens > 0 {
            response.truncate(cfg.max_response_tokens);
        }
        rows.push((prompt_ids, response));
    }
    if rows.is_empty() {
        bail!("no example has a `story` to learn from");
    }
    let batch = cfg.batch_size.max(1);
    let per_epoch = rows.len().div_ceil(batch);
    let steps = per_epoch * cfg.epochs;
    let mut opt = AdamW::new(AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() });
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let device = lm.model.device().clone();
    let mut out = Vec::with_capacity(steps);
    for epoch in 1..=cfg.epochs {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.shuffle(&mut rng);
        for chunk in order.chunks(batch) {
            if cancel.load(Ordering::Relaxed) {
                return Ok(out);
            }
            let started = Instant::now();
            let seqs: Vec<(&[u32], &[u32])> =
                chunk.iter().map(|&i| (rows[i].0.as_slice(), rows[i].1.as_slice())).collect();
            let Packed { inputs, targets, cu_seqlens, spans } = pack(&seqs, &device)?;
            let tokens: usize = spans.iter().map(|s| s.1).sum();
            let n = inputs.dim(0)?;
            let mut nll = 0f64;
            let opts = BackwardOptions {
                chunk: DEFAULT_CHUNK,
                checkpoint_layers: cfg.checkpoint_layers,
                entropy: false,
            };
            let pass = backward_packed(&lm.model, &inputs, &targets, &cu_seqlens, opts, |lp| {
                let rows = response_rows(lp, &spans)?;
                nll = -rows.iter().flatten().sum::<f64>() / tokens.max(1) as f64;
                // d(mean NLL)/dlogp = −1/N on every response token
                let coeffs: Vec<Vec<f64>> =
                    rows.iter().map(|r| vec![-1.0 / tokens.max(1) as f64; r.len()]).collect();
                spread(&coeffs, &spans, n, &device)
            })?;
            let mut grads = pass.grads;
            let grad_norm = clip_grad_norm(&mut grads, cfg.max_grad_norm)?;
            super::host_memory::return_freed();
            opt.apply(lm.model.trainable(), &grads, cfg.lr)?;
            let s = SftStep {
                epoch,
                step: out.len() + 1,
                steps,
                loss: nll,
                grad_norm,
                tokens,
                seconds: started.elapsed().as_secs_f64(),
            };
            on_step(&s)?;
            out.push(s);
        }
    }
    Ok(out)
}
