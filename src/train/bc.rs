//! Behaviour cloning on the human reference (`[step.bc]`, the fork's bc_enable and its
//! schedule; off in the released run): the reference rows' negative log-likelihood, as a
//! mean over their response tokens, times a coefficient, is added to the GRPO loss
//! (train::loss). The coefficient follows the HRI weight's shape: 0 → `peak` linearly over
//! `warmup_steps`, then held, or decayed linearly / by cosine to `final_value` (bc_final_coef).
//! With `step.hri` off the reference rows are still built, for this loss only: their
//! advantage is 0 and they take no part in the group statistics.

use serde::{Deserialize, Serialize};

use super::schedule::{Decay, HriSchedule};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BcConfig {
    pub enabled: bool,
    /// bc_peak_coef
    pub peak: f64,
    /// bc_warmup_steps
    pub warmup_steps: usize,
    /// bc_decay_steps, bc_final_coef and bc_schedule together
    pub decay: Decay,
}

impl Default for BcConfig {
    /// The fork's defaults (its verl/CHANGES.md): peak 0.1, no warmup, no decay.
    fn default() -> Self {
        Self { enabled: false, peak: 0.1, warmup_steps: 0, decay: Decay::None }
    }
}

impl BcConfig {
    /// The coefficient at (1-based) `step`; 0 when off.
    pub fn coef(&self, step: usize) -> f64 {
        if !self.enabled {
            return 0.0;
        }
        HriSchedule { peak: self.peak, warmup_steps: self.warmup_steps, decay: self.decay }.weight(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coefficient_follows_its_schedule() {
        assert_eq!(BcConfig::default().coef(3), 0.0, "off by default");
        // peak 0.2 over 4 warmup steps, then linear to 0.05 over 10 steps
        let bc = BcConfig {
            enabled: true,
            peak: 0.2,
            warmup_steps: 4,
            decay: Decay::Linear { steps: 10, final_value: 0.05 },
        };
        // within 1e-15: the formulas' own rounding (0.2 + (0.05 − 0.2)·1 is 0.04999999999999999)
        let at = |s: usize, want: f64| assert!((bc.coef(s) - want).abs() < 1e-15, "step {s}: {}", bc.coef(s));
        at(1, 0.05);
        at(2, 0.1);
        at(4, 0.2);
        // 5 steps into the decay: 0.2 + (0.05 − 0.2)·0.5 = 0.125
        at(9, 0.125);
        at(14, 0.05);
        at(100, 0.05);
    }
}
