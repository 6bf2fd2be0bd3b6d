//! Human references within the response budget: a step cuts each reference row to
//! `sampling.max_new_tokens` as a rollout would be cut, and its statistics count the cut rows
//! and tokens; logs written before the fields existed still read.

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device};
use common::WordsReward;
use polaris::model::all_trainable;
use polaris::run::stats::StepStats;
use polaris::train::group::Rollout;
use polaris::train::schedule::LrSchedule;
use polaris::train::step::{StepConfig, TrainPrompt, Trainer};
use polaris::train::workers::Workers;

const BUDGET: usize = 12;

#[test]
fn a_step_cuts_long_references_to_the_budget_and_counts_them() {
    let cfg = StepConfig {
        group_size: 3,
        sampling: common::plain_sampling(BUDGET),
        thinking: false,
        lr: LrSchedule::Constant { lr: 1e-3 },
        ..StepConfig::default()
    };
    let long = "The fox ran home over the hill and slept by the fire until the morning came. ".repeat(4);
    let stories = ["The fox ran.", long.as_str(), long.as_str()];
    let batch: Vec<TrainPrompt> = stories
        .iter()
        .map(|s| TrainPrompt {
            prompt: "Write a story about a fox. The story should be 100 words long.",
            story: Some(s),
            reasoning: None,
        })
        .collect();
    let w = Workers::open("tiny", &[Device::Cpu], DType::F32, all_trainable(), false).unwrap();
    let lm = w.primary();
    let mut t = Trainer::new(cfg, 3);
    let (stats, rows) = t.step(&w, &batch, &WordsReward(12.0), &AtomicBool::new(false)).unwrap();

    let refs: Vec<&Rollout> = rows.iter().map(|r| &r.rollout).filter(|r| r.is_reference).collect();
    assert_eq!(refs.len(), 3);
    let short = refs[0];
    assert!(short.ended && short.cut_tokens == 0 && short.response_ids.len() <= BUDGET);
    assert!(
        lm.stop_ids.contains(short.response_ids.last().unwrap()),
        "the short reference lost its end token"
    );
    assert_eq!(short.story, "The fox ran.");
    for cut in &refs[1..] {
        assert_eq!(cut.response_ids.len(), BUDGET);
        assert!(!cut.ended && cut.cut_tokens > 0);
        assert!(!cut.response_ids.iter().any(|id| lm.stop_ids.contains(id)));
        assert!(long.starts_with(&cut.story) && cut.story.len() < long.len(), "{:?}", cut.story);
    }
    assert_eq!(stats.reference_rows_cut, 2);
    assert_eq!(stats.reference_tokens_cut, refs.iter().map(|r| r.cut_tokens).sum::<usize>());
    // every reference reached the loss, within the budget
    assert_eq!(stats.tokens, rows.iter().map(|r| r.rollout.response_ids.len()).sum::<usize>());
}

#[test]
fn logs_written_before_the_cut_fields_still_read() {
    let stats: StepStats = serde_json::from_str(r#"{"step": 3, "loss": 0.5}"#).unwrap();
    assert_eq!((stats.reference_rows_cut, stats.reference_tokens_cut), (0, 0));
    let row: Rollout = serde_json::from_str(
        r#"{"group": 0, "is_reference": true, "prompt_ids": [1], "response_ids": [2, 3],
            "thinking": null, "story": "A story.", "ended": true}"#,
    )
    .unwrap();
    assert_eq!(row.cut_tokens, 0);
}

/// Every policy row 0, every reference 1: each group is a tie.
struct Ties;

impl polaris::train::step::Rewarder for Ties {
    fn score(
        &self,
        candidates: &[polaris::reward::breakdown::Candidate],
    ) -> anyhow::Result<Vec<polaris::reward::Breakdown>> {
        let mut scored = WordsReward(12.0).score(candidates)?;
        for (b, c) in scored.iter_mut().zip(candidates) {
            b.reward = if c.response.is_some_and(|r| r.is_reference) { 1.0 } else { 0.0 };
        }
        Ok(scored)
    }
}

#[test]
fn tie_groups_give_the_reference_a_capped_advantage_and_are_counted() {
    use polaris::train::advantage::ReferenceAdvantage;
    let batch: Vec<TrainPrompt> = (0..2)
        .map(|_| TrainPrompt {
            prompt: "Write a story about a fox. The story should be 100 words long.",
            story: Some("The fox ran home."),
            reasoning: None,
        })
        .collect();
    let step = |mode: ReferenceAdvantage| {
        let cfg = StepConfig {
            group_size: 3,
            sampling: common::plain_sampling(BUDGET),
            thinking: false,
            lr: LrSchedule::Constant { lr: 1e-3 },
            hri_schedule: polaris::train::schedule::HriSchedule { warmup_steps: 0, ..Default::default() },
            reference_advantage: mode,
            ..StepConfig::default()
        };
        let w = Workers::open("tiny", &[Device::Cpu], DType::F32, all_trainable(), false).unwrap();
        Trainer::new(cfg, 3).step(&w, &batch, &Ties, &AtomicBool::new(false)).unwrap()
    };
    let (stats, rows) = step(ReferenceAdvantage::Capped);
    let refs: Vec<f64> = rows.iter().filter(|r| r.rollout.is_reference).map(|r| r.advantage).collect();
    assert_eq!(refs, vec![5.0, 5.0], "bounded to the default cap");
    assert_eq!((stats.zero_variance_groups, stats.reference_advantage_capped), (2, 2));
    // the loss is the reference rows' alone: -w·A per token (ratio 1) over all tokens, with
    // w = 0.4 and A = 5 at most 2 in size
    assert!(
        stats.loss.abs() <= 2.0 + 1e-9 && stats.grad_norm.is_finite(),
        "{} {}",
        stats.loss,
        stats.grad_norm
    );

    let (release, rows) = step(ReferenceAdvantage::Release);
    let refs: Vec<f64> = rows.iter().filter(|r| r.rollout.is_reference).map(|r| r.advantage).collect();
    assert!(refs.iter().all(|&a| (a - 1e6).abs() < 1.0), "the release's (1 - 0) / 1e-6: {refs:?}");
    assert_eq!(release.reference_advantage_capped, 2, "counted, not bounded");
    assert!(release.loss.abs() > 1e4, "the release's step: loss {}", release.loss);
}
