//! One GRPO + HRI step: sample each prompt's group, add the teacher-forced human reference,
//! score every row, compute group advantages, and take one optimizer step on the clipped
//! surrogate (one update epoch: old log-probs are the current ones, ratio 1). The trainer
//! knows nothing of who watches: it returns statistics and scored rollouts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

use super::advantage::{clip_score, group_advantages, ReferenceAdvantage, DEFAULT_REFERENCE_CAP};
use super::batch::{micro_batches, pack, response_rows, row_tokens, spread, Packed};
use super::bc::BcConfig;
use super::group::{build_group, GroupSpec, Rollout};
pub use super::halt::{NonFinite, StepCancelled};
pub use super::layer_checkpointing::LayerCheckpointing;
use super::loss::{grpo_loss_part, BatchTotals, LossConfig, LossOutput, RowTerms};
use super::optim::{clip_grad_norm, AdamW, AdamWConfig, GradSum, Grads};
use super::schedule::{HriSchedule, LrSchedule};
use super::signals::RowSignals;
use super::workers::{Replica, Workers};
use super::zero;
use crate::generate::SamplingParams;
use crate::model::logprobs::{backward_packed, logprobs_packed, BackwardOptions, DEFAULT_CHUNK};
use crate::reward::breakdown::{Breakdown, Candidate, Weights};
use crate::reward::judge::failure_gate;
use crate::reward::rows::{score_rows, RowRules};
use crate::reward::score::ScoreMode;
use crate::reward::JudgeClient;
use crate::run::rollout::{RolloutKind, ScoredRollout};
use crate::run::stats::StepStats;

/// Scores a batch of candidate stories. Shared by every worker of a step (one judge client,
/// one concurrency limit).
pub trait Rewarder: Sync {
    fn score(&self, candidates: &[Candidate]) -> Result<Vec<Breakdown>>;
    /// A step with a larger share of failed judgements fails (judge.max_failure_rate).
    fn max_failure_rate(&self) -> f64 {
        1.0
    }
    /// Things a person should hear about the reward source, each once (taken).
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The reward stack: a judge client (offline or remote) and the run's reward rules (weights,
/// score mode, reference and disqualification options).
pub struct StackRewarder {
    pub client: Arc<JudgeClient>,
    pub rules: RowRules,
    runtime: tokio::runtime::Runtime,
}

impl StackRewarder {
    /// The composite with `weights` and no options.
    pub fn new(client: JudgeClient, weights: Weights) -> Result<Self> {
        Self::with_rules(client, RowRules::composite(weights))
    }

    pub fn with_rules(client: JudgeClient, rules: RowRules) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        Ok(Self { client: Arc::new(client), rules, runtime })
    }
}

impl Rewarder for StackRewarder {
    fn score(&self, candidates: &[Candidate]) -> Result<Vec<Breakdown>> {
        Ok(self.runtime.block_on(score_rows(&self.client, candidates, &self.rules)))
    }
    fn max_failure_rate(&self) -> f64 {
        self.client.settings.max_failure_rate
    }
    fn notices(&self) -> Vec<String> {
        self.client.take_notices()
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
    /// Each row's score is clipped to ±this before the group statistics (the fork's
    /// grpo_score_clip); 0: off.
    pub score_clip: f64,
    /// Behaviour cloning on the human reference (off by default).
    pub bc: BcConfig,
    /// `capped` (default): the reference row's advantage bounded to ±reference_advantage_cap;
    /// `release`: unbounded, as the release computes it (advantage.rs).
    pub reference_advantage: ReferenceAdvantage,
    pub reference_advantage_cap: f64,
    pub loss: LossConfig,
    pub sampling: SamplingParams,
    pub thinking: bool,
    pub max_grad_norm: f64,
    pub lr: LrSchedule,
    pub adamw: AdamWConfig,
    pub logprob_chunk: usize,
    /// Optimizer updates per step on the same rollouts (PPO epochs); later epochs use the
    /// stored log-probs of the sampling policy as the old ones.
    pub ppo_epochs: usize,
    /// Rows per forward/backward pass at most; gradients accumulate over a step's
    /// micro-batches (0: no limit on rows, only `micro_batch_tokens`).
    pub micro_batch_rows: usize,
    /// Prompt + response tokens per forward/backward pass: a worker's rows are packed into
    /// micro-batches filled up to this budget, concatenated without padding (a row longer
    /// than the budget is a micro-batch of its own). 0: no token limit.
    pub micro_batch_tokens: usize,
    /// Per-layer activation checkpointing: recompute each layer in backward so long
    /// sequences fit (about a third more compute). true, false or "auto" (the memory plan
    /// decides: see layer_checkpointing.rs).
    pub checkpoint_layers: LayerCheckpointing,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self {
            group_size: 6,
            hri: true,
            hri_schedule: HriSchedule::default(),
            scale_by_std: true,
            score_clip: 0.0,
            bc: BcConfig::default(),
            reference_advantage: ReferenceAdvantage::Capped,
            reference_advantage_cap: DEFAULT_REFERENCE_CAP,
            loss: LossConfig::default(),
            sampling: SamplingParams::training(),
            thinking: true,
            max_grad_norm: 1.0,
            lr: LrSchedule::default(),
            adamw: AdamWConfig::default(),
            logprob_chunk: DEFAULT_CHUNK,
            ppo_epochs: 1,
            micro_batch_rows: 0,
            micro_batch_tokens: 16384,
            checkpoint_layers: LayerCheckpointing::Auto,
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

pub struct Trainer {
    pub cfg: StepConfig,
    pub opt: AdamW,
    /// Steps taken so far.
    pub step: usize,
    /// Seeds rollouts: step s, group g sample with seed ^ (s, g).
    pub seed: u64,
    /// The workers' devices, by worker (names and peaks for MFU); empty: CPU workers.
    pub devices: Vec<super::throughput::DeviceInfo>,
}

/// A row of the step: which group and worker it belongs to.
struct Row {
    group: usize,
    worker: usize,
    rollout: Rollout,
    breakdown: Breakdown,
}

/// What one worker's share of a pass over the rows gave.
#[derive(Default)]
struct WorkerPass {
    /// Summed as each micro-batch ends: one gradient set per worker at a time, not one per
    /// micro-batch (the memory plan counts one running sum).
    grads: GradSum,
    loss: Vec<LossOutput>,
    /// (row, response log-probs) under the weights of this pass
    logprobs: Vec<(usize, Vec<f64>)>,
    /// (row, response log-probs) under the frozen reference policy
    reference: Vec<(usize, Vec<f64>)>,
    /// Σ entropy and count over policy response tokens
    entropy: (f64, usize),
}

impl Trainer {
    pub fn new(cfg: StepConfig, seed: u64) -> Self {
        Self { opt: AdamW::new(cfg.adamw), cfg, step: 0, seed, devices: Vec::new() }
    }

    pub fn step(
        &mut self,
        workers: &Workers,
        batch: &[TrainPrompt],
        rewarder: &dyn Rewarder,
        cancel: &AtomicBool,
    ) -> Result<(StepStats, Vec<ScoredRollout>)> {
        if workers.is_empty() || workers.primary().model.trainable().is_empty() {
            bail!("the model has no trainable parameters");
        }
        if self.cfg.loss.kl_coef != 0.0 && workers.replicas.iter().any(|r| r.reference.is_none()) {
            bail!("step.loss.kl_coef is {} but no frozen reference policy was loaded", self.cfg.loss.kl_coef);
        }
        let step = self.step + 1;
        crate::run::work::generating(step);
        let hri_weight = if self.cfg.hri { self.cfg.hri_schedule.weight(step) } else { 0.0 };
        let bc_coef = self.cfg.bc.coef(step);

        // 1. each worker samples its groups (with the human reference row) and scores them;
        // one worker's judging overlaps another's sampling
        let started = Instant::now();
        let this: &Trainer = self;
        let shares = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers.len())
                .map(|w| {
                    s.spawn(move || this.sample_and_score(workers, w, step, bc_coef, batch, rewarder, cancel))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a worker panicked"))))
                .collect::<Vec<_>>()
        });
        let mut rows: Vec<Row> = Vec::new();
        let mut seconds_generate = 0f64;
        let mut worker_generate = vec![0f64; workers.len()];
        for (w, share) in shares.into_iter().enumerate() {
            let (share_rows, generate) = share?;
            seconds_generate = seconds_generate.max(generate);
            worker_generate[w] = generate;
            rows.extend(share_rows);
        }
        rows.sort_by_key(|r| r.group); // stable: a group's rows stay in order
        let seconds_judge = (started.elapsed().as_secs_f64() - seconds_generate).max(0.0);
        // rewards that are mostly the judge's fallback are not trained on: the run fails here
        let failures: Vec<&str> = rows.iter().filter_map(|r| r.breakdown.judge_failure.as_deref()).collect();
        failure_gate(&failures, rows.len(), rewarder.max_failure_rate())
            .map_err(|e| anyhow!("step {step}: {e}"))?;

        // 2. advantages, group by group, from each row's score
        let scores: Vec<f64> =
            rows.iter().map(|r| clip_score(r.breakdown.score(), self.cfg.score_clip)).collect();
        let mut advantages = vec![0.0; rows.len()];
        let score_mode = rows.first().map_or(ScoreMode::Composite, |r| r.breakdown.score_mode);
        let mut stats = StepStats { step, hri_weight, bc_coef, score_mode, ..Default::default() };
        let (mut ref_rewards, mut ref_ranks, mut ref_wins, mut best) =
            (Vec::new(), Vec::new(), 0usize, Vec::new());
        for g in 0..batch.len() {
            let idx: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].group == g).collect();
            let policy: Vec<usize> = idx.iter().copied().filter(|&i| !rows[i].rollout.is_reference).collect();
            let reference = idx.iter().copied().find(|&i| rows[i].rollout.is_reference);
            let pr: Vec<f64> = policy.iter().map(|&i| scores[i]).collect();
            let mut adv = group_advantages(&pr, reference.map(|i| scores[i]), self.cfg.scale_by_std);
            stats.zero_variance_groups += adv.zero_variance as usize;
            stats.reference_advantage_capped +=
                adv.bound_reference(self.cfg.reference_advantage, self.cfg.reference_advantage_cap) as usize;
            for (&i, a) in policy.iter().zip(&adv.policy) {
                advantages[i] = *a;
            }
            let top = pr.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            best.push(top);
            if let (Some(i), Some(a)) = (reference, adv.reference) {
                // a reference there only for behaviour cloning takes no part in GRPO
                advantages[i] = if self.cfg.hri { a } else { 0.0 };
                let r = scores[i];
                ref_rewards.push(r);
                ref_ranks.push(1.0 + pr.iter().filter(|&&x| x > r).count() as f64);
                ref_wins += (r > top) as usize;
            }
        }

        // 3. ppo_epochs updates on the clipped surrogate; the first pass's log-probs are the
        // old ones (the policy that sampled), so its ratios are exactly 1
        let started = Instant::now();
        let trained: Vec<usize> =
            (0..rows.len()).filter(|&i| !rows[i].rollout.response_ids.is_empty()).collect();
        let totals = BatchTotals {
            rows: trained.len(),
            tokens: trained.iter().map(|&i| rows[i].rollout.response_ids.len()).sum(),
            reference_tokens: trained
                .iter()
                .filter(|&&i| rows[i].rollout.is_reference)
                .map(|&i| rows[i].rollout.response_ids.len())
                .sum(),
        };
        let mut old: Vec<Option<Vec<f64>>> = vec![None; rows.len()];
        let mut refs: Vec<Option<Vec<f64>>> = vec![None; rows.len()];
        let (mut losses, mut grad_norms, mut entropy) = (Vec::new(), Vec::new(), (0f64, 0usize));
        let lr = self.cfg.lr.lr(step);
        for epoch in 0..self.cfg.ppo_epochs.max(1) {
            let ctx = PassContext {
                cfg: &self.cfg,
                rows: &rows,
                trained: &trained,
                advantages: &advantages,
                hri_weight,
                bc_coef,
                totals,
                old: (epoch > 0).then_some(&old),
                refs: &refs,
            };
            let passes = std::thread::scope(|s| {
                let handles: Vec<_> =
                    (0..workers.len()).map(|w| s.spawn(move || ctx.run(&workers.replicas[w], w))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a worker panicked"))))
                    .collect::<Vec<_>>()
            });
            let mut per_worker = Vec::new();
            let mut parts = Vec::new();
            for pass in passes {
                let pass = pass?;
                per_worker.push(pass.grads.take());
                parts.extend(pass.loss);
                if epoch == 0 {
                    for (i, lp) in pass.logprobs {
                        old[i] = Some(lp);
                    }
                    for (i, lp) in pass.reference {
                        refs[i] = Some(lp);
                    }
                    entropy.0 += pass.entropy.0;
                    entropy.1 += pass.entropy.1;
                }
            }
            let loss = LossOutput::merge(&parts);
            let non_finite = |what: String| anyhow::Error::new(NonFinite { step, what });
            if !loss.loss.is_finite() {
                return Err(non_finite(format!("the loss is {}", loss.loss)));
            }
            let norm = self.update(workers, per_worker, lr)?;
            if !norm.is_finite() {
                return Err(non_finite(format!("the gradient norm is {norm}")));
            }
            let trainable = workers.primary().model.trainable();
            let weights = trainable.iter().map(|(n, v)| (n.as_str(), v.as_tensor()));
            if let Some(name) = crate::model::finite::first_non_finite(weights)? {
                return Err(non_finite(format!(
                    "weight {name} is NaN or infinite after the update (lr {lr})"
                )));
            }
            grad_norms.push(norm);
            losses.push(loss);
        }
        self.step = step;
        let seconds_train = started.elapsed().as_secs_f64();

        // 4. statistics and records
        let policy: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].rollout.is_reference).collect();
        let pr: Vec<f64> = policy.iter().map(|&i| scores[i]).collect();
        let mean = |v: &[f64]| if v.is_empty() { None } else { Some(v.iter().sum::<f64>() / v.len() as f64) };
        let pm = mean(&pr).unwrap_or(0.0);
        let ratios: Vec<f64> = policy.iter().filter_map(|&i| rows[i].breakdown.length_ratio).collect();
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
            mean(&policy.iter().map(|&i| rows[i].breakdown.words as f64).collect::<Vec<_>>()).unwrap_or(0.0);
        // over the update epochs
        stats.loss = mean(&losses.iter().map(|l| l.loss).collect::<Vec<_>>()).unwrap_or(0.0);
        stats.clip_frac_low =
            mean(&losses.iter().map(|l| l.clip_frac_low).collect::<Vec<_>>()).unwrap_or(0.0);
        stats.clip_frac_high =
            mean(&losses.iter().map(|l| l.clip_frac_high).collect::<Vec<_>>()).unwrap_or(0.0);
        stats.kl = mean(&losses.iter().map(|l| l.kl).collect::<Vec<_>>()).unwrap_or(0.0);
        // the first epoch's: the log-likelihood of the references under the sampling weights
        stats.bc_nll = losses.first().and_then(|l| l.bc_nll);
        stats.grad_norm = mean(&grad_norms).unwrap_or(0.0);
        stats.entropy = entropy.0 / entropy.1.max(1) as f64;
        stats.lr = lr;
        stats.judge_failures = rows.iter().filter(|r| r.breakdown.judge_failure.is_some()).count();
        stats.judge_cost = rows.iter().map(|r| r.breakdown.judge_usage.cost).sum();
        stats.tokens = totals.tokens;
        let cut = rows.iter().filter(|r| r.rollout.is_reference && r.rollout.cut_tokens > 0);
        (stats.reference_rows_cut, stats.reference_tokens_cut) =
            cut.fold((0, 0), |(n, t), r| (n + 1, t + r.rollout.cut_tokens));
        let sampled: usize = policy.iter().map(|&i| rows[i].rollout.response_ids.len()).sum();
        let forwarded: usize = trained
            .iter()
            .map(|&i| rows[i].rollout.prompt_ids.len() + rows[i].rollout.response_ids.len())
            .sum::<usize>()
            * self.cfg.ppo_epochs.max(1);
        stats.generate_tokens_per_second = sampled as f64 / seconds_generate.max(1e-9);
        stats.train_tokens_per_second = forwarded as f64 / seconds_train.max(1e-9);
        stats.workers = workers.len();
        stats.seconds_generate = seconds_generate;
        stats.seconds_judge = seconds_judge;
        stats.seconds_train = seconds_train;
        stats.devices = self.throughput(workers, &rows, &trained, &worker_generate, seconds_train);
        stats.groups = batch.len();
        let signals = RowSignals::of(policy.iter().map(|&i| &rows[i].breakdown));
        stats.components = signals.components;
        stats.dimensions = signals.dimensions;
        stats.judge_latency_p50 = signals.judge_latency_p50;
        stats.judge_latency_p95 = signals.judge_latency_p95;
        stats.length_in_band = signals.length_in_band;
        let scored = rows
            .into_iter()
            .zip(advantages)
            .zip(scores)
            .map(|((row, advantage), score)| ScoredRollout {
                step,
                kind: RolloutKind::Train,
                prompt: batch[row.group].prompt.to_string(),
                reward: score,
                rollout: row.rollout,
                advantage,
                breakdown: row.breakdown,
            })
            .collect();
        Ok((stats, scored))
    }

    /// Each worker's tokens/s and MFU this step (`train::throughput`): the training phase is
    /// one wall time for every worker (they step together), sampling is each worker's own.
    fn throughput(
        &self,
        workers: &Workers,
        rows: &[Row],
        trained: &[usize],
        worker_generate: &[f64],
        seconds_train: f64,
    ) -> Vec<super::throughput::DeviceThroughput> {
        let model = &workers.primary().model;
        let total = model.parameter_count().max(1) as f64;
        let trainable: usize = model.trainable().iter().map(|(_, v)| v.as_tensor().elem_count()).sum();
        let flops = super::throughput::TrainingFlops::new(model.config(), trainable as f64 / total);
        let epochs = self.cfg.ppo_epochs.max(1);
        (0..workers.len())
            .map(|w| {
                let info = self.devices.get(w).cloned().unwrap_or_else(|| super::throughput::DeviceInfo {
                    device: if workers.len() == 1 { "cpu".into() } else { format!("cpu:{w}") },
                    ..Default::default()
                });
                let mine = trained.iter().map(|&i| &rows[i]).filter(|r| r.worker == w);
                let lengths: Vec<usize> =
                    mine.map(|r| r.rollout.prompt_ids.len() + r.rollout.response_ids.len()).collect();
                let tokens = (lengths.iter().sum::<usize>() * epochs) as f64;
                let model_flops: f64 = lengths.iter().map(|&t| flops.row(t)).sum::<f64>() * epochs as f64;
                let sampled: usize = rows
                    .iter()
                    .filter(|r| r.worker == w && !r.rollout.is_reference)
                    .map(|r| r.rollout.response_ids.len())
                    .sum();
                let seconds = seconds_train.max(1e-9);
                super::throughput::DeviceThroughput {
                    device: info.device,
                    name: info.name,
                    train_tokens_per_second: tokens / seconds,
                    generate_tokens_per_second: sampled as f64
                        / worker_generate.get(w).copied().unwrap_or(0.0).max(1e-9),
                    mfu: info.peak_flops.map(|p| model_flops / seconds / p),
                }
            })
            .collect()
    }

    /// One optimizer update of every replica from each worker's gradients (clipped by
    /// their global norm): AdamW on the one replica, ZeRO-1 across several (`train::zero`).
    /// Returns the norm before clipping; when it is not finite nothing was updated.
    fn update(&mut self, workers: &Workers, mut per_worker: Vec<Grads>, lr: f64) -> Result<f64> {
        // the passes' freed heap goes back before the optimizer maps its tensors (host_memory.rs)
        super::host_memory::return_freed();
        if workers.len() > 1 {
            return zero::step(&mut self.opt, workers, per_worker, lr, self.cfg.max_grad_norm);
        }
        let mut grads = per_worker.pop().unwrap_or_default();
        let norm = clip_grad_norm(&mut grads, self.cfg.max_grad_norm)?;
        if norm.is_finite() {
            self.opt.apply(workers.primary().model.trainable(), &grads, lr)?;
        }
        Ok(norm)
    }

    /// Worker `w`'s groups of the step, sampled and scored; returns its rows and its seconds
    /// of sampling. A group gets its reference row for HRI, or for behaviour cloning alone
    /// (`bc_coef` > 0).
    #[allow(clippy::too_many_arguments)]
    fn sample_and_score(
        &self,
        workers: &Workers,
        w: usize,
        step: usize,
        bc_coef: f64,
        batch: &[TrainPrompt],
        rewarder: &dyn Rewarder,
        cancel: &AtomicBool,
    ) -> Result<(Vec<Row>, f64)> {
        let lm = &workers.replicas[w].lm;
        let started = Instant::now();
        let mut rows: Vec<(usize, Rollout)> = Vec::new();
        for (g, p) in batch.iter().enumerate().filter(|(g, _)| workers.owner(*g) == w) {
            // seeded by (step, group): the same rows whatever the number of workers
            let params = SamplingParams {
                seed: self.seed ^ ((step as u64) << 20) ^ g as u64,
                ..self.cfg.sampling.clone()
            };
            let with_reference = self.cfg.hri || bc_coef > 0.0;
            let reference = if with_reference { p.story.map(|s| (s, p.reasoning)) } else { None };
            let spec = GroupSpec {
                index: g,
                prompt: p.prompt,
                reference,
                size: self.cfg.group_size,
                thinking: self.cfg.thinking,
            };
            rows.extend(build_group(lm, &spec, &params, cancel)?.into_iter().map(|r| (g, r)));
        }
        let generate = started.elapsed().as_secs_f64();
        if cancel.load(Ordering::Relaxed) {
            // sampling was cut short: no row of this step may be judged or trained on
            return Err(StepCancelled { step }.into());
        }
        let candidates: Vec<Candidate> =
            rows.iter().map(|(g, r)| r.candidate(batch[*g].prompt, batch[*g].story)).collect();
        let breakdowns = if candidates.is_empty() { Vec::new() } else { rewarder.score(&candidates)? };
        if breakdowns.len() != rows.len() {
            bail!("the rewarder returned {} scores for {} rows", breakdowns.len(), rows.len());
        }
        let rows = rows
            .into_iter()
            .zip(breakdowns)
            .map(|((group, rollout), breakdown)| Row { group, worker: w, rollout, breakdown })
            .collect();
        Ok((rows, generate))
    }
}

/// Everything a worker needs for one pass over its rows.
#[derive(Clone, Copy)]
struct PassContext<'a> {
    cfg: &'a StepConfig,
    rows: &'a [Row],
    trained: &'a [usize],
    advantages: &'a [f64],
    hri_weight: f64,
    bc_coef: f64,
    totals: BatchTotals,
    /// None on the first pass (old log-probs = these weights' log-probs)
    old: Option<&'a Vec<Option<Vec<f64>>>>,
    refs: &'a [Option<Vec<f64>>],
}

impl PassContext<'_> {
    /// Gradients of worker `w`'s rows, micro-batch by micro-batch.
    fn run(&self, replica: &Replica, w: usize) -> Result<WorkerPass> {
        let mine: Vec<usize> = self.trained.iter().copied().filter(|&i| self.rows[i].worker == w).collect();
        let lengths: Vec<usize> = mine
            .iter()
            .map(|&i| {
                row_tokens(self.rows[i].rollout.prompt_ids.len(), self.rows[i].rollout.response_ids.len())
            })
            .collect();
        let mut out = WorkerPass::default();
        let model = &replica.lm.model;
        let device = model.device().clone();
        for members in micro_batches(&lengths, self.cfg.micro_batch_tokens, self.cfg.micro_batch_rows) {
            let micro: Vec<usize> = members.iter().map(|&m| mine[m]).collect();
            let seqs: Vec<(&[u32], &[u32])> = micro
                .iter()
                .map(|&i| {
                    (self.rows[i].rollout.prompt_ids.as_slice(), self.rows[i].rollout.response_ids.as_slice())
                })
                .collect();
            let lengths: Vec<usize> = seqs.iter().map(|(p, r)| p.len() + r.len()).collect();
            crate::run::work::training(w, &lengths);
            let Packed { inputs, targets, cu_seqlens, spans } = pack(&seqs, &device)?;
            let want_ref = self.cfg.loss.kl_coef != 0.0;
            // the frozen reference's log-probs, once (first pass)
            let mut ref_rows: Vec<Vec<f64>> = Vec::new();
            if want_ref {
                if let Some(stored) = micro.iter().map(|&i| self.refs[i].clone()).collect::<Option<Vec<_>>>()
                {
                    ref_rows = stored;
                } else {
                    let reference = replica.reference.as_ref().expect("checked in step");
                    let lp =
                        logprobs_packed(reference, &inputs, &targets, &cu_seqlens, self.cfg.logprob_chunk)?;
                    ref_rows = response_rows(&lp, &spans)?;
                    out.reference.extend(micro.iter().copied().zip(ref_rows.iter().cloned()));
                }
            }
            let mut current_rows: Vec<Vec<f64>> = Vec::new();
            let mut loss = LossOutput::default();
            let n = inputs.dim(0)?;
            let opts = BackwardOptions {
                chunk: self.cfg.logprob_chunk,
                entropy: self.old.is_none(),
                checkpoint_layers: self.cfg.checkpoint_layers.fixed().unwrap_or_else(|| {
                    super::layer_checkpointing::wants_checkpointing(
                        model.config(),
                        model.dtype(),
                        inputs.elem_count() as u64,
                    )
                }),
            };
            let pass = backward_packed(model, &inputs, &targets, &cu_seqlens, opts, |lp| {
                current_rows = response_rows(lp, &spans)?;
                let terms: Vec<RowTerms> = micro
                    .iter()
                    .zip(&current_rows)
                    .enumerate()
                    .map(|(k, (&i, cur))| RowTerms {
                        old_logprobs: match self.old {
                            Some(old) => old[i].as_deref().expect("stored on the first pass"),
                            None => cur,
                        },
                        ref_logprobs: want_ref.then(|| ref_rows[k].as_slice()),
                        advantage: self.advantages[i],
                        weight: if self.rows[i].rollout.is_reference { self.hri_weight } else { 1.0 },
                        reference: self.rows[i].rollout.is_reference,
                        bc_coef: if self.rows[i].rollout.is_reference { self.bc_coef } else { 0.0 },
                    })
                    .collect();
                loss = grpo_loss_part(&self.cfg.loss, &terms, &current_rows, self.totals);
                let coeffs = spread(&loss.coefficients, &spans, n, &device)?;
                loss.coefficients = Vec::new();
                Ok(coeffs)
            })?;
            if let Some(ent) = &pass.entropy {
                for (k, row) in response_rows(ent, &spans)?.iter().enumerate() {
                    if !self.rows[micro[k]].rollout.is_reference {
                        out.entropy.0 += row.iter().sum::<f64>();
                        out.entropy.1 += row.len();
                    }
                }
            }
            if self.old.is_none() {
                out.logprobs.extend(micro.iter().copied().zip(current_rows));
            }
            out.grads.add(pass.grads)?;
            out.loss.push(loss);
        }
        Ok(out)
    }
}

impl<'a> From<&'a super::data::Example> for TrainPrompt<'a> {
    fn from(e: &'a super::data::Example) -> Self {
        Self { prompt: &e.prompt, story: e.story.as_deref(), reasoning: e.reasoning.as_deref() }
    }
}
