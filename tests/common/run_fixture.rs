//! A small run directory written with the trainer's own types: 40 steps of smooth curves, a
//! checkpoint, a warning, a pause, and the rollouts of steps 39 and 40 (3 groups of 3 policy
//! rows + the human reference, judged with quoted evidence; step 40's first reference was cut
//! to the response budget). Fixed numbers, so views of it snapshot the same every time.
//! `write_run_validated` adds validation passes at steps 0, 20 and 40, with the samples of
//! the one at step 40.

use std::io::Write;
use std::path::{Path, PathBuf};

use polaris::reward::breakdown::{apply_batch_mean, Candidate, Response, SqSource};
use polaris::reward::rubric::Sign;
use polaris::reward::score::ScoreMode;
use polaris::reward::totals::TotalsReading;
use polaris::reward::{Breakdown, DimensionScore, Judgement, Weights};
use polaris::run::event::Level;
use polaris::run::rollout::{RolloutKind, ScoredRollout};
use polaris::run::stats::StepStats;
use polaris::run::stats::ValStats;
use polaris::run::{Event, EventKind, PROTOCOL_VERSION};
use polaris::train::group::Rollout;

pub const STEPS: usize = 40;
pub const GROUPS: usize = 3;

/// Writes the fixture as `<parent>/run-fixture` (a fixed name: the title shows it).
pub fn write_run(parent: &Path) -> PathBuf {
    write(parent, false, ScoreMode::Composite)
}

/// The fixture as a run scored in `mode`: every step and row says so, and in release mode
/// each row's score is its reward less 0.01 (a value a composite view would not show).
pub fn write_run_scored(parent: &Path, mode: ScoreMode) -> PathBuf {
    write(parent, false, mode)
}

/// The fixture with validation passes before training and every 20 steps.
pub fn write_run_validated(parent: &Path) -> PathBuf {
    write(parent, true, ScoreMode::Composite)
}

fn write(parent: &Path, validated: bool, mode: ScoreMode) -> PathBuf {
    let dir = parent.join("run-fixture");
    std::fs::create_dir_all(&dir).unwrap();
    let mut events = Vec::new();
    events.push(EventKind::Started { config: serde_json::json!({}), resumed_from_step: None });
    if validated {
        events.push(EventKind::Val(Box::new(val_stats(0))));
    }
    for step in 1..=STEPS {
        events.push(EventKind::Step(Box::new(StepStats { score_mode: mode, ..step_stats(step) })));
        if validated && step % 20 == 0 {
            events.push(EventKind::Val(Box::new(val_stats(step))));
        }
        if step == 20 {
            events.push(EventKind::Checkpoint { step, path: "checkpoints/step-000020".into() });
        }
        if step == 30 {
            events.push(EventKind::Message { level: Level::Warn, text: "judge: 1 retry after a 429".into() });
        }
    }
    events.push(EventKind::Paused { step: STEPS });
    let mut f = std::fs::File::create(dir.join("events.jsonl")).unwrap();
    for (i, kind) in events.into_iter().enumerate() {
        let ev = Event { v: PROTOCOL_VERSION, seq: i as u64 + 1, time: 1_750_000_000.0 + i as f64, kind };
        writeln!(f, "{}", serde_json::to_string(&ev).unwrap()).unwrap();
    }
    let mut f = std::fs::File::create(dir.join("rollouts.jsonl")).unwrap();
    for step in [STEPS - 1, STEPS] {
        for mut row in rollouts(step, GROUPS) {
            if mode == ScoreMode::Release {
                row.breakdown.score_mode = mode;
                row.breakdown.score = Some(row.breakdown.reward - 0.01);
                row.reward = row.breakdown.reward - 0.01;
            }
            writeln!(f, "{}", serde_json::to_string(&row).unwrap()).unwrap();
        }
    }
    if validated {
        for row in val_rollouts(STEPS, GROUPS) {
            writeln!(f, "{}", serde_json::to_string(&row).unwrap()).unwrap();
        }
    }
    dir
}

pub fn val_stats(step: usize) -> ValStats {
    let x = step as f64;
    ValStats {
        step,
        prompts: GROUPS,
        reward_mean: -0.3 + 0.015 * x,
        reward_std: 0.1,
        story_quality_mean: 0.2 + 0.01 * x,
        length_ratio_mean: Some(0.5 + x / 100.0),
        words_mean: 120.0,
        ..ValStats::default()
    }
}

/// A validation pass's rows: one sample per prompt (stories 0..3), no reference, no advantage.
pub fn val_rollouts(step: usize, prompts: usize) -> Vec<ScoredRollout> {
    (0..prompts)
        .map(|group| {
            let prompt =
                format!("Write a story titled \"Held out {group}\". The story should be 30 words long.");
            let story = STORIES[group % 3].to_string();
            let candidate = Candidate {
                prompt: prompt.clone(),
                story: story.clone(),
                response: Some(Response { tokens: 40, thinking_tokens: 0, ended: true, is_reference: false }),
                reference: None,
            };
            let mut b = Breakdown::rules(&candidate, Weights::validation());
            let j = judgement(6 + group as i64);
            b.story_quality = j.story_quality;
            b.overall = Some(j.overall);
            b.judgement = Some(j);
            b.story_quality_source = SqSource::Judge;
            apply_batch_mean(std::slice::from_mut(&mut b));
            ScoredRollout {
                step,
                kind: RolloutKind::Val,
                prompt,
                rollout: Rollout {
                    group,
                    is_reference: false,
                    prompt_ids: vec![1, 2, 3],
                    response_ids: vec![4; 40],
                    thinking: None,
                    thinking_tokens: 0,
                    story,
                    ended: true,
                    cut_tokens: 0,
                },
                reward: b.reward,
                advantage: 0.0,
                breakdown: b,
            }
        })
        .collect()
}

pub fn step_stats(step: usize) -> StepStats {
    let x = step as f64;
    StepStats {
        step,
        policy_reward_mean: -0.5 + 0.02 * x + 0.05 * (x * 0.7).sin(),
        policy_reward_std: 0.2 + 0.05 * (x * 0.3).cos(),
        best_of_group_mean: -0.1 + 0.02 * x,
        reference_reward_mean: Some(0.6 + 0.02 * (x * 0.5).sin()),
        reference_rank_mean: Some(1.0 + x / 40.0),
        reference_beats_all: Some(1.0 - x / 80.0),
        length_ratio_mean: Some(0.4 + x / 80.0),
        words_mean: 100.0 + 5.0 * x,
        loss: 0.1 * (x * 0.4).cos(),
        clip_frac_low: 0.0,
        clip_frac_high: 0.01,
        kl: 0.001 * x,
        grad_norm: 1.0 + 0.5 * (x * 0.9).sin(),
        lr: 1e-6,
        hri_weight: (1.0 - x / 50.0).max(0.0),
        zero_variance_groups: step % 3,
        judge_failures: usize::from(step == 30),
        judge_cost: 0.0125,
        tokens: 1000 + step,
        reference_rows_cut: usize::from(step == STEPS),
        reference_tokens_cut: if step == STEPS { 1234 } else { 0 },
        seconds_generate: 3.0,
        seconds_judge: 1.0,
        seconds_train: 2.0,
        ..StepStats::default()
    }
}

const STORIES: [&str; 4] = [
    "The lamp went out at dusk.\nMara climbed the stairs with the cold air at her back.\n\nShe lit the wick again.",
    "Rain fell on the harbour.\nA boy counted boats.\nHe lost count at nine.",
    "It was a dark night. It was a dark night. It was a dark night.",
    "Every night a young fox climbed the hill and tried to count the stars.\n\"Why?\" asked the badger.\n\"Because each night I get a little further,\" she said.",
];

fn judgement(score: i64) -> Judgement {
    Judgement {
        dimensions: vec![
            DimensionScore {
                key: "scenes_on_the_page".into(),
                sign: Sign::Positive,
                score,
                max: 20,
                justification: "Concrete images such as \"the cold air\" and \"count the stars\".".into(),
            },
            DimensionScore {
                key: "repetition".into(),
                sign: Sign::Negative,
                score: 2,
                max: 10,
                justification: "One phrase recurs.".into(),
            },
        ],
        positive_total: score,
        negative_total: 2,
        bonus: 1,
        penalty: 0,
        bonus_applied: 1,
        penalty_applied: 0,
        bonus_evidence: vec!["\"a little further\"".into()],
        penalty_evidence: vec![],
        overall: score - 1,
        reported_overall: Some(score - 1),
        story_quality: (score - 1) as f64 / 20.0,
        totals: TotalsReading::Parts,
        reported: None,
    }
}

/// A step's scored rows: per group three policy rows (stories 0..3) and the reference
/// (story 3), every number fixed by (step, group, row).
pub fn rollouts(step: usize, groups: usize) -> Vec<ScoredRollout> {
    let mut out = Vec::new();
    for group in 0..groups {
        let prompt = format!("Write a story titled \"Lamp {group}\". The story should be 30 words long.");
        let mut batch = Vec::new();
        let mut rows = Vec::new();
        for (row, story) in STORIES.iter().enumerate() {
            let is_reference = row == 3;
            let cut_tokens = if is_reference && step == STEPS && group == 0 { 1234 } else { 0 };
            let story = story.to_string();
            let response = Response { tokens: 40, thinking_tokens: 12, ended: true, is_reference };
            let candidate = Candidate {
                prompt: prompt.clone(),
                story: story.clone(),
                response: Some(response),
                reference: None,
            };
            let mut b = Breakdown::rules(&candidate, Weights::training());
            let j = judgement(4 + 3 * row as i64 + (group + step) as i64 % 3);
            b.story_quality = j.story_quality;
            b.overall = Some(j.overall);
            b.judgement = Some(j);
            batch.push(b);
            rows.push(Rollout {
                group,
                is_reference,
                prompt_ids: vec![1, 2, 3],
                response_ids: vec![4; 40],
                thinking: Some(format!("Plan for group {group}: a lamp, a stair, a wick.")),
                story,
                ended: cut_tokens == 0,
                cut_tokens,
                thinking_tokens: 12,
            });
        }
        apply_batch_mean(&mut batch);
        let mean = batch.iter().map(|b| b.reward).sum::<f64>() / batch.len() as f64;
        for (rollout, breakdown) in rows.into_iter().zip(batch) {
            out.push(ScoredRollout {
                step,
                kind: RolloutKind::Train,
                prompt: prompt.clone(),
                rollout,
                reward: breakdown.reward,
                advantage: breakdown.reward - mean,
                breakdown,
            });
        }
    }
    out
}
