//! tokenizer.json through the `tokenizers` crate, plus the special tokens named in
//! tokenizer_config.json, and incremental decoding for streaming.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// tokenizer_config.json, when the directory has one
    pub config: Option<Value>,
}

impl Tokenizer {
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            anyhow::bail!(
                "{}: missing tokenizer.json; the model directory needs the Hugging Face fast tokenizer file",
                dir.display()
            );
        }
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| anyhow!("{}: cannot read the tokenizer: {e}", path.display()))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let config = if cfg_path.exists() {
            let text = std::fs::read_to_string(&cfg_path)
                .with_context(|| format!("cannot read {}", cfg_path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not valid JSON", cfg_path.display()))?,
            )
        } else {
            None
        };
        Ok(Self { inner, config })
    }

    pub fn from_parts(inner: tokenizers::Tokenizer, config: Option<Value>) -> Self {
        Self { inner, config }
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Token ids of `text`. `add_special_tokens` applies the tokenizer's post-processor
    /// (e.g. BOS); special tokens written in the text are recognised either way.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc =
            self.inner.encode(text, add_special_tokens).map_err(|e| anyhow!("tokenizing failed: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner.decode(ids, skip_special_tokens).map_err(|e| anyhow!("decoding failed: {e}"))
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// A special token named in tokenizer_config.json (`bos_token`, `eos_token`, ...):
    /// its text, which may be stored as a string or as {"content": ...}.
    pub fn config_token(&self, key: &str) -> Option<String> {
        let v = self.config.as_ref()?.get(key)?;
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
            _ => None,
        }
    }
}

/// Turns generated ids into text as they arrive, holding back bytes of an incomplete
/// UTF-8 character. Decodes a short window, not the whole sequence, per token.
pub struct TokenStream<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    prev: usize,
    current: usize,
}

impl<'a> TokenStream<'a> {
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        Self { tokenizer, ids: Vec::new(), prev: 0, current: 0 }
    }

    /// Adds one id; returns the text it completes, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        let before = self.tokenizer.decode(&self.ids[self.prev..self.current], false)?;
        self.ids.push(id);
        let after = self.tokenizer.decode(&self.ids[self.prev..], false)?;
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') {
            let text = after[before.len()..].to_string();
            self.prev = self.current;
            self.current = self.ids.len();
            Ok(Some(text))
        } else {
            Ok(None)
        }
    }
}
