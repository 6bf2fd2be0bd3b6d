//! An annotator's progress, replayed from their judgment file: the blinding, the
//! judgments still standing, how often each item was skipped, and which item is next.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{bail, Result};

use super::blinding::Presentation;
use super::record::{Record, Verdict};
use super::store::Line;
use super::study::Study;

/// A judgment still standing (not undone).
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub prompt_uid: String,
    pub left: String,
    pub right: String,
    pub verdict: Verdict,
    pub comment: Option<String>,
}

impl Judged {
    /// The preferred system, or None for a tie.
    pub fn winner(&self) -> Option<&str> {
        match self.verdict {
            Verdict::Left => Some(&self.left),
            Verdict::Right => Some(&self.right),
            Verdict::Tie => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Ledger {
    pub annotator: String,
    pub seed: u64,
    /// The annotator's item order, with sides.
    pub order: Vec<Presentation>,
    /// Standing judgments, oldest first; undo pops the last.
    judged: Vec<Judged>,
    judged_uids: HashSet<String>,
    skips: HashMap<String, u32>,
    /// The item an undo brought back, shown next until judged or skipped.
    focus: Option<String>,
}

impl Ledger {
    /// A fresh ledger for a blinding that matches `study`.
    pub fn new(annotator: &str, seed: u64, order: Vec<Presentation>, study: &Study) -> Result<Self, String> {
        check_blinding(&order, study)?;
        Ok(Self {
            annotator: annotator.into(),
            seed,
            order,
            judged: Vec::new(),
            judged_uids: HashSet::new(),
            skips: HashMap::new(),
            focus: None,
        })
    }

    /// Replays a judgment file; None if it holds no records yet.
    pub fn replay(path: &Path, lines: &[Line], study: &Study) -> Result<Option<Self>> {
        let Some((first, rest)) = lines.split_first() else {
            return Ok(None);
        };
        let Record::Blinding { annotator, seed, order } = &first.record else {
            bail!(
                "{}:{}: the first record must be the blinding (`\"kind\":\"blinding\"`)",
                path.display(),
                first.number
            );
        };
        let mut ledger = Self::new(annotator, *seed, order.clone(), study).map_err(|e| {
            anyhow::anyhow!("{}:{}: {e}; this file belongs to another study", path.display(), first.number)
        })?;
        for line in rest {
            if let Err(e) = ledger.apply(&line.record) {
                bail!("{}:{}: {e}", path.display(), line.number);
            }
        }
        Ok(Some(ledger))
    }

    /// Applies one record, refusing any that does not follow from the state so far.
    pub fn apply(&mut self, record: &Record) -> Result<(), String> {
        match record {
            Record::Blinding { .. } => return Err("a second blinding record".into()),
            Record::Judgment { prompt_uid, left, right, verdict, comment, .. } => {
                let p = self.pending(prompt_uid)?;
                if (&p.left, &p.right) != (left, right) {
                    return Err(format!(
                        "prompt_uid `{prompt_uid}` judged with sides {left} | {right}, but the blinding showed {} | {}",
                        p.left, p.right
                    ));
                }
                self.judged.push(Judged {
                    prompt_uid: prompt_uid.clone(),
                    left: left.clone(),
                    right: right.clone(),
                    verdict: *verdict,
                    comment: comment.clone(),
                });
                self.judged_uids.insert(prompt_uid.clone());
                self.focus = None;
            }
            Record::Skip { prompt_uid, .. } => {
                self.pending(prompt_uid)?;
                *self.skips.entry(prompt_uid.clone()).or_default() += 1;
                self.focus = None;
            }
            Record::Undo { prompt_uid, .. } => {
                match self.judged.last() {
                    Some(last) if &last.prompt_uid == prompt_uid => {}
                    Some(last) => {
                        return Err(format!(
                            "undo of `{prompt_uid}`, but the last standing judgment is `{}`",
                            last.prompt_uid
                        ))
                    }
                    None => return Err(format!("undo of `{prompt_uid}` with no standing judgment")),
                }
                self.judged.pop();
                self.judged_uids.remove(prompt_uid);
                self.focus = Some(prompt_uid.clone());
            }
            Record::SealedTornLine { .. } => {}
        }
        Ok(())
    }

    fn pending(&self, prompt_uid: &str) -> Result<&Presentation, String> {
        let p = self
            .order
            .iter()
            .find(|p| p.prompt_uid == prompt_uid)
            .ok_or_else(|| format!("prompt_uid `{prompt_uid}` is not in this study"))?;
        if self.judged_uids.contains(prompt_uid) {
            return Err(format!("prompt_uid `{prompt_uid}` is already judged (undo it first)"));
        }
        Ok(p)
    }

    /// The item to show: one an undo brought back, else the first unjudged item among
    /// those skipped the fewest times, in the annotator's order.
    pub fn current(&self) -> Option<&Presentation> {
        if let Some(uid) = &self.focus {
            if let Some(p) = self.order.iter().find(|p| &p.prompt_uid == uid) {
                return Some(p);
            }
        }
        self.order
            .iter()
            .filter(|p| !self.judged_uids.contains(&p.prompt_uid))
            .min_by_key(|p| self.skips.get(&p.prompt_uid).copied().unwrap_or(0))
    }

    pub fn judged(&self) -> &[Judged] {
        &self.judged
    }

    pub fn done(&self) -> usize {
        self.judged.len()
    }

    pub fn total(&self) -> usize {
        self.order.len()
    }

    pub fn skips(&self, prompt_uid: &str) -> u32 {
        self.skips.get(prompt_uid).copied().unwrap_or(0)
    }
}

/// The blinding must show every study item exactly once, with its two systems.
fn check_blinding(order: &[Presentation], study: &Study) -> Result<(), String> {
    let mut seen = HashSet::new();
    for p in order {
        let Some(item) = study.item(&p.prompt_uid) else {
            return Err(format!(
                "the blinding shows prompt_uid `{}`, which the study does not hold",
                p.prompt_uid
            ));
        };
        if !seen.insert(&p.prompt_uid) {
            return Err(format!("the blinding shows prompt_uid `{}` twice", p.prompt_uid));
        }
        let mut shown = [p.left.as_str(), p.right.as_str()];
        let mut systems = [item.stories[0].system.as_str(), item.stories[1].system.as_str()];
        shown.sort();
        systems.sort();
        if shown != systems {
            return Err(format!(
                "the blinding shows {shown:?} for prompt_uid `{}`, the study {systems:?}",
                p.prompt_uid
            ));
        }
    }
    if seen.len() != study.items.len() {
        return Err(format!("the blinding shows {} of the study's {} items", seen.len(), study.items.len()));
    }
    Ok(())
}
