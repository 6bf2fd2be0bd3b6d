//! Group-relative advantages with human-reference injection (RECIPE.md): a group's mean and
//! std come from its policy rows only; every row, the reference included, gets
//! A = (r − mean) / (std + 1e-6). One policy row: mean 0, std 1. Optionally no std scaling
//! (Dr. GRPO): A = r − mean.

use serde::{Deserialize, Serialize};

pub const EPS: f64 = 1e-6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupAdvantages {
    /// One per policy row, in order.
    pub policy: Vec<f64>,
    /// The reference row's, when the group has one.
    pub reference: Option<f64>,
    pub mean: f64,
    /// Sample standard deviation (n − 1) of the policy rewards, as torch.std.
    pub std: f64,
    /// Every policy row scored the same: the policy rows carry no signal.
    pub zero_variance: bool,
}

/// Advantages of one group. `scale_by_std` false is Dr. GRPO's variant.
pub fn group_advantages(
    policy_rewards: &[f64],
    reference_reward: Option<f64>,
    scale_by_std: bool,
) -> GroupAdvantages {
    let n = policy_rewards.len();
    let (mean, std) = if n <= 1 {
        (0.0, 1.0)
    } else {
        let mean = policy_rewards.iter().sum::<f64>() / n as f64;
        let var = policy_rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (mean, var.sqrt())
    };
    let adv = |r: f64| if scale_by_std { (r - mean) / (std + EPS) } else { r - mean };
    GroupAdvantages {
        policy: policy_rewards.iter().map(|&r| adv(r)).collect(),
        reference: reference_reward.map(adv),
        mean,
        std,
        zero_variance: n > 1 && std == 0.0,
    }
}

/// A row's score clipped to ±clip before the group statistics (the fork's grpo_score_clip);
/// clip 0 leaves it as it is.
pub fn clip_score(score: f64, clip: f64) -> f64 {
    if clip > 0.0 {
        score.clamp(-clip, clip)
    } else {
        score
    }
}
