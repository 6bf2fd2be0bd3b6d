//! From a row's reward to the score GRPO ranks it by (`reward.score`).
//!
//! `composite` (the default): the clipped composite, overlong penalty in full, the blank
//! penalty on a row that wrote no story.
//!
//! `release`: what the POLARIS release's trainer does (RECIPE.md, "From rewards to the GRPO
//! score"): its reward engine writes a reward per response token, and the trainer keeps the
//! value at the row's last response token. So a row with a story scores
//! clip(story scalar + overlong / S) (S its story tokens: the overlong penalty nearly
//! vanishes), and a row that is all thinking scores 0, or −think_penalty when its thinking ran
//! past the cap (the blank penalty never reaches it).

use serde::{Deserialize, Serialize};

use super::breakdown::{Breakdown, Candidate, Response, Weights};
use super::rules::overlong_penalty;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreMode {
    #[default]
    Composite,
    Release,
}

impl ScoreMode {
    /// The mode's name as the configuration writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Composite => "composite",
            Self::Release => "release",
        }
    }

    /// What the score is, for a line of text.
    pub fn label(self) -> &'static str {
        match self {
            Self::Composite => "composite",
            Self::Release => "release: last token",
        }
    }
}

/// The release's thinking terms (polaris_main.yaml: think_len_cap, think_len_penalty;
/// think_reward_mode story_mean, think_reward_scale 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThinkTerms {
    /// Thinking tokens past this many each get −penalty (0: no cap).
    pub cap_tokens: usize,
    pub penalty: f64,
}

/// The release's reward per response token, shape [response.tokens]: thinking tokens first
/// (up to and including `</think>`), then story tokens (the rest, end token included).
///
/// - every story token: the story scalar (w_sq·SQ − w_rep·rep − w_len·len − w_blank·blank);
/// - every thinking token: the story scalar when the row has story tokens, else 0;
/// - thinking tokens at positions cap.. (past the cap): −penalty each, on top;
/// - a response cut off without an end token inside the overlong window: its overlong
///   penalty (w_overlong × DAPO's, ≤ 0) spread evenly over its story tokens;
/// - each value clipped to ±weights.clip.
pub fn release_token_rewards(
    story_scalar: f64,
    response: &Response,
    weights: &Weights,
    think: ThinkTerms,
) -> Vec<f64> {
    let (n, thinking) = (response.tokens, response.thinking_tokens.min(response.tokens));
    let story = n - thinking;
    let think_value = if story > 0 { story_scalar } else { 0.0 };
    let mut values = vec![think_value; thinking];
    values.resize(n, story_scalar);
    if think.cap_tokens > 0 && thinking > think.cap_tokens {
        for v in &mut values[think.cap_tokens..thinking] {
            *v -= think.penalty;
        }
    }
    let overlong = weights.overlong
        * overlong_penalty(n, response.ended, weights.max_response_tokens, weights.overlong_window);
    if story > 0 && overlong < 0.0 {
        for v in &mut values[thinking..] {
            *v += overlong / story as f64;
        }
    }
    for v in &mut values {
        *v = v.clamp(-weights.clip, weights.clip);
    }
    values
}

/// The release's score: the per-token reward at the last response token (0 for an empty
/// response).
pub fn release_score(story_scalar: f64, response: &Response, weights: &Weights, think: ThinkTerms) -> f64 {
    release_token_rewards(story_scalar, response, weights, think).last().copied().unwrap_or(0.0)
}

/// How a run turns rewards into scores (the `[reward]` keys score, think_cap_tokens,
/// think_penalty).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scoring {
    pub mode: ScoreMode,
    pub think: ThinkTerms,
}

impl Default for Scoring {
    fn default() -> Self {
        Self { mode: ScoreMode::Composite, think: ThinkTerms { cap_tokens: 3072, penalty: 0.05 } }
    }
}

impl Scoring {
    /// Sets `b.score` (and its mode) once the reward is composed. A candidate that is not a
    /// model's response (text scored on its own) has no tokens to read: its score is its
    /// reward in either mode.
    pub fn apply(&self, b: &mut Breakdown, c: &Candidate) {
        b.score_mode = self.mode;
        b.score = Some(match (self.mode, &c.response) {
            (ScoreMode::Release, Some(r)) if !b.reference_best => {
                release_score(b.story_scalar(), r, &b.weights, self.think)
            }
            _ => b.reward,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THINK: ThinkTerms = ThinkTerms { cap_tokens: 3072, penalty: 0.05 };

    fn response(tokens: usize, thinking_tokens: usize, ended: bool) -> Response {
        Response { tokens, thinking_tokens, ended, is_reference: false }
    }

    #[test]
    fn per_token_values_by_hand() {
        // 10 tokens, 4 of thinking, cap 2: thinking tokens 2 and 3 carry −0.05 on top
        let w = Weights::training();
        let think = ThinkTerms { cap_tokens: 2, penalty: 0.05 };
        let v = release_token_rewards(-0.3, &response(10, 4, true), &w, think);
        assert_eq!(v, [-0.3, -0.3, -0.35, -0.35, -0.3, -0.3, -0.3, -0.3, -0.3, -0.3]);
        // the same row cut off at 8192 tokens with 6 story tokens... in a budget of 10 with a
        // window of 4: 10 − 6 = 4 tokens into the window → −1, spread over 6 story tokens
        let w = Weights { max_response_tokens: 10, overlong_window: 4, ..Weights::training() };
        let v = release_token_rewards(-0.3, &response(10, 4, false), &w, think);
        let s = -0.3 - 1.0 / 6.0;
        assert_eq!(v[..4], [-0.3, -0.3, -0.35, -0.35]);
        assert!(v[4..].iter().all(|x| (x - s).abs() < 1e-15), "{v:?}");
        // each token is clipped to ±2
        let v = release_token_rewards(-2.5, &response(3, 1, true), &Weights::training(), THINK);
        assert_eq!(v, [-2.0, -2.0, -2.0]);
    }
}
