//! One GRPO + HRI step: sample each prompt's group, add the teacher-forced human reference,
//! score every row, compute group advantages, and take one optimizer step on the clipped
//! surrogate (one update epoch: old log-probs are the current ones, ratio 1). The trainer
//! knows nothing of who watches: it returns statistics and scored rollouts.

use std::cell::RefCell;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::advantage::group_advantages;
use super::group::{build_group, GroupSpec, Rollout};
use super::loss::{grpo_loss, LossConfig, LossOutput, RowTerms};
use super::optim::{clip_grad_norm, AdamW, AdamWConfig};
use super::schedule::{HriSchedule, LrSchedule};
use crate::generate::SamplingParams;
use crate::lm::LanguageModel;
use crate::model::logprobs::{logprobs_backward, DEFAULT_CHUNK};
use crate::reward::breakdown::{score_batch, Breakdown, Candidate, Weights};
use crate::reward::JudgeClient;

/// Scores a batch of candidate stories.
pub trait Rewarder {
    fn score(&self, candidates: &[Candidate]) -> Result<Vec<Breakdown>>;
}

/// The reward stack: a judge client (offline or remote) and the composite weights.
pub struct StackRewarder {
    pub client: Arc<JudgeClient>,
    pub weights: Weights,
    runtime: tokio::runtime::Runtime,
}

impl StackRewarder {
    pub fn new(client: JudgeClient, weights: Weights) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        Ok(Self { client: Arc::new(client), weights, runtime })
    }
}

impl Rewarder for StackRewarder {
    fn score(&self, candidates: &[Candidate]) -> Result<Vec<Breakdown>> {
        Ok(self.runtime.block_on(score_batch(&self.client, candidates, self.weights)))
    }
}

/// Settings of a step; defaults are the recipe's (RECIPE.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepConfig {
    /// Rows per group, the reference included.
    pub group_size: usize,
    pub hri: bool,
    pub hri_schedule: HriSchedule,
    /// false: Dr. GRPO's advantages without std scaling.
    pub scale_by_std: bool,
    pub loss: LossConfig,
    pub sampling: SamplingParams,
    pub thinking: bool,
    pub max_grad_norm: f64,
    pub lr: LrSchedule,
    pub adamw: AdamWConfig,
    pub logprob_chunk: usize,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self {
            group_size: 6,
            hri: true,
            hri_schedule: HriSchedule::default(),
            scale_by_std: true,
            loss: LossConfig::default(),
            sampling: SamplingParams::training(),
            thinking: true,
            max_grad_norm: 1.0,
            lr: LrSchedule::default(),
            adamw: AdamWConfig::default(),
            logprob_chunk: DEFAULT_CHUNK,
        }
    }
}

/// One prompt of a batch, with its human reference when it has one.
#[derive(Debug, Clone, Copy)]
pub struct TrainPrompt<'a> {
    pub prompt: &'a str,
    pub story: Option<&'a str>,
    pub reasoning: Option<&'a str>,
}

/// A row after scoring.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoredRollout {
    pub step: usize,
    pub prompt: String,
    pub rollout: Rollout,
    pub reward: f64,
    pub advantage: f64,
    pub breakdown: Breakdown,
}

/// What a step did (the per-step event of the run log).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    pub step: usize,
    pub policy_reward_mean: f64,
    pub policy_reward_std: f64,
    /// Mean over groups of the best policy row's reward.
    pub best_of_group_mean: f64,
    pub reference_reward_mean: Option<f64>,
    /// Mean 1-based rank of the reference in its group (1 = best).
    pub reference_rank_mean: Option<f64>,
    /// Share of groups where the reference beats every policy row.
    pub reference_beats_all: Option<f64>,
    pub length_ratio_mean: Option<f64>,
    pub words_mean: f64,
    pub loss: f64,
    pub clip_frac_low: f64,
    pub clip_frac_high: f64,
    pub kl: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub hri_weight: f64,
    pub zero_variance_groups: usize,
    pub judge_failures: usize,
    pub judge_cost: f64,
    /// Response tokens trained on (all rows).
    pub tokens: usize,
    pub seconds_generate: f64,
    pub seconds_judge: f64,
    pub seconds_train: f64,
}

pub struct Trainer {
    pub cfg: StepConfig,
    pub opt: AdamW,
    /// Steps taken so far.
    pub step: usize,
    /// Seeds rollouts: step s, group g sample with seed ^ (s, g).
    pub seed: u64,
}

impl Trainer {
    pub fn new(cfg: StepConfig, seed: u64) -> Self {
        Self { opt: AdamW::new(cfg.adamw), cfg, step: 0, seed }
    }

    pub fn step(
        &mut self,
        lm: &LanguageModel,
        batch: &[TrainPrompt],
        rewarder: &dyn Rewarder,
        cancel: &AtomicBool,
    ) -> Result<(StepStats, Vec<ScoredRollout>)> {
        if lm.model.trainable().is_empty() {
            bail!("the model has no trainable parameters");
        }
        let step = self.step + 1;
        let hri_weight = if self.cfg.hri { self.cfg.hri_schedule.weight(step) } else { 0.0 };

        // 1. groups
        let started = Instant::now();
        let mut rows: Vec<(usize, Rollout)> = Vec::new();
        for (g, p) in batch.iter().enumerate() {
            let params = SamplingParams {
                seed: self.seed ^ ((step as u64) << 20) ^ g as u64,
                ..self.cfg.sampling.clone()
            };
            let reference = if self.cfg.hri { p.story.map(|s| (s, p.reasoning)) } else { None };
            let spec = GroupSpec {
                index: g,
                prompt: p.prompt,
                reference,
                size: self.cfg.group_size,
                thinking: self.cfg.thinking,
            };
            rows.extend(build_group(lm, &spec, &params, cancel)?.into_iter().map(|r| (g, r)));
        }
        let seconds_generate = started.elapsed().as_secs_f64();

        // 2. rewards
        let started = Instant::now();
        let candidates: Vec<Candidate> = rows.iter().map(|(g, r)| r.candidate(batch[*g].prompt)).collect();
        let breakdowns = rewarder.score(&candidates)?;
        let seconds_judge = started.elapsed().as_secs_f64();

        // 3. advantages, group by group
        let mut advantages = vec![0.0; rows.len()];
        let mut stats = StepStats { step, hri_weight, ..Default::default() };
        let (mut ref_rewards, mut ref_ranks, mut ref_wins, mut best) =
            (Vec::new(), Vec::new(), 0usize, Vec::new());
        for g in 0..batch.len() {
            let idx: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].0 == g).collect();
            let policy: Vec<usize> = idx.iter().copied().filter(|&i| !rows[i].1.is_reference).collect();
            let reference = idx.iter().copied().find(|&i| rows[i].1.is_reference);
            let pr: Vec<f64> = policy.iter().map(|&i| breakdowns[i].reward).collect();
            let adv = group_advantages(&pr, reference.map(|i| breakdowns[i].reward), self.cfg.scale_by_std);
            stats.zero_variance_groups += adv.zero_variance as usize;
            for (&i, a) in policy.iter().zip(&adv.policy) {
                advantages[i] = *a;
            }
            let top = pr.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            best.push(top);
            if let (Some(i), Some(a)) = (reference, adv.reference) {
                advantages[i] = a;
                let r = breakdowns[i].reward;
                ref_rewards.push(r);
                ref_ranks.push(1.0 + pr.iter().filter(|&&x| x > r).count() as f64);
                ref_wins += (r > top) as usize;
            }
        }

        // 4. one update on the clipped surrogate
        let started = Instant::now();
        let trained: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].1.response_ids.is_empty()).collect();
        let seqs: Vec<Vec<u32>> = trained
            .iter()
            .map(|&i| [rows[i].1.prompt_ids.as_slice(), &rows[i].1.response_ids].concat())
            .collect();
        let t = seqs.iter().map(Vec::len).max().unwrap_or(1) - 1;
        let device = lm.model.device().clone();
        let (mut inputs, mut targets) =
            (Vec::with_capacity(seqs.len() * t), Vec::with_capacity(seqs.len() * t));
        for s in &seqs {
            // right padding: causal attention keeps it out of the real positions
            let pad = t + 1 - s.len();
            inputs.extend(s[..s.len() - 1].iter().copied().chain(std::iter::repeat_n(0, pad)));
            targets.extend(s[1..].iter().copied().chain(std::iter::repeat_n(0, pad)));
        }
        let inputs = Tensor::from_vec(inputs, (seqs.len(), t), &device)?;
        let targets = Tensor::from_vec(targets, (seqs.len(), t), &device)?;
        // row r's response occupies target positions [prompt_len − 1, len − 1)
        let spans: Vec<(usize, usize)> =
            trained.iter().map(|&i| (rows[i].1.prompt_ids.len() - 1, rows[i].1.response_ids.len())).collect();
        let loss_out: RefCell<LossOutput> = RefCell::new(LossOutput::default());
        let cfg_loss: LossConfig = self.cfg.loss;
        let (_, mut grads) = logprobs_backward(&lm.model, &inputs, &targets, self.cfg.logprob_chunk, |lp| {
            let lp: Vec<Vec<f64>> = lp.to_dtype(candle_core::DType::F64)?.to_vec2()?;
            let current: Vec<Vec<f64>> =
                spans.iter().zip(&lp).map(|(&(s, n), row)| row[s..s + n].to_vec()).collect();
            let terms: Vec<RowTerms> = trained
                .iter()
                .zip(&current)
                .map(|(&i, cur)| RowTerms {
                    old_logprobs: cur,
                    ref_logprobs: None,
                    advantage: advantages[i],
                    weight: if rows[i].1.is_reference { hri_weight } else { 1.0 },
                })
                .collect();
            let out = grpo_loss(&cfg_loss, &terms, &current);
            let mut coeffs = vec![vec![0f64; t]; spans.len()];
            for ((row, &(s, _)), c) in coeffs.iter_mut().zip(&spans).zip(&out.coefficients) {
                row[s..s + c.len()].copy_from_slice(c);
            }
            *loss_out.borrow_mut() = out;
            Ok(Tensor::new(coeffs, &device)?)
        })?;
        let grad_norm = clip_grad_norm(&mut grads, self.cfg.max_grad_norm)?;
        let lr = self.cfg.lr.lr(step);
        self.opt.apply(lm.model.trainable(), &grads, lr)?;
        self.step = step;
        let seconds_train = started.elapsed().as_secs_f64();

        // 5. statistics and records
        let loss = loss_out.into_inner();
        let policy: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].1.is_reference).collect();
        let pr: Vec<f64> = policy.iter().map(|&i| breakdowns[i].reward).collect();
        let mean = |v: &[f64]| if v.is_empty() { None } else { Some(v.iter().sum::<f64>() / v.len() as f64) };
        let pm = mean(&pr).unwrap_or(0.0);
        let ratios: Vec<f64> = policy.iter().filter_map(|&i| breakdowns[i].length_ratio).collect();
        stats.policy_reward_mean = pm;
        stats.policy_reward_std =
            (pr.iter().map(|r| (r - pm).powi(2)).sum::<f64>() / pr.len().max(1) as f64).sqrt();
        stats.best_of_group_mean = mean(&best).unwrap_or(0.0);
        stats.reference_reward_mean = mean(&ref_rewards);
        stats.reference_rank_mean = mean(&ref_ranks);
        stats.reference_beats_all =
            (!ref_rewards.is_empty()).then(|| ref_wins as f64 / ref_rewards.len() as f64);
        stats.length_ratio_mean = mean(&ratios);
        stats.words_mean =
            mean(&policy.iter().map(|&i| breakdowns[i].words as f64).collect::<Vec<_>>()).unwrap_or(0.0);
        stats.loss = loss.loss;
        stats.clip_frac_low = loss.clip_frac_low;
        stats.clip_frac_high = loss.clip_frac_high;
        stats.kl = loss.kl;
        stats.grad_norm = grad_norm;
        stats.lr = lr;
        stats.judge_failures = breakdowns.iter().filter(|b| b.judge_failure.is_some()).count();
        stats.judge_cost = breakdowns.iter().map(|b| b.judge_usage.cost).sum();
        stats.tokens = loss.tokens;
        stats.seconds_generate = seconds_generate;
        stats.seconds_judge = seconds_judge;
        stats.seconds_train = seconds_train;
        let scored = rows
            .into_iter()
            .zip(breakdowns)
            .zip(advantages)
            .map(|(((g, rollout), breakdown), advantage)| ScoredRollout {
                step,
                prompt: batch[g].prompt.to_string(),
                reward: breakdown.reward,
                rollout,
                advantage,
                breakdown,
            })
            .collect();
        Ok((stats, scored))
    }
}

impl<'a> From<&'a super::data::Example> for TrainPrompt<'a> {
    fn from(e: &'a super::data::Example) -> Self {
        Self { prompt: &e.prompt, story: e.story.as_deref(), reasoning: e.reasoning.as_deref() }
    }
}
