//! What an adapter is: rank, scale, dropout and the modules it targets.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// `target_modules` value meaning every linear projection except the output head.
pub const ALL_LINEAR: &str = "all-linear";

/// What an adapter is: rank, scale, dropout and the modules it targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Module names as PEFT matches them: `q_proj` matches every module whose path ends in
    /// `.q_proj`; `all-linear` every linear projection except lm_head.
    pub target_modules: Vec<String>,
    /// rsLoRA: scale alpha / √r (read from PEFT adapters; runs train with alpha / r).
    pub use_rslora: bool,
}

impl LoraConfig {
    /// Whether a linear projection at canonical path `module` gets an adapter.
    pub fn targets(&self, module: &str) -> bool {
        self.target_modules.iter().any(|t| {
            t == ALL_LINEAR
                || module == t
                || module.strip_suffix(t.as_str()).is_some_and(|s| s.ends_with('.'))
        })
    }

    /// The factor s in y = x Wᵀ + s · x Aᵀ Bᵀ.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            bail!("r must be at least 1");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("dropout must be in [0, 1), got {}", self.dropout);
        }
        if !self.alpha.is_finite() || self.alpha <= 0.0 {
            bail!("alpha must be positive, got {}", self.alpha);
        }
        if self.target_modules.is_empty() || self.target_modules.iter().any(|t| t.is_empty()) {
            bail!("target_modules must name at least one module (e.g. [\"q_proj\", \"v_proj\"] or [\"all-linear\"])");
        }
        Ok(())
    }
}
