//! Checkpoints: the trainable weights, the optimizer state, and what decides the rest of the
//! run (step, seed, data cursor), written to a temporary folder, fsynced, and renamed into
//! `checkpoints/step-NNNNNN/`, so a kill never leaves a half-written checkpoint. Rollouts are
//! seeded from (seed, step, group), so restoring these continues the run exactly.
//! A LoRA run saves its adapter in HF PEFT's layout (`adapter_config.json`,
//! `adapter_model.safetensors`) instead of `weights.safetensors`, so every checkpoint loads
//! in PEFT and vLLM as it is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::step::Trainer;
use crate::model::{adapter, Model};

pub const WEIGHTS: &str = "weights.safetensors";
pub const OPTIMIZER: &str = "optimizer.safetensors";
pub const STATE: &str = "state.json";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub format: u32,
    /// Optimizer steps taken.
    pub step: usize,
    pub seed: u64,
    /// Position in the run's prompt order.
    pub data_cursor: usize,
    /// LoRA dropout's mask generator position (32-bit words drawn), for LoRA runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout_rng: Option<u128>,
}

/// `checkpoints/step-NNNNNN` under a run directory.
pub fn step_dir(run_dir: &Path, step: usize) -> PathBuf {
    run_dir.join("checkpoints").join(format!("step-{step:06}"))
}

/// Writes a checkpoint of the trainable parameters and the trainer; returns its folder.
pub fn save(run_dir: &Path, model: &Model, trainer: &Trainer, data_cursor: usize) -> Result<PathBuf> {
    let final_dir = step_dir(run_dir, trainer.step);
    let parent = final_dir.parent().expect("has a parent");
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(".tmp-step-{:06}-{}", trainer.step, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    match model.adapters() {
        Some(a) => adapter::save(&tmp, a)?,
        None => {
            let weights: HashMap<String, Tensor> =
                model.trainable().iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
            candle_core::safetensors::save(&weights, tmp.join(WEIGHTS))?;
        }
    }
    let opt = trainer.opt.state();
    if !opt.is_empty() {
        candle_core::safetensors::save(&opt, tmp.join(OPTIMIZER))?;
    }
    let state = CheckpointState {
        format: FORMAT,
        step: trainer.step,
        seed: trainer.seed,
        data_cursor,
        dropout_rng: model.adapters().map(|a| a.dropout.position()),
    };
    std::fs::write(tmp.join(STATE), serde_json::to_string_pretty(&state)?)?;
    for f in [WEIGHTS, OPTIMIZER, STATE] {
        if let Ok(file) = std::fs::File::open(tmp.join(f)) {
            file.sync_all()?;
        }
    }
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir)?;
    }
    std::fs::rename(&tmp, &final_dir)
        .with_context(|| format!("cannot move the checkpoint to {}", final_dir.display()))?;
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(final_dir)
}

/// The newest complete checkpoint of a run, if any (`--resume auto`).
pub fn latest(run_dir: &Path) -> Option<PathBuf> {
    let mut steps: Vec<(usize, PathBuf)> = std::fs::read_dir(run_dir.join("checkpoints"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            e.path().join(STATE).exists().then_some((step, e.path()))
        })
        .collect();
    steps.sort();
    steps.pop().map(|(_, p)| p)
}

/// Restores a checkpoint into the model's trainable parameters and the trainer; returns the
/// saved state (for the data cursor).
pub fn load(dir: &Path, model: &Model, trainer: &mut Trainer) -> Result<CheckpointState> {
    let text = std::fs::read_to_string(dir.join(STATE))
        .with_context(|| format!("{}: not a checkpoint (no {STATE})", dir.display()))?;
    let state: CheckpointState = serde_json::from_str(&text)
        .with_context(|| format!("{}: {STATE} does not parse", dir.join(STATE).display()))?;
    if state.format != FORMAT {
        bail!("{}: checkpoint format {} (this build reads {FORMAT})", dir.display(), state.format);
    }
    let device = model.device().clone();
    let (weights, file) = if adapter::is_adapter_dir(dir) {
        (adapter_weights(dir, model)?, dir.join(adapter::WEIGHTS_FILE))
    } else {
        let file = dir.join(WEIGHTS);
        let w = candle_core::safetensors::load(&file, &device)
            .with_context(|| format!("cannot read {}", file.display()))?;
        (w, file)
    };
    for (name, var) in model.trainable() {
        let t = weights.get(name).ok_or_else(|| {
            anyhow!(
                "{}: no tensor {name}; the checkpoint belongs to another model or trainable set",
                file.display()
            )
        })?;
        if t.dims() != var.dims() {
            bail!(
                "{}: tensor {name} has shape {:?}, the model expects {:?}",
                file.display(),
                t.dims(),
                var.dims()
            );
        }
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    let opt = dir.join(OPTIMIZER);
    let opt_state =
        if opt.exists() { candle_core::safetensors::load(&opt, &Device::Cpu)? } else { HashMap::new() };
    let opt_state: HashMap<String, Tensor> =
        opt_state.into_iter().map(|(k, v)| Ok((k, v.to_device(&device)?))).collect::<Result<_>>()?;
    trainer.opt.load_state(state.step, &opt_state)?;
    trainer.step = state.step;
    trainer.seed = state.seed;
    if let (Some(a), Some(pos)) = (model.adapters(), state.dropout_rng) {
        a.dropout.set_position(pos);
    }
    Ok(state)
}

/// A PEFT adapter's A and B by the model's canonical parameter names.
fn adapter_weights(dir: &Path, model: &Model) -> Result<HashMap<String, Tensor>> {
    let Some(adapters) = model.adapters() else {
        bail!(
            "{}: the checkpoint holds a LoRA adapter but the model has none; resume with model.lora.enabled = true",
            dir.display()
        );
    };
    let saved = adapter::AdapterWeights::read(dir)?;
    saved.check_all_used(&adapters.modules)?;
    let mut out = HashMap::with_capacity(2 * adapters.modules.len());
    for m in &adapters.modules {
        for (which, t) in [("lora_A", &m.a), ("lora_B", &m.b)] {
            let loaded = saved.get(&m.name, which, t.dims(), t.dtype(), t.device())?;
            out.insert(format!("{}.{which}.weight", m.name), loaded);
        }
    }
    Ok(out)
}
