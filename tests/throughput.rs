//! Step events carry each device's tokens/s and MFU: the model FLOPs formula against a hand
//! count for a small config, the peak table, a real step of the tiny model on the CPU (tokens/s
//! from its own rows, MFU absent: no CPU peak), and old step events without the field load.

mod common;

use std::sync::atomic::AtomicBool;

use common::WordsReward;
use polaris::model::config::ModelConfig;
use polaris::model::tiny;
use polaris::run::stats::StepStats;
use polaris::train::step::{TrainPrompt, Trainer};
use polaris::train::throughput::{DeviceInfo, TrainingFlops};

fn llama(tied: bool) -> ModelConfig {
    ModelConfig::from_json(&serde_json::json!({
        "model_type": "llama",
        "vocab_size": 100,
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 4,
        "tie_word_embeddings": tied,
    }))
    .unwrap()
}

#[test]
fn training_flops_follow_the_palm_count_by_hand() {
    // per layer: q 8·8, k and v 8·4 each, o 8·8 = 192; MLP 3·8·16 = 384; norms 2·8 = 16
    // -> 592 per layer, 1184 for two; final norm 8; embedding 100·8 = 800; head 800 untied
    let untied = llama(false);
    assert_eq!(untied.parameter_count(), 800 + 1184 + 8 + 800);
    let f = TrainingFlops::new(&untied, 1.0);
    // the input embedding is a lookup, not a matmul: N = 1184 + 8 + 800 (head)
    assert_eq!(f.matmul_params, 1992.0);
    assert_eq!(f.per_param, 6.0);
    // 2 full-attention layers of 2 heads x 4 dims
    assert_eq!(f.attention_width, 16.0);
    // a row of 10 tokens: 10 · (6 · 1992 + 12 · 16 · 10) = 10 · (11952 + 1920)
    assert_eq!(f.row(10), 138_720.0);
    // tied: the embedding is the head's matmul, counted once
    assert_eq!(TrainingFlops::new(&llama(true), 1.0).matmul_params, 1992.0);
    // LoRA-like: a tenth of the weights trained -> 4 + 2 · 0.1 per weight
    assert!((TrainingFlops::new(&untied, 0.1).per_param - 4.2).abs() < 1e-12);
}

#[test]
fn cpu_devices_have_no_peak_and_known_gpus_do() {
    let cpu = DeviceInfo::of_run("cpu:2", "f32");
    assert_eq!(cpu.iter().map(|d| d.device.as_str()).collect::<Vec<_>>(), ["cpu:0", "cpu:1"]);
    assert!(cpu.iter().all(|d| d.peak_flops.is_none() && d.name.is_none()));
    assert_eq!(polaris::gpu::peak::peak_flops("NVIDIA H100 80GB HBM3", "bf16"), Some(989e12));
    assert_eq!(polaris::gpu::peak::peak_flops("NVIDIA A100-SXM4-80GB", "bf16"), Some(312e12));
}

#[test]
fn a_step_reports_each_devices_tokens_per_second_and_leaves_cpu_mfu_absent() {
    let model_dir = tempfile::tempdir().unwrap();
    tiny::write(model_dir.path()).unwrap();
    let workers = common::tiny_workers(model_dir.path());
    let cfg = common::step_config(3, 8, 1e-4);
    let mut t = Trainer::new(cfg, 3);
    let batch = [TrainPrompt {
        prompt: "Write a story about a fox. The story should be 100 words long.",
        story: Some("The fox ran home through the snow."),
        reasoning: None,
    }];
    let (stats, rows) = t.step(&workers, &batch, &WordsReward(16.0), &AtomicBool::new(false)).unwrap();
    assert_eq!(stats.devices.len(), 1);
    let d = &stats.devices[0];
    assert_eq!((d.device.as_str(), d.name.as_ref(), d.mfu), ("cpu", None, None));
    // one worker: its tokens are the step's, over the same training seconds
    let rel =
        (d.train_tokens_per_second - stats.train_tokens_per_second).abs() / stats.train_tokens_per_second;
    assert!(rel < 1e-9, "{} vs {}", d.train_tokens_per_second, stats.train_tokens_per_second);
    let sampled: usize =
        rows.iter().filter(|r| !r.rollout.is_reference).map(|r| r.rollout.response_ids.len()).sum();
    assert!(sampled > 0 && d.generate_tokens_per_second > 0.0);
    // written to the log and read back the same
    let line = serde_json::to_string(&stats).unwrap();
    assert!(line.contains("\"devices\":[{\"device\":\"cpu\""), "{line}");
    assert!(!line.contains("\"mfu\""), "an absent MFU is left out, not written as null: {line}");
    assert_eq!(serde_json::from_str::<StepStats>(&line).unwrap(), stats);
}

#[test]
fn a_step_event_from_before_devices_loads() {
    let old = r#"{"step":3,"policy_reward_mean":0.5,"loss":0.1,"tokens":100}"#;
    let s: StepStats = serde_json::from_str(old).unwrap();
    assert_eq!((s.step, s.devices.len()), (3, 0));
    assert!(!serde_json::to_string(&s).unwrap().contains("devices"), "an empty list is not written");
}
