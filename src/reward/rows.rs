//! Scoring a training step's rows: `score_batch` plus what a run's `[reward]` adds: the
//! reference left unjudged at +clip (`reference_best`, the fork's gt_override_best), the
//! disqualification gates, and the score GRPO ranks by (`score`).

use std::sync::Arc;

use super::breakdown::{apply_batch_mean, judge_batch, Breakdown, Candidate, SqSource, Weights};
use super::disqualify::Gates;
use super::judge::JudgeClient;
use super::score::Scoring;

/// A run's reward rules for group rows.
#[derive(Debug, Clone, PartialEq)]
pub struct RowRules {
    pub weights: Weights,
    pub scoring: Scoring,
    /// The reference is not judged; its reward and score are +weights.clip.
    pub reference_best: bool,
    /// Disqualification gates, checked against the rubric; None when off.
    pub gates: Option<Gates>,
}

impl RowRules {
    /// The composite's rules and nothing more (what `score_batch` does).
    pub fn composite(weights: Weights) -> Self {
        Self { weights, scoring: Scoring::default(), reference_best: false, gates: None }
    }
}

/// Judges the rows that need a judge (concurrently, under the client's limit), applies the
/// gates, then the batch-mean fallback over the judged rows, and sets every row's score.
pub async fn score_rows(
    client: &Arc<JudgeClient>,
    candidates: &[Candidate],
    rules: &RowRules,
) -> Vec<Breakdown> {
    let best = |c: &Candidate| rules.reference_best && c.response.is_some_and(|r| r.is_reference);
    let judged: Vec<Candidate> = candidates.iter().filter(|c| !best(c)).cloned().collect();
    let mut scored = judge_batch(client, &judged, rules.weights).await;
    if let Some(gates) = &rules.gates {
        gates.apply(&mut scored, &judged);
    }
    apply_batch_mean(&mut scored);
    let mut scored = scored.into_iter();
    candidates
        .iter()
        .map(|c| {
            let mut b = if best(c) {
                let mut b = Breakdown::rules(c, rules.weights);
                b.reference_best = true;
                b.story_quality_source = SqSource::NotJudged;
                b.compose();
                b
            } else {
                scored.next().expect("one breakdown per judged candidate")
            };
            rules.scoring.apply(&mut b, c);
            b
        })
        .collect()
}
