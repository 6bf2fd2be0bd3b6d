//! Data-parallel workers, gradient accumulation over micro-batches, PPO epochs with stored
//! old log-probs, and the KL term to a frozen reference policy.
//!
//! The equivalence tests run in f64: the only differences between one worker and several
//! (or one pass and several micro-batches) are the order of floating-point sums and the
//! padded length of each pass, about 1e-15 relative in f64. AdamW's first update,
//! lr·g/(|g| + eps), moves a weight by at most (lr / eps)·|Δg| = 1e5·|Δg|, so weights agree
//! to well under 1e-8. Several workers take the update ZeRO-1-sharded (train::zero; its own
//! tests are tests/zero.rs): one worker's unsharded AdamW is the reference.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use candle_core::{DType, Device};
use common::WordsReward;
use polaris::model::{all_trainable, tiny};
use polaris::run::rollout::ScoredRollout;
use polaris::run::stats::StepStats;
use polaris::train::collective::cpu::CpuCollective;
use polaris::train::collective::Collective;
use polaris::train::loss::LossConfig;
use polaris::train::schedule::LrSchedule;
use polaris::train::step::{StepConfig, TrainPrompt, Trainer};
use polaris::train::workers::{parse_devices, Workers};

fn config() -> StepConfig {
    common::step_config(3, 10, 1e-3)
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
fn work_without_a_named_device_runs_where_a_tensor_really_can() {
    // the Playground's device: a GPU only when one opens, else the CPU (a cuda build on a
    // machine without a GPU falls back instead of failing)
    let d = polaris::device::preferred_device();
    let t = candle_core::Tensor::new(&[1f32, 2., 3.], &d).unwrap();
    assert_eq!(t.sum_all().unwrap().to_scalar::<f32>().unwrap(), 6.0);
    #[cfg(not(feature = "cuda"))]
    assert!(d.is_cpu());
    #[cfg(feature = "cuda")]
    assert_eq!(d.is_cuda(), Device::new_cuda(0).is_ok());
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
fn three_sharded_workers_follow_one_unsharded_worker_over_two_steps() {
    // the second step reads the moments kept in the shards; the bound is the first step's
    // (above) for each of two steps. Rows are compared too: weights 1e-9 apart sample the
    // same tokens here.
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path()).unwrap();
    let one = workers(dir.path(), 1, DType::F64, false);
    let three = workers(dir.path(), 3, DType::F64, false);
    assert_eq!(three.collectives.len(), 3);
    let (mut t1, mut t3) = (Trainer::new(config(), 3), Trainer::new(config(), 3));
    let cancel = AtomicBool::new(false);
    for step in 1..=2 {
        let (s1, rows1) = t1.step(&one, &batch(), &WordsReward(12.0), &cancel).unwrap();
        let (s3, rows3) = t3.step(&three, &batch(), &WordsReward(12.0), &cancel).unwrap();
        assert_eq!(s3.workers, 3);
        for (a, b) in rows1.iter().zip(&rows3) {
            assert_eq!(a.rollout.response_ids, b.rollout.response_ids, "step {step}");
        }
        assert!((s1.grad_norm - s3.grad_norm).abs() < 1e-10 * s1.grad_norm.max(1.0), "step {step}");
        let d = max_diff(&weights(&one, 0), &weights(&three, 0));
        assert!(d < 2e-8, "step {step}: one worker vs three differ by {d}");
        for r in 1..3 {
            assert_eq!(max_diff(&weights(&three, 0), &weights(&three, r)), 0.0, "replica {r}");
        }
    }
    assert_eq!((t1.opt.step, t3.opt.step), (2, 2));
    // the checkpointed optimizer state, gathered from the shards, is the unsharded one
    let (s1, s3) = (t1.opt.state().unwrap(), t3.opt.state().unwrap());
    assert_eq!(s1.len(), s3.len());
    for (name, m) in &s1 {
        let other = &s3[name];
        assert_eq!(m.dims(), other.dims(), "{name}");
        let flat = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        // moments are sums of (1−β)·g over two steps: the gradients' 1e-15 relative
        let d = common::max_abs_diff(&flat(m), &flat(other));
        assert!(d < 1e-10, "{name}: {d}");
    }
}

#[test]
fn a_worker_that_never_reaches_the_update_fails_the_step_naming_it() {
    // two replicas on three ranks of a group: rank 2 never arrives, as a hung device would
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path()).unwrap();
    let mut w = workers(dir.path(), 2, DType::F32, false);
    let group = CpuCollective::group(3, Duration::from_millis(300)).unwrap();
    w.collectives = group.into_iter().take(2).map(|c| Arc::new(c) as Arc<dyn Collective>).collect();
    let mut t = Trainer::new(config(), 3);
    let e = t.step(&w, &batch(), &WordsReward(12.0), &AtomicBool::new(false)).unwrap_err();
    // this message is what the run's exit.json and status show as `failed` (run::launch)
    let text = format!("{e:#}");
    assert!(text.contains("collective timed out") && text.contains("rank(s) [2]"), "{text}");
    assert_eq!(t.opt.step, 0, "no update was counted");
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
