//! How a machine source of preferences (a judge, a judge reading principles, a reward model)
//! agrees with the human verdicts of an `annotate` study: the study's judged pairs are read
//! once (`judged_pairs`), the source gives each pair a preference (`judge_preferences` for a
//! pointwise judge; any other source brings its own), and `agreement` compares them with
//! every annotator's verdict (raw agreement and Cohen's kappa over A wins / B wins / tie).

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use serde::Serialize;

use super::report::preference;
use crate::annotate::ledger::Ledger;
use crate::annotate::store::read_lines;
use crate::annotate::study::Study;
use crate::eval::stats::agreement::{cohens_kappa, raw_agreement};
use crate::eval::stats::winrate::Preference;
use crate::reward::JudgeClient;

/// One study item at least one annotator judged.
#[derive(Debug, Clone, PartialEq)]
pub struct HumanPair {
    pub prompt_uid: String,
    /// The request as written (length sentence included; a judge strips it).
    pub prompt: String,
    /// System A's story, then system B's.
    pub stories: [String; 2],
    /// Every annotator's verdict, unblinded to A's side, in annotator-name order.
    pub verdicts: Vec<Preference>,
}

/// The study in `dir`: its systems (A, B) and its judged items in study order.
pub fn judged_pairs(dir: &Path) -> Result<([String; 2], Vec<HumanPair>)> {
    let study = Study::load(dir)?;
    let mut ledgers = Vec::new();
    for (_, path) in Study::judgment_files(dir)? {
        if let Some(ledger) = Ledger::replay(&path, &read_lines(&path)?, &study)? {
            ledgers.push(ledger);
        }
    }
    let system_a = &study.systems[0];
    let pairs: Vec<HumanPair> = study
        .items
        .iter()
        .filter_map(|item| {
            let verdicts: Vec<Preference> = ledgers
                .iter()
                .filter_map(|l| l.judged().iter().find(|j| j.prompt_uid == item.prompt_uid))
                .map(|j| preference(j, system_a))
                .collect();
            (!verdicts.is_empty()).then(|| HumanPair {
                prompt_uid: item.prompt_uid.clone(),
                prompt: item.prompt.clone(),
                stories: [item.stories[0].text.clone(), item.stories[1].text.clone()],
                verdicts,
            })
        })
        .collect();
    if pairs.is_empty() {
        bail!(
            "{}: no human verdicts yet; annotate first (`polaris-tui annotate --out {}`)",
            dir.display(),
            dir.display()
        );
    }
    Ok((study.systems.clone(), pairs))
}

/// A source's agreement with the human verdicts of a study.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceAgreement {
    /// The source as written (`SPEC` or `SPEC@PRINCIPLES`).
    pub source: String,
    /// Study items with a human verdict.
    pub items: usize,
    /// Items the source gave no preference on (its judgement failed); left out below.
    pub unscored: usize,
    /// (human verdict, source preference) comparisons: one per annotator per scored item.
    pub compared: usize,
    /// Share of comparisons with the same label (A wins, B wins, tie).
    pub raw: Option<f64>,
    /// Comparisons where neither side called a tie, and their raw agreement.
    pub decisive: usize,
    pub raw_without_ties: Option<f64>,
    /// Over the three labels; None when undefined (one label throughout on both sides).
    pub cohens_kappa: Option<f64>,
}

/// Compares `machine[i]`, the source's preference on `pairs[i]` (None: it has none), with
/// every annotator's verdict on that pair.
pub fn agreement(source: &str, pairs: &[HumanPair], machine: &[Option<Preference>]) -> SourceAgreement {
    assert_eq!(pairs.len(), machine.len(), "one machine preference per pair");
    let compared: Vec<(Preference, Preference)> = pairs
        .iter()
        .zip(machine)
        .filter_map(|(p, m)| m.map(|m| p.verdicts.iter().map(move |&h| (h, m))))
        .flatten()
        .collect();
    let decisive: Vec<(Preference, Preference)> =
        compared.iter().copied().filter(|(h, m)| *h != Preference::Tie && *m != Preference::Tie).collect();
    SourceAgreement {
        source: source.to_string(),
        items: pairs.len(),
        unscored: machine.iter().filter(|m| m.is_none()).count(),
        compared: compared.len(),
        raw: raw_agreement(&compared),
        decisive: decisive.len(),
        raw_without_ties: raw_agreement(&decisive),
        cohens_kappa: cohens_kappa(&compared),
    }
}

/// A pointwise source's preference from its two scores: the higher wins, equal is a tie.
pub fn preference_of_scores(a: f64, b: f64) -> Preference {
    match a.partial_cmp(&b) {
        Some(std::cmp::Ordering::Greater) => Preference::AWins,
        Some(std::cmp::Ordering::Less) => Preference::BWins,
        _ => Preference::Tie,
    }
}

/// The client's preference on every pair: both stories judged (concurrently, under the
/// client's limit), the higher Story Quality wins; None where either judgement failed.
pub async fn judge_preferences(client: &Arc<JudgeClient>, pairs: &[HumanPair]) -> Vec<Option<Preference>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, pair) in pairs.iter().enumerate() {
        for side in 0..2 {
            let (client, prompt, story) = (client.clone(), pair.prompt.clone(), pair.stories[side].clone());
            set.spawn(async move { (i, side, client.judge(&prompt, &story).await) });
        }
    }
    let mut scores = vec![[None, None]; pairs.len()];
    while let Some(joined) = set.join_next().await {
        // a task that panicked leaves its pair unscored
        if let Ok((i, side, result)) = joined {
            scores[i][side] = result.outcome.ok().map(|j| j.story_quality);
        }
    }
    scores
        .into_iter()
        .map(|s| match s {
            [Some(a), Some(b)] => Some(preference_of_scores(a, b)),
            _ => None,
        })
        .collect()
}

/// The source label of a judge client: its spec, and `@` the principles' hash when it reads
/// some.
pub fn judge_label(client: &JudgeClient) -> String {
    match &client.rubric.principles {
        Some(hash) => format!("{}@{hash}", client.spec.label()),
        None => client.spec.label(),
    }
}

/// The judge's agreement with the human verdicts of `pairs`.
pub async fn judge_agreement(client: &Arc<JudgeClient>, pairs: &[HumanPair]) -> SourceAgreement {
    let machine = judge_preferences(client, pairs).await;
    agreement(&judge_label(client), pairs, &machine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Preference::{AWins, BWins, Tie};

    fn pair(verdicts: Vec<Preference>) -> HumanPair {
        HumanPair { prompt_uid: "p".into(), prompt: "x".into(), stories: ["a".into(), "b".into()], verdicts }
    }

    #[test]
    fn compares_every_annotator_with_the_source_and_leaves_failures_out() {
        let pairs =
            vec![pair(vec![AWins, AWins]), pair(vec![BWins]), pair(vec![Tie, BWins]), pair(vec![AWins])];
        let machine = [Some(AWins), Some(AWins), Some(BWins), None];
        let a = agreement("judge", &pairs, &machine);
        // comparisons: (A,A) (A,A) (B,A) (T,B) (B,B); the fourth item failed
        assert_eq!((a.items, a.unscored, a.compared, a.decisive), (4, 1, 5, 4));
        assert_eq!(a.raw, Some(3.0 / 5.0));
        assert_eq!(a.raw_without_ties, Some(3.0 / 4.0));
        // by hand: human A 2/5, B 2/5, T 1/5; machine A 3/5, B 2/5: p_e = 6/25 + 4/25 = 0.4,
        // kappa = (0.6 - 0.4) / 0.6 = 1/3 (exact up to float rounding: 1e-12)
        assert!((a.cohens_kappa.unwrap() - 1.0 / 3.0).abs() < 1e-12, "{:?}", a.cohens_kappa);
    }

    #[test]
    fn scores_become_preferences() {
        assert_eq!(preference_of_scores(0.5, 0.2), AWins);
        assert_eq!(preference_of_scores(0.2, 0.5), BWins);
        assert_eq!(preference_of_scores(0.3, 0.3), Tie);
        assert_eq!(preference_of_scores(f64::NAN, 0.3), Tie);
    }
}
