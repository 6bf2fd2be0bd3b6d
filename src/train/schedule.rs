//! Schedules over training steps (1-based: the first optimizer step is step 1): the HRI
//! weight of the reference row, and the learning rate.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

/// After the peak: hold, or fall to `final_value` over `steps`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decay {
    None,
    Linear { steps: usize, final_value: f64 },
    Cosine { steps: usize, final_value: f64 },
}

/// The reference row's loss weight: rises linearly from 0 to `peak` over `warmup_steps`
/// (RECIPE.md: 0.4 over 15 steps), then optionally decays.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HriSchedule {
    pub peak: f64,
    pub warmup_steps: usize,
    pub decay: Decay,
}

impl Default for HriSchedule {
    fn default() -> Self {
        Self { peak: 0.4, warmup_steps: 15, decay: Decay::None }
    }
}

impl HriSchedule {
    pub fn weight(&self, step: usize) -> f64 {
        if self.warmup_steps > 0 && step < self.warmup_steps {
            return self.peak * step as f64 / self.warmup_steps as f64;
        }
        let after = step.saturating_sub(self.warmup_steps);
        decayed(self.peak, after, self.decay)
    }
}

fn decayed(peak: f64, after: usize, decay: Decay) -> f64 {
    match decay {
        Decay::None => peak,
        Decay::Linear { steps, final_value } => {
            let t = if steps == 0 { 1.0 } else { (after as f64 / steps as f64).min(1.0) };
            peak + (final_value - peak) * t
        }
        Decay::Cosine { steps, final_value } => {
            let t = if steps == 0 { 1.0 } else { (after as f64 / steps as f64).min(1.0) };
            final_value + (peak - final_value) * 0.5 * (1.0 + (PI * t).cos())
        }
    }
}

/// Learning rate: constant (RECIPE.md: 1e-6, no warmup), or linear warmup then cosine to
/// `min_lr` at `total_steps`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    Constant { lr: f64 },
    WarmupCosine { lr: f64, warmup_steps: usize, total_steps: usize, min_lr: f64 },
}

impl Default for LrSchedule {
    fn default() -> Self {
        Self::Constant { lr: 1e-6 }
    }
}

impl LrSchedule {
    pub fn lr(&self, step: usize) -> f64 {
        match *self {
            Self::Constant { lr } => lr,
            Self::WarmupCosine { lr, warmup_steps, total_steps, min_lr } => {
                if warmup_steps > 0 && step <= warmup_steps {
                    return lr * step as f64 / warmup_steps as f64;
                }
                let span = total_steps.saturating_sub(warmup_steps).max(1);
                let t = ((step - warmup_steps) as f64 / span as f64).min(1.0);
                min_lr + (lr - min_lr) * 0.5 * (1.0 + (PI * t).cos())
            }
        }
    }
}
