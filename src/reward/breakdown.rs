//! The composite reward of one story and the record that explains it:
//! reward = clip(w_sq·SQ − w_rep·self_rep − w_len·length_pen − w_blank·blank_pen + overlong, ±clip).
//! A story whose judgement failed gets the mean Story Quality of the batch's successful ones
//! (RECIPE.md), and the record says so.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answer::Judgement;
use super::disqualify::Disqualified;
use super::judge::http::Usage;
use super::judge::JudgeClient;
use super::rules::{blank_penalty, overlong_penalty, self_repetition, story_words, LengthTarget, Repetition};
use super::score::ScoreMode;
use crate::generate::length::{length_ratio, requested_words};

/// Weights of the composite (RECIPE.md).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    pub story_quality: f64,
    pub repetition: f64,
    pub length: f64,
    pub blank: f64,
    /// Multiplies the (negative) overlong penalty.
    pub overlong: f64,
    /// The composite is clipped to [-clip, clip].
    pub clip: f64,
    /// Token budget and the soft-punishment window at its end (DAPO).
    pub max_response_tokens: usize,
    pub overlong_window: usize,
}

impl Default for Weights {
    fn default() -> Self {
        Self::training()
    }
}

impl Weights {
    /// Training: w_sq 1.0, w_rep 1.5, w_len 0.8, w_blank 1.0.
    pub fn training() -> Self {
        Self {
            story_quality: 1.0,
            repetition: 1.5,
            length: 0.8,
            blank: 1.0,
            overlong: 1.0,
            clip: 2.0,
            max_response_tokens: 8192,
            overlong_window: 512,
        }
    }
    /// Validation: w_sq 1.0, w_rep 0.8, w_len 0.2, w_blank 1.0, and no overlong penalty.
    pub fn validation() -> Self {
        Self { repetition: 0.8, length: 0.2, overlong: 0.0, ..Self::training() }
    }
}

/// One story to score: the story proper (thinking already split off).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub prompt: String,
    pub story: String,
    /// The response tokens that held the story, when it is a row of a group (sampled, or the
    /// teacher-forced human reference); None for text scored on its own.
    pub response: Option<Response>,
    /// The row's human reference story: its words are the length target of a prompt that
    /// asks for no length (RECIPE.md, the release's rule).
    pub reference: Option<String>,
}

/// A group row's response, as tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// Response tokens, thinking and end token included.
    pub tokens: usize,
    /// The leading tokens up to and including `</think>` (all of them when the thinking never
    /// closed); the rest are story tokens.
    pub thinking_tokens: usize,
    /// Whether an end token closed the response (false: cut off at the budget).
    pub ended: bool,
    /// The human reference: its length is the data's, not a choice the policy made, so the
    /// composite gives it no overlong penalty.
    pub is_reference: bool,
}

/// Where a story's Story Quality came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqSource {
    Judge,
    Cache,
    /// the judgement failed; the batch mean of successful ones stands in
    BatchMean,
    /// no judgement in the batch succeeded: 0
    None,
    /// not judged: `reward.reference_best` gives the reference +clip
    NotJudged,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Breakdown {
    /// Words of the story as the length and blank rules count them (after HTML unescaping).
    pub words: usize,
    pub requested_words: Option<usize>,
    /// What the length penalty aims at: the request, else the reference's words; at least 150.
    /// Absent in older logs.
    #[serde(default)]
    pub length_target: Option<LengthTarget>,
    pub length_ratio: Option<f64>,
    /// Normalised Story Quality (overall / divisor).
    pub story_quality: f64,
    pub story_quality_source: SqSource,
    /// The recomputed overall score, when the judge succeeded.
    pub overall: Option<i64>,
    pub judge_failure: Option<String>,
    /// Per-dimension scores and justifications, totals, catch-alls.
    pub judgement: Option<Judgement>,
    /// The judge's JSON answer as given.
    pub judge_answer: Option<Value>,
    pub judge_usage: Usage,
    pub judge_attempts: u32,
    /// Wall seconds of the judge call (`JudgeResult::seconds`); None when the cache answered
    /// or no judge was asked. Absent in older logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_seconds: Option<f64>,
    pub self_repetition: f64,
    pub repetition: Repetition,
    pub length_penalty: f64,
    /// The release's logged length reward (1 at the target, 0 at the band's edges and beyond);
    /// not part of the composite.
    pub length_reward: f64,
    pub blank_penalty: f64,
    pub overlong_penalty: f64,
    /// Before the clip.
    pub composite: f64,
    /// The reward: the composite clipped.
    pub reward: f64,
    pub weights: Weights,
    /// What GRPO ranks the row by (`reward.score`, see score.rs): the reward (composite), or
    /// the release's last-token value. Absent in older logs and outside training: the reward.
    #[serde(default)]
    pub score: Option<f64>,
    #[serde(default)]
    pub score_mode: ScoreMode,
    /// `reward.reference_best`: this reference was not judged; its reward is +clip.
    #[serde(default)]
    pub reference_best: bool,
    /// The disqualification gates that floored Story Quality (`reward.disqualify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disqualified: Option<Disqualified>,
    /// The version (hash) of the principles the judge scored with (`Rubric::with_principles`);
    /// absent when it scored without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principles: Option<String>,
}

impl Breakdown {
    /// The rule components of a story; Story Quality is filled in by `finish`.
    pub fn rules(c: &Candidate, weights: Weights) -> Self {
        let words = story_words(&c.story);
        let requested = requested_words(&c.prompt);
        let target = LengthTarget::of(&c.prompt, c.reference.as_deref());
        let repetition = self_repetition(&c.story);
        let blank = blank_penalty(&c.story);
        Self {
            words,
            requested_words: requested,
            length_target: Some(target),
            length_ratio: requested.and_then(|r| length_ratio(words, r)),
            story_quality: 0.0,
            story_quality_source: SqSource::None,
            overall: None,
            judge_failure: None,
            judgement: None,
            judge_answer: None,
            judge_usage: Usage::default(),
            judge_attempts: 0,
            judge_seconds: None,
            self_repetition: repetition.penalty,
            repetition,
            length_penalty: target.penalty(words),
            length_reward: target.reward(words, blank > 0.0),
            blank_penalty: blank,
            overlong_penalty: c.response.filter(|r| !r.is_reference).map_or(0.0, |r| {
                overlong_penalty(r.tokens, r.ended, weights.max_response_tokens, weights.overlong_window)
            }),
            composite: 0.0,
            reward: 0.0,
            weights,
            score: None,
            score_mode: ScoreMode::Composite,
            reference_best: false,
            disqualified: None,
            principles: None,
        }
    }

    /// w_sq·SQ − w_rep·rep − w_len·len − w_blank·blank: the composite without the overlong
    /// penalty, unclipped (the release's per-token value).
    pub fn story_scalar(&self) -> f64 {
        let w = self.weights;
        w.story_quality * self.story_quality
            - w.repetition * self.self_repetition
            - w.length * self.length_penalty
            - w.blank * self.blank_penalty
    }

    /// Sets the composite and the reward from the components (Story Quality included).
    pub fn compose(&mut self) {
        let w = self.weights;
        self.composite = self.story_scalar() + w.overlong * self.overlong_penalty;
        self.reward = self.composite.clamp(-w.clip, w.clip);
        if self.reference_best {
            (self.composite, self.reward) = (w.clip, w.clip);
        }
    }

    /// The score GRPO uses: `score` when set, else the reward.
    pub fn score(&self) -> f64 {
        self.score.unwrap_or(self.reward)
    }
}

/// Judges every candidate concurrently (under the client's limit) and composes the rewards,
/// applying the batch-mean fallback to failed judgements.
pub async fn score_batch(
    client: &Arc<JudgeClient>,
    candidates: &[Candidate],
    weights: Weights,
) -> Vec<Breakdown> {
    let mut out = judge_batch(client, candidates, weights).await;
    apply_batch_mean(&mut out);
    out
}

/// Rule components and judgements of every candidate, judged concurrently; the fallback and
/// the composite are left to `apply_batch_mean`, applied once over the whole batch.
pub async fn judge_batch(
    client: &Arc<JudgeClient>,
    candidates: &[Candidate],
    weights: Weights,
) -> Vec<Breakdown> {
    // a reward model scores the whole batch in packed passes on its device
    if client.is_reward_model() {
        let items = candidates.iter().map(|c| (c.prompt.clone(), c.story.clone())).collect();
        if let Some(scored) = client.judge_many(items).await {
            let principles = client.rubric.principles.as_deref();
            return compose_judged(candidates, scored.into_iter().map(Ok).collect(), weights, principles);
        }
    }
    let mut set = tokio::task::JoinSet::new();
    let mut index_of = std::collections::HashMap::new();
    for (i, c) in candidates.iter().enumerate() {
        let (client, prompt, story) = (client.clone(), c.prompt.clone(), c.story.clone());
        let handle = set.spawn(async move { (i, client.judge(&prompt, &story).await) });
        index_of.insert(handle.id(), i);
    }
    let mut results: Vec<Result<super::judge::JudgeResult, String>> =
        vec![Err("the judge task did not finish".into()); candidates.len()];
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, r)) => results[i] = Ok(r),
            // a judge task that panicked is that story's failure, recorded like any other
            Err(e) => {
                if let Some(&i) = index_of.get(&e.id()) {
                    results[i] = Err(format!("the judge task failed: {e}"));
                }
            }
        }
    }
    compose_judged(candidates, results, weights, client.rubric.principles.as_deref())
}

/// The rule components of every candidate with its judgement (or why there is none) filled in,
/// each marked with the hash of the principles the judge read (`principles`).
fn compose_judged(
    candidates: &[Candidate],
    results: Vec<Result<super::judge::JudgeResult, String>>,
    weights: Weights,
    principles: Option<&str>,
) -> Vec<Breakdown> {
    let mut out: Vec<Breakdown> = candidates.iter().map(|c| Breakdown::rules(c, weights)).collect();
    for (b, r) in out.iter_mut().zip(results) {
        b.principles = principles.map(str::to_string);
        let r = match r {
            Ok(r) => r,
            Err(reason) => {
                b.judge_failure = Some(reason);
                continue;
            }
        };
        b.judge_usage = r.usage;
        b.judge_attempts = r.attempts;
        b.judge_seconds = (!r.cached).then_some(r.seconds);
        b.judge_answer = r.answer;
        match r.outcome {
            Ok(j) => {
                b.story_quality = j.story_quality;
                b.overall = Some(j.overall);
                b.story_quality_source = if r.cached { SqSource::Cache } else { SqSource::Judge };
                b.judgement = Some(j);
            }
            Err(reason) => b.judge_failure = Some(reason),
        }
    }
    out
}

/// Failed judgements take the mean Story Quality of the successful ones; then every
/// composite is computed.
pub fn apply_batch_mean(batch: &mut [Breakdown]) {
    let ok: Vec<f64> = batch
        .iter()
        .filter(|b| b.judge_failure.is_none() && b.judgement.is_some())
        .map(|b| b.story_quality)
        .collect();
    let mean = if ok.is_empty() { None } else { Some(ok.iter().sum::<f64>() / ok.len() as f64) };
    for b in batch.iter_mut() {
        if b.judgement.is_none() {
            match mean {
                Some(m) => {
                    b.story_quality = m;
                    b.story_quality_source = SqSource::BatchMean;
                }
                None => {
                    b.story_quality = 0.0;
                    b.story_quality_source = SqSource::None;
                }
            }
        }
        b.compose();
    }
}
