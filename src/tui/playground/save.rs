//! "Save": one JSON record per story under `RUN_DIR/playground/`, written then renamed so a
//! crash never leaves half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::state::{Pane, PlaygroundState};
use crate::generate::{GenerationRecord, SamplingParams};
use crate::reward::Breakdown;

/// What a saved story file holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedStory {
    /// The instruction as typed, without the length sentence.
    pub instruction: String,
    pub target_words: usize,
    pub thinking: bool,
    pub sampling: SamplingParams,
    /// What generated it: `base tiny`, `checkpoints/step-000040`, ...
    pub model: String,
    pub story: String,
    pub reasoning: Option<String>,
    pub words: usize,
    pub length_ratio: Option<f64>,
    /// The full generation record (prompt as rendered, token ids, finish, speed).
    pub generation: GenerationRecord,
    /// The judge's breakdown, when the story was judged.
    pub judgement: Option<Breakdown>,
}

/// Writes the focused pane's story; returns the file's path. The pane must have finished.
pub fn save(run_dir: &Path, s: &PlaygroundState, pane_index: usize, pane: &Pane) -> Result<PathBuf> {
    let record = pane.record.as_ref().context("nothing to save yet: generate a story first (g)")?;
    let saved = SavedStory {
        instruction: s.instruction(),
        target_words: s.target_words,
        thinking: s.thinking,
        sampling: s.params.clone(),
        model: pane.loaded.clone().unwrap_or_default(),
        story: record.story.clone(),
        reasoning: record.thinking.clone(),
        words: record.words,
        length_ratio: record.length_ratio,
        generation: (**record).clone(),
        judgement: pane.breakdown.as_deref().cloned(),
    };
    let dir = crate::run::RunDir::at(run_dir).playground();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let side = ["left", "right"][pane_index];
    let path = dir.join(format!("story-{}-{:03}-{side}.json", stamp.as_secs(), stamp.subsec_millis()));
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(&saved)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot move {} into place", tmp.display()))?;
    Ok(path)
}
