//! The weights a model label stands for: a model directory, that with a LoRA adapter, or a
//! training run's checkpoint (`RUN/checkpoints/step-N`, LoRA or full fine-tune) over the
//! base model named in the run's config.toml.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::settings::ModelSpec;
use crate::lm::LanguageModel;
use crate::model::params::all_trainable;
use crate::model::{adapter, LoadOptions};
use crate::train::checkpoint::{self, STATE, WEIGHTS};
use crate::train::config::TrainConfig;
use crate::train::step::Trainer;

/// A `--model` argument made into a spec: a run's checkpoint becomes its base model with the
/// checkpoint as adapter (LoRA) or as full fine-tune weights.
pub fn resolve(label: String, model: &str, adapter_dir: Option<String>) -> Result<ModelSpec> {
    let dir = Path::new(model);
    if model == "tiny" || dir.join("config.json").is_file() {
        return Ok(ModelSpec { label, model: model.to_string(), adapter: adapter_dir, checkpoint: None });
    }
    if dir.join(STATE).is_file() {
        if adapter_dir.is_some() {
            bail!(
                "--model {model} is a run's checkpoint, which brings its own weights; give it --adapter none"
            );
        }
        let base = run_config(dir)?.model.path;
        return Ok(if adapter::is_adapter_dir(dir) {
            ModelSpec { label, model: base, adapter: Some(model.to_string()), checkpoint: None }
        } else if dir.join(WEIGHTS).is_file() {
            ModelSpec { label, model: base, adapter: None, checkpoint: Some(model.to_string()) }
        } else {
            bail!("--model {model}: a checkpoint with neither {} nor {WEIGHTS}", adapter::CONFIG_FILE)
        });
    }
    if adapter::is_adapter_dir(dir) {
        bail!("--model {model}: a LoRA adapter, not a model; give its base model with --model and this with --adapter");
    }
    if dir.join(WEIGHTS).is_file() {
        bail!(
            "--model {model}: trained tensors without a run (no {STATE}, no config.toml); merge them into \
             their base first (`polaris-tui merge --base BASE --adapter {model} --out MERGED`) and pass --model MERGED"
        );
    }
    if !dir.is_dir() {
        bail!("--model {model}: no such model directory (give a Hugging Face model directory, `tiny`, or a run's checkpoints/step-N)");
    }
    bail!("--model {model}: no config.json; give a Hugging Face model directory, `tiny`, or a run's checkpoints/step-N")
}

/// The config.toml of the run a checkpoint folder (`RUN/checkpoints/step-N`) belongs to.
pub fn run_config(checkpoint_dir: &Path) -> Result<TrainConfig> {
    let run = checkpoint_dir.parent().and_then(Path::parent).map(PathBuf::from).unwrap_or_default();
    let path = run.join("config.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        anyhow!(
            "{}: a checkpoint, but its run's config.toml ({}) cannot be read ({e}); it names the base model: \
             give --model BASE --adapter {0} for a LoRA checkpoint, or merge a full one with `polaris-tui merge`",
            checkpoint_dir.display(),
            path.display()
        )
    })?;
    TrainConfig::parse(&text, &path.display().to_string(), &[])
}

pub fn open(model: &ModelSpec, opts: LoadOptions) -> Result<LanguageModel> {
    let lm = match (&model.adapter, &model.checkpoint) {
        (Some(dir), _) => LanguageModel::open(&model.model, &opts.lora(adapter::open(Path::new(dir))?)),
        (None, Some(dir)) => {
            // every trainable tensor comes from the checkpoint; its optimiser state is read
            // into a throwaway trainer
            let dir = Path::new(dir);
            let cfg = run_config(dir)?;
            let lm = LanguageModel::open(&model.model, &opts.trainable(all_trainable()))?;
            let mut trainer = Trainer::new(cfg.step.clone(), cfg.run.seed);
            checkpoint::load(dir, &lm.model, &mut trainer)?;
            Ok(lm)
        }
        (None, None) => LanguageModel::open(&model.model, &opts),
    };
    lm.with_context(|| format!("opening model {}", model.label))
}
