//! What one generation produced, in the form scripts and later tools read.

use serde::{Deserialize, Serialize};

use super::engine::{Finish, Output};
use super::length::{count_words, length_ratio};
use crate::chat::{opens_thinking, split_thinking};
use crate::lm::LanguageModel;

/// One completion. The first seven fields are the documented `generate --json` record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerationRecord {
    pub prompt_token_ids: Vec<u32>,
    pub token_ids: Vec<u32>,
    pub thinking: Option<String>,
    pub story: String,
    pub words: usize,
    pub length_ratio: Option<f64>,
    pub tokens_per_second: f64,
    /// The prompt as the model saw it (chat template applied).
    pub prompt: String,
    pub requested_words: Option<usize>,
    pub finish: Finish,
    pub thinking_tokens: usize,
    pub forced_think_close: bool,
}

impl GenerationRecord {
    /// Decodes `output`, splits thinking from story and measures the story.
    pub fn new(
        lm: &LanguageModel,
        prompt: &str,
        prompt_ids: &[u32],
        output: &Output,
        requested_words: Option<usize>,
        seconds: f64,
    ) -> anyhow::Result<Self> {
        let text = lm.tokenizer.decode(&output.tokens, true)?;
        let split = split_thinking(&text, opens_thinking(prompt));
        let words = count_words(&split.story);
        Ok(Self {
            prompt_token_ids: prompt_ids.to_vec(),
            token_ids: output.tokens.clone(),
            thinking: split.thinking,
            story: split.story,
            words,
            length_ratio: requested_words.and_then(|r| length_ratio(words, r)),
            tokens_per_second: if seconds > 0.0 { output.tokens.len() as f64 / seconds } else { 0.0 },
            prompt: prompt.to_string(),
            requested_words,
            finish: output.finish,
            thinking_tokens: output.thinking_tokens,
            forced_think_close: output.forced_think_close,
        })
    }
}
