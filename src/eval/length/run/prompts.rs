//! The prompts to evaluate, from a training-dataset file (`uid`, `prompt`,
//! `target_word_count`: the held-out prompts are one) or from a generation file
//! (`uid`, `prompt`, `system`, `story`: the prompts some other system answered).
//! The requested length is the prompt's `N words long`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};

use crate::durable::jsonl::jsonl_lines;
use crate::generate::file::read_generations;
use crate::train::data;

#[derive(Debug, Clone, PartialEq)]
pub struct EvalPrompt {
    pub uid: String,
    pub prompt: String,
    /// None when the prompt asks for no length.
    pub requested_words: Option<usize>,
}

/// Reads either format, told apart by the first record's fields.
pub fn read_prompts(path: &Path) -> Result<Vec<EvalPrompt>> {
    if !path.is_file() {
        bail!("--prompts {}: no such file; give a dataset JSONL (uid, prompt, target_word_count) or a generation file", path.display());
    }
    let lines = jsonl_lines(path)?;
    let Some((n, first)) = lines.first() else {
        bail!("--prompts {}: no records (the file is empty)", path.display());
    };
    // both name the prompt `uid` (a generation file may say `prompt_uid`); only a generation
    // record names the system that wrote its story
    let is_dataset = match first {
        Ok(obj) if obj.contains_key("system") => false,
        Ok(obj) if obj.contains_key("uid") => true,
        Ok(_) => bail!(
            "{}:{n}: neither a dataset record (uid, prompt, target_word_count) nor a generation record \
             (uid, prompt, system, story)",
            path.display()
        ),
        Err(e) => bail!("{}:{n}: {e}", path.display()),
    };
    if is_dataset {
        return Ok(data::load(path)?
            .into_iter()
            .map(|e| EvalPrompt { uid: e.uid, prompt: e.prompt, requested_words: Some(e.target_word_count) })
            .collect());
    }
    // a generation file may hold several samples or systems per prompt: each uid once
    let mut seen: HashMap<String, (usize, String)> = HashMap::new();
    let mut prompts = Vec::new();
    for g in read_generations(path)? {
        match seen.get(&g.prompt_uid) {
            Some((_, p)) if p.trim() == g.prompt.trim() => {}
            Some((line, _)) => bail!(
                "{}:{}: uid `{}` has a different prompt than on line {line}; one uid, one prompt",
                path.display(),
                g.line,
                g.prompt_uid
            ),
            None => {
                seen.insert(g.prompt_uid.clone(), (g.line, g.prompt.clone()));
                prompts.push(EvalPrompt {
                    uid: g.prompt_uid,
                    prompt: g.prompt,
                    requested_words: g.requested_words,
                });
            }
        }
    }
    Ok(prompts)
}
