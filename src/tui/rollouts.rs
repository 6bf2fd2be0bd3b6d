//! rollouts.jsonl, indexed by step: a long run's rollouts do not fit in memory, so the index
//! keeps each row's byte range and a step's rows are read when the Groups view asks for it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::tail::Tail;
use crate::train::step::ScoredRollout;

pub struct RolloutIndex {
    tail: Tail,
    /// step -> (byte offset, byte length) of its rows, in file order.
    by_step: BTreeMap<usize, Vec<(u64, usize)>>,
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
}

impl RolloutIndex {
    pub fn new(dir: &Path) -> Self {
        Self { tail: Tail::new(dir.join("rollouts.jsonl")), by_step: BTreeMap::new() }
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
                Ok(s) => self.by_step.entry(s.step).or_default().push((line.offset, line.text.len())),
                Err(e) => problems.push(format!(
                    "{}:{}: not a rollout ({e}); the line is skipped",
                    self.tail.path().display(),
                    line.number
                )),
            }
        }
        (grew, problems)
    }

    /// Steps with rollouts, ascending.
    pub fn steps(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        self.by_step.keys().copied()
    }

    pub fn latest(&self) -> Option<usize> {
        self.by_step.keys().next_back().copied()
    }

    /// The step before or after `step` that has rollouts.
    pub fn neighbour(&self, step: usize, forward: bool) -> Option<usize> {
        if forward {
            self.by_step.range(step + 1..).next().map(|(s, _)| *s)
        } else {
            self.by_step.range(..step).next_back().map(|(s, _)| *s)
        }
    }

    /// A step's groups, each ranked by reward (best first), in group order.
    pub fn load(&self, step: usize) -> Result<Vec<Group>> {
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
