//! The supervised warm start, writing a model back out, and the demo run's configuration
//! and launch path.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use candle_core::{DType, Device};
use polaris::lm::LanguageModel;
use polaris::model::export::save_pretrained;
use polaris::model::{all_trainable, frozen, tiny, LoadOptions};
use polaris::run::launch::{launch, Resume};
use polaris::run::{demo, EventKind};
use polaris::train::data::Example;
use polaris::train::sft::{sft, SftConfig};

fn examples(n: usize) -> Vec<Example> {
    tiny::DEMO_PROMPTS
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Example| e.story.is_some())
        .take(n)
        .collect()
}

/// The built-in tiny model in a temp folder, every parameter trainable.
fn trainable_tiny() -> (tempfile::TempDir, LanguageModel) {
    let dir = tempfile::tempdir().unwrap();
    tiny::write(dir.path()).unwrap();
    let opts = LoadOptions::new(DType::F32, Device::Cpu).trainable(all_trainable());
    let lm = LanguageModel::from_dir(dir.path(), &opts).unwrap();
    (dir, lm)
}

#[test]
fn sft_lowers_the_stories_nll_and_the_model_round_trips_through_a_directory() {
    let (dir, lm) = trainable_tiny();
    let data = examples(4);
    let cfg = SftConfig {
        epochs: 6,
        batch_size: 2,
        lr: 3e-3,
        max_response_tokens: 48,
        thinking: false,
        ..SftConfig::default()
    };
    let steps = sft(&lm, &data, &cfg, &AtomicBool::new(false), |_| Ok(())).unwrap();
    assert_eq!(steps.len(), 12);
    let first: f64 = steps[..2].iter().map(|s| s.loss).sum::<f64>() / 2.0;
    let last: f64 = steps[10..].iter().map(|s| s.loss).sum::<f64>() / 2.0;
    // the tiny model starts near uniform over its vocabulary (NLL ≈ ln V ≈ 7.6 nats); six
    // epochs on four 48-token openings at lr 3e-3 memorise a good part of them. A drop of
    // 1 nat per token is far beyond step-to-step noise (about 0.1-0.3 nats here).
    assert!(last < first - 1.0, "mean NLL went from {first:.3} to {last:.3}");

    let out = tempfile::tempdir().unwrap();
    let saved = out.path().join("model");
    save_pretrained(&lm.model, dir.path(), &saved).unwrap();
    assert!(save_pretrained(&lm.model, dir.path(), &saved)
        .unwrap_err()
        .to_string()
        .contains("already exists"));
    let back =
        LanguageModel::from_dir(&saved, &LoadOptions::new(DType::F32, Device::Cpu).trainable(frozen()))
            .unwrap();
    let ids = common::ids(&[vec![5, 9, 22, 40, 7, 3]]);
    let a: Vec<f32> = lm.model.logits(&ids).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = back.model.logits(&ids).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, b, "the written model computes exactly what the trained one does");
}

#[test]
fn sft_without_stories_is_a_clear_error() {
    let (_dir, lm) = trainable_tiny();
    let mut data = examples(2);
    for e in &mut data {
        e.story = None;
    }
    let e = sft(
        &lm,
        &data,
        &SftConfig { epochs: 1, ..SftConfig::default() },
        &AtomicBool::new(false),
        |_| Ok(()),
    )
    .unwrap_err();
    assert!(e.to_string().contains("story"), "{e}");
}

#[test]
fn the_demo_configuration_warm_starts_then_trains() {
    let cache = tempfile::tempdir().unwrap();
    std::env::set_var("POLARIS_CACHE_DIR", cache.path());
    // the run registry, kept out of the real home
    std::env::set_var("POLARIS_STATE_DIR", cache.path());
    let run = tempfile::tempdir().unwrap();
    let dir = run.path().join("demo");
    let full = demo::config(&dir).unwrap();
    assert_eq!((full.model.path.as_str(), full.reward.judge.as_str()), ("tiny", "offline"));
    assert!(full.sft.epochs > 0 && full.step.hri);
    // the demo's own settings, shortened for a test
    let mut cfg = full.clone();
    cfg.sft.epochs = 1;
    cfg.sft.max_response_tokens = 16;
    cfg.sft.batch_size = 16;
    cfg.run.steps = 2;
    cfg.step.group_size = 3;
    cfg.step.sampling.max_new_tokens = 12;
    let (_tx, rx) = mpsc::channel();
    let ending = launch(&cfg, Resume::Auto, rx, &AtomicBool::new(false), |_, _| {}).unwrap();
    assert_eq!(ending, polaris::run::driver::Ending::Finished);
    let events = polaris::run::log::read(&dir.join("events.jsonl")).unwrap().events;
    let sft_steps = events.iter().filter(|e| matches!(e.kind, EventKind::Sft(_))).count();
    let grpo_steps = events.iter().filter(|e| matches!(e.kind, EventKind::Step(_))).count();
    assert_eq!((sft_steps, grpo_steps), (2, 2), "32 stories in batches of 16, then 2 GRPO steps");
    let first_step = events.iter().position(|e| matches!(e.kind, EventKind::Step(_))).unwrap();
    let last_sft = events.iter().rposition(|e| matches!(e.kind, EventKind::Sft(_))).unwrap();
    assert!(last_sft < first_step, "the warm start comes first");
    assert!(dir.join("data.jsonl").exists() && dir.join("config.toml").exists());
}
