//! Generation files: one JSONL record per story, the form `generate --json` writes and
//! `judge --input`, `annotate` and `eval` read.
//!
//! A record needs `uid` (the prompt's id: string or integer; `prompt_uid`, the name older
//! files use, is read as the same field), `prompt` (as the user wrote it, no chat template),
//! `system` and `story`; `thinking` and `requested_words` are optional (the latter is read
//! from the prompt's `N words long` when absent). Other fields, such as the rest of a
//! `generate --json` record, are ignored.

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::length::requested_words;
use super::record::GenerationRecord;
use crate::durable::jsonl::{jsonl_lines, kind, opt_string, Problems};

/// The field that names a prompt in every JSONL of the project, and the older name read as
/// the same field.
pub const UID: &str = "uid";
pub const UID_ALIAS: &str = "prompt_uid";

/// One system's story for one prompt, as read from a generation file.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub prompt_uid: String,
    pub prompt: String,
    pub system: String,
    pub story: String,
    pub thinking: Option<String>,
    pub requested_words: Option<usize>,
    /// 1-based line in its file, for error messages.
    pub line: usize,
}

/// Reads a generation file, naming `FILE:LINE: field ...` for every bad record.
pub fn read_generations(path: &Path) -> Result<Vec<Generation>> {
    let lines = jsonl_lines(path)?;
    let mut generations = Vec::new();
    let mut problems = Problems::default();
    for (number, parsed) in &lines {
        let location = format!("{}:{number}", path.display());
        match parsed.as_ref().map_err(|e| vec![e.clone()]).and_then(|obj| parse_record(obj, *number)) {
            Ok(g) => generations.push(g),
            Err(p) => problems.record(&location, p),
        }
    }
    problems.check(path, lines.len())?;
    if generations.is_empty() {
        bail!(
            "{}: no records; write one JSON object per line with uid, prompt, system, story",
            path.display()
        );
    }
    Ok(generations)
}

/// The record's prompt uid as text: `uid`, else `prompt_uid`; both present must agree.
/// `Ok(None)` when neither is there.
pub fn prompt_uid(obj: &Map<String, Value>) -> Result<Option<String>, String> {
    let text = |name: &str| match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(v) => Err(format!("field `{name}` must be a non-empty string or an integer, found {v}")),
    };
    match (text(UID)?, text(UID_ALIAS)?) {
        (Some(a), Some(b)) if a != b => {
            Err(format!("fields `{UID}` ({a}) and `{UID_ALIAS}` ({b}) disagree; keep `{UID}` only"))
        }
        (a, b) => Ok(a.or(b)),
    }
}

/// One record, or every problem it has.
fn parse_record(obj: &Map<String, Value>, number: usize) -> Result<Generation, Vec<String>> {
    let mut problems = Vec::new();
    let prompt_uid = match prompt_uid(obj) {
        Ok(Some(uid)) => uid,
        Ok(None) => {
            problems.push(format!("missing field `{UID}` (the id that matches this prompt across systems)"));
            String::new()
        }
        Err(e) => {
            problems.push(e);
            String::new()
        }
    };
    let mut text = |name: &str| match obj.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            problems.push(format!("field `{name}` must be a string, found {}", kind(v)));
            String::new()
        }
        None => {
            problems.push(format!("missing field `{name}`"));
            String::new()
        }
    };
    let (prompt, system, story) = (text("prompt"), text("system"), text("story"));
    if obj.get("system").is_some_and(Value::is_string) && system.trim().is_empty() {
        problems.push("field `system` is empty; name the system that wrote the story".into());
    }
    let thinking = opt_string(obj, "thinking").unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    let requested = match obj.get("requested_words") {
        None | Some(Value::Null) => requested_words(&prompt),
        Some(v) => match v.as_u64().filter(|&w| w > 0) {
            Some(w) => Some(w as usize),
            None => {
                problems
                    .push(format!("field `requested_words` must be a positive integer or null, found {v}"));
                None
            }
        },
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Generation { prompt_uid, prompt, system, story, thinking, requested_words: requested, line: number })
}

/// The uid `generate --json` gives a prompt when none is asked for: the first 16 hex digits
/// of SHA-256 of the prompt as written, so two systems given the same prompt match.
pub fn default_uid(prompt: &str) -> String {
    let digest = Sha256::digest(prompt.as_bytes());
    format!("{:016x}", u64::from_be_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes")))
}

/// A `generate --json` line: the record's fields, with `uid`, `system` and `prompt` (as
/// written, no chat template) that `judge --input`, `annotate` and `eval` read, and the
/// templated prompt the model saw as `chat_prompt`.
pub fn generation_line(record: &GenerationRecord, uid: &str, system: &str, prompt: &str) -> Result<Value> {
    let Value::Object(fields) = serde_json::to_value(record)? else {
        bail!("a generation record serialises to a JSON object");
    };
    let mut line = Map::new();
    line.insert(UID.into(), uid.into());
    line.insert("system".into(), system.into());
    line.insert("prompt".into(), prompt.into());
    for (k, v) in fields {
        let key = if k == "prompt" { "chat_prompt".to_string() } else { k };
        line.insert(key, v);
    }
    Ok(Value::Object(line))
}
