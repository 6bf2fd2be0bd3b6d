//! Training with LoRA: a step moves only the adapters, checkpoints hold a PEFT adapter and
//! resume exactly, and `polaris-tui train` / `merge` export what was trained.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device};
use common::{tensor_max_diff, WordsReward};
use polaris::lm::LanguageModel;
use polaris::model::lora::peft;
use polaris::model::{adapters_only, tiny, LoadOptions, LoraConfig, LoraInit, LoraSpec};
use polaris::run::stats::StepStats;
use polaris::train::checkpoint;
use polaris::train::step::{StepConfig, TrainPrompt, Trainer};
use polaris::train::workers::Workers;

fn config() -> StepConfig {
    common::step_config(4, 16, 5e-3)
}

/// The tiny model with a fresh all-linear adapter; dropout on, so resuming must restore
/// the mask generator too.
fn open_lora(dir: &Path) -> Workers {
    let spec = LoraSpec {
        config: LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            target_modules: vec!["all-linear".into()],
            use_rslora: false,
        },
        init: LoraInit::Fresh { seed: 5 },
    };
    let lm = LanguageModel::from_dir(
        dir,
        &LoadOptions::new(DType::F32, Device::Cpu).lora(spec).trainable(adapters_only()),
    )
    .unwrap();
    lm.model.set_training(true);
    Workers::single(lm)
}

const BATCH: [TrainPrompt; 1] = [TrainPrompt {
    prompt: "Write a story about a fox. The story should be 100 words long.",
    story: Some("The fox ran home over the hill and slept."),
    reasoning: None,
}];

#[test]
fn a_lora_step_moves_only_the_adapters_and_resumes_exactly() {
    let model_dir = tempfile::tempdir().unwrap();
    tiny::write(model_dir.path()).unwrap();
    let cancel = AtomicBool::new(false);

    let lm = open_lora(model_dir.path());
    let before: Vec<(String, Vec<f32>)> = lm
        .primary()
        .model
        .tensors()
        .iter()
        .map(|(n, t)| (n.clone(), t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect();
    let mut a = Trainer::new(config(), 11);
    let mut straight: Vec<StepStats> = Vec::new();
    for _ in 0..3 {
        straight.push(a.step(&lm, &BATCH, &WordsReward(16.0), &cancel).unwrap().0);
    }
    assert!(straight.iter().any(|s| s.grad_norm > 0.0));
    let mut moved = 0;
    for ((name, old), (_, t)) in before.iter().zip(lm.primary().model.tensors()) {
        let new: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let is_adapter = name.ends_with(".lora_A.weight") || name.ends_with(".lora_B.weight");
        if is_adapter {
            moved += (&new != old) as usize;
        } else {
            assert!(&new == old, "{name} is a base weight and moved");
        }
    }
    assert!(moved > 0, "the adapters train");

    // 2 steps, checkpoint, a fresh model and trainer, 1 more step
    let run_dir = tempfile::tempdir().unwrap();
    let lm1 = open_lora(model_dir.path());
    let mut b = Trainer::new(config(), 11);
    for _ in 0..2 {
        b.step(&lm1, &BATCH, &WordsReward(16.0), &cancel).unwrap();
    }
    let saved = checkpoint::save(run_dir.path(), &lm1.primary().model, &b, 2).unwrap();
    // the checkpoint is a PEFT adapter directory, with no full weights file
    assert!(saved.join(peft::CONFIG_FILE).exists() && saved.join(peft::WEIGHTS_FILE).exists());
    assert!(!saved.join(checkpoint::WEIGHTS).exists());
    assert!(peft::read_config(&saved).is_ok());
    drop(lm1);
    let lm2 = open_lora(model_dir.path());
    let mut c = Trainer::new(config(), 0);
    checkpoint::load(&saved, &lm2.primary().model, &mut c).unwrap();
    let third = c.step(&lm2, &BATCH, &WordsReward(16.0), &cancel).unwrap().0;
    let s = &straight[2];
    assert!(
        third.step == s.step
            && third.policy_reward_mean == s.policy_reward_mean
            && third.loss == s.loss
            && third.grad_norm == s.grad_norm,
        "resumed step {third:?} vs uninterrupted {s:?}"
    );
    for ((n, va), (_, vc)) in lm.primary().model.trainable().iter().zip(lm2.primary().model.trainable()) {
        assert_eq!(tensor_max_diff(va.as_tensor(), vc.as_tensor()), 0.0, "{n} differs after resume");
    }

    // a full fine-tune model cannot take a LoRA checkpoint
    let full = LanguageModel::from_dir(
        model_dir.path(),
        &LoadOptions::new(DType::F32, Device::Cpu).trainable(polaris::model::all_trainable()),
    )
    .unwrap();
    let e = checkpoint::load(&saved, &full.model, &mut Trainer::new(config(), 0)).unwrap_err();
    assert!(format!("{e:#}").contains("model.lora.enabled"), "{e:#}");
}

fn polaris(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .args(args)
        .env("POLARIS_CACHE_DIR", cache)
        .env("POLARIS_STATE_DIR", cache) // the run registry, kept out of the real home
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn train(out: &Path, extra: &[&str], cache: &Path) -> Output {
    let mut args = vec!["train"];
    args.extend_from_slice(common::tiny_cli::TINY);
    args.extend([
        "--set",
        "step.lr={ kind = \"constant\", lr = 1e-2 }",
        "--data",
        concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/prompts.jsonl"),
        "--out",
        out.to_str().unwrap(),
    ]);
    args.extend_from_slice(extra);
    polaris(&args, cache)
}

/// The tiny model directory `polaris-tui` created under its cache.
fn tiny_dir(cache: &Path) -> std::path::PathBuf {
    std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("tiny-"))
        .expect("the tiny model in the cache")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn last_logits(lm: &LanguageModel) -> candle_core::Tensor {
    let (_, ids) = lm.prompt("Once upon a time", true, false).unwrap();
    let x = common::ids(&[ids]);
    let mut cache = lm.model.new_cache(vec![0]);
    lm.model.forward_cached(&x, &mut cache, polaris::model::Kernels::Fused).unwrap()
}

#[test]
fn train_with_lora_then_merge_through_the_cli() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = work.path().join("lora-run");
    let lora = ["--set", "model.lora.enabled=true", "--set", "model.lora.target_modules=q_proj"];
    let o = train(&run, &[&["--steps", "1"][..], &lora].concat(), cache.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let step1 = run.join("checkpoints/step-000001");
    let cfg = common::read_json(&step1.join(peft::CONFIG_FILE));
    assert_eq!((cfg["r"].as_u64(), cfg["target_modules"].clone()), (Some(16), serde_json::json!(["q_proj"])));
    let base = tiny_dir(cache.path());
    assert_eq!(cfg["base_model_name_or_path"], base.display().to_string());
    // resuming a LoRA run reads its adapter back
    let o = train(&run, &[&["--steps", "2", "--resume", "auto"][..], &lora].concat(), cache.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let step2 = run.join("checkpoints/step-000002");

    let merged = work.path().join("merged");
    let o = polaris(
        &["merge", "--base", "tiny", "--adapter", step2.to_str().unwrap(), "--out", merged.to_str().unwrap()],
        cache.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("LoRA-merged"), "{}", stderr(&o));
    for f in ["config.json", "tokenizer.json", "chat_template.jinja", "model.safetensors"] {
        assert!(merged.join(f).exists(), "{f} in the merged directory");
    }
    let opts = LoadOptions::new(DType::F32, Device::Cpu);
    let plain = LanguageModel::open(merged.to_str().unwrap(), &opts).unwrap();
    let with_adapter =
        LanguageModel::open(base.to_str().unwrap(), &opts.clone().lora(LoraSpec::open(&step2).unwrap()))
            .unwrap();
    let untrained = LanguageModel::open(base.to_str().unwrap(), &opts).unwrap();
    let (m, a, u) = (last_logits(&plain), last_logits(&with_adapter), last_logits(&untrained));
    assert!(tensor_max_diff(&a, &u) > 1e-4, "two steps at lr 1e-2 move the adapter");
    // f32: W + s·BA folded vs applied in two products; rounding only (see tests/lora.rs)
    assert!(tensor_max_diff(&m, &a) < 1e-4, "merged {} vs adapter", tensor_max_diff(&m, &a));

    // `score --adapter` applies the adapter: the same log-probs as the merged model's
    let story = work.path().join("story.txt");
    std::fs::write(&story, "The fox ran home over the hill and slept.").unwrap();
    let score = |extra: &[&str]| -> Vec<f64> {
        let mut args = vec!["score", "--text", story.to_str().unwrap(), "--raw", "--json"];
        args.extend_from_slice(extra);
        let o = polaris(&args, cache.path());
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        common::f64s(&v["logprobs"])
    };
    let with = score(&["--model", "tiny", "--adapter", step2.to_str().unwrap()]);
    let folded = score(&["--model", merged.to_str().unwrap()]);
    let without = score(&["--model", "tiny"]);
    // f32 rounding of the two orders of summation, on log-probs of size O(1-10)
    assert!(common::max_abs_diff(&with, &folded) < 1e-4);
    assert!(common::max_abs_diff(&with, &without) > 1e-4);

    // errors: an existing --out, and a folder that is neither kind
    let o = polaris(
        &["merge", "--base", "tiny", "--adapter", step2.to_str().unwrap(), "--out", merged.to_str().unwrap()],
        cache.path(),
    );
    assert!(!o.status.success() && stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = polaris(
        &["merge", "--base", "tiny", "--adapter", work.path().to_str().unwrap(), "--out", "x"],
        cache.path(),
    );
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("adapter_config.json") && !e.contains("panicked"), "{e}");
}

#[test]
fn a_full_fine_tune_checkpoint_exports_too() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = work.path().join("full-run");
    let o = train(&run, &["--steps", "1"], cache.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let step1 = run.join("checkpoints/step-000001");
    let merged = work.path().join("merged");
    let o = polaris(
        &["merge", "--base", "tiny", "--adapter", step1.to_str().unwrap(), "--out", merged.to_str().unwrap()],
        cache.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let trained = candle_core::safetensors::load(step1.join(checkpoint::WEIGHTS), &Device::Cpu).unwrap();
    let out = candle_core::safetensors::load(merged.join("model.safetensors"), &Device::Cpu).unwrap();
    // every tiny tensor trained (f32; tied, so the embedding is also the head): each is the
    // checkpoint's, exactly
    assert_eq!(out.len(), trained.len());
    for (name, t) in &trained {
        assert_eq!(tensor_max_diff(t, &out[name]), 0.0, "{name}");
    }
    assert!(LanguageModel::open(merged.to_str().unwrap(), &LoadOptions::new(DType::F32, Device::Cpu)).is_ok());
}
