//! Generation files: one JSONL record per story, matched across systems by prompt uid.
//!
//! A record needs `prompt_uid` (string or integer), `prompt`, `system` and `story`;
//! `thinking` and `requested_words` are optional (the latter is read from the prompt's
//! `N words long` when absent). Other fields, such as the rest of a `generate --json`
//! record, are ignored.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::durable::jsonl::{jsonl_lines, kind, opt_string, Problems};
use crate::generate::{count_words, requested_words};

/// The most problems a pairing error lists before counting the rest.
const LISTED: usize = 20;

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

/// One system's story inside a study item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Story {
    pub system: String,
    pub text: String,
    pub thinking: Option<String>,
    pub words: usize,
}

/// One prompt and the two stories to compare; `stories[0]` is system A's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub prompt_uid: String,
    pub prompt: String,
    pub requested_words: Option<usize>,
    pub stories: [Story; 2],
}

impl Item {
    pub fn story(&self, system: &str) -> Option<&Story> {
        self.stories.iter().find(|s| s.system == system)
    }
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
            "{}: no records; write one JSON object per line with prompt_uid, prompt, system, story",
            path.display()
        );
    }
    Ok(generations)
}

/// One record, or every problem it has.
fn parse_record(obj: &Map<String, Value>, number: usize) -> Result<Generation, Vec<String>> {
    let mut problems = Vec::new();
    let prompt_uid = match obj.get("prompt_uid") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        Some(v) => {
            problems.push(format!("field `prompt_uid` must be a non-empty string or an integer, found {v}"));
            String::new()
        }
        None => {
            problems
                .push("missing field `prompt_uid` (the id that matches this prompt across systems)".into());
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

fn listing(lines: &[String]) -> String {
    let mut out: Vec<String> = lines.iter().take(LISTED).map(|l| format!("  {l}")).collect();
    if lines.len() > LISTED {
        out.push(format!("  ... and {} more", lines.len() - LISTED));
    }
    out.join("\n")
}

/// The result of matching two generation files by prompt uid.
#[derive(Debug)]
pub struct Pairing {
    /// In the order of file A.
    pub items: Vec<Item>,
    /// Prompt uids only one side has: (uid, the file that has it).
    pub unmatched: Vec<(String, PathBuf)>,
}

/// Matches A's and B's stories by prompt uid. Duplicate uids, a file mixing systems, the
/// same system on both sides and uids whose prompts differ are errors; uids only one side
/// has are returned in `unmatched` for the caller to refuse or report.
pub fn pair_generations(a: &Path, gens_a: &[Generation], b: &Path, gens_b: &[Generation]) -> Result<Pairing> {
    let system_a = one_system(a, gens_a)?;
    let system_b = one_system(b, gens_b)?;
    if system_a == system_b {
        bail!(
            "{} and {} both hold system `{system_a}`; compare two different systems (field `system`)",
            a.display(),
            b.display()
        );
    }
    let by_uid_a = index_uids(a, gens_a)?;
    let by_uid_b = index_uids(b, gens_b)?;
    let mut errors = Vec::new();
    let mut items = Vec::new();
    let mut unmatched = Vec::new();
    for ga in gens_a {
        let Some(gb) = by_uid_b.get(ga.prompt_uid.as_str()) else {
            unmatched.push((ga.prompt_uid.clone(), a.to_path_buf()));
            continue;
        };
        if ga.prompt.trim() != gb.prompt.trim() {
            errors.push(format!(
                "prompt_uid `{}`: {}:{} and {}:{} have different `prompt` texts",
                ga.prompt_uid,
                a.display(),
                ga.line,
                b.display(),
                gb.line
            ));
            continue;
        }
        let requested = ga.requested_words.or(gb.requested_words);
        items.push(Item {
            prompt_uid: ga.prompt_uid.clone(),
            prompt: ga.prompt.clone(),
            requested_words: requested,
            stories: [story(ga), story(gb)],
        });
    }
    for gb in gens_b {
        if !by_uid_a.contains_key(gb.prompt_uid.as_str()) {
            unmatched.push((gb.prompt_uid.clone(), b.to_path_buf()));
        }
    }
    if !errors.is_empty() {
        bail!("{} mismatched prompt(s):\n{}", errors.len(), listing(&errors));
    }
    Ok(Pairing { items, unmatched })
}

/// Lists unmatched uids as an error message body.
pub fn describe_unmatched(unmatched: &[(String, PathBuf)]) -> String {
    let lines: Vec<String> = unmatched
        .iter()
        .map(|(uid, path)| format!("prompt_uid `{uid}` only in {}", path.display()))
        .collect();
    listing(&lines)
}

fn story(g: &Generation) -> Story {
    Story {
        system: g.system.clone(),
        text: g.story.clone(),
        thinking: g.thinking.clone(),
        words: count_words(&g.story),
    }
}

fn one_system(path: &Path, gens: &[Generation]) -> Result<String> {
    let first = &gens[0];
    let others: Vec<String> = gens
        .iter()
        .filter(|g| g.system != first.system)
        .map(|g| format!("{}:{}: field `system` is `{}`", path.display(), g.line, g.system))
        .collect();
    if !others.is_empty() {
        bail!(
            "{} mixes systems: line {} says `{}` but\n{}\nput each system's stories in its own file",
            path.display(),
            first.line,
            first.system,
            listing(&others)
        );
    }
    Ok(first.system.clone())
}

fn index_uids<'a>(path: &Path, gens: &'a [Generation]) -> Result<HashMap<&'a str, &'a Generation>> {
    let mut lines: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for g in gens {
        lines.entry(&g.prompt_uid).or_default().push(g.line);
    }
    let duplicates: Vec<String> = lines
        .iter()
        .filter(|(_, l)| l.len() > 1)
        .map(|(uid, l)| {
            let at: Vec<String> = l.iter().map(|n| format!("{}:{n}", path.display())).collect();
            format!("prompt_uid `{uid}` appears {} times: {}", l.len(), at.join(", "))
        })
        .collect();
    if !duplicates.is_empty() {
        bail!(
            "duplicate prompt uids in {} (each prompt once per system):\n{}",
            path.display(),
            listing(&duplicates)
        );
    }
    Ok(gens.iter().map(|g| (g.prompt_uid.as_str(), g)).collect())
}
