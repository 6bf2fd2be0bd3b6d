//! `RM/rm.json`: what a reward model is (its base model and where its trained weights and
//! head are), how it was trained, where its scores centre, and its held-out pair accuracy.
//! Written whole (write-then-rename) when training ends; a folder without it is a training
//! run that has not finished (`rm train --resume` continues it).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::durable::write_atomic;
use crate::eval::stats::winrate::Interval;
use crate::model::LoraConfig;

pub const MANIFEST: &str = "rm.json";
pub const FORMAT: &str = "polaris-rm/1";
/// The head's file in a checkpoint folder: one tensor, `HEAD_TENSOR`, [D].
pub const HEAD_FILE: &str = "head.safetensors";
pub const HEAD_TENSOR: &str = "rm.head";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// The base model as `--model` named it (a directory, or `tiny`).
    pub base_model: String,
    /// Weight precision the model was trained in (f32, bf16, f16).
    pub dtype: String,
    /// The checkpoint folder, relative to RM/, holding the head and the adapter or weights.
    pub weights: String,
    pub training: Training,
    /// Tokens a scored row keeps at most (prompt + story + end token), as trained.
    pub max_tokens: usize,
    /// The mean score of the stories the held-out pairs hold (or, with none held out, of the
    /// first training pairs'): the score an ordinary story gets. See `score`.
    pub center: f64,
    /// Pair accuracy on the held-out pairs of the training file; None when none were held out.
    pub heldout: Option<Accuracy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// `full` or `lora`.
    pub method: String,
    pub lora: Option<LoraConfig>,
    pub pairs_file: String,
    pub pairs_sha256: String,
    pub train_pairs: usize,
    pub epochs: usize,
    pub batch_pairs: usize,
    pub lr: f64,
    pub seed: u64,
    pub steps: usize,
    /// The last step's weighted mean loss.
    pub final_loss: f64,
}

/// Pair accuracy: the share of pairs whose chosen story scores above the rejected one (a tie
/// counts half), with its 95% bootstrap interval over prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub pairs: usize,
    pub prompts: usize,
    pub correct: usize,
    pub ties: usize,
    pub accuracy: f64,
    pub ci95: Interval,
    pub resamples: usize,
}

impl Manifest {
    pub fn path(rm_dir: &Path) -> PathBuf {
        rm_dir.join(MANIFEST)
    }

    pub fn load(rm_dir: &Path) -> Result<Self> {
        let path = Self::path(rm_dir);
        if !path.exists() {
            bail!(
                "{}: no {MANIFEST}; a reward model folder is written by `polaris-tui rm train --out {}` \
                 (an unfinished one continues with --resume)",
                rm_dir.display(),
                rm_dir.display()
            );
        }
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let m: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a reward model manifest", path.display()))?;
        if m.format != FORMAT {
            bail!("{}: field `format` is `{}`; this build reads `{FORMAT}`", path.display(), m.format);
        }
        Ok(m)
    }

    pub fn save(&self, rm_dir: &Path) -> Result<()> {
        write_atomic(&Self::path(rm_dir), format!("{}\n", serde_json::to_string_pretty(self)?).as_bytes())
    }

    /// The checkpoint folder with the head and the trained weights.
    pub fn weights_dir(&self, rm_dir: &Path) -> PathBuf {
        rm_dir.join(&self.weights)
    }
}
