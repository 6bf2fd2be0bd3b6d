//! Pairs from a blinded study (`annotate`): every judgment with a winner is a pair (the
//! winner's story chosen), one per annotator; a tie gives none. Two annotators agreeing give
//! the same pair twice (one is counted a duplicate); disagreeing, a conflict (both dropped).

use std::path::Path;

use anyhow::{bail, Result};

use crate::annotate::ledger::Ledger;
use crate::annotate::store::read_lines;
use crate::annotate::study::Study;
use crate::prefs::{Pair, Split};

pub const SOURCE: &str = "annotate";

/// The pairs of the study folder `dir`, and how many judgments were ties.
pub fn pairs(dir: &Path) -> Result<(Vec<Pair>, usize)> {
    let study = Study::load(dir)?;
    let files = Study::judgment_files(dir)?;
    if files.is_empty() {
        bail!(
            "{}: no judgments-*.jsonl files; annotate the study first (`polaris-tui annotate --out {0}`)",
            dir.display()
        );
    }
    let (mut out, mut ties) = (Vec::new(), 0);
    for (_, path) in files {
        let lines = read_lines(&path)?;
        let Some(ledger) = Ledger::replay(&path, &lines, &study)? else { continue };
        for j in ledger.judged() {
            let Some(winner) = j.winner() else {
                ties += 1;
                continue;
            };
            let Some(item) = study.items.iter().find(|i| i.prompt_uid == j.prompt_uid) else {
                bail!(
                    "{}: judges prompt {} which {} does not hold",
                    path.display(),
                    j.prompt_uid,
                    Study::manifest_path(dir).display()
                );
            };
            let loser = if winner == j.left { &j.right } else { &j.left };
            let (Some(chosen), Some(rejected)) = (item.story(winner), item.story(loser)) else {
                bail!(
                    "{}: prompt {} names systems {} and {}, which its study item does not hold",
                    path.display(),
                    j.prompt_uid,
                    j.left,
                    j.right
                );
            };
            out.push(Pair {
                uid: item.prompt_uid.clone(),
                prompt: item.prompt.clone(),
                chosen: chosen.text.clone(),
                rejected: rejected.text.clone(),
                source: SOURCE.into(),
                weight: 1.0,
                split: Split::Train,
            });
        }
    }
    Ok((out, ties))
}
