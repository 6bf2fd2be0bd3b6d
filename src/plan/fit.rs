//! Whether a full fine-tune and LoRA fit N GPUs, and with which settings: the search
//! `polaris-tui plan --gpus` prints (one row per GPU count and kind of training).
//!
//! Each kind is planned as configured (checkpoint_layers "auto" decides), then with every
//! layer checkpointed, then with the largest micro-batch that fits; when none does, the
//! smallest plan (checkpointing, one row per micro-batch) is reported with how far it is
//! over and how many GPUs of the same memory would take it.

use anyhow::Result;

use super::advice::{changed, largest_fitting, Available};
use super::{gib, Plan};
use crate::model::ModelConfig;
use crate::train::config::TrainConfig;

/// GPU counts the search tries when a kind does not fit (ZeRO-1 shrinks only the optimizer
/// state, so past a point more GPUs do not help).
pub const MAX_GPUS: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Training {
    Full,
    Lora,
}

/// The outcome for one kind of training on `gpus` GPUs.
#[derive(Debug, Clone)]
pub struct Fit {
    pub training: Training,
    pub gpus: u64,
    pub fits: bool,
    /// `--set` assignments on top of the configuration: the ones that make it fit, or when
    /// nothing does, the smallest plan's.
    pub sets: Vec<String>,
    /// The plan with those settings.
    pub plan: Plan,
    /// When it does not fit: the fewest GPUs of the same memory that would (None: not up to
    /// MAX_GPUS).
    pub gpus_needed: Option<u64>,
}

/// `cuda:0,cuda:1,...` for `n` GPUs.
pub fn devices(n: u64) -> String {
    (0..n).map(|i| format!("cuda:{i}")).collect::<Vec<_>>().join(",")
}

/// `cfg` on `gpus` GPUs with LoRA on or off.
fn configured(cfg: &TrainConfig, training: Training, gpus: u64) -> TrainConfig {
    let mut c = cfg.clone();
    // set directly: a build without the cuda feature does not accept cuda devices in
    // run.devices, and the plan needs no device
    c.run.devices = devices(gpus);
    c.model.lora.enabled = training == Training::Lora;
    c
}

/// Whether `training` fits `gpus` GPUs, and with which settings.
pub fn search(
    cfg: &TrainConfig,
    model: &ModelConfig,
    available: Available,
    training: Training,
    gpus: u64,
) -> Result<Fit> {
    let base = configured(cfg, training, gpus);
    let plan = Plan::compute(&base, model, available)?;
    let done =
        |sets: Vec<String>, plan: Plan| Fit { training, gpus, fits: true, sets, plan, gpus_needed: None };
    if plan.fits() {
        return Ok(done(Vec::new(), plan));
    }
    let planned = |c: &TrainConfig, sets: &[String]| Plan::compute(&changed(c, sets)?, model, available).ok();
    // an f32 configuration first tries the mixed precision the GPU path is for
    let mut sets: Vec<String> = Vec::new();
    if cfg.model.dtype == "f32" {
        sets.push("model.dtype=\"bf16\"".into());
        if let Some(p) = planned(&base, &sets).filter(Plan::fits) {
            return Ok(done(sets, p));
        }
    }
    if !plan.checkpoint_layers {
        sets.push("step.checkpoint_layers=true".into());
        if let Some(p) = planned(&base, &sets).filter(Plan::fits) {
            return Ok(done(sets, p));
        }
    }
    let row = plan.row_tokens;
    if plan.micro_batch_tokens > row {
        let range = (row, plan.micro_batch_tokens - 1);
        if let Some(c) = largest_fitting(&base, model, available, &sets, "step.micro_batch_tokens", range) {
            if let Some(p) = planned(&base, &c.sets) {
                return Ok(done(c.sets, p));
            }
        }
    }
    // nothing fits: the smallest plan, and the GPUs it would need
    if !sets.iter().any(|s| s.starts_with("step.checkpoint_layers")) {
        sets.push("step.checkpoint_layers=true".into());
    }
    sets.push(format!("step.micro_batch_tokens={row}"));
    sets.push("step.micro_batch_rows=1".into());
    let small = planned(&base, &sets).unwrap_or(plan);
    let gpus_needed = (gpus + 1..=MAX_GPUS)
        .find(|&n| planned(&configured(cfg, training, n), &sets).is_some_and(|p| p.fits()));
    Ok(Fit { training, gpus, fits: false, sets, plan: small, gpus_needed })
}

/// The table of fits: one line per GPU count and kind of training.
pub fn table(fits: &[Fit], lora_r: usize) -> String {
    let mut rows = vec![[
        "GPUs".to_string(),
        "training".into(),
        "fits".into(),
        "peak per GPU".into(),
        "settings".into(),
    ]];
    for f in fits {
        let p = f.plan.tightest();
        let kind = match f.training {
            Training::Full => "full fine-tune".to_string(),
            Training::Lora => format!("LoRA r={lora_r}"),
        };
        let of = p.available.map_or(String::new(), |a| format!(" of {}", gib(a)));
        rows.push([
            f.gpus.to_string(),
            kind,
            if f.fits { "yes" } else { "NO" }.into(),
            format!("{}{of}", gib(p.peak())),
            settings(f),
        ]);
    }
    let widths: Vec<usize> = (0..5).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `checkpoint_layers=true, micro_batch_tokens=11521, ZeRO-1 over 4`, and when it does not
/// fit, by how much the smallest plan is over and the GPUs it would need.
fn settings(f: &Fit) -> String {
    let plan = &f.plan;
    let ckpt = match (plan.checkpoint_layers, plan.checkpoint_auto) {
        (true, true) => "checkpoint_layers=auto (on)",
        (false, true) => "checkpoint_layers=auto (off)",
        (true, false) => "checkpoint_layers=true",
        (false, false) => "checkpoint_layers=false",
    };
    let mut text = format!("{}, {ckpt}, micro_batch_tokens={}, ", plan.dtype, plan.micro_batch_tokens,);
    text.push_str(&if plan.ranks > 1 {
        format!("ZeRO-1 over {}", plan.ranks)
    } else {
        "1 GPU, nothing sharded".into()
    });
    if !f.fits {
        let p = plan.tightest();
        let over = p.peak().saturating_sub(p.available.unwrap_or(0));
        text.push_str(&format!("; smallest plan {} over", gib(over)));
        text.push_str(&match f.gpus_needed {
            Some(n) => format!(", fits on {n} GPUs"),
            None => format!(", not on {MAX_GPUS} GPUs either"),
        });
    }
    text
}
