//! An alert as the run's log records it (`alert` events): which rule, on which device, raised
//! or cleared, and what was seen. The rules that raise them are in rules.rs; the event types
//! (`run::event`) carry them, so this file imports nothing of the run.

use serde::{Deserialize, Serialize};

/// What an alert rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The loss, the gradient norm or the weights went NaN or infinite.
    NonFinite,
    /// Too many groups whose rows all scored the same: no advantage, no signal.
    ZeroVariance,
    /// Too many tokens had their ratio clipped.
    ClipFraction,
    /// Too many rows without a judgement.
    JudgeFailures,
    /// The policy's reward fell far below its best.
    RewardCollapse,
    /// The stories became far shorter than asked for.
    LengthCollapse,
    /// No event (and no work record written) for a long time while the run should be live.
    Stalled,
    /// A device's memory is nearly full.
    DeviceMemory,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::NonFinite => "non-finite",
            Rule::ZeroVariance => "zero-variance groups",
            Rule::ClipFraction => "clip fraction",
            Rule::JudgeFailures => "judge failures",
            Rule::RewardCollapse => "reward collapse",
            Rule::LengthCollapse => "length collapse",
            Rule::Stalled => "stalled",
            Rule::DeviceMemory => "device memory",
        }
    }
}

/// One alert event: a rule began to hold (raised) or stopped holding (cleared).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub rule: Rule,
    /// The device, for a rule that holds per device (`cuda:0`, `host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// true: raised; false: cleared.
    pub raised: bool,
    /// The optimizer step it was judged at (none for a viewer's judgement).
    #[serde(default)]
    pub step: Option<usize>,
    /// What was seen against what is allowed, in words.
    pub text: String,
}

impl Alert {
    /// `reward collapse`, `device memory cuda:0`.
    pub fn title(&self) -> String {
        match &self.device {
            Some(d) => format!("{} {d}", self.rule.name()),
            None => self.rule.name().to_string(),
        }
    }

    /// `step 12: reward collapse: ...` for a status line or a list.
    pub fn line(&self) -> String {
        let at = self.step.map_or(String::new(), |s| format!("step {s}: "));
        format!("{at}{}: {}", self.title(), self.text)
    }
}
