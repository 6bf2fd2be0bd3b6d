//! Which pairs `eval elo` judges: stories from any number of generation files, grouped by
//! system (field `system`) and matched across systems by `uid` (or its alias `prompt_uid`).
//!
//! Several stories per (prompt, system) — K samples from `eval length`, or records simply
//! repeated — are numbered 0, 1, ... in reading order (files in the order given, lines in
//! file order), and sample i of one system is paired with sample i of the other. Samples are
//! draws from the same distribution, so any one-to-one pairing is fair; by index it is
//! stable across re-runs. Samples one system has and the other lacks, and prompts some
//! system lacks, are skipped and counted (`Matchup::skipped`), never silently.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Result};

use super::store::PairKey;
use crate::generate::file::read_generations;

/// The most lines a warning or error lists before counting the rest.
const LISTED: usize = 20;

/// One prompt and every system's stories for it.
#[derive(Debug, Clone)]
pub struct PromptStories {
    pub uid: String,
    pub prompt: String,
    /// `stories[system][sample]`.
    pub stories: Vec<Vec<Arc<str>>>,
}

/// One pair to judge: sample `sample` of systems `a` and `b` (a < b) for prompt `prompt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PairTask {
    pub prompt: usize,
    pub sample: usize,
    pub a: usize,
    pub b: usize,
}

#[derive(Debug, Clone)]
pub struct Matchup {
    /// In order of first appearance.
    pub systems: Vec<String>,
    /// In order of first appearance.
    pub prompts: Vec<PromptStories>,
    /// Every pair there is to judge, prompt by prompt.
    pub tasks: Vec<PairTask>,
    /// Pairs that could not be formed, and why (one line per prompt and system pair).
    pub skipped: usize,
    pub skipped_reasons: Vec<String>,
}

impl Matchup {
    /// Reads the files and forms the pairs. Errors: an unreadable or bad file (named by
    /// `read_generations`), fewer than two systems, one uid with different prompt
    /// texts, and no prompt shared by any two systems.
    pub fn read(files: &[PathBuf]) -> Result<Self> {
        let mut systems: Vec<String> = Vec::new();
        let mut prompts: Vec<PromptStories> = Vec::new();
        let mut by_uid: HashMap<String, usize> = HashMap::new();
        // where each prompt's text was first read, for the mismatch error
        let mut first_seen: Vec<(PathBuf, usize)> = Vec::new();
        let mut mismatched = Vec::new();
        for (i, path) in files.iter().enumerate() {
            let real = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
            if files[..i].iter().any(|p| real(p) == real(path)) {
                bail!("{} is given twice in --gens; its stories would count twice", path.display());
            }
            for g in read_generations(path)? {
                let s = match systems.iter().position(|x| *x == g.system) {
                    Some(s) => s,
                    None => {
                        systems.push(g.system.clone());
                        for p in &mut prompts {
                            p.stories.push(Vec::new());
                        }
                        systems.len() - 1
                    }
                };
                let k = *by_uid.entry(g.prompt_uid.clone()).or_insert_with(|| {
                    prompts.push(PromptStories {
                        uid: g.prompt_uid.clone(),
                        prompt: g.prompt.clone(),
                        stories: vec![Vec::new(); systems.len()],
                    });
                    first_seen.push((path.clone(), g.line));
                    prompts.len() - 1
                });
                if prompts[k].prompt.trim() != g.prompt.trim() {
                    let (p0, l0) = &first_seen[k];
                    mismatched.push(format!(
                        "uid `{}`: {}:{l0} and {}:{} have different `prompt` texts",
                        g.prompt_uid,
                        p0.display(),
                        path.display(),
                        g.line
                    ));
                    continue;
                }
                prompts[k].stories[s].push(Arc::from(g.story.as_str()));
            }
        }
        if !mismatched.is_empty() {
            bail!(
                "{} mismatched prompt(s); one uid must name one prompt in every file:\n{}",
                mismatched.len(),
                listing(&mismatched)
            );
        }
        if systems.len() < 2 {
            bail!(
                "{} hold{} only system `{}`; an Elo ladder compares at least two systems (field `system`): \
                 give another system's generation file",
                names(files),
                if files.len() == 1 { "s" } else { "" },
                systems.first().map_or("", String::as_str)
            );
        }
        let mut tasks = Vec::new();
        let mut skipped = 0;
        let mut skipped_reasons = Vec::new();
        for (k, p) in prompts.iter().enumerate() {
            for a in 0..systems.len() {
                for b in a + 1..systems.len() {
                    let (na, nb) = (p.stories[a].len(), p.stories[b].len());
                    for sample in 0..na.min(nb) {
                        tasks.push(PairTask { prompt: k, sample, a, b });
                    }
                    if na != nb {
                        skipped += na.max(nb) - na.min(nb);
                        skipped_reasons.push(format!(
                            "uid `{}`: `{}` has {na} stor{}, `{}` has {nb}",
                            p.uid,
                            systems[a],
                            if na == 1 { "y" } else { "ies" },
                            systems[b]
                        ));
                    }
                }
            }
        }
        if tasks.is_empty() {
            bail!(
                "no uid has stories from two systems in {}: nothing to judge; the files must hold \
                 stories for the same prompts (field uid)",
                names(files)
            );
        }
        Ok(Self { systems, prompts, tasks, skipped, skipped_reasons })
    }

    /// The warning for skipped pairs, if any.
    pub fn skipped_warning(&self) -> Option<String> {
        (self.skipped > 0).then(|| {
            format!(
                "warning: {} pair(s) skipped, a story missing on one side (sample i is paired with sample i):\n{}",
                self.skipped,
                listing(&self.skipped_reasons)
            )
        })
    }

    /// Every task's (prompt_uid, sample, a, b), as `judgements.jsonl` keys its records.
    pub fn keys(&self) -> std::collections::HashSet<PairKey> {
        self.tasks
            .iter()
            .map(|t| {
                let (a, b) = (self.systems[t.a].clone(), self.systems[t.b].clone());
                (self.prompts[t.prompt].uid.clone(), t.sample, a, b)
            })
            .collect()
    }

    pub fn system_index(&self, name: &str) -> Option<usize> {
        self.systems.iter().position(|s| s == name)
    }
}

fn names(files: &[PathBuf]) -> String {
    files.iter().map(|p: &PathBuf| Path::display(p).to_string()).collect::<Vec<_>>().join(", ")
}

fn listing(lines: &[String]) -> String {
    let mut out: Vec<String> = lines.iter().take(LISTED).map(|l| format!("  {l}")).collect();
    if lines.len() > LISTED {
        out.push(format!("  ... and {} more", lines.len() - LISTED));
    }
    out.join("\n")
}
