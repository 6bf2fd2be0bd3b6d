//! A study's items: two systems' generation files (`generate::file`) matched by prompt uid.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::generate::count_words;
use crate::generate::file::Generation;

/// The most problems a pairing error lists before counting the rest.
const LISTED: usize = 20;

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
    /// Written `uid`, the project's name for a prompt's id; `prompt_uid` (older studies) is read too.
    #[serde(rename = "uid", alias = "prompt_uid")]
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
                "uid `{}`: {}:{} and {}:{} have different `prompt` texts",
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
    let lines: Vec<String> =
        unmatched.iter().map(|(uid, path)| format!("uid `{uid}` only in {}", path.display())).collect();
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
            format!("uid `{uid}` appears {} times: {}", l.len(), at.join(", "))
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
