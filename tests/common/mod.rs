//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod attach;
pub mod eval_fixture;
pub mod run_fixture;
pub mod tiny_cli;
pub mod tmux;
pub mod tui;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use polaris::model::{LoadOptions, Model, ModelConfig, Source};

/// The step records of a run's event log, in order.
pub fn logged_steps(run: &Path) -> Vec<polaris::run::stats::StepStats> {
    polaris::run::log::read(&run.join("events.jsonl"))
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e.kind {
            polaris::run::EventKind::Step(s) => Some(*s),
            _ => None,
        })
        .collect()
}

/// The messages of a run's event log, with their levels, in order.
pub fn logged_messages(run: &Path) -> Vec<(polaris::run::event::Level, String)> {
    polaris::run::log::read(&run.join("events.jsonl"))
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e.kind {
            polaris::run::EventKind::Message { level, text } => Some((level, text)),
            _ => None,
        })
        .collect()
}

/// `../shared` beside the checkout (read-only reference data).
pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

pub fn u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

pub fn cpu(dtype: DType) -> LoadOptions {
    LoadOptions::new(dtype, Device::Cpu)
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// A small random model of the given architecture (norm weights jittered so a wrong norm shows).
pub fn random_model(
    model_type: &str,
    tied: bool,
    dtype: DType,
    trainable: polaris::model::TrainableFn,
) -> Model {
    random_model_with(model_type, tied, &cpu(dtype).trainable(trainable))
}

/// `random_model` with any load options (LoRA adapters, ...): the same base weights.
pub fn random_model_with(model_type: &str, tied: bool, opts: &LoadOptions) -> Model {
    let cfg = ModelConfig::from_json(&serde_json::json!({
        "model_type": model_type, "vocab_size": 61, "hidden_size": 16, "intermediate_size": 24,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": tied
    }))
    .unwrap();
    Model::build(&cfg, Source::random(11, 0.3, 0.2), opts).unwrap()
}

pub fn ids(rows: &[Vec<u32>]) -> Tensor {
    let t = rows[0].len();
    let flat: Vec<u32> = rows.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows.len(), t), &Device::Cpu).unwrap()
}

/// A small random Qwen3.5 text model: layers [linear, linear, full] by default.
pub fn random_qwen3_5(dtype: DType, trainable: polaris::model::TrainableFn, layer_types: &[&str]) -> Model {
    random_qwen3_5_with(&cpu(dtype).trainable(trainable), layer_types)
}

/// `random_qwen3_5` with any load options: the same base weights.
pub fn random_qwen3_5_with(opts: &LoadOptions, layer_types: &[&str]) -> Model {
    let cfg = ModelConfig::from_json(&serde_json::json!({
        "model_type": "qwen3_5_text", "vocab_size": 53, "hidden_size": 24, "intermediate_size": 40,
        "num_hidden_layers": layer_types.len(), "layer_types": layer_types,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "partial_rotary_factor": 0.25,
        "linear_num_key_heads": 1, "linear_num_value_heads": 2, "linear_key_head_dim": 8, "linear_value_head_dim": 8,
        "linear_conv_kernel_dim": 4, "rms_norm_eps": 1e-6, "rope_parameters": {"rope_theta": 10000.0},
        "tie_word_embeddings": false
    }))
    .unwrap();
    Model::build(&cfg, Source::random(5, 0.3, 0.2), opts).unwrap()
}

/// Largest |a - b| over two tensors of the same shape.
pub fn tensor_max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// The driver tests' trainer: groups of 3 (2 policy rows + the reference), 8 new tokens of
/// plain sampling, no thinking, lr 1e-3, seed 5.
pub fn driver_trainer() -> polaris::train::step::Trainer {
    let cfg = polaris::train::step::StepConfig {
        group_size: 3,
        sampling: plain_sampling(8),
        thinking: false,
        lr: polaris::train::schedule::LrSchedule::Constant { lr: 1e-3 },
        ..Default::default()
    };
    polaris::train::step::Trainer::new(cfg, 5)
}

/// `n` prompts about `what` asking for 100 words, each with a one-line reference story.
pub fn story_examples(what: &str, n: usize) -> Vec<polaris::train::data::Example> {
    (0..n)
        .map(|i| polaris::train::data::Example {
            uid: format!("{what}{i}"),
            prompt: format!("Write a story about {what} {i}. The story should be 100 words long."),
            target_word_count: 100,
            story: Some(format!("The {what} {i} burned all night by the sea.")),
            reasoning: None,
        })
        .collect()
}

/// A rule reward for training tests: words written over `target` (capped at 1), counted by
/// the reward stack's word counter. A random-weight model climbs it by favouring tokens
/// that start words.
pub struct WordsReward(pub f64);

impl polaris::train::step::Rewarder for WordsReward {
    fn score(
        &self,
        candidates: &[polaris::reward::breakdown::Candidate],
    ) -> anyhow::Result<Vec<polaris::reward::Breakdown>> {
        use polaris::reward::breakdown::{Breakdown, Weights};
        Ok(candidates
            .iter()
            .map(|c| {
                let mut b = Breakdown::rules(c, Weights::training());
                b.reward = (b.words as f64 / self.0).min(1.0);
                b
            })
            .collect())
    }
}

/// Plain ancestral sampling (no top-k/p, no penalties, no thinking budget) for training tests.
pub fn plain_sampling(max_new_tokens: usize) -> polaris::generate::SamplingParams {
    polaris::generate::SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        repetition_penalty: 1.0,
        max_new_tokens,
        thinking_budget: None,
        ..polaris::generate::SamplingParams::default()
    }
}

pub mod study;

/// The tiny model written at `dir` (`tiny::write`), every weight trainable, f32 on the CPU,
/// as one worker: the trainer of most step and run tests.
pub fn tiny_workers(dir: &Path) -> polaris::train::workers::Workers {
    let opts = LoadOptions::new(DType::F32, Device::Cpu).trainable(polaris::model::all_trainable());
    polaris::train::workers::Workers::single(polaris::lm::LanguageModel::from_dir(dir, &opts).unwrap())
}

/// A plain GRPO step: groups of `group_size`, `max_new_tokens` sampled per row, no thinking,
/// a constant learning rate.
pub fn step_config(group_size: usize, max_new_tokens: usize, lr: f64) -> polaris::train::step::StepConfig {
    polaris::train::step::StepConfig {
        group_size,
        sampling: plain_sampling(max_new_tokens),
        thinking: false,
        lr: polaris::train::schedule::LrSchedule::Constant { lr },
        ..Default::default()
    }
}
