//! Training a reward model: shuffled batches of pairs (the order of epoch e is seeded by
//! (seed, e), so step s always trains the same pairs and a resumed run repeats the
//! uninterrupted one), the Bradley-Terry loss weighted by each pair's weight, global
//! gradient-norm clipping and the trainer's AdamW, over the head and the model's trainable
//! weights (all of them, or the LoRA adapters). Checkpoints are `RM/checkpoints/step-N/`
//! (written to a temporary folder and renamed): the trainable weights or adapter, the head,
//! the optimizer state and the step.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Tensor, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::loss::bradley_terry;
use super::manifest::{HEAD_FILE, HEAD_TENSOR};
use super::model::RewardModel;
use crate::prefs::Pair;
use crate::run::RunDir;
use crate::train::checkpoint::{self, CheckpointState};
use crate::train::optim::{clip_grad_norm, AdamW, Grads};

/// How a reward model trains; kept in `RM/train.json` so `--resume` trains the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmTrainConfig {
    pub epochs: usize,
    /// Pairs per optimizer step (each pair is two rows of the packed pass).
    pub batch_pairs: usize,
    pub lr: f64,
    pub max_grad_norm: f64,
    /// Tokens a row keeps at most (prompt + story + end token).
    pub max_tokens: usize,
    pub seed: u64,
    /// Steps between checkpoints (0: only at the end and on a stop).
    pub checkpoint_every: usize,
}

/// One optimizer step, as the progress line shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmStep {
    /// 1-based.
    pub step: usize,
    pub steps: usize,
    pub epoch: usize,
    /// Weighted mean pair loss of the batch.
    pub loss: f64,
    /// Share of the batch's pairs scored the right way round (before the update).
    pub accuracy: f64,
    pub grad_norm: f64,
    pub tokens: usize,
    pub seconds: f64,
}

impl RmTrainConfig {
    pub fn steps_per_epoch(&self, pairs: usize) -> usize {
        pairs.div_ceil(self.batch_pairs.max(1))
    }

    pub fn total_steps(&self, pairs: usize) -> usize {
        self.steps_per_epoch(pairs) * self.epochs
    }

    /// The pair indices of step `step` (0-based).
    pub fn batch(&self, pairs: usize, step: usize) -> Vec<usize> {
        let per_epoch = self.steps_per_epoch(pairs);
        let (epoch, k) = (step / per_epoch, step % per_epoch);
        let mut order: Vec<usize> = (0..pairs).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(
            self.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        ));
        let b = self.batch_pairs.max(1);
        order[k * b..((k + 1) * b).min(pairs)].to_vec()
    }
}

/// What the optimizer updates: the model's trainable weights and the head.
pub fn parameters(rm: &RewardModel) -> Vec<(String, Var)> {
    let mut p = rm.lm.model.trainable().to_vec();
    p.push((HEAD_TENSOR.to_string(), rm.head.clone()));
    p
}

/// Checkpoints kept: the newest, and one before it should the newest be damaged.
pub const KEEP: usize = 2;

/// Where a reward model's checkpoints go (`RM/checkpoints/step-N`), and the pairs file they
/// were trained on (its SHA-256, checked on resume).
pub struct Checkpoints<'a> {
    pub out: &'a Path,
    pub pairs_sha256: &'a str,
}

impl Checkpoints<'_> {
    /// Writes `RM/checkpoints/step-N`, then removes all but the `KEEP` newest (a full model's
    /// weights and moments are three copies of it each); returns its folder.
    pub fn save(&self, rm: &RewardModel, opt: &AdamW, seed: u64) -> Result<PathBuf> {
        let dir = save_checkpoint(self.out, rm, opt, seed, self.pairs_sha256)?;
        for old in checkpoint::all(self.out).into_iter().skip(KEEP) {
            std::fs::remove_dir_all(&old).with_context(|| format!("cannot remove {}", old.display()))?;
        }
        Ok(dir)
    }

    /// `resume` from this folder.
    pub fn resume(&self, rm: &RewardModel, opt: &mut AdamW) -> Result<Option<usize>> {
        resume(self.out, rm, opt, self.pairs_sha256)
    }
}

fn save_checkpoint(
    out: &Path,
    rm: &RewardModel,
    opt: &AdamW,
    seed: u64,
    pairs_sha256: &str,
) -> Result<PathBuf> {
    let state = CheckpointState {
        format: checkpoint::FORMAT,
        step: opt.step,
        seed,
        data_cursor: 0,
        dropout_rng: rm.lm.model.adapters().map(|a| a.dropout.position()),
        data_sha256: Some(pairs_sha256.to_string()),
    };
    let dir = RunDir::at(out).checkpoint(opt.step);
    checkpoint::save_folder(&dir, &rm.lm.model, opt, &state, &[(HEAD_FILE, rm.head_tensors()?)])
}

/// Restores the newest complete checkpoint under `out` into the model, the head and the
/// optimizer; returns its step, or None when there is none. A checkpoint of another pairs
/// file is refused.
fn resume(out: &Path, rm: &RewardModel, opt: &mut AdamW, pairs_sha256: &str) -> Result<Option<usize>> {
    checkpoint::clean_temporaries(out)?;
    let Some(dir) = checkpoint::latest(out) else { return Ok(None) };
    let state = checkpoint::load_weights(&dir, &rm.lm.model)
        .with_context(|| format!("resuming from {}", dir.display()))?;
    if state.data_sha256.as_deref() != Some(pairs_sha256) {
        bail!(
            "{}: trained on another pairs file (SHA-256 {}); give the same --pairs, or a new --out",
            dir.display(),
            state.data_sha256.as_deref().unwrap_or("unknown")
        );
    }
    rm.load_head(&dir)?;
    let saved = checkpoint::read_optimizer(&dir, rm.lm.model.device())?;
    opt.load_state(state.step, &saved)?;
    Ok(Some(state.step))
}

/// Trains from the optimizer's step to the last step of `cfg`, checkpointing every
/// `checkpoint_every` steps; stops between steps when `cancel` is set. Returns the last
/// step's loss (None when no step ran).
pub fn train(
    rm: &RewardModel,
    pairs: &[Pair],
    cfg: &RmTrainConfig,
    opt: &mut AdamW,
    checkpoints: &Checkpoints,
    cancel: &AtomicBool,
    mut on_step: impl FnMut(&RmStep) -> Result<()>,
) -> Result<Option<f64>> {
    if pairs.is_empty() {
        bail!("no training pairs (every pair is held out?)");
    }
    // both stories of every pair, encoded once: [2i] chosen, [2i + 1] rejected
    let rows: Vec<Vec<u32>> = pairs
        .iter()
        .flat_map(|p| [(p, &p.chosen), (p, &p.rejected)])
        .map(|(p, story)| {
            rm.encode(&p.prompt, story).with_context(|| format!("encoding a pair of prompt {}", p.uid))
        })
        .collect::<Result<_>>()?;
    let steps = cfg.total_steps(pairs.len());
    let per_epoch = cfg.steps_per_epoch(pairs.len());
    let params = parameters(rm);
    let device = rm.lm.model.device().clone();
    let mut last = None;
    rm.lm.model.set_training(true);
    while opt.step < steps {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        let started = Instant::now();
        let batch = cfg.batch(pairs.len(), opt.step);
        let seqs: Vec<Vec<u32>> =
            batch.iter().flat_map(|&i| [rows[2 * i].clone(), rows[2 * i + 1].clone()]).collect();
        let tokens = seqs.iter().map(Vec::len).sum();
        // [2P] -> chosen [P], rejected [P]
        let r = rm.forward(&seqs)?.reshape((batch.len(), 2))?;
        let (rc, rr) = (r.narrow(1, 0, 1)?.squeeze(1)?, r.narrow(1, 1, 1)?.squeeze(1)?);
        let w: Vec<f32> = batch.iter().map(|&i| pairs[i].weight as f32).collect();
        let loss = bradley_terry(&rc, &rr, &Tensor::new(w.as_slice(), &device)?.to_dtype(rc.dtype())?)?;
        let margins = (&rc - &rr)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let store = loss.backward()?;
        let mut grads: Grads = Vec::with_capacity(params.len());
        for (name, var) in &params {
            if let Some(g) = store.get(var.as_tensor()) {
                grads.push((name.clone(), g.clone()));
            }
        }
        let grad_norm = clip_grad_norm(&mut grads, cfg.max_grad_norm)?;
        if !grad_norm.is_finite() {
            return Err(anyhow!(
                "step {}: the gradient is not finite (loss {}); lower --lr, or resume from the last checkpoint",
                opt.step + 1,
                loss.to_dtype(DType::F64)?.to_scalar::<f64>()?
            ));
        }
        opt.apply(&params, &grads, cfg.lr)?;
        let loss = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        last = Some(loss);
        let s = RmStep {
            step: opt.step,
            steps,
            epoch: (opt.step - 1) / per_epoch + 1,
            loss,
            accuracy: margins
                .iter()
                .map(|&m| {
                    if m > 0.0 {
                        1.0
                    } else if m == 0.0 {
                        0.5
                    } else {
                        0.0
                    }
                })
                .sum::<f64>()
                / margins.len() as f64,
            grad_norm,
            tokens,
            seconds: started.elapsed().as_secs_f64(),
        };
        on_step(&s)?;
        if cfg.checkpoint_every > 0 && opt.step.is_multiple_of(cfg.checkpoint_every) && opt.step < steps {
            checkpoints.save(rm, opt, cfg.seed)?;
        }
    }
    rm.lm.model.set_training(false);
    Ok(last)
}
