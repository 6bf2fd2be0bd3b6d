//! `prefs build`: preference pairs from what the workbench already holds, in one file.
//!
//! - `annotate`: a blinded study's human verdicts (a tie gives no pair);
//! - `elo`: `eval elo` judgements whose two orders agree on a winner (weight = |preference|,
//!   1 when both orders were decisive), with the stories from the generation files judged;
//! - `run`: a training run's groups (`rollouts.jsonl`): the human reference against the
//!   policy rows scored at least `margin` below it, and the group's top policy row against its
//!   bottom one when their rewards differ by at least `margin`.
//!
//! A pair whose two stories are the same text is dropped (and counted). Pairs are
//! deduplicated by `Pair::key` (the first seen stays; later copies are counted per
//! source); a pair whose mirror (same stories, roles swapped) is also there is a conflict and
//! both go; every pair is then split by its prompt (`Pair::split_for`).

pub mod annotate;
pub mod elo;
pub mod run;

use std::collections::{BTreeMap, HashMap, HashSet};

use super::pair::{Pair, Split};

/// Per source: pairs kept by split, and what was dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceCount {
    pub train: usize,
    pub heldout: usize,
    /// Copies of a pair already kept.
    pub duplicates: usize,
    /// Pairs dropped because their mirror was there too (both sides of a disagreement).
    pub conflicts: usize,
    /// Pairs dropped because both sides hold the same story (two systems wrote the same text).
    pub same_story: usize,
}

/// What `merge` did, by source (in name order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub sources: BTreeMap<String, SourceCount>,
}

impl Summary {
    /// The table `prefs build` prints.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<10} {:>7} {:>8} {:>7} {:>11} {:>10} {:>11}\n",
            "source", "train", "heldout", "pairs", "duplicates", "conflicts", "same story"
        );
        let mut total = SourceCount::default();
        for (name, c) in &self.sources {
            out.push_str(&format!(
                "{:<10} {:>7} {:>8} {:>7} {:>11} {:>10} {:>11}\n",
                name,
                c.train,
                c.heldout,
                c.train + c.heldout,
                c.duplicates,
                c.conflicts,
                c.same_story
            ));
            total.train += c.train;
            total.heldout += c.heldout;
            total.duplicates += c.duplicates;
            total.conflicts += c.conflicts;
            total.same_story += c.same_story;
        }
        out.push_str(&format!(
            "{:<10} {:>7} {:>8} {:>7} {:>11} {:>10} {:>11}",
            "all",
            total.train,
            total.heldout,
            total.train + total.heldout,
            total.duplicates,
            total.conflicts,
            total.same_story
        ));
        out
    }
}

/// One pairs list from every source's, deduplicated, conflicts dropped, each pair assigned
/// its split (`heldout` share of the prompts held out).
pub fn merge(gathered: Vec<Pair>, heldout: f64) -> (Vec<Pair>, Summary) {
    let mut summary = Summary::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut unique = Vec::with_capacity(gathered.len());
    for p in gathered {
        let count = summary.sources.entry(p.source.clone()).or_default();
        if p.chosen == p.rejected {
            count.same_story += 1;
        } else if seen.insert(p.key()) {
            unique.push(p);
        } else {
            count.duplicates += 1;
        }
    }
    let mirror_key = |p: &Pair| {
        let mut m = p.clone();
        std::mem::swap(&mut m.chosen, &mut m.rejected);
        m.key()
    };
    let keys: HashMap<String, usize> = unique.iter().enumerate().map(|(i, p)| (p.key(), i)).collect();
    let mut out = Vec::with_capacity(unique.len());
    for p in &unique {
        if keys.contains_key(&mirror_key(p)) {
            summary.sources.entry(p.source.clone()).or_default().conflicts += 1;
            continue;
        }
        let mut p = p.clone();
        p.split = Pair::split_for(&p.uid, heldout);
        let count = summary.sources.entry(p.source.clone()).or_default();
        match p.split {
            Split::Train => count.train += 1,
            Split::Heldout => count.heldout += 1,
        }
        out.push(p);
    }
    (out, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(uid: &str, chosen: &str, rejected: &str, source: &str) -> Pair {
        Pair {
            uid: uid.into(),
            prompt: format!("prompt {uid}"),
            chosen: chosen.into(),
            rejected: rejected.into(),
            source: source.into(),
            weight: 1.0,
            split: Split::Train,
        }
    }

    #[test]
    fn drops_duplicates_by_source_and_both_sides_of_a_conflict() {
        let gathered = vec![
            pair("a", "good", "bad", "annotate"),
            pair("a", "good", "bad", "elo"),
            pair("a", "good", "bad", "annotate"),
            pair("b", "x", "y", "run"),
            pair("b", "y", "x", "elo"),
            pair("c", "p", "q", "run"),
            pair("d", "same", "same", "annotate"),
        ];
        let (pairs, summary) = merge(gathered, 0.0);
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        let s = &summary.sources;
        assert_eq!((s["annotate"].duplicates, s["elo"].duplicates), (1, 1));
        assert_eq!((s["run"].conflicts, s["elo"].conflicts), (1, 1));
        assert_eq!((s["annotate"].train, s["run"].train), (1, 1));
        assert_eq!(s["annotate"].same_story, 1);
        assert!(summary.table().lines().last().unwrap().starts_with("all"));
        // a share of 1 holds every prompt out
        let (all_held, _) = merge(vec![pair("a", "good", "bad", "annotate")], 1.0);
        assert_eq!(all_held[0].split, Split::Heldout);
    }
}
