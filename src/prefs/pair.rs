//! One preference pair per JSONL line:
//!
//! ```json
//! {"uid": "p-17", "prompt": "...", "chosen": "...", "rejected": "...",
//!  "source": "annotate", "weight": 1.0, "split": "train"}
//! ```
//!
//! `uid` is the prompt's id, as everywhere in the project (`prompt_uid` is read as an alias).
//! `source` says where the preference came from (`annotate`, `elo`, `run`, `curate`, or a
//! user's own word); `weight` scales the pair's loss (1 when absent); `split` is `train` or
//! `heldout` (`train` when absent).

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::durable::atomic::write_atomic;
use crate::durable::jsonl::{jsonl_lines, Problems};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Heldout,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    #[serde(alias = "prompt_uid")]
    pub uid: String,
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    pub source: String,
    #[serde(default = "one")]
    pub weight: f64,
    #[serde(default = "train")]
    pub split: Split,
}

fn one() -> f64 {
    1.0
}

fn train() -> Split {
    Split::Train
}

impl Pair {
    /// What makes two pairs the same pair: the prompt and the two stories, in their roles
    /// (16 hex digits of a SHA-256). Source, weight and split do not count.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        for part in [&self.prompt, &self.chosen, &self.rejected] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Which split a pair of this prompt goes to, `heldout` for about `share` of the prompts:
    /// decided by the prompt's id alone, so every pair of one prompt lands on the same side
    /// (no prompt is both trained on and held out) and a rebuild splits the same way.
    pub fn split_for(uid: &str, share: f64) -> Split {
        let d = Sha256::digest(uid.as_bytes());
        let x = u64::from_le_bytes(d[..8].try_into().expect("8 bytes")) as f64 / u64::MAX as f64;
        if x < share {
            Split::Heldout
        } else {
            Split::Train
        }
    }

    fn problems(&self) -> Vec<String> {
        let mut out = vec![];
        for (field, v) in [
            ("uid", &self.uid),
            ("prompt", &self.prompt),
            ("chosen", &self.chosen),
            ("rejected", &self.rejected),
        ] {
            if v.trim().is_empty() {
                out.push(format!("`{field}` is blank"));
            }
        }
        if self.chosen == self.rejected && !self.chosen.trim().is_empty() {
            out.push("`chosen` and `rejected` are the same story; a pair needs two".into());
        }
        if !(self.weight.is_finite() && self.weight > 0.0) {
            out.push(format!("`weight` is {}; it must be a positive number", self.weight));
        }
        out
    }
}

/// Every pair of a pairs JSONL, in order; every bad line is named (`FILE:LINE`) in one error.
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let lines = jsonl_lines(path)?;
    let mut problems = Problems::default();
    let mut pairs = Vec::with_capacity(lines.len());
    for (n, parsed) in &lines {
        let at = format!("{}:{n}", path.display());
        let Some(obj) = problems.object(&at, parsed) else { continue };
        match serde_json::from_value::<Pair>(obj.clone().into()) {
            Ok(p) => {
                let bad = p.problems();
                if bad.is_empty() {
                    pairs.push(p);
                } else {
                    problems.record(&at, bad);
                }
            }
            Err(e) => {
                problems.record(&at, vec![format!("{e}; a pair has uid, prompt, chosen, rejected, source")])
            }
        }
    }
    problems.check(path, lines.len())?;
    Ok(pairs)
}

/// Writes `pairs` as JSONL, whole or not at all (write-then-rename).
pub fn write_pairs(path: &Path, pairs: &[Pair]) -> Result<()> {
    let mut out = String::new();
    for p in pairs {
        out.push_str(&serde_json::to_string(p)?);
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(uid: &str, chosen: &str) -> Pair {
        Pair {
            uid: uid.into(),
            prompt: "Write a story.".into(),
            chosen: chosen.into(),
            rejected: "A worse story.".into(),
            source: "annotate".into(),
            weight: 1.0,
            split: Split::Train,
        }
    }

    #[test]
    fn writes_and_reads_back_with_defaults_and_alias() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.jsonl");
        let pairs = vec![pair("a", "A good story."), pair("b", "Another good story.")];
        write_pairs(&path, &pairs).unwrap();
        assert_eq!(read_pairs(&path).unwrap(), pairs);
        std::fs::write(&path, r#"{"prompt_uid":"c","prompt":"p","chosen":"x","rejected":"y","source":"me"}"#)
            .unwrap();
        let read = read_pairs(&path).unwrap();
        assert_eq!((read[0].uid.as_str(), read[0].weight, read[0].split), ("c", 1.0, Split::Train));
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairs.jsonl");
        let good = serde_json::to_string(&pair("a", "A good story.")).unwrap();
        let same = serde_json::to_string(&pair("b", "A worse story.")).unwrap();
        let text = format!("{good}\n{same}\n{{\"uid\":\"c\"}}\nnot json\n");
        std::fs::write(&path, text).unwrap();
        let err = read_pairs(&path).unwrap_err().to_string();
        assert!(err.contains("3 of 4 records are bad"), "{err}");
        assert!(err.contains("pairs.jsonl:2: `chosen` and `rejected` are the same story"), "{err}");
        assert!(err.contains("pairs.jsonl:3: missing field"), "{err}");
        assert!(err.contains("pairs.jsonl:4: is not JSON"), "{err}");
    }

    #[test]
    fn key_ignores_provenance_and_split_follows_the_prompt() {
        let a = pair("a", "A good story.");
        let mut b = a.clone();
        b.source = "elo".into();
        b.weight = 0.5;
        assert_eq!(a.key(), b.key());
        let mut swapped = a.clone();
        std::mem::swap(&mut swapped.chosen, &mut swapped.rejected);
        assert_ne!(a.key(), swapped.key());
        // About `share` of 2000 prompts are held out (binomial sd ~ 0.0067 at 0.1: 5 sd).
        let held = (0..2000).filter(|i| Pair::split_for(&format!("p{i}"), 0.1) == Split::Heldout).count();
        assert!((166..=234).contains(&held), "{held}");
        assert_eq!(Pair::split_for("p7", 0.1), Pair::split_for("p7", 0.1));
    }
}
