//! Pair accuracy of a reward model: the share of pairs whose chosen story it scores above the
//! rejected one (a tie counts half), with the 95% bootstrap interval over prompts that the
//! human and Elo reports use (`eval::stats::winrate`): pairs of one prompt move together.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use super::manifest::Accuracy;
use super::model::RewardModel;
use crate::eval::stats::winrate::{bootstrap_ci, Preference};
use crate::prefs::Pair;

pub const RESAMPLES: usize = 2000;

/// Each pair's (chosen score, rejected score), scored in packed passes.
pub fn pair_scores(rm: &RewardModel, pairs: &[Pair]) -> Result<Vec<(f64, f64)>> {
    let mut items = Vec::with_capacity(2 * pairs.len());
    for p in pairs {
        items.push((p.prompt.as_str(), p.chosen.as_str()));
        items.push((p.prompt.as_str(), p.rejected.as_str()));
    }
    let s = rm.score(&items)?;
    Ok(s.chunks(2).map(|c| (c[0], c[1])).collect())
}

/// Accuracy of scored pairs, with the bootstrap interval over their prompts (`uid`).
pub fn accuracy(pairs: &[Pair], scores: &[(f64, f64)], seed: u64) -> Result<Accuracy> {
    if pairs.is_empty() {
        bail!("no pairs to measure accuracy on");
    }
    let mut by_prompt: BTreeMap<&str, Vec<Preference>> = BTreeMap::new();
    let (mut correct, mut ties) = (0, 0);
    for (p, &(c, r)) in pairs.iter().zip(scores) {
        let pref = if c > r {
            correct += 1;
            Preference::AWins
        } else if c == r {
            ties += 1;
            Preference::Tie
        } else {
            Preference::BWins
        };
        by_prompt.entry(p.uid.as_str()).or_default().push(pref);
    }
    let groups: Vec<Vec<Preference>> = by_prompt.into_values().collect();
    let ci95 = bootstrap_ci(&groups, RESAMPLES, seed)?;
    Ok(Accuracy {
        pairs: pairs.len(),
        prompts: groups.len(),
        correct,
        ties,
        accuracy: (correct as f64 + 0.5 * ties as f64) / pairs.len() as f64,
        ci95,
        resamples: RESAMPLES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefs::Split;

    fn pair(uid: &str) -> Pair {
        Pair {
            uid: uid.into(),
            prompt: "p".into(),
            chosen: "a".into(),
            rejected: "b".into(),
            source: "test".into(),
            weight: 1.0,
            split: Split::Heldout,
        }
    }

    #[test]
    fn counts_ties_as_half_and_groups_by_prompt() {
        let pairs = vec![pair("x"), pair("x"), pair("y"), pair("z")];
        let a = accuracy(&pairs, &[(1.0, 0.0), (0.0, 1.0), (2.0, 2.0), (3.0, 1.0)], 0).unwrap();
        assert_eq!((a.correct, a.ties, a.prompts), (2, 1, 3));
        assert!((a.accuracy - 2.5 / 4.0).abs() < 1e-12);
        assert!(a.ci95.low <= a.accuracy && a.accuracy <= a.ci95.high, "{a:?}");
    }
}
