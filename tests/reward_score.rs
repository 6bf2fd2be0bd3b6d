//! `reward.score = release`: the released trainer's per-token reward read at the last
//! response token (RECIPE.md, "From rewards to the GRPO score"), by hand for a story, a
//! truncated story and a story-less row, and through a training step: rows record the
//! composite and the score, and advantages come from the score.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use candle_core::{DType, Device};
use polaris::model::all_trainable;
use polaris::reward::breakdown::{Breakdown, Candidate, Response, Weights};
use polaris::reward::judge::{JudgeClient, JudgeSettings, JudgeSpec};
use polaris::reward::rows::{score_rows, RowRules};
use polaris::reward::score::{release_score, release_token_rewards, ScoreMode, Scoring, ThinkTerms};
use polaris::reward::Rubric;
use polaris::train::advantage::{group_advantages, ReferenceAdvantage, DEFAULT_REFERENCE_CAP};
use polaris::train::step::{StackRewarder, StepConfig, TrainPrompt, Trainer};
use polaris::train::workers::Workers;

const PROMPT: &str = "Write a story about a lamp. The story should be 300 words long.";
const THINK: ThinkTerms = ThinkTerms { cap_tokens: 3072, penalty: 0.05 };

/// 320 distinct words: no repetition; 300 requested: T − lower < 0 and T + upper = 900, so no
/// length penalty; 320 ≥ 150 words, all visible: no blank penalty. The story scalar is SQ.
fn story() -> String {
    (0..320).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
}

fn row(story: &str, tokens: usize, thinking_tokens: usize, ended: bool, sq: f64) -> (Breakdown, Candidate) {
    let c = Candidate {
        prompt: PROMPT.into(),
        story: story.into(),
        response: Some(Response { tokens, thinking_tokens, ended, is_reference: false }),
        reference: None,
    };
    let mut b = Breakdown::rules(&c, Weights::training());
    b.story_quality = sq;
    b.compose();
    (b, c)
}

fn release(b: &mut Breakdown, c: &Candidate) -> f64 {
    Scoring { mode: ScoreMode::Release, think: THINK }.apply(b, c);
    assert_eq!(b.score_mode, ScoreMode::Release);
    b.score()
}

// Tolerance 1e-12: every value is a handful of float operations on numbers near 1.

#[test]
fn a_story_that_ended_scores_its_story_scalar_in_both_modes() {
    let (mut b, c) = row(&story(), 500, 120, true, 0.42);
    assert_eq!(
        (b.self_repetition, b.length_penalty, b.blank_penalty, b.overlong_penalty),
        (0.0, 0.0, 0.0, 0.0)
    );
    assert!((b.reward - 0.42).abs() < 1e-12);
    assert!((release(&mut b, &c) - 0.42).abs() < 1e-12);
    // every token, thinking and story, carries the story scalar
    let v = release_token_rewards(b.story_scalar(), c.response.as_ref().unwrap(), &b.weights, THINK);
    assert_eq!(v.len(), 500);
    assert!(v.iter().all(|x| (x - 0.42).abs() < 1e-12));
    // composite (the default) keeps the reward
    let (mut b, c) = row(&story(), 500, 120, true, 0.42);
    Scoring::default().apply(&mut b, &c);
    assert_eq!((b.score_mode, b.score), (ScoreMode::Composite, Some(b.reward)));
}

#[test]
fn a_truncated_story_gets_its_overlong_penalty_divided_by_its_story_tokens() {
    // 8000 of 8192 tokens, no end token: 320 into the 512-token window, −0.625
    let (mut b, c) = row(&story(), 8000, 1000, false, 0.42);
    assert!((b.overlong_penalty + 0.625).abs() < 1e-12);
    // composite: the penalty in full
    assert!((b.reward - (0.42 - 0.625)).abs() < 1e-12, "{}", b.reward);
    // release: spread over 7000 story tokens, the last of which is read
    let score = release(&mut b, &c);
    assert!((score - (0.42 - 0.625 / 7000.0)).abs() < 1e-12, "{score}");
    assert!((b.reward - (0.42 - 0.625)).abs() < 1e-12, "the reward (the composite) is kept beside the score");
}

#[test]
fn a_story_less_row_scores_zero_or_the_thinking_penalty_never_the_blank_penalty() {
    // all thinking, never closed, cut at 8192 tokens: past the 3072-token cap
    let (mut b, c) = row("", 8192, 8192, false, 0.0);
    assert_eq!(b.blank_penalty, 1.0);
    // composite: −1 (blank) − 1 (overlong) = −2
    assert!((b.reward + 2.0).abs() < 1e-12, "{}", b.reward);
    assert!((release(&mut b, &c) + 0.05).abs() < 1e-12, "{:?}", b.score);
    let v = release_token_rewards(b.story_scalar(), c.response.as_ref().unwrap(), &b.weights, THINK);
    assert!(v[..3072].iter().all(|&x| x == 0.0) && v[3072..].iter().all(|&x| x == -0.05));
    // within the cap: 0
    let (mut b, c) = row("", 2000, 2000, false, 0.0);
    assert_eq!(release(&mut b, &c), 0.0);
    // a closed think block followed by the end token alone has one story token: the story
    // scalar reaches it (blank −1)
    let (mut b, c) = row("", 1001, 1000, true, 0.0);
    assert!((release(&mut b, &c) + 1.0).abs() < 1e-12, "{:?}", b.score);
}

#[test]
fn text_without_tokens_scores_its_reward_in_release_mode_too() {
    let c = Candidate { prompt: PROMPT.into(), story: story(), response: None, reference: None };
    let mut b = Breakdown::rules(&c, Weights::training());
    b.story_quality = 0.3;
    b.compose();
    assert_eq!(release(&mut b, &c), b.reward);
}

#[test]
fn the_release_score_is_the_last_per_token_value() {
    let w = Weights::training();
    for (tokens, thinking, ended) in [(10, 3, true), (8192, 100, false), (8192, 8192, false), (0, 0, true)] {
        let r = Response { tokens, thinking_tokens: thinking, ended, is_reference: false };
        let v = release_token_rewards(-0.7, &r, &w, THINK);
        assert_eq!(release_score(-0.7, &r, &w, THINK), v.last().copied().unwrap_or(0.0));
    }
}

/// Rows of one group through the reward stack (offline judge) in release mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_rows_sets_each_rows_release_score() {
    let client = Arc::new(
        JudgeClient::new(JudgeSpec::Offline, Rubric::builtin().unwrap(), JudgeSettings::default()).unwrap(),
    );
    let rules = RowRules {
        scoring: Scoring { mode: ScoreMode::Release, think: THINK },
        ..RowRules::composite(Weights::training())
    };
    let response = |tokens, thinking_tokens, ended| {
        Some(Response { tokens, thinking_tokens, ended, is_reference: false })
    };
    let cands = [
        Candidate {
            prompt: PROMPT.into(),
            story: story(),
            response: response(600, 100, true),
            reference: None,
        },
        Candidate {
            prompt: PROMPT.into(),
            story: story(),
            response: response(8100, 100, false),
            reference: None,
        },
        Candidate {
            prompt: PROMPT.into(),
            story: String::new(),
            response: response(8192, 8192, false),
            reference: None,
        },
    ];
    let out = score_rows(&client, &cands, &rules).await;
    for (b, c) in out.iter().zip(&cands) {
        let want = release_score(b.story_scalar(), c.response.as_ref().unwrap(), &b.weights, THINK);
        assert_eq!((b.score_mode, b.score), (ScoreMode::Release, Some(want)));
    }
    assert_eq!(out[2].score, Some(-0.05));
    assert!(out[1].reward < out[1].score() - 0.5, "the composite keeps the overlong penalty in full");
}

/// A training step in release mode (tiny model, offline judge, thinking on so rows have
/// think blocks): each row records its composite (`breakdown.reward`) and its score, the
/// row's `reward` is the score, and the advantages come from the scores.
#[test]
fn a_release_scored_step_ranks_rows_by_their_scores() {
    let workers = Workers::open("tiny", &[Device::Cpu], DType::F32, all_trainable(), false).unwrap();
    let rubric = Rubric::builtin().unwrap();
    let mut reward =
        polaris::train::config::RewardSection { score: ScoreMode::Release, ..Default::default() };
    // a small budget with a window, so cut rows get an overlong penalty
    reward.weights.max_response_tokens = 40;
    reward.weights.overlong_window = 16;
    reward.think_cap_tokens = 4;
    let rules = reward.row_rules(&rubric).unwrap();
    let client = JudgeClient::new(JudgeSpec::Offline, rubric, JudgeSettings::default()).unwrap();
    let rewarder = StackRewarder::with_rules(client, rules).unwrap();
    // thinking closed after 6 tokens, so policy rows write stories too
    let sampling =
        polaris::generate::SamplingParams { thinking_budget: Some(6), ..common::plain_sampling(40) };
    let cfg = StepConfig { group_size: 4, sampling, ..StepConfig::default() };
    let story = "The lamp went out at dusk. Mara climbed the stairs and lit it again.";
    let batch = [TrainPrompt { prompt: PROMPT, story: Some(story), reasoning: Some("A lamp.") }];
    let mut t = Trainer::new(cfg, 11);
    let (stats, rows) = t.step(&workers, &batch, &rewarder, &AtomicBool::new(false)).unwrap();
    assert_eq!(stats.score_mode, ScoreMode::Release);
    assert_eq!(rows.len(), 4);
    let think = ThinkTerms { cap_tokens: 4, penalty: 0.05 };
    for r in &rows {
        let response = r.rollout.candidate(PROMPT, None).response.unwrap();
        assert_eq!(response.tokens, r.rollout.response_ids.len());
        assert!(response.thinking_tokens > 0, "thinking is on: every row opens with a think block");
        // the thinking tokens end at `</think>` (or run to the end, never closed)
        let close = workers.primary().think.unwrap().close;
        let t = response.thinking_tokens;
        assert!(t == response.tokens || r.rollout.response_ids[t - 1] == close, "{t} of {}", response.tokens);
        let want = release_score(r.breakdown.story_scalar(), &response, &r.breakdown.weights, think);
        assert_eq!((r.breakdown.score, r.reward), (Some(want), want));
    }
    // rows cut at the 40-token budget: the composite takes the overlong penalty in full, the
    // score a 1/S share of it
    assert!(rows.iter().any(|r| !r.rollout.ended && r.reward > r.breakdown.reward + 0.5));
    let (policy, reference): (Vec<_>, Vec<_>) = rows.iter().partition(|r| !r.rollout.is_reference);
    let scores: Vec<f64> = policy.iter().map(|r| r.reward).collect();
    let mut adv = group_advantages(&scores, Some(reference[0].reward), true);
    // the step's default bound on the reference's advantage (issue 17's tie guard)
    adv.bound_reference(ReferenceAdvantage::Capped, DEFAULT_REFERENCE_CAP);
    for (r, a) in policy.iter().zip(&adv.policy) {
        assert_eq!(r.advantage, *a);
    }
    assert_eq!(reference[0].advantage, adv.reference.unwrap());
    // the record holds both: the composite and the score
    let json = serde_json::to_value(&rows[0]).unwrap();
    assert!(json["breakdown"]["reward"].is_number() && json["breakdown"]["score"].is_number());
    assert_eq!(json["breakdown"]["score_mode"], "release");
}
