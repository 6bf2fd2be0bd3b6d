//! Data-parallel workers, gradient accumulation over micro-batches, PPO epochs with stored
//! old log-probs, and the KL term to a frozen reference policy.
//!
//! The equivalence tests run in f64: the only differences between one worker and several
//! (or one pass and several micro-batches) are the order of floating-point sums and the
//! padded length of each pass, about 1e-15 relative in f64. AdamW's first update,
//! lr·g/(|g| + eps), moves a weight by at most (lr / eps)·|Δg| = 1e5·|Δg|, so weights agree
//! to well under 1e-8.

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device};
use common::WordsReward;
use polaris::model::{all_trainable, tiny};
use polaris::train::loss::LossConfig;
use polaris::train::schedule::LrSchedule;
use polaris::train::step::{ScoredRollout, StepConfig, StepStats, TrainPrompt, Trainer};
use polaris::train::workers::{parse_devices, Workers};

fn config() -> StepConfig {
    StepConfig {
        group_size: 3,
        sampling: common::plain_sampling(10),
        thinking: false,
        lr: LrSchedule::Constant { lr: 1e-3 },
        ..StepConfig::default()
    }
}

const PROMPTS: [&str; 3] = [
    "Write a story about a fox. The story should be 100 words long.",
    "Write a story about a lamp by the sea. The story should be 50 words long.",
    "Write a story about two sisters. The story should be 80 words long.",
];

fn batch() -> Vec<TrainPrompt<'static>> {
    PROMPTS
        .iter()
        .map(|p| TrainPrompt {
            prompt: p,
            story: Some("The fox ran home over the hill and slept."),
            reasoning: None,
        })
        .collect()
}

fn workers(model: &std::path::Path, n: usize, dtype: DType, reference: bool) -> Workers {
    Workers::open(model.to_str().unwrap(), &vec![Device::Cpu; n], dtype, all_trainable(), reference).unwrap()
}

fn step(w: &Workers, cfg: StepConfig) -> (StepStats, Vec<ScoredRollout>) {
    let mut t = Trainer::new(cfg, 3);
    t.step(w, &batch(), &WordsReward(12.0), &AtomicBool::new(false)).unwrap()
}

fn weights(w: &Workers, replica: usize) -> Vec<Vec<f64>> {
    w.replicas[replica]
        .lm
        .model
        .trainable()
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap())
        .collect()
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter().zip(b).map(|(x, y)| common::max_abs_diff(x, y)).fold(0.0, f64::max)
}

#[test]
fn device_lists_parse_and_bad_ones_are_named() {
    assert_eq!(parse_devices("cpu").unwrap().len(), 1);
    assert_eq!(parse_devices("cpu:3").unwrap().len(), 3);
    let e = parse_devices("cpu:0").unwrap_err().to_string();
    assert!(e.contains("cpu:N"), "{e}");
    let e = parse_devices("tpu:1").unwrap_err().to_string();
    assert!(e.contains("tpu:1"), "{e}");
}

#[test]
fn one_worker_and_two_workers_take_the_same_update() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path()).unwrap();
    let one = workers(dir.path(), 1, DType::F64, false);
    let two = workers(dir.path(), 2, DType::F64, false);
    let before = weights(&one, 0);
    let (s1, rows1) = step(&one, config());
    let (s2, rows2) = step(&two, config());
    assert_eq!(s2.workers, 2);
    // the same rows, in group order, whoever sampled them
    assert_eq!(rows1.len(), rows2.len());
    for (a, b) in rows1.iter().zip(&rows2) {
        assert_eq!(a.rollout.group, b.rollout.group);
        assert_eq!(a.rollout.response_ids, b.rollout.response_ids);
        assert_eq!(a.reward, b.reward);
        assert_eq!(a.advantage, b.advantage);
    }
    assert!((s1.loss - s2.loss).abs() < 1e-12, "{} vs {}", s1.loss, s2.loss);
    assert!((s1.grad_norm - s2.grad_norm).abs() < 1e-10 * s1.grad_norm.max(1.0));
    let (w1, w2a, w2b) = (weights(&one, 0), weights(&two, 0), weights(&two, 1));
    assert!(max_diff(&before, &w1) > 1e-5, "the step changed the weights");
    let d = max_diff(&w1, &w2a);
    assert!(d < 1e-8, "one worker vs two differ by {d}");
    // every replica holds the identical weights
    assert_eq!(max_diff(&w2a, &w2b), 0.0);
}

#[test]
fn micro_batches_accumulate_to_the_whole_batch_gradient() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path()).unwrap();
    let whole = workers(dir.path(), 1, DType::F64, false);
    let micro = workers(dir.path(), 1, DType::F64, false);
    let (s1, _) = step(&whole, config());
    let (s2, _) = step(&micro, StepConfig { micro_batch_rows: 2, ..config() });
    assert!((s1.loss - s2.loss).abs() < 1e-12);
    assert!((s1.grad_norm - s2.grad_norm).abs() < 1e-10 * s1.grad_norm.max(1.0));
    let d = max_diff(&weights(&whole, 0), &weights(&micro, 0));
    assert!(d < 1e-8, "micro-batched update differs by {d}");
}

#[test]
fn ppo_epochs_update_several_times_against_the_stored_old_log_probs() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path()).unwrap();
    let w = workers(dir.path(), 1, DType::F32, false);
    let cfg = StepConfig { ppo_epochs: 3, lr: LrSchedule::Constant { lr: 2e-2 }, ..config() };
    let mut t = Trainer::new(cfg, 3);
    let (stats, _) = t.step(&w, &batch(), &WordsReward(12.0), &AtomicBool::new(false)).unwrap();
    assert_eq!(t.opt.step, 3, "one optimizer update per epoch");
    // epoch 1 has ratio 1 (nothing clipped); later epochs move away from the sampling
    // policy, and at this learning rate some tokens leave the clip range
    assert!(stats.clip_frac_low + stats.clip_frac_high > 0.0, "{stats:?}");
    assert!(stats.entropy > 0.0);
}

#[test]
fn the_kl_term_is_zero_at_the_start_and_grows_as_the_policy_moves() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path()).unwrap();
    let cfg = StepConfig {
        loss: LossConfig { kl_coef: 0.1, ..LossConfig::default() },
        lr: LrSchedule::Constant { lr: 1e-2 },
        ..config()
    };
    let no_reference = workers(dir.path(), 1, DType::F32, false);
    let mut t = Trainer::new(cfg.clone(), 3);
    let e = t.step(&no_reference, &batch(), &WordsReward(12.0), &AtomicBool::new(false)).unwrap_err();
    assert!(e.to_string().contains("reference policy"), "{e}");

    let w = workers(dir.path(), 1, DType::F32, true);
    let mut t = Trainer::new(cfg, 3);
    let cancel = AtomicBool::new(false);
    let (first, _) = t.step(&w, &batch(), &WordsReward(12.0), &cancel).unwrap();
    // the policy equals the reference before its first update: k3(0) = 0 on every token
    assert_eq!(first.kl, 0.0);
    let (second, _) = t.step(&w, &batch(), &WordsReward(12.0), &cancel).unwrap();
    assert!(second.kl > 0.0, "{second:?}");
}
