//! One way to open trained weights: what a `--model` (and `--adapter`) argument names, and
//! opening it. A name is a Hugging Face model directory or `tiny` (optionally with a PEFT
//! adapter), or a training run's checkpoint (`RUN/checkpoints/step-N`), which stands for the
//! base model named in the run's config.toml with the checkpoint over it: as adapter (a LoRA
//! run's checkpoint is a PEFT adapter folder) or as every trainable tensor (a full
//! fine-tune). `eval length`, the Playground and the CLI open models through here.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use super::checkpoint::{self, STATE, WEIGHTS};
use super::config::TrainConfig;
use crate::lm::LanguageModel;
use crate::model::lora::peft;
use crate::model::{all_trainable, LoadOptions, LoraSpec};

/// Weights to open: a base model, and what training put over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weights {
    /// A Hugging Face model directory, or `tiny`.
    pub base: String,
    pub trained: Option<Trained>,
}

/// What training put over a base model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trained {
    /// A PEFT adapter directory (a LoRA run's checkpoint is one).
    Adapter(PathBuf),
    /// A full fine-tune's checkpoint folder: its weights replace the base's.
    Checkpoint(PathBuf),
}

impl Trained {
    /// What a trained folder holds: an adapter, or a full fine-tune's weights.
    pub fn in_dir(dir: &Path) -> Option<Self> {
        if peft::is_adapter_dir(dir) {
            Some(Trained::Adapter(dir.to_path_buf()))
        } else if dir.join(WEIGHTS).is_file() {
            Some(Trained::Checkpoint(dir.to_path_buf()))
        } else {
            None
        }
    }
}

impl Weights {
    /// A base model alone.
    pub fn base(base: &str) -> Self {
        Self { base: base.to_string(), trained: None }
    }

    /// What `--model` (with an optional `--adapter`) names. A run's checkpoint becomes its
    /// base model with the checkpoint over it; anything else that is not a model directory
    /// is refused with what to give instead.
    pub fn resolve(model: &str, adapter: Option<&Path>) -> Result<Self> {
        let dir = Path::new(model);
        if model == "tiny" || dir.join("config.json").is_file() {
            return Ok(Self {
                base: model.to_string(),
                trained: adapter.map(|a| Trained::Adapter(a.into())),
            });
        }
        if dir.join(STATE).is_file() {
            if adapter.is_some() {
                bail!(
                    "--model {model} is a run's checkpoint, which brings its own weights; give it no adapter \
                     (--adapter none in `eval length`)"
                );
            }
            return Self::checkpoint(&run_config(dir)?.model.path, dir);
        }
        if peft::is_adapter_dir(dir) {
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

    /// A run's checkpoint folder over the run's base model `base`.
    pub fn checkpoint(base: &str, dir: &Path) -> Result<Self> {
        let trained = Trained::in_dir(dir).ok_or_else(|| {
            anyhow!("{}: a checkpoint with neither {} nor {WEIGHTS}", dir.display(), peft::CONFIG_FILE)
        })?;
        Ok(Self { base: base.to_string(), trained: Some(trained) })
    }

    /// Opens the base model with the adapter attached, or with the checkpoint's tensors in
    /// place of the trainable ones (its optimizer state is not read).
    pub fn open(&self, opts: &LoadOptions) -> Result<LanguageModel> {
        match &self.trained {
            None => LanguageModel::open(&self.base, opts),
            Some(Trained::Adapter(dir)) => {
                LanguageModel::open(&self.base, &opts.clone().lora(LoraSpec::open(dir)?))
            }
            Some(Trained::Checkpoint(dir)) => {
                let lm = LanguageModel::open(&self.base, &opts.clone().trainable(all_trainable()))?;
                checkpoint::load_weights(dir, &lm.model)?;
                Ok(lm)
            }
        }
    }
}

/// The config.toml of the run a checkpoint folder (`RUN/checkpoints/step-N`) belongs to.
pub fn run_config(checkpoint_dir: &Path) -> Result<TrainConfig> {
    // RUN of RUN/checkpoints/step-N (the folder's grandparent, whatever its parent is named)
    let run = checkpoint_dir.parent().and_then(Path::parent).map(PathBuf::from).unwrap_or_default();
    let path = crate::run::RunDir::at(&run).config();
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
