//! The trainer-side rules, judged once per logged step: each rule is open or closed, and a
//! change either way is an `Alert` (raised or cleared) for the log. A rule that needs a
//! window of steps says nothing until it has one.

use std::collections::{BTreeSet, VecDeque};

use super::{Alert, AlertsConfig, Rule};
use crate::run::stats::StepStats;

/// One device's memory after a step.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceMemory {
    /// `cuda:0`, or `host` for CPU workers.
    pub device: String,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

/// Reads the run's devices' memory (NVML for GPUs, /proc/meminfo for the host); tests give
/// fixed readings.
pub type MemoryProbe = Box<dyn FnMut() -> Vec<DeviceMemory> + Send>;

pub struct Watch {
    cfg: AlertsConfig,
    /// Groups and rows of a step (`run.prompts_per_step`, times `step.group_size`).
    groups: usize,
    rows: usize,
    /// The newest `window` steps' policy reward means and length ratios.
    rewards: VecDeque<f64>,
    ratios: VecDeque<f64>,
    /// The best window mean of the policy reward so far.
    best_reward: Option<f64>,
    open: BTreeSet<(Rule, Option<String>)>,
    probe: Option<MemoryProbe>,
}

impl Watch {
    pub fn new(cfg: AlertsConfig, groups: usize, rows: usize) -> Self {
        Self {
            cfg,
            groups,
            rows,
            rewards: VecDeque::new(),
            ratios: VecDeque::new(),
            best_reward: None,
            open: BTreeSet::new(),
            probe: None,
        }
    }

    /// Reads device memory after each step with `probe`.
    pub fn with_probe(mut self, probe: MemoryProbe) -> Self {
        self.probe = Some(probe);
        self
    }

    pub fn config(&self) -> &AlertsConfig {
        &self.cfg
    }

    /// The alerts a logged step raises or clears, memory read from the probe (if any).
    pub fn step(&mut self, s: &StepStats) -> Vec<Alert> {
        let memory = self.probe.as_mut().map(|p| p()).unwrap_or_default();
        self.step_with(s, &memory)
    }

    /// The alerts a step raises or clears, given its devices' memory.
    pub fn step_with(&mut self, s: &StepStats, memory: &[DeviceMemory]) -> Vec<Alert> {
        let c = self.cfg.clone();
        let mut out = Vec::new();
        let step = s.step;
        let mut judge = |w: &mut Self, rule: Rule, device: Option<String>, holds: bool, text: String| {
            if let Some(a) = w.change(rule, device, holds, step, text) {
                out.push(a);
            }
        };

        let finite = s.loss.is_finite() && s.grad_norm.is_finite();
        judge(self, Rule::NonFinite, None, !finite, format!("loss {}, grad norm {}", s.loss, s.grad_norm));

        if c.zero_variance_share > 0.0 && self.groups > 0 {
            let share = s.zero_variance_groups as f64 / self.groups as f64;
            let text = format!(
                "{} of {} groups scored every row the same ({}; alerts.zero_variance_share {})",
                s.zero_variance_groups,
                self.groups,
                pct(share),
                pct(c.zero_variance_share)
            );
            judge(self, Rule::ZeroVariance, None, share > c.zero_variance_share, text);
        }
        if c.clip_fraction > 0.0 {
            let clipped = s.clip_frac_low + s.clip_frac_high;
            let text = format!(
                "{} of tokens clipped (low {}, high {}; alerts.clip_fraction {})",
                pct(clipped),
                pct(s.clip_frac_low),
                pct(s.clip_frac_high),
                pct(c.clip_fraction)
            );
            judge(self, Rule::ClipFraction, None, clipped > c.clip_fraction, text);
        }
        if c.judge_failure_rate > 0.0 && self.rows > 0 {
            let rate = s.judge_failures as f64 / self.rows as f64;
            let text = format!(
                "{} of {} rows without a judgement ({}; alerts.judge_failure_rate {})",
                s.judge_failures,
                self.rows,
                pct(rate),
                pct(c.judge_failure_rate)
            );
            judge(self, Rule::JudgeFailures, None, rate > c.judge_failure_rate, text);
        }
        if s.policy_reward_mean.is_finite() {
            if let Some(mean) = push_window(&mut self.rewards, s.policy_reward_mean, c.window) {
                let best = self.best_reward.map_or(mean, |b| b.max(mean));
                self.best_reward = Some(best);
                if c.reward_drop > 0.0 {
                    let text = format!(
                        "mean policy reward of the last {} steps {mean:.3}, {:.3} below its best {best:.3} \
                         (alerts.reward_drop {})",
                        c.window,
                        best - mean,
                        c.reward_drop
                    );
                    judge(self, Rule::RewardCollapse, None, best - mean > c.reward_drop, text);
                }
            }
        }
        if let Some(ratio) = s.length_ratio_mean.filter(|r| r.is_finite()) {
            if let Some(mean) = push_window(&mut self.ratios, ratio, c.window) {
                if c.length_ratio_min > 0.0 {
                    let text = format!(
                        "stories are {mean:.2} of the words asked for over the last {} steps \
                         (alerts.length_ratio_min {})",
                        c.window, c.length_ratio_min
                    );
                    judge(self, Rule::LengthCollapse, None, mean < c.length_ratio_min, text);
                }
            }
        }
        if c.device_memory > 0.0 {
            for m in memory.iter().filter(|m| m.total_bytes > 0) {
                let share = m.used_bytes as f64 / m.total_bytes as f64;
                let text = format!(
                    "{:.1} of {:.1} GiB in use ({}; alerts.device_memory {})",
                    gib(m.used_bytes),
                    gib(m.total_bytes),
                    pct(share),
                    pct(c.device_memory)
                );
                judge(self, Rule::DeviceMemory, Some(m.device.clone()), share > c.device_memory, text);
            }
        }
        out
    }

    /// The alert for a step that went non-finite (the trainer refused it, so it is never
    /// logged as a step): raised even if already open, as the run ends here.
    pub fn non_finite(&mut self, step: usize, what: &str) -> Alert {
        self.open.insert((Rule::NonFinite, None));
        Alert { rule: Rule::NonFinite, device: None, raised: true, step: Some(step), text: what.to_string() }
    }

    /// A rule's state after this step: an alert when it changed.
    fn change(
        &mut self,
        rule: Rule,
        device: Option<String>,
        holds: bool,
        step: usize,
        text: String,
    ) -> Option<Alert> {
        let key = (rule, device.clone());
        let was = self.open.contains(&key);
        if holds == was {
            return None;
        }
        if holds {
            self.open.insert(key);
        } else {
            self.open.remove(&key);
        }
        Some(Alert { rule, device, raised: holds, step: Some(step), text })
    }
}

/// Pushes `v`, keeping the newest `window`; their mean once there are `window`.
fn push_window(q: &mut VecDeque<f64>, v: f64, window: usize) -> Option<f64> {
    q.push_back(v);
    while q.len() > window {
        q.pop_front();
    }
    (q.len() == window).then(|| q.iter().sum::<f64>() / window as f64)
}

fn pct(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}
