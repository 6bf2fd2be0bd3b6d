//! Exporting trained weights as a Hugging Face model directory: a base model with a LoRA
//! adapter folded in (W + s · B A), or with a full fine-tune checkpoint's tensors put in
//! place. Every base tensor keeps its stored name and dtype (vision tower and MTP head
//! included, untouched); config.json, the tokenizer and chat template files are copied.
//! The directory is assembled beside `out` and renamed into place.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use super::lora::peft::{self, AdapterWeights};
use super::weights::{canonical_name, save_safetensors, Checkpoint};

/// What is merged into the base.
pub enum Trained {
    /// A PEFT LoRA adapter directory (also a LoRA run's checkpoint).
    Adapter(PathBuf),
    /// A safetensors file of trained tensors by canonical name (a full fine-tune
    /// checkpoint's `weights.safetensors`).
    Full(PathBuf),
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeReport {
    /// Base tensors changed.
    pub changed: usize,
    /// Base tensors written in all.
    pub tensors: usize,
}

/// Writes `base` with `trained` merged in to the new directory `out`.
pub fn merge(base: &Path, trained: &Trained, out: &Path) -> Result<MergeReport> {
    if out.exists() {
        bail!("{}: already exists; choose another --out or remove it", out.display());
    }
    let ckpt = Checkpoint::open(base)?;
    let (tensors, changed) = match trained {
        Trained::Adapter(dir) => with_adapter(&ckpt, dir)?,
        Trained::Full(file) => with_full(&ckpt, file)?,
    };
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let name = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "merged".into());
    let tmp = parent.join(format!(".tmp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    copy_model_files(base, &tmp)?;
    let weights = tmp.join("model.safetensors");
    save_safetensors(&tensors, &weights)?;
    std::fs::File::open(&weights)?.sync_all()?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("cannot move the merged model to {}", out.display()))?;
    Ok(MergeReport { changed, tensors: tensors.len() })
}

/// Every base tensor by stored name, with W + s · B A where the adapter has a module.
fn with_adapter(ckpt: &Checkpoint, dir: &Path) -> Result<(HashMap<String, Tensor>, usize)> {
    let config = peft::read_config(dir)?;
    let saved = AdapterWeights::read(dir)?;
    let scale = config.scale();
    let mut out = HashMap::new();
    let mut merged: HashSet<String> = HashSet::new();
    for (file, stored) in ckpt.stored_tensors() {
        let w = ckpt.load_stored(file, &stored)?;
        let module = canonical_name(&stored).strip_suffix(".weight").map(str::to_string);
        let w = match module.filter(|m| saved.has(m)) {
            Some(m) => {
                let (o, i) =
                    w.dims2().with_context(|| format!("{}: {stored} is not a matrix", file.display()))?;
                let a = saved.get(&m, "lora_A", &[config.r, i], DType::F32, &Device::Cpu)?;
                let b = saved.get(&m, "lora_B", &[o, config.r], DType::F32, &Device::Cpu)?;
                // summed in f32, then back to the stored dtype
                let sum = (w.to_dtype(DType::F32)? + (b.matmul(&a)? * scale)?)?;
                merged.insert(m);
                sum.to_dtype(w.dtype())?
            }
            None => w,
        };
        out.insert(stored, w);
    }
    saved.check_all_taken(&merged)?;
    Ok((out, merged.len()))
}

/// Every base tensor by stored name, replaced by the checkpoint's where it has one.
fn with_full(ckpt: &Checkpoint, file: &Path) -> Result<(HashMap<String, Tensor>, usize)> {
    let trained = candle_core::safetensors::load(file, &Device::Cpu)
        .with_context(|| format!("{}: not a readable safetensors file", file.display()))?;
    let mut out = HashMap::new();
    let mut changed = 0;
    for (path, stored) in ckpt.stored_tensors() {
        let w = ckpt.load_stored(path, &stored)?;
        let w = match trained.get(&canonical_name(&stored)) {
            Some(t) if t.dims() != w.dims() => bail!(
                "{}: tensor {} has shape {:?}, the base model's {stored} has {:?}; the checkpoint belongs to another model",
                file.display(),
                canonical_name(&stored),
                t.dims(),
                w.dims()
            ),
            Some(t) => {
                changed += 1;
                t.to_dtype(w.dtype())?
            }
            None => w,
        };
        out.insert(stored, w);
    }
    let base_names: HashSet<String> = out.keys().map(|k| canonical_name(k)).collect();
    if let Some(extra) = trained.keys().find(|k| !base_names.contains(*k)) {
        bail!(
            "{}: tensor {extra} is not in the base model; the checkpoint belongs to another model",
            file.display()
        );
    }
    Ok((out, changed))
}

/// config.json, generation config, tokenizer and chat template: every plain file of the
/// base directory except its weights (and any adapter files).
pub fn copy_model_files(base: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(base).with_context(|| format!("cannot read {}", base.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let skip = name.ends_with(".safetensors")
            || name == "model.safetensors.index.json"
            || name == peft::CONFIG_FILE
            || name.ends_with(".bin");
        if skip || !entry.file_type()?.is_file() {
            continue;
        }
        std::fs::copy(entry.path(), to.join(&name))
            .with_context(|| format!("cannot copy {}", entry.path().display()))?;
    }
    Ok(())
}
