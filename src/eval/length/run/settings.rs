//! `DIR/eval.json`: the settings an evaluation's records were made with. A re-run into the
//! same directory must ask for the same ones, or its records would mix two evaluations;
//! buckets and bootstrap settings only shape the summary and may change.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::generate::SamplingParams;

pub const SETTINGS_JSON: &str = "eval.json";
/// Format version of eval.json.
pub const SETTINGS_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub label: String,
    /// A Hugging Face model directory, or `tiny`.
    pub model: String,
    /// A PEFT adapter directory (a LoRA run's checkpoint is one).
    pub adapter: Option<String>,
    /// A full fine-tune's checkpoint folder, its weights put over `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// Field names are what the mismatch error shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub v: u32,
    /// Generating: the models (labels, directories, adapters), in order.
    pub models: Option<Vec<ModelSpec>>,
    /// Judging existing generations: the `--gens` files as given.
    pub gens: Option<Vec<String>>,
    /// SHA-256 of the --prompts file's bytes.
    pub prompts_sha256: Option<String>,
    pub samples: Option<usize>,
    pub thinking: Option<bool>,
    pub dtype: Option<String>,
    /// Sampling for requests under 8000 words, and for 8000 and more.
    pub sampling: Option<SamplingParams>,
    pub sampling_long: Option<SamplingParams>,
    /// `JudgeSpec::label`.
    pub judge: String,
    pub rubric: String,
}

impl Settings {
    /// Writes the settings when `dir` has none; otherwise checks they are the same and
    /// names every one that differs.
    pub fn check_or_write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(SETTINGS_JSON);
        if !path.exists() {
            return crate::durable::write_atomic(&path, serde_json::to_string_pretty(self)?.as_bytes());
        }
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let old: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not JSON; it is written by `eval length`", path.display()))?;
        // through text, as the file was written (f32 fields read back as their shortest form)
        let new: Value = serde_json::from_str(&serde_json::to_string(self)?)?;
        let (Value::Object(old), Value::Object(new)) = (old, new) else {
            bail!("{}: not a settings object; it is written by `eval length`", path.display());
        };
        let mut differ = Vec::new();
        for (k, v) in &new {
            let before = old.get(k).unwrap_or(&Value::Null);
            if before != v {
                differ.push(format!("  {k}: {} before, {} now", short(before), short(v)));
            }
        }
        if !differ.is_empty() {
            bail!(
                "{} holds an evaluation made with other settings; its records cannot be reused:\n{}\n\
                 run with the same settings to continue it, or choose another --out",
                dir.display(),
                differ.join("\n")
            );
        }
        Ok(())
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}
