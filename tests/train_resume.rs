//! Checkpoint and resume: steps after a resume equal the uninterrupted run's, bit for bit.

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device};
use common::WordsReward;
use polaris::lm::LanguageModel;
use polaris::model::{all_trainable, tiny, LoadOptions};
use polaris::run::stats::StepStats;
use polaris::train::checkpoint;
use polaris::train::step::{StepConfig, TrainPrompt, Trainer};
use polaris::train::workers::Workers;

fn config() -> StepConfig {
    common::step_config(4, 16, 5e-3)
}

fn open(dir: &std::path::Path) -> Workers {
    common::tiny_workers(dir)
}

#[test]
fn resuming_continues_exactly() {
    let model_dir = tempfile::tempdir().unwrap();
    tiny::write(model_dir.path()).unwrap();
    let batch = [TrainPrompt {
        prompt: "Write a story about a fox. The story should be 100 words long.",
        story: Some("The fox ran home over the hill and slept."),
        reasoning: None,
    }];
    let cancel = AtomicBool::new(false);

    // uninterrupted: 3 steps
    let lm = open(model_dir.path());
    let mut a = Trainer::new(config(), 11);
    let mut straight: Vec<StepStats> = Vec::new();
    for _ in 0..3 {
        straight.push(a.step(&lm, &batch, &WordsReward(16.0), &cancel).unwrap().0);
    }

    // 2 steps, checkpoint, a fresh process (new model, new trainer), 1 more step
    let run_dir = tempfile::tempdir().unwrap();
    let lm1 = open(model_dir.path());
    let mut b = Trainer::new(config(), 11);
    for _ in 0..2 {
        b.step(&lm1, &batch, &WordsReward(16.0), &cancel).unwrap();
    }
    let saved = checkpoint::save(run_dir.path(), &lm1.primary().model, &b, 2).unwrap();
    assert!(saved.ends_with("checkpoints/step-000002"));
    assert_eq!(checkpoint::latest(run_dir.path()), Some(saved.clone()));
    drop(lm1);
    let lm2 = open(model_dir.path());
    let mut c = Trainer::new(config(), 0); // the seed comes from the checkpoint
    let state = checkpoint::load(&saved, &lm2.primary().model, &mut c).unwrap();
    assert_eq!((state.step, state.data_cursor, c.seed), (2, 2, 11));
    let third = c.step(&lm2, &batch, &WordsReward(16.0), &cancel).unwrap().0;

    let same = |x: &StepStats, y: &StepStats| {
        x.step == y.step
            && x.policy_reward_mean == y.policy_reward_mean
            && x.loss == y.loss
            && x.grad_norm == y.grad_norm
    };
    assert!(same(&third, &straight[2]), "resumed step {third:?} vs uninterrupted {:?}", straight[2]);
    for ((n, va), (_, vc)) in lm.primary().model.trainable().iter().zip(lm2.primary().model.trainable()) {
        assert_eq!(common::tensor_max_diff(va.as_tensor(), vc.as_tensor()), 0.0, "{n} differs after resume");
    }
}

#[test]
fn sharded_workers_resume_exactly() {
    // two workers: the optimizer state lives in ZeRO-1 shards; the checkpoint gathers it by
    // name and the resumed run re-shards it. f32 master weights of f32 parameters are the
    // weights themselves, so the resumed step is the uninterrupted one bit for bit.
    let model_dir = tempfile::tempdir().unwrap();
    tiny::write(model_dir.path()).unwrap();
    let prompts =
        ["Write a story about a fox. The story should be 100 words long.", "Write a story about a lamp."];
    let batch: Vec<TrainPrompt> = prompts
        .iter()
        .map(|p| TrainPrompt {
            prompt: p,
            story: Some("The fox ran home over the hill and slept."),
            reasoning: None,
        })
        .collect();
    let cancel = AtomicBool::new(false);
    let two = || {
        Workers::open(
            model_dir.path().to_str().unwrap(),
            &[Device::Cpu, Device::Cpu],
            DType::F32,
            all_trainable(),
            false,
        )
        .unwrap()
    };
    let straight_workers = two();
    let mut a = Trainer::new(config(), 5);
    let mut straight = Vec::new();
    for _ in 0..3 {
        straight.push(a.step(&straight_workers, &batch, &WordsReward(16.0), &cancel).unwrap().0);
    }

    let run_dir = tempfile::tempdir().unwrap();
    let first = two();
    let mut b = Trainer::new(config(), 5);
    for _ in 0..2 {
        b.step(&first, &batch, &WordsReward(16.0), &cancel).unwrap();
    }
    let saved = checkpoint::save(run_dir.path(), &first.primary().model, &b, 2).unwrap();
    drop(first);
    let resumed = two();
    let mut c = Trainer::new(config(), 0);
    checkpoint::load(&saved, &resumed.primary().model, &mut c).unwrap();
    resumed.broadcast().unwrap(); // as the run driver does after a load
    let third = c.step(&resumed, &batch, &WordsReward(16.0), &cancel).unwrap().0;
    assert_eq!((third.loss, third.grad_norm), (straight[2].loss, straight[2].grad_norm));
    for w in 0..2 {
        let pairs = straight_workers.replicas[w]
            .lm
            .model
            .trainable()
            .iter()
            .zip(resumed.replicas[w].lm.model.trainable());
        for ((n, va), (_, vc)) in pairs {
            assert_eq!(
                common::tensor_max_diff(va.as_tensor(), vc.as_tensor()),
                0.0,
                "worker {w}: {n} differs after resume"
            );
        }
    }
}

#[test]
fn a_checkpoint_of_another_model_is_refused() {
    let model_dir = tempfile::tempdir().unwrap();
    tiny::write(model_dir.path()).unwrap();
    let lm = open(model_dir.path());
    let run_dir = tempfile::tempdir().unwrap();
    let t = Trainer::new(config(), 1);
    let saved = checkpoint::save(run_dir.path(), &lm.primary().model, &t, 0).unwrap();
    // a model with a different trainable set
    let only_head = LanguageModel::from_dir(
        model_dir.path(),
        &LoadOptions::new(DType::F32, Device::Cpu)
            .trainable(std::sync::Arc::new(|n: &str| n == "model.norm.weight" || n == "lm_head.weight")),
    )
    .unwrap();
    let mut t2 = Trainer::new(config(), 1);
    assert!(checkpoint::load(&saved, &only_head.model, &mut t2).is_ok()); // a subset is found by name
    std::fs::remove_file(saved.join(checkpoint::WEIGHTS)).unwrap();
    let e = checkpoint::load(&saved, &lm.primary().model, &mut t2).unwrap_err().to_string();
    assert!(e.contains("weights.safetensors"), "{e}");
    assert!(checkpoint::latest(tempfile::tempdir().unwrap().path()).is_none());
}
