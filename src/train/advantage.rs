//! Group-relative advantages with human-reference injection (RECIPE.md): a group's mean and
//! std come from its policy rows only; every row, the reference included, gets
//! A = (r − mean) / (std + 1e-6). One policy row: mean 0, std 1. Optionally no std scaling
//! (Dr. GRPO): A = r − mean.
//!
//! The reference row's advantage has no such bound: when the policy rows tie (a collapsed
//! policy, or a judge outage filling every row with the batch mean), std is 0 and the
//! reference gets (r − mean) / 1e-6, hundreds of thousands, which one step turns into a loss
//! and a gradient norm of 1e4..1e5. The release does exactly that (`ReferenceAdvantage::
//! Release`); the default bounds it to ±`cap` (`ReferenceAdvantage::Capped`, README: "The
//! reference's advantage").

use serde::{Deserialize, Serialize};

pub const EPS: f64 = 1e-6;

/// The bound on a reference row's |advantage| by default (`step.reference_advantage_cap`):
/// larger than any policy row's can be in a group of up to 26 policy rows ((n − 1) / √n with the
/// sample std: 1.79 for 5 rows), so a reference that beats its group gets the strongest push
/// of the group, and a tie group gives it a push of this size rather than 1e5.
pub const DEFAULT_REFERENCE_CAP: f64 = 5.0;

/// How the reference row's advantage is formed (`step.reference_advantage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceAdvantage {
    /// The group formula, then bounded to ±`step.reference_advantage_cap`.
    #[default]
    Capped,
    /// The release's: the group formula unbounded (`polaris-main` reproduces it).
    Release,
}

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

impl GroupAdvantages {
    /// Applies `mode` to the reference row's advantage; returns whether its magnitude was
    /// above `cap` (bounded to it when `mode` is `Capped`, left as it is for `Release`).
    pub fn bound_reference(&mut self, mode: ReferenceAdvantage, cap: f64) -> bool {
        let Some(a) = self.reference else { return false };
        let over = a.abs() > cap;
        if over && mode == ReferenceAdvantage::Capped {
            self.reference = Some(a.clamp(-cap, cap));
        }
        over
    }
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
