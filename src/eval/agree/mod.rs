//! `eval agree`: the study's question on our task. Each reward source (a judge, a judge
//! reading principles, a reward model) scores the held-out human-verdict pairs of an
//! `annotate` study, and each is compared with the humans: raw agreement and Cohen's kappa
//! (`eval::human::agreement`, shared with `principles refine --against`), each with a 95%
//! percentile-bootstrap interval over the study's items, and what the source cost.

pub mod render;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::eval::human::agreement::{HumanPair, SourceAgreement};
use crate::eval::stats::agreement::{cohens_kappa, raw_agreement};
use crate::eval::stats::winrate::{percentile, Interval, Preference, MIN_RESAMPLES};
use crate::prefs::{Pair, Split};

pub const AGREE_JSON: &str = "agree.json";
pub const AGREE_MD: &str = "agree.md";

/// Which of a study's judged items are scored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "items", content = "share")]
pub enum Items {
    /// The items `prefs build --heldout SHARE` holds out (`Pair::split_for` on the prompt id):
    /// the ones no reward model trained on that study's pairs has seen.
    Heldout(f64),
    /// Every judged item (no source was trained on this study).
    All,
}

impl Items {
    pub fn select(self, pairs: Vec<HumanPair>) -> Vec<HumanPair> {
        match self {
            Items::All => pairs,
            Items::Heldout(share) => pairs
                .into_iter()
                .filter(|p| Pair::split_for(&p.prompt_uid, share) == Split::Heldout)
                .collect(),
        }
    }
}

/// One source's row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRow {
    #[serde(flatten)]
    pub agreement: SourceAgreement,
    /// The source's own label: its judge spec, `@` the principles' hash when it reads some.
    pub label: String,
    /// 95% percentile-bootstrap intervals over the scored items (None: too few to resample,
    /// or the statistic undefined in every resample).
    pub raw_ci95: Option<Interval>,
    pub kappa_ci95: Option<Interval>,
    /// Resamples in which kappa was undefined (one label throughout on both sides), left out
    /// of its interval.
    pub kappa_undefined: usize,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// US dollars, from the [judge] price table (0 for offline and reward models).
    pub cost: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgreeReport {
    pub study: String,
    /// System A, system B.
    pub systems: [String; 2],
    /// Items of the study with a human verdict, and how they were chosen.
    pub judged: usize,
    pub selection: Items,
    /// Items scored (the selection).
    pub items: usize,
    pub resamples: usize,
    pub seed: u64,
    pub sources: Vec<SourceRow>,
}

/// Raw agreement and kappa with 95% intervals: the scored items are resampled with
/// replacement `resamples` times (each item brings all its annotators' comparisons, so they
/// move together) and each statistic is read at the 2.5th and 97.5th percentiles. The same
/// `seed` gives the same intervals. Items the source could not score are left out first.
pub fn bootstrap(
    pairs: &[HumanPair],
    machine: &[Option<Preference>],
    resamples: usize,
    seed: u64,
) -> (Option<Interval>, Option<Interval>, usize) {
    assert!(resamples >= MIN_RESAMPLES, "at least {MIN_RESAMPLES} resamples");
    let scored: Vec<(&HumanPair, Preference)> =
        pairs.iter().zip(machine).filter_map(|(p, m)| m.map(|m| (p, m))).collect();
    if scored.len() < 2 {
        return (None, None, 0);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut raws, mut kappas, mut undefined) = (Vec::with_capacity(resamples), vec![], 0);
    // (human, source) per annotator of each drawn item, as `agreement` compares them
    let mut compared: Vec<(Preference, Preference)> = Vec::new();
    for _ in 0..resamples {
        compared.clear();
        for _ in 0..scored.len() {
            let (p, m) = scored[rng.random_range(0..scored.len())];
            compared.extend(p.verdicts.iter().map(|&h| (h, m)));
        }
        raws.extend(raw_agreement(&compared));
        match cohens_kappa(&compared) {
            Some(k) => kappas.push(k),
            None => undefined += 1,
        }
    }
    let interval = |mut v: Vec<f64>| {
        (!v.is_empty()).then(|| {
            v.sort_by(f64::total_cmp);
            Interval { low: percentile(&v, 2.5), high: percentile(&v, 97.5) }
        })
    };
    (interval(raws), interval(kappas), undefined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Preference::{AWins, BWins, Tie};

    fn pair(uid: &str, verdicts: Vec<Preference>) -> HumanPair {
        HumanPair { prompt_uid: uid.into(), prompt: "x".into(), stories: ["a".into(), "b".into()], verdicts }
    }

    #[test]
    fn intervals_hold_the_estimate_and_collapse_when_every_item_agrees() {
        let pairs: Vec<HumanPair> =
            (0..8).map(|i| pair(&format!("p{i}"), vec![if i % 2 == 0 { AWins } else { BWins }])).collect();
        let same: Vec<Option<Preference>> = pairs.iter().map(|p| Some(p.verdicts[0])).collect();
        let (raw, kappa, _) = bootstrap(&pairs, &same, 1000, 3);
        assert_eq!(raw, Some(Interval { low: 1.0, high: 1.0 }));
        // kappa is 1 wherever it is defined (a resample of one label throughout is not)
        assert_eq!(kappa, Some(Interval { low: 1.0, high: 1.0 }));
        // 6 of 8 agree: the interval holds 0.75 and lies in [0, 1]; the seed fixes it
        let mut some = same.clone();
        some[0] = Some(BWins);
        some[3] = Some(Tie);
        let (raw, kappa, _) = bootstrap(&pairs, &some, 2000, 3);
        let raw = raw.unwrap();
        assert!(raw.low < 0.75 && 0.75 < raw.high && raw.low >= 0.0 && raw.high <= 1.0, "{raw:?}");
        assert!(kappa.unwrap().low < kappa.unwrap().high);
        assert_eq!(bootstrap(&pairs, &some, 2000, 3).0, Some(raw));
        // unscored items are left out; fewer than two scored: no interval
        let mut one = vec![None; 8];
        one[0] = Some(AWins);
        assert_eq!(bootstrap(&pairs, &one, 1000, 3), (None, None, 0));
    }

    #[test]
    fn heldout_items_are_the_ones_prefs_build_holds_out() {
        let pairs: Vec<HumanPair> = (0..200).map(|i| pair(&format!("p{i}"), vec![AWins])).collect();
        let held = Items::Heldout(0.25).select(pairs.clone());
        assert!(held.iter().all(|p| Pair::split_for(&p.prompt_uid, 0.25) == Split::Heldout));
        // about a quarter of 200 (binomial sd ~ 6.1: 4 sd either side)
        assert!((26..=74).contains(&held.len()), "{}", held.len());
        assert_eq!(Items::All.select(pairs).len(), 200);
    }
}
