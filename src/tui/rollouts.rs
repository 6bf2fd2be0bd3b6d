//! rollouts.jsonl, indexed by step: a long run's rollouts do not fit in memory, so the index
//! keeps each row's byte range and a step's rows are read when the Groups view asks for it.
//! A validation pass is a step of its own kind (after the training step of the same number).
//! Rows logged again after a resume replace the first attempt's, as the run log's events do.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::tail::Tail;
use crate::run::rollout::{RolloutKind, ScoredRollout};

/// A step with rollouts: a training step, or a validation pass (after the training step of
/// the same number; at 0 before training).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StepKey {
    pub step: usize,
    pub kind: RolloutKind,
}

impl StepKey {
    pub fn train(step: usize) -> Self {
        Self { step, kind: RolloutKind::Train }
    }
    pub fn val(step: usize) -> Self {
        Self { step, kind: RolloutKind::Val }
    }
    pub fn is_val(&self) -> bool {
        self.kind == RolloutKind::Val
    }
    /// `step 12`, or `validation at step 20`.
    pub fn label(&self) -> String {
        match self.kind {
            RolloutKind::Train => format!("step {}", self.step),
            RolloutKind::Val => format!("validation at step {}", self.step),
        }
    }
    /// `Step 12`, or `Validation at step 20`.
    pub fn title(&self) -> String {
        match self.kind {
            RolloutKind::Train => format!("Step {}", self.step),
            RolloutKind::Val => format!("Validation at step {}", self.step),
        }
    }
}

pub struct RolloutIndex {
    tail: Tail,
    /// step -> (byte offset, byte length) of its rows, in file order.
    by_step: BTreeMap<StepKey, Vec<(u64, usize)>>,
    /// The step and group of the last row indexed: rows of one attempt at a step come in
    /// group order, so a lower group, or an earlier step, starts a new attempt.
    last: Option<(StepKey, usize)>,
}

/// One group of a step: its rows ranked by reward, best first.
#[derive(Debug, Clone)]
pub struct Group {
    pub index: usize,
    pub prompt: String,
    pub rows: Vec<ScoredRollout>,
}

impl Group {
    /// 1-based rank of the human reference, when the group has one.
    pub fn reference_rank(&self) -> Option<usize> {
        self.rows.iter().position(|r| r.rollout.is_reference).map(|i| i + 1)
    }
    /// Tokens cut from the human reference to fit the response budget, when it was cut.
    pub fn reference_cut(&self) -> Option<usize> {
        self.rows.iter().find(|r| r.rollout.is_reference).map(|r| r.rollout.cut_tokens).filter(|&n| n > 0)
    }
    pub fn best_policy_reward(&self) -> Option<f64> {
        self.rows.iter().find(|r| !r.rollout.is_reference).map(|r| r.reward)
    }
}

#[derive(Deserialize)]
struct StepOnly {
    step: usize,
    #[serde(default)]
    kind: RolloutKind,
    rollout: GroupOnly,
}

#[derive(Deserialize)]
struct GroupOnly {
    group: usize,
}

impl RolloutIndex {
    pub fn new(dir: &Path) -> Self {
        Self { tail: Tail::new(crate::run::RunDir::at(dir).rollouts()), by_step: BTreeMap::new(), last: None }
    }

    /// Files a row; a row that starts another attempt at a step (after a resume) drops the
    /// rows of the earlier attempt from that step on.
    fn add(&mut self, key: StepKey, group: usize, range: (u64, usize)) {
        match self.last {
            Some((last, _)) if key < last => drop(self.by_step.split_off(&key)),
            Some((last, g)) if key == last && group < g => drop(self.by_step.remove(&key)),
            _ => {}
        }
        self.last = Some((key, group));
        self.by_step.entry(key).or_default().push(range);
    }

    /// Indexes rows appended since the last call; returns whether any were, and problems met.
    pub fn refresh(&mut self) -> (bool, Vec<String>) {
        let lines = match self.tail.read_new() {
            Ok(l) => l,
            Err(e) => return (false, vec![format!("{e:#}")]),
        };
        let mut problems = Vec::new();
        let grew = !lines.is_empty();
        for line in lines {
            match serde_json::from_str::<StepOnly>(&line.text) {
                Ok(s) => self.add(
                    StepKey { step: s.step, kind: s.kind },
                    s.rollout.group,
                    (line.offset, line.text.len()),
                ),
                Err(e) => problems.push(format!(
                    "{}:{}: not a rollout ({e}); the line is skipped",
                    self.tail.path().display(),
                    line.number
                )),
            }
        }
        (grew, problems)
    }

    /// Steps with rollouts, ascending (a validation pass after the training step it follows).
    pub fn steps(&self) -> impl DoubleEndedIterator<Item = StepKey> + '_ {
        self.by_step.keys().copied()
    }

    pub fn latest(&self) -> Option<StepKey> {
        self.by_step.keys().next_back().copied()
    }

    /// The step before or after `step` that has rollouts.
    pub fn neighbour(&self, step: StepKey, forward: bool) -> Option<StepKey> {
        use std::ops::Bound::{Excluded, Unbounded};
        if forward {
            self.by_step.range((Excluded(step), Unbounded)).next().map(|(s, _)| *s)
        } else {
            self.by_step.range(..step).next_back().map(|(s, _)| *s)
        }
    }

    /// A step's groups, each ranked by reward (best first), in group order.
    pub fn load(&self, step: StepKey) -> Result<Vec<Group>> {
        let Some(ranges) = self.by_step.get(&step) else { return Ok(vec![]) };
        let path = self.tail.path();
        let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut groups: BTreeMap<usize, Group> = BTreeMap::new();
        for &(offset, len) in ranges {
            let mut buf = vec![0u8; len];
            f.seek(SeekFrom::Start(offset))?;
            f.read_exact(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
            let row: ScoredRollout = serde_json::from_slice(&buf)
                .with_context(|| format!("{}: byte {offset}: not a rollout", path.display()))?;
            let g = groups.entry(row.rollout.group).or_insert_with(|| Group {
                index: row.rollout.group,
                prompt: row.prompt.clone(),
                rows: vec![],
            });
            g.rows.push(row);
        }
        let mut out: Vec<Group> = groups.into_values().collect();
        for g in &mut out {
            g.rows.sort_by(|a, b| b.reward.total_cmp(&a.reward));
        }
        Ok(out)
    }
}
