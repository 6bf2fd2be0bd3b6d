//! Human references within the response budget: a step cuts each reference row to
//! `sampling.max_new_tokens` as a rollout would be cut, and its statistics count the cut rows
//! and tokens; logs written before the fields existed still read.

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device};
use common::WordsReward;
use polaris::model::all_trainable;
use polaris::train::group::Rollout;
use polaris::train::schedule::LrSchedule;
use polaris::train::step::{StepConfig, StepStats, TrainPrompt, Trainer};
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
