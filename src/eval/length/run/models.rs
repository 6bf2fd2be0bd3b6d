//! The weights a model label stands for: a model directory, that with a LoRA adapter, or a
//! training run's checkpoint (`RUN/checkpoints/step-N`, LoRA or full fine-tune) over the
//! base model named in the run's config.toml, resolved and opened by `train::trained`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::settings::ModelSpec;
use crate::lm::LanguageModel;
use crate::model::LoadOptions;
use crate::train::trained::{Trained, Weights};

/// A `--model` argument made into a spec: a run's checkpoint becomes its base model with the
/// checkpoint as adapter (LoRA) or as full fine-tune weights.
pub fn resolve(label: String, model: &str, adapter_dir: Option<String>) -> Result<ModelSpec> {
    let weights = Weights::resolve(model, adapter_dir.as_deref().map(Path::new))?;
    let path = |d: PathBuf| d.display().to_string();
    let (adapter, checkpoint) = match weights.trained {
        None => (None, None),
        Some(Trained::Adapter(d)) => (Some(path(d)), None),
        Some(Trained::Checkpoint(d)) => (None, Some(path(d))),
    };
    Ok(ModelSpec { label, model: weights.base, adapter, checkpoint })
}

pub fn open(model: &ModelSpec, opts: LoadOptions) -> Result<LanguageModel> {
    let trained = match (&model.adapter, &model.checkpoint) {
        (Some(dir), _) => Some(Trained::Adapter(dir.into())),
        (None, Some(dir)) => Some(Trained::Checkpoint(dir.into())),
        (None, None) => None,
    };
    let weights = Weights { base: model.model.clone(), trained };
    weights.open(&opts).with_context(|| format!("opening model {}", model.label))
}
