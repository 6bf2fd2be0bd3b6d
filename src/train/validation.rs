//! Validation during training (RECIPE.md, "Training loop details"): before the first step
//! and every `run.val_every` steps (and after the last), one sample per held-out prompt
//! (`data.val`) with the validation sampling, scored with the validation weights and no
//! overlong penalty. Nothing is trained on it: the rows are logged as their own kind of
//! step (`RolloutKind::Val`) and summed up in a `val` event.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

use super::group::{build_group, GroupSpec, Rollout};
use super::step::{Rewarder, TrainPrompt, Trainer};
use super::workers::Workers;
use crate::generate::SamplingParams;
use crate::reward::breakdown::{Candidate, Weights};
use crate::run::rollout::{RolloutKind, ScoredRollout};
use crate::run::stats::ValStats;

/// `[validation]`: how held-out prompts are sampled and scored. Defaults are the release's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// Validate before the first step too (verl's `val_before_train`).
    pub before_training: bool,
    /// Temperature 0.8, top_p 0.95, no top_k, repetition penalty 1.10.
    pub sampling: ValSampling,
    /// The composite's weights: SQ 1.0, repetition 0.8, length 0.2, blank 1.0, no overlong.
    pub weights: Weights,
    /// Judge requests in flight while validating (the release: 8).
    pub judge_concurrency: usize,
}

/// The sampling filters of validation; the budgets (`max_new_tokens`, `thinking_budget`) are
/// the training rollouts' (`step.sampling`), as in the release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValSampling {
    pub temperature: f32,
    pub top_p: f32,
    /// 0: no top-k.
    pub top_k: usize,
    pub min_p: f32,
    pub repetition_penalty: f32,
    pub presence_penalty: f32,
}

impl Default for ValSampling {
    fn default() -> Self {
        let s = SamplingParams::validation();
        Self {
            temperature: s.temperature,
            top_p: s.top_p,
            top_k: s.top_k,
            min_p: s.min_p,
            repetition_penalty: s.repetition_penalty,
            presence_penalty: s.presence_penalty,
        }
    }
}

impl ValSampling {
    /// These filters with the training rollouts' budgets.
    pub fn params(&self, training: &SamplingParams) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            presence_penalty: self.presence_penalty,
            ..training.clone()
        }
    }
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            before_training: true,
            sampling: ValSampling::default(),
            weights: Weights::validation(),
            judge_concurrency: 8,
        }
    }
}

impl ValidationConfig {
    pub fn validate(&self, training: &SamplingParams) -> Result<()> {
        self.sampling.params(training).validate().map_err(|e| anyhow!("validation.sampling: {e}"))?;
        if self.judge_concurrency == 0 {
            bail!("validation.judge_concurrency must be at least 1");
        }
        Ok(())
    }
}

/// Whether validation is due once `step` optimizer steps are done (of `total`): at 0 when
/// `before_training`; every `every` steps and after the last one when `every` > 0.
pub fn due(step: usize, total: usize, every: usize, before_training: bool) -> bool {
    if step == 0 {
        return before_training;
    }
    every > 0 && (step.is_multiple_of(every) || step == total)
}

/// Tags validation seeds apart from training ones (which are seed ^ step << 20 ^ group).
const VAL_SEED: u64 = 0x5641_4c00_0000_0000;

impl Trainer {
    /// Samples one response per prompt with the current weights and scores it; trains nothing.
    /// Prompt i is sampled by worker i mod workers, seeded by (seed, step, i), so a resumed
    /// run validates exactly as the first attempt would have. None when `cancel` cut the
    /// sampling short: those samples are not judged.
    pub fn validate(
        &self,
        workers: &Workers,
        prompts: &[TrainPrompt],
        cfg: &ValidationConfig,
        rewarder: &dyn Rewarder,
        cancel: &AtomicBool,
    ) -> Result<Option<(ValStats, Vec<ScoredRollout>)>> {
        let step = self.step;
        let started = Instant::now();
        let shares = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers.len())
                .map(|w| {
                    s.spawn(move || -> Result<Vec<(usize, Rollout)>> {
                        let lm = &workers.replicas[w].lm;
                        let mut rows = Vec::new();
                        for (i, p) in prompts.iter().enumerate().filter(|(i, _)| workers.owner(*i) == w) {
                            let params = SamplingParams {
                                seed: self.seed ^ VAL_SEED ^ ((step as u64) << 20) ^ i as u64,
                                ..cfg.sampling.params(&self.cfg.sampling)
                            };
                            let spec = GroupSpec {
                                index: i,
                                prompt: p.prompt,
                                reference: None,
                                size: 1,
                                thinking: self.cfg.thinking,
                            };
                            rows.extend(build_group(lm, &spec, &params, cancel)?.into_iter().map(|r| (i, r)));
                        }
                        Ok(rows)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a worker panicked"))))
                .collect::<Vec<_>>()
        });
        let mut rows: Vec<(usize, Rollout)> = Vec::new();
        for share in shares {
            rows.extend(share?);
        }
        rows.sort_by_key(|(i, _)| *i);
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(None);
        }
        let seconds_generate = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let candidates: Vec<Candidate> =
            rows.iter().map(|(i, r)| r.candidate(prompts[*i].prompt, prompts[*i].story)).collect();
        let breakdowns = if candidates.is_empty() { Vec::new() } else { rewarder.score(&candidates)? };
        if breakdowns.len() != rows.len() {
            bail!("the rewarder returned {} scores for {} validation samples", breakdowns.len(), rows.len());
        }
        let tokens = rows.iter().map(|(_, r)| r.response_ids.len()).sum();
        let mut stats = ValStats::of(step, &breakdowns, tokens);
        stats.seconds_generate = seconds_generate;
        stats.seconds_judge = started.elapsed().as_secs_f64();
        let scored = rows
            .into_iter()
            .zip(breakdowns)
            .map(|((i, rollout), breakdown)| ScoredRollout {
                step,
                kind: RolloutKind::Val,
                prompt: prompts[i].prompt.to_string(),
                reward: breakdown.reward,
                rollout,
                advantage: 0.0,
                breakdown,
            })
            .collect();
        Ok(Some((stats, scored)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_is_due_before_training_every_k_steps_and_at_the_end() {
        let at: Vec<usize> = (0..=50).filter(|&s| due(s, 50, 20, true)).collect();
        assert_eq!(at, vec![0, 20, 40, 50]);
        let at: Vec<usize> = (0..=50).filter(|&s| due(s, 50, 20, false)).collect();
        assert_eq!(at, vec![20, 40, 50]);
        // every = 0: only before training, if at all
        assert_eq!((0..=50).filter(|&s| due(s, 50, 0, true)).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn the_defaults_are_the_releases() {
        let c = ValidationConfig::default();
        // the filters are validation's, the budgets the training rollouts'
        let training = SamplingParams { max_new_tokens: 64, ..SamplingParams::training() };
        let s = c.sampling.params(&training);
        assert_eq!((s.temperature, s.top_p, s.top_k, s.repetition_penalty), (0.8, 0.95, 0, 1.1));
        assert_eq!((s.max_new_tokens, s.thinking_budget), (64, Some(3072)));
        let w = &c.weights;
        assert_eq!((w.story_quality, w.repetition, w.length, w.blank, w.overlong), (1.0, 0.8, 0.2, 1.0, 0.0));
        assert_eq!(c.judge_concurrency, 8);
        assert!(c.before_training);
    }
}
