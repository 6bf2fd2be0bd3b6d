//! `[alerts]` of the run configuration: each rule's threshold (0 turns a rule off, except
//! the NaN rule, which is always on) and whether a viewer rings the terminal's bell.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// A viewer rings the terminal bell when an alert is raised.
    pub bell: bool,
    /// Share of a step's groups whose rows all scored the same (0..=1).
    pub zero_variance_share: f64,
    /// Share of policy tokens clipped (low + high) in a step (0..=1).
    pub clip_fraction: f64,
    /// Share of a step's rows without a judgement (0..=1); `judge.max_failure_rate` stops
    /// the run, this warns well before.
    pub judge_failure_rate: f64,
    /// Steps over which a collapse is judged: the mean of the newest `window` steps.
    pub window: usize,
    /// Reward collapse: the window's mean policy reward is this far below the best window
    /// mean of the run so far (reward units).
    pub reward_drop: f64,
    /// Length collapse: the window's mean length ratio (written / requested words) is below
    /// this.
    pub length_ratio_min: f64,
    /// A live run with no event for this many minutes is stalled (judged by viewers).
    pub stalled_minutes: f64,
    /// Share of a device's memory in use (0..=1), read after each step.
    pub device_memory: f64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            bell: false,
            zero_variance_share: 0.5,
            clip_fraction: 0.2,
            judge_failure_rate: 0.05,
            window: 5,
            reward_drop: 0.5,
            length_ratio_min: 0.5,
            stalled_minutes: 30.0,
            device_memory: 0.95,
        }
    }
}

impl AlertsConfig {
    /// Every rule off but the NaN rule (which has no threshold).
    pub fn off() -> Self {
        Self {
            bell: false,
            zero_variance_share: 0.0,
            clip_fraction: 0.0,
            judge_failure_rate: 0.0,
            window: 1,
            reward_drop: 0.0,
            length_ratio_min: 0.0,
            stalled_minutes: 0.0,
            device_memory: 0.0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("zero_variance_share", self.zero_variance_share),
            ("clip_fraction", self.clip_fraction),
            ("judge_failure_rate", self.judge_failure_rate),
            ("device_memory", self.device_memory),
        ] {
            if !(0.0..=1.0).contains(&v) {
                bail!("alerts.{key} = {v}: must be a share in [0, 1] (0 turns the rule off)");
            }
        }
        for (key, v) in [
            ("reward_drop", self.reward_drop),
            ("length_ratio_min", self.length_ratio_min),
            ("stalled_minutes", self.stalled_minutes),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                bail!("alerts.{key} = {v}: must be >= 0 (0 turns the rule off)");
            }
        }
        if self.window == 0 {
            bail!("alerts.window = 0: must be at least 1 step");
        }
        Ok(())
    }
}

impl AlertsConfig {
    /// The `[alerts]` table of a run directory's `config.toml`; the defaults when the file or
    /// the table is absent (a run from before alerts).
    pub fn of_run_dir(dir: &std::path::Path) -> Result<Self> {
        let path = crate::run::RunDir::at(dir).config();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        };
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{} does not parse: {e}", path.display()))?;
        match table.get("alerts") {
            None => Ok(Self::default()),
            Some(v) => v.clone().try_into().map_err(|e| anyhow::anyhow!("{}: [alerts]: {e}", path.display())),
        }
    }
}
