//! The stories to score (generation files, the project's JSONL vocabulary: `uid` (or `prompt_uid`),
//! `prompt`, `system`, `story`; a release config may name other fields) and the prompt set's
//! per-prompt fields a task needs: LongBench-Write's `target_length`, WritingBench's
//! `checklist`. Looked up as the release looks them up: on the story's own record first,
//! then the prompt set's record of the same id (WritingBench also matches a prompt set
//! record whose `sft_prompt` opens with the same 100 characters as the story's prompt).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::{Map, Value};

use super::{Item, Task};
use crate::durable::jsonl::{jsonl_lines, kind, Problems};
use crate::generate::file::{UID, UID_ALIAS};

/// Which fields of a generation record hold what.
#[derive(Debug, Clone, PartialEq)]
pub struct InputFields {
    /// The prompt id (`uid`, or its alias `prompt_uid`, when not named; a named field the
    /// records lack falls back to those, so the release's `id` reads the project's files).
    pub id: Option<String>,
    pub prompt: String,
    pub story: String,
    /// The system's name where a record has no `system` (the release's `default_model_name`).
    pub default_system: Option<String>,
}

impl Default for InputFields {
    fn default() -> Self {
        Self { id: None, prompt: "prompt".into(), story: "story".into(), default_system: None }
    }
}

/// A prompt set: records by id.
#[derive(Debug, Default)]
pub struct PromptSet {
    pub path: Option<PathBuf>,
    by_id: HashMap<String, Map<String, Value>>,
    /// In file order, for WritingBench's `sft_prompt` match.
    rows: Vec<(String, Map<String, Value>)>,
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl PromptSet {
    /// Reads a prompt set; its ids are in `id_field` (the release's `prompts_id_field`,
    /// default `uid`), else `prompt_uid` or `id`.
    pub fn read(path: &Path, id_field: &str) -> Result<Self> {
        let mut set = PromptSet { path: Some(path.to_path_buf()), ..Self::default() };
        let mut problems = Problems::default();
        let lines = jsonl_lines(path)?;
        for (number, parsed) in &lines {
            let location = format!("{}:{number}", path.display());
            let Some(obj) = problems.object(&location, parsed) else { continue };
            let id = [id_field, "uid", "prompt_uid", "id"].iter().find_map(|f| obj.get(*f).and_then(id_text));
            match id {
                Some(id) => {
                    set.by_id.insert(id.clone(), obj.clone());
                    set.rows.push((id, obj.clone()));
                }
                None => problems.record(
                    &location,
                    vec![format!("no prompt id: give field `{id_field}` (a string or an integer)")],
                ),
            }
        }
        problems.check(path, lines.len())?;
        Ok(set)
    }

    fn get(&self, id: &str) -> Option<&Map<String, Value>> {
        self.by_id.get(id)
    }

    /// WritingBench's fallback: the first record whose `sft_prompt` opens like `prompt`.
    fn by_prompt_head(&self, prompt: &str) -> Option<&Map<String, Value>> {
        let head: String = prompt.chars().take(100).collect();
        self.rows.iter().map(|(_, r)| r).find(|r| {
            let sft = r.get("sft_prompt").and_then(Value::as_str).unwrap_or("");
            sft.chars().take(100).collect::<String>() == head
        })
    }
}

/// What reading found besides the items.
#[derive(Debug, Default)]
pub struct Read {
    pub items: Vec<Item>,
    /// Systems in first-seen order.
    pub systems: Vec<String>,
    /// Stories no judge can score (WritingBench without a checklist), by (system, uid).
    pub unscorable: Vec<(String, String)>,
    /// LongBench-Write stories without a target length (S_l and S left empty).
    pub no_target: usize,
}

fn number_of(v: &Value) -> Option<f64> {
    v.as_f64().filter(|f| f.is_finite())
}

/// Reads the generation files into items.
pub fn read(task: Task, gens: &[PathBuf], fields: &InputFields, prompts: &PromptSet) -> Result<Read> {
    let mut out = Read::default();
    let mut samples: HashMap<(String, String), usize> = HashMap::new();
    for path in gens {
        let lines = jsonl_lines(path)?;
        let mut problems = Problems::default();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        for (number, parsed) in &lines {
            let location = format!("{}:{number}", path.display());
            let Some(obj) = problems.object(&location, parsed) else { continue };
            let mut bad = vec![];
            let named = fields
                .id
                .as_deref()
                .filter(|f| obj.contains_key(*f))
                .or_else(|| [UID, UID_ALIAS].into_iter().find(|f| obj.contains_key(*f)))
                .unwrap_or(UID);
            let uid = obj.get(named).and_then(id_text);
            if uid.is_none() {
                bad.push(format!(
                    "missing or empty field `{named}` (the prompt's id: a string or an integer){}",
                    fields.id.as_deref().map_or(String::new(), |f| format!("; nor has it `{f}`"))
                ));
            }
            let mut text = |name: &str| match obj.get(name) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(v) => {
                    bad.push(format!("field `{name}` must be a string, found {}", kind(v)));
                    None
                }
                None => {
                    bad.push(format!("missing field `{name}`"));
                    None
                }
            };
            let (prompt, story) = (text(&fields.prompt), text(&fields.story));
            let system = match obj.get("system") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                Some(v) if !v.is_null() => {
                    bad.push(format!("field `system` must be a non-empty string, found {v}"));
                    String::new()
                }
                _ => fields.default_system.clone().unwrap_or_else(|| stem.clone()),
            };
            let (Some(uid), Some(prompt), Some(story), true) = (uid, prompt, story, bad.is_empty()) else {
                problems.record(&location, bad);
                continue;
            };
            let row_of_set = prompts.get(&uid);
            let target_length = obj
                .get("target_length")
                .and_then(number_of)
                .or_else(|| row_of_set.and_then(|r| r.get("target_length")).and_then(number_of));
            let checklist = match task {
                Task::WritingBench => {
                    let own = obj.get("checklist").and_then(Value::as_array).filter(|c| !c.is_empty());
                    let found = own.cloned().or_else(|| {
                        row_of_set
                            .or_else(|| prompts.by_prompt_head(&prompt))
                            .and_then(|r| r.get("checklist"))
                            .and_then(Value::as_array)
                            .cloned()
                    });
                    found.unwrap_or_default()
                }
                _ => vec![],
            };
            if task == Task::WritingBench {
                if let Some(i) = checklist.iter().position(|c| !c.is_object() || c.get("name").is_none()) {
                    problems.record(
                        &location,
                        vec![format!("checklist criterion {i} is not an object with a `name` (the release reads criterion[\"name\"])")],
                    );
                    continue;
                }
                if checklist.is_empty() {
                    out.unscorable.push((system.clone(), uid.clone()));
                }
            }
            if task == Task::LongbenchWrite && target_length.is_none() {
                out.no_target += 1;
            }
            if !out.systems.contains(&system) {
                out.systems.push(system.clone());
            }
            let n = samples.entry((system.clone(), uid.clone())).or_default();
            out.items.push(Item {
                system,
                prompt_uid: uid,
                sample: *n,
                prompt,
                story,
                target_length,
                checklist,
            });
            *n += 1;
        }
        problems.check(path, lines.len())?;
    }
    if out.items.is_empty() {
        bail!(
            "{}: no stories; write one JSON object per line with prompt_uid, prompt, system, story",
            gens.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(out)
}
