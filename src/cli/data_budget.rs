//! `data check --model DIR`: every reference tokenised as the trainer tokenises its row (the
//! chat template's response, thinking as the run has it), and a warning for each one longer
//! than the response budget, which training cuts to that budget (`train::group::reference_row`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::chat::Message;
use crate::lm::{response_ids, text_codec};
use crate::model::tiny;
use crate::train::config::TrainConfig;
use crate::train::data::Example;

/// What the references are measured against.
pub struct Budget {
    /// `tiny` or a model directory (only its tokenizer and chat template are read).
    pub model: String,
    /// Response tokens at most (`step.sampling.max_new_tokens`).
    pub max_new_tokens: usize,
    /// Whether the response opens with a think block (`step.thinking`).
    pub thinking: bool,
}

impl Budget {
    /// From the flags, over a run config's values when one is given, over the run defaults.
    pub fn resolve(
        model: Option<String>,
        max_new_tokens: Option<usize>,
        config: Option<&Path>,
    ) -> Result<Self> {
        let cfg = match config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                TrainConfig::parse(&text, &path.display().to_string(), &[])?
            }
            None => TrainConfig::default(),
        };
        let model = match (model, config) {
            (Some(m), _) => m,
            (None, Some(_)) => cfg.model.path.clone(),
            (None, None) => {
                bail!("give --model DIR (or `tiny`) to measure references in that model's tokens")
            }
        };
        let max_new_tokens = max_new_tokens.unwrap_or(cfg.step.sampling.max_new_tokens);
        if max_new_tokens == 0 {
            bail!("--max-new-tokens must be at least 1");
        }
        Ok(Self { model, max_new_tokens, thinking: cfg.step.thinking })
    }
}

/// Tokenises every reference of `examples` ((line, example) of `file`) and prints a warning
/// per reference over the budget, then a summary.
pub fn check(file: &Path, examples: &[(usize, Example)], budget: &Budget) -> Result<()> {
    let dir = if budget.model == "tiny" { tiny::ensure()? } else { PathBuf::from(&budget.model) };
    if !dir.is_dir() {
        bail!(
            "--model {}: no such model directory (give a Hugging Face model directory, or `tiny`)",
            dir.display()
        );
    }
    let (tokenizer, chat) = text_codec(&dir)?;
    let limit = budget.max_new_tokens;
    // (line, uid, response tokens) of each reference
    let mut lengths: Vec<(usize, &str, usize)> = Vec::new();
    for (n, e) in examples {
        let Some(story) = &e.story else { continue };
        let rendered = chat.render(&[Message::user(&e.prompt)], true, budget.thinking)?;
        let ids = response_ids(&tokenizer, &chat, &rendered, budget.thinking, e.reasoning.as_deref(), story)?;
        lengths.push((*n, &e.uid, ids.len()));
    }
    let f = file.display();
    let over: Vec<&(usize, &str, usize)> = lengths.iter().filter(|(_, _, len)| *len > limit).collect();
    for (n, uid, len) in &over {
        println!("warning: {f}:{n}: the reference of {uid} is {len} tokens, over the response budget of {limit}; training cuts {} of them", len - limit);
    }
    let thinking = if budget.thinking { "thinking on" } else { "thinking off" };
    let Some(longest) = lengths.iter().max_by_key(|(_, _, len)| *len) else {
        println!("no reference stories to measure against the response budget");
        return Ok(());
    };
    let (ln, luid, llen) = longest;
    println!(
        "response budget {limit} tokens ({}'s tokenizer, {thinking}): {} of {} references are over it; the longest is {llen} tokens ({f}:{ln}, {luid})",
        budget.model,
        over.len(),
        lengths.len()
    );
    if !over.is_empty() {
        println!(
            "training cuts each of them to {limit} tokens with no end token: the row reads as truncated and the rest of the story is never trained on; \
             rebuild with `data build --max-words` lower, or raise step.sampling.max_new_tokens"
        );
    }
    Ok(())
}
