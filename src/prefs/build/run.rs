//! Pairs from a training run's groups (`rollouts.jsonl`, training rows only). Per group:
//! the human reference row against every policy row whose reward is at least `margin` below
//! the reference's, and the top policy row against the bottom one when their rewards differ
//! by at least `margin`. Rewards are the rows' as GRPO used them (`reward`, the clipped
//! composite with the defaults), so `margin` is on that scale (±`weights.clip`, 2 by default).
//! The prompt's id is the annotate studies' (the prompt text's hash): rollouts carry none.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use serde::Deserialize;

use crate::annotate::rollouts::prompt_uid;
use crate::durable::jsonl::{jsonl_lines, Problems};
use crate::prefs::{Pair, Split};
use crate::run::rollout::RolloutKind;
use crate::run::RunDir;

pub const SOURCE: &str = "run";

#[derive(Deserialize)]
struct Row {
    step: usize,
    #[serde(default)]
    kind: RolloutKind,
    prompt: String,
    rollout: RowRollout,
    reward: f64,
}

#[derive(Deserialize)]
struct RowRollout {
    group: usize,
    is_reference: bool,
    story: String,
}

pub fn pairs(run_dir: &Path, margin: f64) -> Result<Vec<Pair>> {
    if !(margin.is_finite() && margin >= 0.0) {
        bail!("--margin {margin}: give a reward difference of 0 or more");
    }
    let path = RunDir::at(run_dir).rollouts();
    if !path.exists() {
        bail!(
            "{}: no rollouts.jsonl; is {} a run directory that has trained a step?",
            path.display(),
            run_dir.display()
        );
    }
    let lines = jsonl_lines(&path)?;
    let last = lines.last().map(|(n, _)| *n);
    let mut problems = Problems::default();
    // (step, group) -> rows in file order
    let mut groups: BTreeMap<(usize, usize), Vec<Row>> = BTreeMap::new();
    for (n, parsed) in &lines {
        let at = format!("{}:{n}", path.display());
        // a live run's last line may be half written: skipped, as the Groups view does
        if parsed.is_err() && Some(*n) == last {
            continue;
        }
        let Some(obj) = problems.object(&at, parsed) else { continue };
        match serde_json::from_value::<Row>(obj.clone().into()) {
            Ok(r) if r.kind == RolloutKind::Train => {
                if !r.reward.is_finite() {
                    problems.record(&at, vec![format!("`reward` is {}", r.reward)]);
                    continue;
                }
                groups.entry((r.step, r.rollout.group)).or_default().push(r)
            }
            Ok(_) => {}
            Err(e) => problems.record(&at, vec![format!("not a rollout row ({e})")]),
        }
    }
    problems.check(&path, lines.len())?;
    let mut out = Vec::new();
    for rows in groups.values() {
        let pair = |chosen: &Row, rejected: &Row| Pair {
            uid: prompt_uid(&chosen.prompt),
            prompt: chosen.prompt.clone(),
            chosen: chosen.rollout.story.clone(),
            rejected: rejected.rollout.story.clone(),
            source: SOURCE.into(),
            weight: 1.0,
            split: Split::Train,
        };
        let usable = |r: &&Row| !r.rollout.story.trim().is_empty();
        let policy: Vec<&Row> = rows.iter().filter(|r| !r.rollout.is_reference).filter(usable).collect();
        if let Some(reference) = rows.iter().filter(usable).find(|r| r.rollout.is_reference) {
            for low in policy.iter().filter(|r| r.reward <= reference.reward - margin) {
                if low.rollout.story != reference.rollout.story {
                    out.push(pair(reference, low));
                }
            }
        }
        // first of the highest and first of the lowest, in file order
        let top = policy.iter().copied().reduce(|a, b| if b.reward > a.reward { b } else { a });
        let bottom = policy.iter().copied().reduce(|a, b| if b.reward < a.reward { b } else { a });
        if let (Some(top), Some(bottom)) = (top, bottom) {
            if top.reward - bottom.reward >= margin
                && top.reward > bottom.reward
                && top.rollout.story != bottom.rollout.story
            {
                out.push(pair(top, bottom));
            }
        }
    }
    Ok(out)
}
