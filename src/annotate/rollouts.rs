//! The run's own samples as blinded studies. Two comparisons answer the questions a POLARIS
//! researcher asks of a run:
//!
//! - **policy vs human**: for every prompt of the latest step with rollouts, the human
//!   reference that HRI injected against the policy's sample. Does the policy now write
//!   better than the human it learns from?
//! - **training**: for every prompt the earliest and the latest step both hold, the policy's
//!   sample at each. Did training help, as a reader judges it rather than the reward model?
//!
//! The policy's sample is its first row for the prompt in file order, never the best by
//! reward: letting the reward model pick would pre-select the stories it likes and inflate
//! the policy against the human judge. All items of a study compare the same two systems
//! (one step each), which the report needs to unblind by name.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::annotate::input::{Item, Story};
use crate::generate::{count_words, requested_words};

/// The system name of the human reference rows.
pub const HUMAN: &str = "human-reference";

/// The policy's system name at a step.
pub fn policy_at(step: usize) -> String {
    format!("policy@step-{step}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    PolicyVsHuman,
    Training,
}

impl Comparison {
    pub const ALL: [Comparison; 2] = [Comparison::PolicyVsHuman, Comparison::Training];

    /// The study's folder under `RUN_DIR/annotate/`.
    pub fn folder(self) -> &'static str {
        match self {
            Comparison::PolicyVsHuman => "policy-vs-human",
            Comparison::Training => "earliest-vs-latest",
        }
    }

    /// What the chooser lists; no system name, so nothing hints at a side.
    pub fn question(self) -> &'static str {
        match self {
            Comparison::PolicyVsHuman => "Does the policy beat the human reference? (latest step's prompts)",
            Comparison::Training => "Did training help? (earliest vs latest step, same prompts)",
        }
    }

    pub fn study_dir(self, run_dir: &Path) -> PathBuf {
        crate::run::RunDir::at(run_dir).annotate().join(self.folder())
    }
}

/// The fields of a rollouts.jsonl row this needs.
#[derive(Deserialize)]
struct Row {
    step: usize,
    prompt: String,
    rollout: RowRollout,
}

#[derive(Deserialize)]
struct RowRollout {
    is_reference: bool,
    story: String,
    #[serde(default)]
    thinking: Option<String>,
}

/// Per step, per prompt: the first policy row and the reference row, in file order.
#[derive(Default)]
struct Firsts {
    policy: Option<Story>,
    reference: Option<Story>,
}

/// The items of `comparison` from the run's rollouts.jsonl, in prompt order of the latest
/// step.
pub fn items(run_dir: &Path, comparison: Comparison) -> Result<Vec<Item>> {
    let path = crate::run::RunDir::at(run_dir).rollouts();
    let file = std::fs::File::open(&path)
        .with_context(|| format!("cannot read {} (the run has written no rollouts yet?)", path.display()))?;
    // step -> prompt -> firsts; prompt order of each step kept separately
    let mut steps: BTreeMap<usize, HashMap<String, Firsts>> = BTreeMap::new();
    let mut order: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        // a torn last line of a live run is skipped, as the Groups view does
        let Ok(row) = serde_json::from_str::<Row>(&line) else { continue };
        let prompts = steps.entry(row.step).or_default();
        if !prompts.contains_key(&row.prompt) {
            order.entry(row.step).or_default().push(row.prompt.clone());
        }
        let firsts = prompts.entry(row.prompt).or_default();
        let system = if row.rollout.is_reference { HUMAN.to_string() } else { policy_at(row.step) };
        let slot = if row.rollout.is_reference { &mut firsts.reference } else { &mut firsts.policy };
        if slot.is_none() {
            *slot = Some(Story {
                system,
                words: count_words(&row.rollout.story),
                text: row.rollout.story,
                thinking: row.rollout.thinking,
            });
        }
    }
    let (Some((&latest, last)), Some((&earliest, first))) = (steps.last_key_value(), steps.first_key_value())
    else {
        bail!("{}: no rollouts yet; annotate once the run has written some", path.display());
    };
    let mut out = Vec::new();
    for prompt in &order[&latest] {
        let now = &last[prompt];
        let pair = match comparison {
            Comparison::PolicyVsHuman => now.policy.clone().zip(now.reference.clone()),
            Comparison::Training => {
                first.get(prompt).and_then(|then| then.policy.clone()).zip(now.policy.clone())
            }
        };
        if let Some((a, b)) = pair {
            out.push(Item {
                prompt_uid: prompt_uid(prompt),
                prompt: prompt.clone(),
                requested_words: requested_words(prompt),
                stories: [a, b],
            });
        }
    }
    if out.is_empty() {
        match comparison {
            Comparison::PolicyVsHuman => bail!(
                "{}: step {latest} has no prompt with both a policy sample and a human reference",
                path.display()
            ),
            Comparison::Training if earliest == latest => bail!(
                "{}: only step {latest} has rollouts; compare steps once a later one is written",
                path.display()
            ),
            Comparison::Training => {
                bail!("{}: no prompt of step {latest} was also sampled at step {earliest}", path.display())
            }
        }
    }
    Ok(out)
}

/// Rollouts carry no prompt id; the prompt's text names it (first 8 bytes of SHA-256, hex).
pub fn prompt_uid(prompt: &str) -> String {
    Sha256::digest(prompt.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
}
