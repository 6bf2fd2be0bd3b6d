//! One scored row as `rollouts.jsonl` records it: a training row (a group member trained
//! on) or a validation sample, with its reward, advantage and the reward's breakdown. The
//! trainer writes them; the Groups and Inspector tabs, the length chart and `annotate`
//! read them.

use serde::{Deserialize, Serialize};

use crate::reward::breakdown::Breakdown;
use crate::train::group::Rollout;

/// What a logged row is: a training row (a group member trained on) or a validation sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutKind {
    #[default]
    Train,
    Val,
}

/// A row after scoring.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoredRollout {
    pub step: usize,
    /// A training row or a validation sample (absent in older logs: train).
    #[serde(default)]
    pub kind: RolloutKind,
    pub prompt: String,
    pub rollout: Rollout,
    /// The row's score as GRPO used it (`breakdown.score`, then `step.score_clip`): its
    /// advantage comes from this. With the defaults it is the reward, the clipped composite
    /// (`breakdown.reward`).
    pub reward: f64,
    pub advantage: f64,
    pub breakdown: Breakdown,
}
