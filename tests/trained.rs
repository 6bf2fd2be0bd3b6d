//! One way to open trained weights and judges: what a `--model` names (train::trained), a
//! checkpoint's weights opened without its optimizer state, and a run's judge built from its
//! reward settings.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use common::{shared, tensor_max_diff};
use polaris::lm::LanguageModel;
use polaris::model::{all_trainable, LoadOptions};
use polaris::reward::{JudgeSettings, JudgeSpec};
use polaris::train::checkpoint;
use polaris::train::config::TrainConfig;
use polaris::train::step::Trainer;
use polaris::train::trained::{Trained, Weights};

/// A run of the tiny model (config.toml) with a full fine-tune checkpoint at step 3 whose
/// first trainable tensor is the base's + 0.5; returns the checkpoint and that tensor.
fn full_checkpoint(run: &Path) -> (PathBuf, Tensor) {
    std::fs::create_dir_all(run).unwrap();
    let cfg = TrainConfig::default();
    assert_eq!(cfg.model.path, "tiny");
    std::fs::write(run.join("config.toml"), cfg.to_toml().unwrap()).unwrap();
    let opts = LoadOptions::new(DType::F32, Device::Cpu).trainable(all_trainable());
    let lm = LanguageModel::open("tiny", &opts).unwrap();
    let (_, var) = &lm.model.trainable()[0];
    let moved = (var.as_tensor() + 0.5).unwrap();
    var.set(&moved).unwrap();
    let mut trainer = Trainer::new(cfg.step.clone(), 0);
    trainer.step = 3;
    (checkpoint::save(run, &lm.model, &trainer, 0).unwrap(), moved)
}

#[test]
fn a_full_fine_tune_checkpoint_opens_over_its_runs_base_without_reading_its_optimizer() {
    let tmp = tempfile::tempdir().unwrap();
    let (ckpt, moved) = full_checkpoint(&tmp.path().join("run"));
    // an optimizer file a resume could not use: opening the weights never reads it
    std::fs::write(ckpt.join(checkpoint::OPTIMIZER), b"not safetensors").unwrap();

    let weights = Weights::resolve(ckpt.to_str().unwrap(), None).unwrap();
    assert_eq!(weights, Weights { base: "tiny".into(), trained: Some(Trained::Checkpoint(ckpt.clone())) });
    let lm = weights.open(&LoadOptions::new(DType::F32, Device::Cpu)).unwrap();
    // f32 written and read back as f32: the same bits
    assert_eq!(tensor_max_diff(lm.model.trainable()[0].1.as_tensor(), &moved), 0.0);
    let base = LanguageModel::open("tiny", &LoadOptions::new(DType::F32, Device::Cpu)).unwrap();
    // and it is not the base's: every entry moved by 0.5 (give or take f32 rounding of x + 0.5)
    assert!((tensor_max_diff(&base.model.tensors()[0].1, &moved) - 0.5).abs() < 1e-6);

    // resuming reads the optimizer too, and refuses this one
    let mut trainer = Trainer::new(TrainConfig::default().step, 0);
    let e = format!("{:#}", checkpoint::load(&ckpt, &lm.model, &mut trainer).unwrap_err());
    assert!(e.contains(checkpoint::OPTIMIZER), "{e}");
}

#[test]
fn a_model_argument_names_a_base_an_adapter_or_a_checkpoint_and_anything_else_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| -> PathBuf {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    assert_eq!(Weights::resolve("tiny", None).unwrap(), Weights::base("tiny"));
    let adapter = dir("adapter");
    std::fs::write(adapter.join("adapter_config.json"), "{}").unwrap();
    assert_eq!(
        Weights::resolve("tiny", Some(&adapter)).unwrap().trained,
        Some(Trained::Adapter(adapter.clone()))
    );
    let refused = |model: &Path| Weights::resolve(model.to_str().unwrap(), None).unwrap_err().to_string();
    assert!(refused(&adapter).contains("a LoRA adapter, not a model"), "{}", refused(&adapter));
    let loose = dir("loose");
    std::fs::write(loose.join(checkpoint::WEIGHTS), b"").unwrap();
    assert!(refused(&loose).contains("merge them into their base first"), "{}", refused(&loose));
    assert!(refused(&tmp.path().join("nothing")).contains("no such model directory"));
    assert!(refused(&dir("empty")).contains("no config.json"));

    assert_eq!(Trained::in_dir(&adapter), Some(Trained::Adapter(adapter.clone())));
    assert_eq!(Trained::in_dir(&loose), Some(Trained::Checkpoint(loose.clone())));
    assert_eq!(Trained::in_dir(&dir("empty")), None);
    let e = Weights::checkpoint("tiny", &dir("empty")).unwrap_err().to_string();
    assert!(e.contains("neither adapter_config.json nor weights.safetensors"), "{e}");
}

#[test]
fn generate_opens_a_runs_checkpoint_given_as_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (ckpt, _) = full_checkpoint(&tmp.path().join("run"));
    let out = Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .args(["generate", "--model", ckpt.to_str().unwrap(), "--prompt", "A story", "--max-new-tokens", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // with an adapter as well, it is refused: the checkpoint brings its own weights
    let out = Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .args(["generate", "--model", ckpt.to_str().unwrap(), "--adapter", "a", "--prompt", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("brings its own weights"));
}

#[test]
fn a_runs_judge_is_built_from_its_reward_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = TrainConfig::default();
    let cache = tmp.path().join("judge-cache");
    let client = cfg
        .reward
        .judge_client(cfg.reward.rubric().unwrap(), cfg.judge.clone().with_default_cache(cache.clone()));
    let client = client.unwrap();
    assert_eq!(client.spec, JudgeSpec::Offline);
    assert_eq!(client.rubric.name, polaris::reward::Rubric::builtin().unwrap().name);
    assert_eq!(client.settings.cache_dir.as_deref(), Some(cache.as_path()));

    // a cache the settings name is kept
    let own = JudgeSettings { cache_dir: Some(tmp.path().join("own")), ..JudgeSettings::default() };
    assert_eq!(own.with_default_cache(cache).cache_dir, Some(tmp.path().join("own")));

    // an external prompt + schema pair wins over `rubric`
    let polaris = shared().join("data/polaris");
    cfg.reward.rubric_prompt = Some(polaris.join("story_quality_seq.txt").display().to_string());
    cfg.reward.rubric_schema = Some(polaris.join("story_quality_seq.schema.json").display().to_string());
    let external = polaris::reward::Rubric::from_prompt_and_schema(
        &polaris.join("story_quality_seq.txt"),
        &polaris.join("story_quality_seq.schema.json"),
    )
    .unwrap();
    assert_eq!(cfg.reward.rubric().unwrap().id, external.id);
    cfg.reward.judge = "no-such-judge".into();
    assert!(cfg.reward.judge_client(external, JudgeSettings::default()).is_err());
}
