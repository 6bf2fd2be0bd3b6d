//! Writing a model back out as a Hugging Face model directory (after SFT or a full
//! fine-tune): every tensor under its canonical name in `model.safetensors`, with the
//! source directory's other files (config, tokenizer, chat template, generation config)
//! copied. Written to a temporary folder and renamed, so a kill leaves no half model.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

use super::Model;

pub fn save_pretrained(model: &Model, source: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        bail!("{} already exists: choose a new output folder", out.display());
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let name = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = parent.join(format!(".tmp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    super::merge::copy_model_files(source, &tmp)?;
    let tensors: HashMap<String, Tensor> = model.tensors().iter().cloned().collect();
    super::weights::save_safetensors(&tensors, &tmp.join("model.safetensors"))?;
    for entry in std::fs::read_dir(&tmp)? {
        std::fs::File::open(entry?.path())?.sync_all()?;
    }
    std::fs::rename(&tmp, out).with_context(|| format!("cannot move the model to {}", out.display()))?;
    Ok(())
}
