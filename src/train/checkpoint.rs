//! Checkpoints: the trainable weights, the optimizer state, and what decides the rest of the
//! run (step, seed, data cursor), written to a temporary folder, fsynced, and renamed into
//! `checkpoints/step-NNNNNN/`, so a kill never leaves a half-written checkpoint. Rollouts are
//! seeded from (seed, step, group), so restoring these continues the run exactly.
//! A LoRA run saves its adapter in HF PEFT's layout (`adapter_config.json`,
//! `adapter_model.safetensors`) instead of `weights.safetensors`, so every checkpoint loads
//! in PEFT and vLLM as it is.
//!
//! Loading refuses what cannot be a real checkpoint (non-finite values, a state file that
//! disagrees with its folder) before it changes anything, so a caller may fall back to an
//! earlier checkpoint (`--resume auto` does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::config::MAX_PROMPTS_PER_STEP;
use super::optim::AdamW;
use super::step::Trainer;
use crate::model::finite::{all_finite, first_non_finite};
use crate::model::lora::peft;
use crate::model::Model;
use crate::run::RunDir;

pub const WEIGHTS: &str = "weights.safetensors";
pub const OPTIMIZER: &str = "optimizer.safetensors";
pub const STATE: &str = "state.json";
pub const FORMAT: u32 = 1;

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
    /// SHA-256 (hex) of the dataset file the run read (absent in older checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<String>,
}

/// `checkpoints/step-NNNNNN` under a run directory.
pub fn step_dir(run_dir: &Path, step: usize) -> PathBuf {
    RunDir::at(run_dir).checkpoint(step)
}

/// Where a run is in its data: the cursor, and the dataset file's SHA-256 (hex) when known,
/// so a resume on another dataset is noticed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataPosition {
    pub cursor: usize,
    pub sha256: Option<String>,
}

/// Writes a checkpoint of the trainable parameters and the trainer; returns its folder.
pub fn save(run_dir: &Path, model: &Model, trainer: &Trainer, data_cursor: usize) -> Result<PathBuf> {
    save_at(run_dir, model, trainer, &DataPosition { cursor: data_cursor, sha256: None })
}

/// `save`, recording the dataset's hash too. A failure (a full disk) removes the temporary
/// folder and names the file that could not be written; no partial checkpoint is left.
pub fn save_at(run_dir: &Path, model: &Model, trainer: &Trainer, data: &DataPosition) -> Result<PathBuf> {
    let state = CheckpointState {
        format: FORMAT,
        step: trainer.step,
        seed: trainer.seed,
        data_cursor: data.cursor,
        dropout_rng: model.adapters().map(|a| a.dropout.position()),
        data_sha256: data.sha256.clone(),
    };
    save_folder(&step_dir(run_dir, trainer.step), model, &trainer.opt, &state, &[])
}

/// Writes a checkpoint folder (`save_at`'s, or another trainer's such as the reward model's):
/// the trainable weights (or the LoRA adapter), the optimizer state, `state`, and any `extra`
/// safetensors files (file name, tensors), into a temporary sibling renamed over `final_dir`.
pub fn save_folder(
    final_dir: &Path,
    model: &Model,
    opt: &AdamW,
    state: &CheckpointState,
    extra: &[(&str, HashMap<String, Tensor>)],
) -> Result<PathBuf> {
    let parent = final_dir.parent().expect("has a parent");
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!("{TMP_PREFIX}{:06}-{}", state.step, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let written = write_into(&tmp, model, opt, state, extra).and_then(|()| {
        if final_dir.exists() {
            std::fs::remove_dir_all(final_dir)
                .with_context(|| format!("cannot replace {}", final_dir.display()))?;
        }
        std::fs::rename(&tmp, final_dir)
            .with_context(|| format!("cannot move the checkpoint to {}", final_dir.display()))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("checkpoint of step {} not saved", state.step)));
    }
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(final_dir.to_path_buf())
}

/// The checkpoint's files in `tmp`, each fsynced; every error names its file.
fn write_into(
    tmp: &Path,
    model: &Model,
    opt: &AdamW,
    state: &CheckpointState,
    extra: &[(&str, HashMap<String, Tensor>)],
) -> Result<()> {
    std::fs::create_dir_all(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    match model.adapters() {
        Some(a) => peft::save(tmp, a)?,
        None => {
            let weights: HashMap<String, Tensor> =
                model.trainable().iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
            let file = tmp.join(WEIGHTS);
            candle_core::safetensors::save(&weights, &file)
                .with_context(|| format!("cannot write {}", file.display()))?;
        }
    }
    let opt = opt.state()?;
    if !opt.is_empty() {
        let file = tmp.join(OPTIMIZER);
        candle_core::safetensors::save(&opt, &file)
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    for (name, tensors) in extra {
        let file = tmp.join(name);
        candle_core::safetensors::save(tensors, &file)
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    let file = tmp.join(STATE);
    std::fs::write(&file, serde_json::to_string_pretty(state)?)
        .with_context(|| format!("cannot write {}", file.display()))?;
    for entry in std::fs::read_dir(tmp).with_context(|| format!("cannot list {}", tmp.display()))? {
        let path = entry?.path();
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", path.display()))?;
    }
    Ok(())
}

/// A checkpoint being written: `checkpoints/.tmp-step-NNNNNN-PID`.
const TMP_PREFIX: &str = ".tmp-step-";

/// Removes what a writer killed mid-checkpoint left (`.tmp-step-*` of a process that is
/// gone); returns the folders removed.
pub fn clean_temporaries(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = RunDir::at(run_dir).checkpoints();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(TMP_PREFIX) else { continue };
        let pid = rest.rsplit_once('-').and_then(|(_, pid)| pid.parse::<u32>().ok());
        if pid.is_some_and(|p| p == std::process::id() || crate::pid::alive(p)) {
            continue; // a live writer's
        }
        let path = entry.path();
        std::fs::remove_dir_all(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        removed.push(path);
    }
    Ok(removed)
}

/// The run's complete checkpoints (those with a state file), newest first.
pub fn all(run_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(RunDir::at(run_dir).checkpoints()) else { return Vec::new() };
    let mut steps: Vec<(usize, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let step = RunDir::checkpoint_step(&e.path())?;
            e.path().join(STATE).exists().then_some((step, e.path()))
        })
        .collect();
    steps.sort();
    steps.into_iter().rev().map(|(_, p)| p).collect()
}

/// The newest complete checkpoint of a run, if any (`--resume auto`).
pub fn latest(run_dir: &Path) -> Option<PathBuf> {
    all(run_dir).into_iter().next()
}

/// The error of a checkpoint whose own files are damaged: unreadable or truncated, holding
/// NaN or an infinity, or a state file that disagrees with its folder. A checkpoint of
/// another model (a missing tensor, another shape) is refused without it:
/// `--resume auto` falls back past damaged checkpoints only, never past a wrong `--model`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged(pub String);

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Damaged {}

/// Restores a checkpoint into the model's trainable parameters and the trainer; returns the
/// saved state (for the data cursor). Everything is read and checked (shapes, finite values,
/// a state that agrees with its folder, the optimizer state) before anything is changed.
pub fn load(dir: &Path, model: &Model, trainer: &mut Trainer) -> Result<CheckpointState> {
    let state = read_state(dir)?;
    let weights = read_weights(dir, model)?;
    let opt_state = read_optimizer(dir, model.device())?;
    trainer
        .opt
        .load_state(state.step, &opt_state)
        .with_context(|| format!("{}: not this checkpoint's optimizer state", dir.join(OPTIMIZER).display()))
        .map_err(damaged)?;
    put_weights(model, weights, &state)?;
    trainer.step = state.step;
    trainer.seed = state.seed;
    Ok(state)
}

/// Restores only a checkpoint's weights into the model's trainable parameters (to generate
/// or evaluate with them; the optimizer state stays unread); returns the saved state.
/// Everything is read and checked before anything is changed.
pub fn load_weights(dir: &Path, model: &Model) -> Result<CheckpointState> {
    let state = read_state(dir)?;
    let weights = read_weights(dir, model)?;
    put_weights(model, weights, &state)?;
    Ok(state)
}

fn damaged(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(Damaged(format!("{e:#}")))
}

/// state.json, checked against its folder.
fn read_state(dir: &Path) -> Result<CheckpointState> {
    let state_file = dir.join(STATE);
    let text = std::fs::read_to_string(&state_file)
        .with_context(|| format!("{}: not a checkpoint (no {STATE})", dir.display()))
        .map_err(damaged)?;
    let state: CheckpointState = serde_json::from_str(&text)
        .with_context(|| format!("{}: {STATE} does not parse", state_file.display()))
        .map_err(damaged)?;
    if state.format != FORMAT {
        bail!("{}: checkpoint format {} (this build reads {FORMAT})", dir.display(), state.format);
    }
    check_state(&state, dir).map_err(damaged)?;
    Ok(state)
}

/// Each trainable parameter with its saved value (in the parameter's dtype), checked for
/// shape and finite values.
fn read_weights<'m>(dir: &Path, model: &'m Model) -> Result<Vec<(&'m Var, Tensor)>> {
    let (weights, file) = if peft::is_adapter_dir(dir) {
        (adapter_weights(dir, model)?, dir.join(peft::WEIGHTS_FILE))
    } else {
        let file = dir.join(WEIGHTS);
        let w = candle_core::safetensors::load(&file, model.device())
            .with_context(|| format!("cannot read {} (truncated?)", file.display()))
            .map_err(damaged)?;
        (w, file)
    };
    let mut updates = Vec::with_capacity(model.trainable().len());
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
        if !all_finite(t)? {
            return Err(damaged(anyhow!(
                "{}: tensor {name} holds NaN or infinite values (the run diverged before this checkpoint \
                 was written?); resume from an earlier checkpoint",
                file.display()
            )));
        }
        updates.push((var, t.to_dtype(var.dtype())?));
    }
    Ok(updates)
}

/// The optimizer's saved tensors on `device` (none for a checkpoint without them), checked
/// for finite values.
pub(crate) fn read_optimizer(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let opt = dir.join(OPTIMIZER);
    let opt_state = if opt.exists() {
        candle_core::safetensors::load(&opt, &Device::Cpu)
            .with_context(|| format!("cannot read {} (truncated?)", opt.display()))
            .map_err(damaged)?
    } else {
        HashMap::new()
    };
    if let Some(name) = first_non_finite(opt_state.iter().map(|(k, v)| (k.as_str(), v)))? {
        let e = anyhow!("{}: optimizer tensor {name} holds NaN or infinite values", opt.display());
        return Err(damaged(e));
    }
    opt_state.into_iter().map(|(k, v)| Ok((k, v.to_device(device)?))).collect()
}

/// Sets the checked weights, and LoRA dropout's mask generator where the state has it.
fn put_weights(model: &Model, weights: Vec<(&Var, Tensor)>, state: &CheckpointState) -> Result<()> {
    for (var, t) in weights {
        var.set(&t)?;
    }
    if let (Some(a), Some(pos)) = (model.adapters(), state.dropout_rng) {
        a.dropout.set_position(pos);
    }
    Ok(())
}

/// A state file that cannot be this folder's: another step than the folder's name says, or a
/// data cursor past what its steps could have consumed.
fn check_state(state: &CheckpointState, dir: &Path) -> Result<()> {
    let file = dir.join(STATE);
    if let Some(named) = RunDir::checkpoint_step(dir).filter(|n| *n != state.step) {
        bail!(
            "{}: says step {} but its folder is step {named}; the file was edited or copied from \
             another checkpoint: restore it, or resume from another checkpoint",
            file.display(),
            state.step
        );
    }
    let most = state.step.checked_mul(MAX_PROMPTS_PER_STEP);
    if most.is_none_or(|m| state.data_cursor > m) {
        bail!(
            "{}: data_cursor {} is more prompts than {} steps can have used (at most {MAX_PROMPTS_PER_STEP} \
             a step); the file is damaged: resume from another checkpoint",
            file.display(),
            state.data_cursor,
            state.step
        );
    }
    Ok(())
}

/// A PEFT adapter's A and B by the model's canonical parameter names.
fn adapter_weights(dir: &Path, model: &Model) -> Result<HashMap<String, Tensor>> {
    let Some(adapters) = model.adapters() else {
        bail!(
            "{}: the checkpoint holds a LoRA adapter but the model has none; resume with model.lora.enabled = true",
            dir.display()
        );
    };
    let saved = peft::AdapterWeights::read(dir)?;
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
