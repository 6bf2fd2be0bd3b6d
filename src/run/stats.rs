//! What one step of a run measured, as its event log records it: a GRPO step (`step`
//! events), a validation pass (`val`) and a step of the supervised warm start (`sft`). The
//! trainer fills them in; the log, `runs`, `report`, the alerts and the TUI read them.
//! Fields added after the first release load as absent (`serde(default)`) from older logs.

use serde::{Deserialize, Serialize};

use crate::reward::breakdown::Breakdown;
use crate::reward::score::ScoreMode;
use crate::train::throughput::DeviceThroughput;

/// What a step did (the per-step event of the run log).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Mean entropy (nats) of the policy's next-token distribution over policy response
    /// tokens, under the sampling weights.
    pub entropy: f64,
    /// Global grad norm before clipping (mean over the update epochs).
    pub grad_norm: f64,
    pub lr: f64,
    pub hri_weight: f64,
    /// How rows were scored (`reward.score`): the reward statistics above are of the scores.
    /// Absent in older logs: composite.
    #[serde(default)]
    pub score_mode: ScoreMode,
    /// The behaviour-cloning coefficient this step, and the reference rows' mean negative
    /// log-likelihood per token (nats) when it is on.
    #[serde(default)]
    pub bc_coef: f64,
    #[serde(default)]
    pub bc_nll: Option<f64>,
    pub zero_variance_groups: usize,
    /// Groups whose reference row's |advantage| was above `step.reference_advantage_cap`
    /// (bounded to it, unless `step.reference_advantage = "release"`). Absent in older logs: 0.
    #[serde(default)]
    pub reference_advantage_capped: usize,
    pub judge_failures: usize,
    pub judge_cost: f64,
    /// Response tokens trained on (all rows).
    pub tokens: usize,
    /// Reference rows cut to the response budget (`sampling.max_new_tokens`) this step, and
    /// the response tokens they lost (end tokens included). Absent in older logs: 0.
    #[serde(default)]
    pub reference_rows_cut: usize,
    #[serde(default)]
    pub reference_tokens_cut: usize,
    /// Policy response tokens sampled per second of generation.
    pub generate_tokens_per_second: f64,
    /// Prompt + response tokens through forward and backward per second of training.
    pub train_tokens_per_second: f64,
    pub workers: usize,
    /// Wall seconds of the step's phases: sampling (the slowest worker), judging not hidden
    /// behind sampling, and the updates.
    pub seconds_generate: f64,
    pub seconds_judge: f64,
    pub seconds_train: f64,
    /// Per worker's device: tokens/s and model FLOPs utilisation (`train::throughput`).
    /// Absent in older logs: empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceThroughput>,
    /// Groups in the step (`zero_variance_groups` counts among them). Absent in older logs: 0.
    #[serde(default)]
    pub groups: usize,
    /// The policy rows' mean composite terms, unweighted. Absent in older logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<ComponentMeans>,
    /// Each rubric dimension's mean score over the judged policy rows, in the rubric's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<DimensionMean>,
    /// Seconds per judge call (cache hits left out), median and 95th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_latency_p50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_latency_p95: Option<f64>,
    /// Share of policy rows whose words lie in the recipe's band around their length target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_in_band: Option<f64>,
}

/// Means over a step's policy rows of the composite's terms, unweighted (RECIPE.md):
/// composite = w_sq·SQ − w_rep·repetition − w_len·length − w_blank·blank + overlong.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComponentMeans {
    /// Normalised Story Quality (the batch mean stands in for a failed judgement).
    pub story_quality: f64,
    /// Self-repetition penalty, 0..1.
    pub repetition: f64,
    /// Length penalty, 0..1 (0 inside the band).
    pub length: f64,
    /// Blank penalty, 0 or 1.
    pub blank: f64,
    /// DAPO's overlong penalty, ≤ 0.
    pub overlong: f64,
}

/// One rubric dimension's mean score over the policy rows the judge scored, in the rubric's
/// points (0..=max).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionMean {
    pub key: String,
    pub mean: f64,
    pub max: i64,
}

/// One validation pass (the `val` event of the run log). Means are over the prompts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ValStats {
    /// Optimizer steps done when it ran (0: before training).
    pub step: usize,
    pub prompts: usize,
    pub reward_mean: f64,
    pub reward_std: f64,
    pub story_quality_mean: f64,
    pub self_repetition_mean: f64,
    pub length_penalty_mean: f64,
    /// Share of samples with the blank penalty.
    pub blank_rate: f64,
    pub length_ratio_mean: Option<f64>,
    pub words_mean: f64,
    pub judge_failures: usize,
    pub judge_cost: f64,
    /// Response tokens sampled.
    pub tokens: usize,
    pub seconds_generate: f64,
    pub seconds_judge: f64,
}

impl ValStats {
    pub fn of(step: usize, rows: &[Breakdown], tokens: usize) -> Self {
        let n = rows.len().max(1) as f64;
        let mean = |f: &dyn Fn(&Breakdown) -> f64| rows.iter().map(f).sum::<f64>() / n;
        let reward_mean = mean(&|b| b.reward);
        let ratios: Vec<f64> = rows.iter().filter_map(|b| b.length_ratio).collect();
        Self {
            step,
            prompts: rows.len(),
            reward_mean,
            reward_std: mean(&|b| (b.reward - reward_mean).powi(2)).sqrt(),
            story_quality_mean: mean(&|b| b.story_quality),
            self_repetition_mean: mean(&|b| b.self_repetition),
            length_penalty_mean: mean(&|b| b.length_penalty),
            blank_rate: mean(&|b| b.blank_penalty),
            length_ratio_mean: (!ratios.is_empty()).then(|| ratios.iter().sum::<f64>() / ratios.len() as f64),
            words_mean: mean(&|b| b.words as f64),
            judge_failures: rows.iter().filter(|b| b.judge_failure.is_some()).count(),
            judge_cost: rows.iter().map(|b| b.judge_usage.cost).sum(),
            tokens,
            ..Default::default()
        }
    }
}

/// One optimizer step of the pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SftStep {
    pub epoch: usize,
    /// 1-based, over the whole pass.
    pub step: usize,
    pub steps: usize,
    /// Mean NLL per response token (nats) of the step's examples, before the update.
    pub loss: f64,
    pub grad_norm: f64,
    pub tokens: usize,
    pub seconds: f64,
}
