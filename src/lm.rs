//! A model directory opened as one unit: weights, tokenizer, chat template, end tokens.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};

use crate::chat::{ChatTemplate, Message};
use crate::generate::{self, Output, Request, SamplingParams, ThinkTokens, TokenEvent};
use crate::model::{config::token_id_list, tiny, LoadOptions, Model};
use crate::tokenize::Tokenizer;

pub struct LanguageModel {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub chat: ChatTemplate,
    /// Ids that end a response: config and generation_config eos ids, the tokenizer's
    /// eos token, and `<|im_end|>` when the template writes it.
    pub stop_ids: Vec<u32>,
    pub think: Option<ThinkTokens>,
    pub dir: PathBuf,
}

impl LanguageModel {
    /// `tiny` for the built-in model, otherwise a Hugging Face model directory.
    pub fn open(spec: &str, opts: &LoadOptions) -> Result<Self> {
        let dir = if spec == "tiny" { tiny::ensure()? } else { PathBuf::from(spec) };
        Self::from_dir(&dir, opts)
    }

    pub fn from_dir(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        if !dir.is_dir() {
            bail!(
                "{}: no such model directory (give a Hugging Face model directory, or `tiny`)",
                dir.display()
            );
        }
        let model = Model::load_dir(dir, opts)?;
        let (tokenizer, chat) = text_codec(dir)?;
        let model_vocab = model.config().vocab_size;
        if tokenizer.vocab_size() > model_vocab {
            bail!(
                "{}: tokenizer.json has {} tokens but config.json's vocab_size is {model_vocab}; the tokenizer belongs to another model",
                dir.display(),
                tokenizer.vocab_size()
            );
        }
        let mut stop_ids = model.config().eos_token_ids.clone();
        let gen_cfg = dir.join("generation_config.json");
        if gen_cfg.exists() {
            let text = std::fs::read_to_string(&gen_cfg)?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", gen_cfg.display()))?;
            stop_ids.extend(
                token_id_list(json.get("eos_token_id"), "eos_token_id")
                    .with_context(|| format!("in {}", gen_cfg.display()))?,
            );
        }
        if let Some(id) = tokenizer.config_token("eos_token").and_then(|t| tokenizer.token_id(&t)) {
            stop_ids.push(id);
        }
        if chat.mentions("<|im_end|>") {
            stop_ids.extend(tokenizer.token_id("<|im_end|>"));
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();
        let think =
            match (tokenizer.token_id(crate::chat::THINK_OPEN), tokenizer.token_id(crate::chat::THINK_CLOSE))
            {
                (Some(open), Some(close)) => Some(ThinkTokens { open, close }),
                _ => None,
            };
        Ok(Self { model, tokenizer, chat, stop_ids, think, dir: dir.to_path_buf() })
    }

    /// The prompt text and ids for a user message. `raw` tokenizes `text` as it is (with
    /// the tokenizer's own special-token rules); otherwise the chat template renders it.
    pub fn prompt(&self, text: &str, raw: bool, thinking: bool) -> Result<(String, Vec<u32>)> {
        if raw {
            return Ok((text.to_string(), self.tokenizer.encode(text, true)?));
        }
        let rendered = self.chat.render(&[Message::user(text)], true, thinking)?;
        // The template writes any BOS itself; plain fallback lets the tokenizer add it.
        let ids = self.tokenizer.encode(&rendered, self.chat.is_plain())?;
        Ok((rendered, ids))
    }

    /// Samples `n` completions of one prompt.
    pub fn generate(
        &self,
        prompt_ids: &[u32],
        n: usize,
        params: &SamplingParams,
        on_token: &mut dyn FnMut(TokenEvent),
        cancel: &AtomicBool,
    ) -> Result<Vec<Output>> {
        let req = Request::group(prompt_ids.to_vec(), n, params.clone(), self.stop_ids.clone(), self.think);
        generate::generate(&self.model, &req, on_token, cancel)
    }

    /// The text that ends a response: `<|im_end|>` for ChatML templates, else the eos token.
    pub fn end_text(&self) -> String {
        end_text(&self.tokenizer, &self.chat)
    }

    /// Ids of a teacher-forced response after `prompt` (as rendered): with thinking,
    /// `<think>\n{reasoning}\n</think>\n{story}{end}` (RECIPE.md), where an opening tag
    /// already at the end of the prompt is not repeated; without, `{story}{end}`.
    pub fn response_ids(
        &self,
        prompt: &str,
        thinking: bool,
        reasoning: Option<&str>,
        story: &str,
    ) -> Result<Vec<u32>> {
        response_ids(&self.tokenizer, &self.chat, prompt, thinking, reasoning, story)
    }
}

/// The tokenizer and chat template of a model directory, without its weights: what
/// tokenising a dataset needs (`data check --model`).
pub fn text_codec(dir: &Path) -> Result<(Tokenizer, ChatTemplate)> {
    let tokenizer = Tokenizer::from_dir(dir)?;
    let chat = ChatTemplate::from_dir(dir, tokenizer.config.as_ref())?;
    Ok((tokenizer, chat))
}

/// `LanguageModel::end_text` from the tokenizer and template alone.
pub fn end_text(tokenizer: &Tokenizer, chat: &ChatTemplate) -> String {
    if chat.mentions("<|im_end|>") && tokenizer.token_id("<|im_end|>").is_some() {
        return "<|im_end|>".to_string();
    }
    tokenizer.config_token("eos_token").unwrap_or_default()
}

/// `LanguageModel::response_ids` from the tokenizer and template alone.
pub fn response_ids(
    tokenizer: &Tokenizer,
    chat: &ChatTemplate,
    prompt: &str,
    thinking: bool,
    reasoning: Option<&str>,
    story: &str,
) -> Result<Vec<u32>> {
    let end = end_text(tokenizer, chat);
    let reasoning = reasoning.unwrap_or("").trim();
    let text = if crate::chat::opens_thinking(prompt) {
        format!("{reasoning}\n</think>\n{story}{end}")
    } else if thinking {
        format!("<think>\n{reasoning}\n</think>\n{story}{end}")
    } else {
        format!("{story}{end}")
    };
    tokenizer.encode(&text, false)
}
