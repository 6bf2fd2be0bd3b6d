//! What to change when a run does not fit: each candidate change is applied to a copy of the
//! configuration and planned again, so every suggestion comes with the peak it would have.

use crate::model::ModelConfig;
use crate::train::config::TrainConfig;
use crate::train::layer_checkpointing::LayerCheckpointing;

use super::{gib, Place, Plan};

/// One suggestion: `--set` assignments and the plan's peak with them.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub sets: Vec<String>,
    /// Peak bytes of the tightest pool with the change.
    pub peak: u64,
    pub fits: bool,
}

impl Change {
    pub fn flags(&self) -> String {
        self.sets.iter().map(|s| format!("--set {s}")).collect::<Vec<_>>().join(" ")
    }
}

pub(super) type Available<'a> = &'a dyn Fn(&Place) -> Option<u64>;

/// A configuration changed by `--set`-style assignments (the ones this module makes).
pub(super) fn changed(cfg: &TrainConfig, sets: &[String]) -> Option<TrainConfig> {
    let mut c = cfg.clone();
    for s in sets {
        let (key, value) = s.split_once('=')?;
        match key {
            "step.checkpoint_layers" => c.step.checkpoint_layers = LayerCheckpointing::On,
            "step.micro_batch_tokens" => c.step.micro_batch_tokens = value.parse().ok()?,
            "step.micro_batch_rows" => c.step.micro_batch_rows = value.parse().ok()?,
            "step.sampling.max_new_tokens" => c.step.sampling.max_new_tokens = value.parse().ok()?,
            "model.dtype" => c.model.dtype = value.trim_matches('"').to_string(),
            "model.lora.enabled" => c.model.lora.enabled = value == "true",
            "run.devices" => c.run.devices = value.trim_matches('"').to_string(),
            _ => return None,
        }
    }
    Some(c)
}

fn try_change(
    cfg: &TrainConfig,
    model: &ModelConfig,
    available: Available,
    sets: Vec<String>,
) -> Option<Change> {
    let plan = Plan::compute(&changed(cfg, &sets)?, model, available).ok()?;
    Some(Change { peak: plan.tightest().peak(), fits: plan.fits(), sets })
}

/// The largest value in [lo, hi] of a setting for which the run fits (the peak grows with
/// it), by bisection; None when even `lo` does not fit.
pub(super) fn largest_fitting(
    cfg: &TrainConfig,
    model: &ModelConfig,
    available: Available,
    base: &[String],
    key: &str,
    (lo, hi): (u64, u64),
) -> Option<Change> {
    let at = |n: u64| {
        let mut sets = base.to_vec();
        sets.push(format!("{key}={n}"));
        try_change(cfg, model, available, sets)
    };
    if lo > hi || !at(lo)?.fits {
        return None;
    }
    let (mut good, mut bad) = (lo, hi + 1);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if at(mid).is_some_and(|c| c.fits) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    // a round number a person would type, when one fits
    let round = if good >= 1024 { good / 256 * 256 } else { good };
    at(if round >= lo { round } else { good })
}

/// Changes that make `cfg` fit, the least disruptive first: checkpointing, a smaller
/// micro-batch, bf16, LoRA, fewer CPU workers; when no single one does, a combination;
/// one row per micro-batch; shorter responses last (that changes the recipe).
pub fn advise(cfg: &TrainConfig, model: &ModelConfig, available: Available) -> Vec<Change> {
    let Ok(plan) = Plan::compute(cfg, model, available) else { return Vec::new() };
    let mut out: Vec<Change> = Vec::new();
    let mut base: Vec<String> = Vec::new();
    let push = |c: Option<Change>, out: &mut Vec<Change>| {
        if let Some(c) = c.filter(|c| c.fits && !out.iter().any(|o| o.sets == c.sets)) {
            out.push(c);
        }
    };
    if !plan.checkpoint_layers {
        let on = vec!["step.checkpoint_layers=true".to_string()];
        push(try_change(cfg, model, available, on.clone()), &mut out);
        base = on;
    }
    let row = plan.row_tokens;
    if plan.micro_batch_tokens > row {
        let range = (row, plan.micro_batch_tokens - 1);
        push(largest_fitting(cfg, model, available, &[], "step.micro_batch_tokens", range), &mut out);
        if !base.is_empty() {
            push(largest_fitting(cfg, model, available, &base, "step.micro_batch_tokens", range), &mut out);
        }
    }
    if cfg.model.dtype == "f32" {
        push(try_change(cfg, model, available, vec!["model.dtype=\"bf16\"".into()]), &mut out);
    }
    if !cfg.model.lora.enabled {
        push(try_change(cfg, model, available, vec!["model.lora.enabled=true".into()]), &mut out);
    }
    if plan.pools.iter().any(|p| p.place == Place::Host && p.workers > 1) {
        push(try_change(cfg, model, available, vec!["run.devices=\"cpu\"".into()]), &mut out);
    }
    if out.is_empty() {
        // everything at once, then the micro-batch that fits with it
        let mut all = base.clone();
        if cfg.model.dtype == "f32" {
            all.push("model.dtype=\"bf16\"".into());
        }
        if !cfg.model.lora.enabled {
            all.push("model.lora.enabled=true".into());
        }
        push(try_change(cfg, model, available, all.clone()), &mut out);
        if out.is_empty() && plan.micro_batch_tokens > row {
            push(
                largest_fitting(
                    cfg,
                    model,
                    available,
                    &all,
                    "step.micro_batch_tokens",
                    (row, plan.micro_batch_tokens - 1),
                ),
                &mut out,
            );
        }
        // one row per micro-batch, then shorter rows
        all.push("step.micro_batch_rows=1".into());
        push(try_change(cfg, model, available, all.clone()), &mut out);
        if out.is_empty() {
            let max = cfg.step.sampling.max_new_tokens as u64;
            push(
                largest_fitting(
                    cfg,
                    model,
                    available,
                    &all,
                    "step.sampling.max_new_tokens",
                    (64.min(max), max),
                ),
                &mut out,
            );
        }
    }
    out
}

/// Why `plan` does not fit and what to change: the refusal `train` prints, and part of a
/// failure record.
pub fn refusal(plan: &Plan, changes: &[Change]) -> String {
    let p = plan.tightest();
    let f = &plan.worker;
    let mut text = format!(
        "this run would not fit in memory: {} ({} sets the peak; per worker: weights {}, gradients {}, \
         master weights {}, optimizer {}, saved activations {} over a {}-token micro-batch, largest layer's working set {}, \
         log-prob chunk {}, generation cache {}).",
        plan.summary(),
        p.peak_phase(),
        gib(f.weights + f.reference),
        gib(f.gradients),
        gib(f.master),
        gib(f.optimizer),
        gib(f.activations),
        plan.micro_batch_tokens,
        gib(f.layer_working_set),
        gib(f.logprob_chunk),
        gib(f.generation),
    );
    text.push_str(&advice_text(changes));
    text.push_str(
        "\nSee the figures with `polaris-tui plan` (same flags); pass --ignore-plan to start anyway.",
    );
    text
}

/// `Change it: ...` lines, or a note that nothing the plan knows of fits.
pub fn advice_text(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "\nNo setting the plan knows of makes it fit: use a smaller model or a device with more memory.".into();
    }
    let mut text = String::from("\nChange it with one of:");
    for c in changes {
        text.push_str(&format!("\n  {}   (peak {})", c.flags(), gib(c.peak)));
    }
    text
}
