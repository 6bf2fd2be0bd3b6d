//! The two record files of an evaluation: `generations/<model>.jsonl`, one story per
//! (prompt, sample) in the generation-file format (`generate::file::read_generations`
//! reads it, the extra fields ignored), and `judgements.jsonl`, one judgement per story.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::generate::Finish;
use crate::reward::judge::JudgeResult;

/// One generated (or read) story.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoryRecord {
    #[serde(rename = "uid", alias = "prompt_uid")]
    pub prompt_uid: String,
    /// The request as the user wrote it (length sentence included, no chat template).
    pub prompt: String,
    /// The model's label.
    pub system: String,
    /// Thinking stripped.
    pub story: String,
    #[serde(default)]
    pub thinking: Option<String>,
    #[serde(default)]
    pub requested_words: Option<usize>,
    /// Which of the prompt's samples: its random stream.
    pub sample: usize,
    pub words: usize,
    #[serde(default)]
    pub length_ratio: Option<f64>,
    /// How generation ended (None for stories read with `--gens`).
    #[serde(default)]
    pub finish: Option<Finish>,
    /// Generated tokens, thinking included.
    #[serde(default)]
    pub tokens: usize,
    #[serde(default)]
    pub thinking_tokens: usize,
    #[serde(default)]
    pub forced_think_close: bool,
    /// The prompt's sampling seed (derived from --seed and the prompt uid).
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub seconds: f64,
}

impl StoryRecord {
    /// What identifies the story within an evaluation.
    pub fn key(&self) -> StoryKey {
        (self.system.clone(), self.prompt_uid.clone(), self.sample)
    }
}

/// (model, prompt uid, sample)
pub type StoryKey = (String, String, usize);

/// One judgement of one story.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JudgementRecord {
    pub model: String,
    #[serde(rename = "uid", alias = "prompt_uid")]
    pub prompt_uid: String,
    pub sample: usize,
    /// Of the story judged: a judgement of a story since changed (a `--gens` file edited)
    /// no longer counts and the story is judged again.
    pub story_sha256: String,
    /// Story Quality (the rubric's overall / divisor); None when the judgement failed.
    pub sq: Option<f64>,
    pub error: Option<String>,
    /// The judge's result as it came: scores, justifications, usage.
    pub result: JudgeResult,
    /// The hash of the principles the judge scored with; absent without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principles: Option<String>,
}

impl JudgementRecord {
    pub fn new(story: &StoryRecord, result: JudgeResult, principles: Option<String>) -> Self {
        let (sq, error) = match &result.outcome {
            Ok(j) => (Some(j.story_quality), None),
            Err(e) => (None, Some(e.clone())),
        };
        Self {
            model: story.system.clone(),
            prompt_uid: story.prompt_uid.clone(),
            sample: story.sample,
            story_sha256: story_digest(&story.story),
            sq,
            error,
            result,
            principles,
        }
    }

    pub fn key(&self) -> StoryKey {
        (self.model.clone(), self.prompt_uid.clone(), self.sample)
    }
}

pub fn story_digest(story: &str) -> String {
    crate::reward::rubric::hex(&Sha256::digest(story.as_bytes()))
}
