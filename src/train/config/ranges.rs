//! The allowed range of every numeric setting, checked when a configuration is loaded: a
//! value outside it is an error naming the key, the value and the range, before any model is
//! loaded or any run directory touched. NaN and infinities are refused everywhere (one walk
//! over the table, so a key added later is covered too); the ranges below are per key.
//! The `[judge]` table's ranges belong to the judge client (reward/judge).

use std::fmt;

use super::TrainConfig;
use crate::train::loss::Aggregation;
use crate::train::schedule::{Decay, LrSchedule};

/// Prompts per step at most: far above any real batch (the recipe's is 8, verl's largest are
/// ~1k), and what keeps `step × prompts_per_step` (a checkpoint's data cursor) in range.
pub const MAX_PROMPTS_PER_STEP: usize = 1 << 20;

/// A setting outside its range: the key (as `--set` spells it) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Invalid {
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        Self { key: key.to_string(), message: message.into() }
    }
}

/// An interval of real numbers, printed as `[0, 1)`.
#[derive(Debug, Clone, Copy)]
struct Span {
    lo: f64,
    lo_open: bool,
    hi: f64,
    hi_open: bool,
}

impl Span {
    fn at_least(lo: f64) -> Self {
        Self { lo, lo_open: false, hi: f64::INFINITY, hi_open: true }
    }
    fn above(lo: f64) -> Self {
        Self { lo, lo_open: true, hi: f64::INFINITY, hi_open: true }
    }
    fn below(self, hi: f64) -> Self {
        Self { hi, hi_open: true, ..self }
    }
    fn up_to(self, hi: f64) -> Self {
        Self { hi, hi_open: false, ..self }
    }
    fn contains(&self, x: f64) -> bool {
        let lo = if self.lo_open { x > self.lo } else { x >= self.lo };
        let hi = if self.hi_open { x < self.hi } else { x <= self.hi };
        lo && hi
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = |x: f64| if x.is_infinite() { "inf".to_string() } else { x.to_string() };
        write!(
            f,
            "{}{}, {}{}",
            if self.lo_open { "(" } else { "[" },
            end(self.lo),
            end(self.hi),
            if self.hi_open { ")" } else { "]" }
        )
    }
}

fn real(key: &str, value: f64, span: Span, why: &str) -> Result<(), Invalid> {
    if span.contains(value) {
        return Ok(());
    }
    let why = if why.is_empty() { String::new() } else { format!(" ({why})") };
    Err(Invalid::new(key, format!("{key} = {value} is outside its allowed range {span}{why}")))
}

fn count(key: &str, value: usize, min: usize, max: usize, why: &str) -> Result<(), Invalid> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    let range = if max == usize::MAX { format!("at least {min}") } else { format!("from {min} to {max}") };
    let why = if why.is_empty() { String::new() } else { format!(" ({why})") };
    Err(Invalid::new(key, format!("{key} = {value}: must be {range}{why}")))
}

/// The first float anywhere in `table` that is NaN or infinite. Walked with a stack of its
/// own, not by recursion: a hostile file may nest tables deeper than a thread's stack holds
/// (the config fuzz target found one).
pub fn non_finite(table: &toml::Table, prefix: &str) -> Result<(), Invalid> {
    let join =
        |prefix: &str, k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    // (key, value, inside an array)
    let mut stack: Vec<(String, &toml::Value, bool)> =
        table.iter().rev().map(|(k, v)| (join(prefix, k), v, false)).collect();
    while let Some((key, v, in_array)) = stack.pop() {
        match v {
            toml::Value::Float(x) if !x.is_finite() => {
                let message = if in_array {
                    format!("{key} holds {x}: must be finite numbers")
                } else {
                    format!("{key} = {x}: must be a finite number")
                };
                return Err(Invalid::new(&key, message));
            }
            toml::Value::Table(t) => stack.extend(t.iter().rev().map(|(k, v)| (join(&key, k), v, false))),
            toml::Value::Array(items) => stack.extend(items.iter().rev().map(|v| (key.clone(), v, true))),
            _ => {}
        }
    }
    Ok(())
}

/// Every per-key range of the run, step, sft and reward sections.
pub fn check(cfg: &TrainConfig) -> Result<(), Invalid> {
    let any = usize::MAX;
    count("run.steps", cfg.run.steps, 1, any, "")?;
    count("run.prompts_per_step", cfg.run.prompts_per_step, 1, MAX_PROMPTS_PER_STEP, "")?;

    let s = &cfg.step;
    count("step.group_size", s.group_size, 2, any, "a group needs rows to compare")?;
    real(
        "step.hri_schedule.peak",
        s.hri_schedule.peak,
        Span::at_least(0.0),
        "the reference row's loss weight",
    )?;
    if let Decay::Linear { final_value, .. } | Decay::Cosine { final_value, .. } = s.hri_schedule.decay {
        real("step.hri_schedule.decay.final_value", final_value, Span::at_least(0.0), "")?;
    }
    real(
        "step.loss.clip_low",
        s.loss.clip_low,
        Span::at_least(0.0).below(1.0),
        "the ratio's floor is 1 - clip_low",
    )?;
    real("step.loss.clip_high", s.loss.clip_high, Span::above(0.0), "")?;
    real("step.loss.kl_coef", s.loss.kl_coef, Span::at_least(0.0), "0 turns the KL term off")?;
    if let Aggregation::Constant { tokens } = s.loss.aggregation {
        real("step.loss.aggregation.tokens", tokens, Span::above(0.0), "")?;
    }
    real("step.max_grad_norm", s.max_grad_norm, Span::above(0.0), "")?;
    let lr_why = "AdamW moves each weight by about lr per step";
    match s.lr {
        LrSchedule::Constant { lr } => real("step.lr.lr", lr, Span::at_least(0.0).up_to(1.0), lr_why)?,
        LrSchedule::WarmupCosine { lr, min_lr, .. } => {
            real("step.lr.lr", lr, Span::at_least(0.0).up_to(1.0), lr_why)?;
            real("step.lr.min_lr", min_lr, Span::at_least(0.0).up_to(lr), "at most step.lr.lr")?;
        }
    }
    let a = &s.adamw;
    real("step.adamw.beta1", a.beta1, Span::at_least(0.0).below(1.0), "a moving average's decay")?;
    real("step.adamw.beta2", a.beta2, Span::at_least(0.0).below(1.0), "a moving average's decay")?;
    real("step.adamw.eps", a.eps, Span::above(0.0), "it keeps the update's denominator above 0")?;
    real("step.adamw.weight_decay", a.weight_decay, Span::at_least(0.0), "")?;
    count("step.logprob_chunk", s.logprob_chunk, 1, any, "")?;
    count("step.ppo_epochs", s.ppo_epochs, 1, any, "")?;
    real(
        "step.reference_advantage_cap",
        s.reference_advantage_cap,
        Span::above(0.0),
        "the largest |advantage| of a reference row",
    )?;

    let f = &cfg.sft;
    count("sft.batch_size", f.batch_size, 1, any, "")?;
    real("sft.lr", f.lr, Span::at_least(0.0).up_to(1.0), lr_why)?;
    real("sft.max_grad_norm", f.max_grad_norm, Span::above(0.0), "")?;

    let w = &cfg.reward.weights;
    let penalty = "a weight; a negative one turns its penalty into a bonus";
    real("reward.weights.story_quality", w.story_quality, Span::at_least(0.0), penalty)?;
    real("reward.weights.repetition", w.repetition, Span::at_least(0.0), penalty)?;
    real("reward.weights.length", w.length, Span::at_least(0.0), penalty)?;
    real("reward.weights.blank", w.blank, Span::at_least(0.0), penalty)?;
    real("reward.weights.overlong", w.overlong, Span::at_least(0.0), penalty)?;
    real("reward.weights.clip", w.clip, Span::above(0.0), "the composite is clipped to [-clip, clip]")?;
    count("reward.weights.max_response_tokens", w.max_response_tokens, 1, any, "")?;
    count(
        "reward.weights.overlong_window",
        w.overlong_window,
        0,
        w.max_response_tokens,
        "a window at the end of reward.weights.max_response_tokens",
    )?;
    Ok(())
}
