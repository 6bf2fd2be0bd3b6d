//! Learning: 30 GRPO steps on the built-in tiny model with a rule reward raise the mean
//! policy reward, with human-reference injection on and off.

mod common;

use std::sync::atomic::AtomicBool;

use common::WordsReward;
use polaris::model::tiny;
use polaris::train::step::{StepConfig, TrainPrompt, Trainer};

fn run(hri: bool) -> (Vec<f64>, Vec<polaris::run::stats::StepStats>) {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path()).unwrap();
    let lm = common::tiny_workers(dir.path());
    let prompts: Vec<serde_json::Value> =
        tiny::DEMO_PROMPTS.lines().take(2).map(|l| serde_json::from_str(l).unwrap()).collect();
    // short references (each story's opening 40 words) keep the test's backward pass small
    let openings: Vec<String> = prompts
        .iter()
        .map(|p| p["story"].as_str().unwrap().split_whitespace().take(40).collect::<Vec<_>>().join(" "))
        .collect();
    let batch: Vec<TrainPrompt> = prompts
        .iter()
        .zip(&openings)
        .map(|(p, o)| TrainPrompt {
            prompt: p["prompt"].as_str().unwrap(),
            story: Some(o.as_str()),
            reasoning: None,
        })
        .collect();
    let cfg = StepConfig { hri, ..common::step_config(6, 24, 5e-3) };
    let mut trainer = Trainer::new(cfg, 7);
    let cancel = AtomicBool::new(false);
    let mut rewards = Vec::new();
    let mut all = Vec::new();
    for _ in 0..30 {
        let (stats, rows) = trainer.step(&lm, &batch, &WordsReward(24.0), &cancel).unwrap();
        assert_eq!(rows.len(), 12);
        assert_eq!(rows.iter().filter(|r| r.rollout.is_reference).count(), if hri { 2 } else { 0 });
        rewards.push(stats.policy_reward_mean);
        all.push(stats);
    }
    (rewards, all)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn thirty_steps_raise_the_policy_reward_with_and_without_hri() {
    for hri in [true, false] {
        let (r, stats) = run(hri);
        let (first, last) = (mean(&r[..5]), mean(&r[25..]));
        eprintln!("hri={hri}: first five steps {first:.3}, last five {last:.3}; rewards {r:?}");
        // The first steps' mean reward moves by about 0.04 from step to step (12 rows of a
        // bounded reward), so the mean of five steps by about 0.02: a rise of 0.1 is five of
        // those, far from noise. Seeded, so the run is the same each time (seen: +0.24 with
        // HRI, +0.45 without).
        assert!(last - first >= 0.1, "hri={hri}: mean policy reward went from {first:.3} to {last:.3}");
        let s = stats.last().unwrap();
        assert!(s.tokens > 0 && s.lr == 5e-3);
        // a group whose rows all score the same has no gradient; the others do
        assert!(stats.iter().all(|s| s.grad_norm > 0.0 || s.zero_variance_groups == 2));
        assert!(stats.iter().any(|s| s.grad_norm > 0.0));
        if hri {
            assert!((s.hri_weight - 0.4).abs() < 1e-12);
            // the 40-word openings run past the 24-token budget, so each is cut like a rollout
            // and keeps only the words of its first 24 tokens: less than the full reward
            assert_eq!((s.reference_rows_cut, s.reference_tokens_cut > 0), (2, true));
            let reference = s.reference_reward_mean.unwrap();
            eprintln!("reference reward {reference}");
            assert!(reference > 0.2 && reference < 1.0, "reference reward {reference}");
        } else {
            assert_eq!(s.reference_reward_mean, None);
        }
    }
}
