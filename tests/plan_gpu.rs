//! The memory plan on GPUs (issue 15, items 4 and 7): a small hybrid Qwen3.5's figures per
//! rank counted by hand (mixed precision, ZeRO-1 shards, activations, the KV cache and the
//! DeltaNet state), one GPU against four, LoRA against a full fine-tune, Qwen3.5-9B on 80 GiB
//! cards, the `plan --gpus` command line, and a config with a field missing.

use std::process::Command;

use polaris::model::{LoraConfig, ModelConfig};
use polaris::plan::figures::{self, Shape};
use polaris::plan::fit::{self, Training};
use polaris::plan::{gpu, Place, Plan};
use polaris::train::config::TrainConfig;

/// qwen3_5, D 16, F 32, V 64, untied; layers DeltaNet, DeltaNet, DeltaNet, full attention
/// (the 9B's 3:1 pattern); attention 2 q heads / 1 kv head of 8 dims (rotary 4); DeltaNet 1
/// key head of 4 dims, 2 value heads of 4 dims, conv kernel 4.
fn hybrid() -> ModelConfig {
    ModelConfig::from_json(&serde_json::json!({
        "model_type": "qwen3_5_text", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 4, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
        "partial_rotary_factor": 0.5, "linear_num_key_heads": 1, "linear_key_head_dim": 4,
        "linear_num_value_heads": 2, "linear_value_head_dim": 4, "linear_conv_kernel_dim": 4,
        "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"],
        "tie_word_embeddings": false
    }))
    .unwrap()
}

/// Parameters of `hybrid()`, by hand:
/// - embedding and untied head: 64·16 = 1024 each;
/// - DeltaNet layer: conv channels q 4 + k 4 + v 8 = 16; in_proj_qkv 16·16 = 256, in_proj_z
///   16·8 = 128, in_proj_b and in_proj_a 16·2 each = 64, conv1d 16·4 = 64, A_log and dt_bias
///   2 each = 4, gated norm 4, out_proj 8·16 = 128 -> 648; MLP 3·16·32 = 1536; two norms 32
///   -> 2216;
/// - attention layer: q_proj doubled by the gate 16·32 = 512, k and v 16·8 = 128 each,
///   o_proj 16·16 = 256, q_norm and k_norm 8 each -> 1040; MLP 1536; norms 32 -> 2608;
/// - 1024 + 3·2216 + 2608 + final norm 16 + 1024 = 11320.
const P: u64 = 11_320;

/// bf16, every layer checkpointed, 100-token micro-batch, log-prob chunk 32, a group of 5
/// rows generating 600 positions after a 10-token prompt.
fn shape() -> Shape {
    Shape {
        model: hybrid(),
        w: 2,
        lora: None,
        reference: false,
        checkpoint_layers: true,
        // the host's form; gpu::rank takes the chunked one whatever this says
        fused_delta_rule: true,
        logprob_chunk: 32,
        tokens: 100,
        generation_rows: 5,
        generation_tokens: 600,
        prompt_tokens: 10,
    }
}

fn lora(r: usize) -> LoraConfig {
    LoraConfig { r, alpha: 4.0, dropout: 0.0, target_modules: vec!["all-linear".into()], use_rslora: false }
}

#[test]
fn a_small_hybrids_figures_per_gpu_are_the_hand_counted_ones() {
    let s = shape();
    assert_eq!(figures::parameters(&s), (P, P));
    let f = gpu::rank(&s, 4);
    // weights bf16 on every rank: 2 B per parameter
    assert_eq!(f.weights, 2 * P);
    // ZeRO-1 over 4: ceil(11320 / 4) = 2830 parameters per rank; f32 master 4 B, m and v 8 B
    assert_eq!(f.master, 4 * 2830);
    assert_eq!(f.optimizer, 8 * 2830);
    // gradients full per rank, bf16, two sets (running sum + one micro-batch's)
    assert_eq!(f.gradients, 2 * 2 * P);
    // checkpointed: each layer's input [T, D] bf16 = 4·16·2 = 128 B per token; the head:
    // embedding out, final norm, dL/dH cat, cast, product in bf16 (5·16·2 = 160) and one f32
    // row (64) = 224 B per token; 100 tokens
    assert_eq!(f.activations, (128 + 224) * 100);
    // the log-prob head in f32: 3 copies of chunk 32 x V 64 x 4 B; and the micro-batch's
    // logits kept for pass 2, f32 beside the bf16 matmul output they came from (6 B each)
    assert_eq!(f.logprob_chunk, 3 * 32 * 64 * 4 + 100 * 64 * 6);
    // generation, 5 rows, capacity 600 -> 1024 positions (the cache grows by 512):
    // the one attention layer's K and V [5, 1 kv head, 1024, 8] bf16 = 163840 B, plus the
    // growth copy of one of them 81920; each DeltaNet layer's f32 state, 2 value heads of
    // 4 x 4 per row: 5·32·4 = 640 B, and its conv window (kernel - 1 = 3 positions of the 16
    // channels, bf16): 5·3·16·2 = 480 B, three layers 3360; prefill scores 3·5·2·10·10·4 =
    // 12000; logits 4·5·64·4 = 5120
    assert_eq!(f.generation, 163_840 + 81_920 + 3 * (640 + 480) + 12_000 + 5_120);
    // the update: the reduce-scatter's f32 shard 2830·4 = 11320; for the largest trainable
    // tensor (embedding or head, 1024 elements) its f32 gradient and its all-gathered bf16
    // weights 1024·(4 + 2) = 6144, AdamW's 3 f32 copies of this rank's 256: 3072
    assert_eq!(f.optimizer_update, 11_320 + 6_144 + 3_072);
    // a layer's working set is the host plan's (its graph recomputed, gradients in flight),
    // counted and measured in tests/plan.rs; here in bf16, with the chunked delta rule a GPU
    // runs (the fused op is the CPU's, and keeps far less)
    let chunked = Shape { fused_delta_rule: false, ..s.clone() };
    assert_eq!(f.layer_working_set, figures::layer_working_set(&chunked));
    assert!(figures::layer_working_set(&s) < f.layer_working_set);
}

#[test]
fn the_deltanet_state_does_not_grow_with_the_generated_length() {
    // 10x the positions: only the attention layer's KV (and its growth copy) grows; the
    // DeltaNet layers' state and conv window stay 3·1120 B
    let short = gpu::rank(&shape(), 1).generation;
    let long = gpu::rank(&Shape { generation_tokens: 6000, ..shape() }, 1).generation;
    // capacity 6000 -> 6144 positions: K and V 2·5·8·6144·2 = 983040 B, growth copy 491520
    assert_eq!(long - short, (983_040 + 491_520) - (163_840 + 81_920));
    let no_attention =
        ModelConfig { layer_types: vec![polaris::model::config::LayerType::LinearAttention; 4], ..hybrid() };
    let a = gpu::rank(&Shape { model: no_attention.clone(), ..shape() }, 1).generation;
    let b = gpu::rank(&Shape { model: no_attention, generation_tokens: 6000, ..shape() }, 1).generation;
    assert_eq!(a, b, "DeltaNet layers alone: fixed-size state");
}

#[test]
fn one_gpu_holds_the_whole_optimizer_state_and_four_a_quarter_each() {
    let (one, four) = (gpu::rank(&shape(), 1), gpu::rank(&shape(), 4));
    assert_eq!((one.master, one.optimizer), (4 * P, 8 * P), "nothing sharded");
    assert_eq!((4 * four.master, 4 * four.optimizer), (one.master, one.optimizer), "11320 = 4 x 2830");
    assert_eq!((one.weights, one.gradients), (four.weights, four.gradients), "replicated, full per rank");
    // one rank reads its gradients in place: no reduced shard in its update, and AdamW works
    // on the whole largest tensor: 1024·(4 + 2) + 1024·12
    assert_eq!(one.optimizer_update, 6_144 + 12_288);
    // 7 ranks: ceil(11320 / 7) = 1618 per rank (the last holds 1612 and is planned as 1618)
    assert_eq!(gpu::rank(&shape(), 7).optimizer, 8 * 1618);
}

#[test]
fn lora_over_a_bf16_base_trains_f32_adapters_without_master_weights() {
    // r = 2 over every linear projection, r·(in + out) each:
    // DeltaNet layer qkv 2·32, z 2·24, b 2·18, a 2·18, out 2·24, MLP gate / up / down 2·48
    // each -> 64 + 48 + 36 + 36 + 48 + 288 = 520; attention layer q 2·48, k 2·24, v 2·24,
    // o 2·32, MLP 288 -> 544; 3·520 + 544 = 2104
    let pa = 2104;
    assert_eq!(figures::adapter_parameters(&hybrid(), &lora(2)), pa);
    let s = Shape { lora: Some(lora(2)), ..shape() };
    let f = gpu::rank(&s, 4);
    assert_eq!(f.weights, 2 * P + 4 * pa, "bf16 base, f32 adapters");
    assert_eq!(f.master, 0, "the adapters are their own f32 master");
    assert_eq!(f.optimizer, 8 * (pa / 4), "m and v, 526 adapter parameters per rank");
    assert_eq!(f.gradients, 2 * 4 * pa, "f32 gradients of the adapters, two sets");
}

fn config(sets: &[&str]) -> TrainConfig {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    TrainConfig::parse("", "test", &sets).unwrap()
}

#[test]
fn a_plans_gpu_pools_add_the_figures_with_the_stated_margins() {
    // 43 new tokens: rows of 256 + 43 + 1 = 300 tokens
    let mut cfg =
        config(&["model.dtype=\"bf16\"", "step.sampling.max_new_tokens=43", "step.checkpoint_layers=true"]);
    cfg.run.devices = fit::devices(4);
    let plan = Plan::compute(&cfg, &hybrid(), &|_| None).unwrap();
    assert_eq!(plan.ranks, 4);
    assert_eq!(plan.pools.len(), 4);
    let f = plan.worker;
    for p in &plan.pools {
        assert!(matches!(p.place, Place::Cuda(_)) && p.primary, "every rank holds and updates its shard");
        assert_eq!(p.runtime, (1 << 30) + (512 << 20), "CUDA context and cuBLAS 1 GiB, NCCL 512 MiB");
        assert_eq!(p.resident, 2 * P + 4 * 2830 + 8 * 2830);
        // gradients, then the transients with the allocator's 10%
        let transient = f.activations + f.layer_working_set.max(f.logprob_chunk);
        assert_eq!(p.training, 4 * P + transient * 110 / 100);
        assert_eq!(p.update, 2 * P + f.optimizer_update * 110 / 100);
        assert_eq!(p.generation, f.generation * 110 / 100);
        assert_eq!(p.peak(), p.runtime + p.resident + p.training.max(p.generation).max(p.update));
    }
    // 8 prompts over 4 ranks: 2 groups of 6 rows of 300 tokens, packed up to 16384: 3600
    assert_eq!(plan.micro_batch_tokens, 3600);
    assert_eq!(f.activations, (128 + 224) * 3600);
    let table = plan.table();
    for needle in ["master weights (f32)", "ZeRO-1", "cuda:3", "gradients full per GPU"] {
        assert!(table.contains(needle), "{needle}: {table}");
    }
}

fn nine_b() -> ModelConfig {
    polaris::plan::model_config(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/qwen3_5-9b")).unwrap()
}

/// The recipe's rows: 256 prompt + 3072 thinking + 8192 story tokens.
fn recipe() -> TrainConfig {
    config(&["model.dtype=\"bf16\"", "step.sampling.max_new_tokens=11264"])
}

const GIB80: u64 = 80 << 30;

#[test]
fn qwen3_5_9b_full_fine_tune_fits_no_80gib_card_count_up_to_8_and_lora_fits_one() {
    let m = nine_b();
    // the published text model: 8.95B parameters (untied head)
    assert_eq!(m.parameter_count(), 8_953_803_264);
    let p = m.parameter_count() as u64;
    let avail = |_: &Place| Some(GIB80);
    let one = fit::search(&recipe(), &m, &avail, Training::Full, 1).unwrap();
    // 2 P weights + 4 P master + 8 P moments = 14 P = 125 GB before any gradient
    let f = one.plan.worker;
    assert_eq!(f.weights + f.master + f.optimizer, 14 * p);
    assert!(!one.fits && one.gpus_needed.is_some(), "{}", fit::table(std::slice::from_ref(&one), 16));
    let four = fit::search(&recipe(), &m, &avail, Training::Full, 4).unwrap();
    let f4 = four.plan.worker;
    assert_eq!(f4.master + f4.optimizer, 12 * p.div_ceil(4), "ZeRO-1: 12 B per parameter over 4");
    assert_eq!(f4.weights + f4.gradients, 2 * p + 4 * p, "replicated bf16 weights, two bf16 gradient sets");
    // the README's finding: not on 4 x 80 GiB either, since 2 P of weights and 4 P of
    // gradients (53.7 GB) stay on every rank and a DeltaNet layer's backward at 11.5k tokens
    // holds 1.6 graphs of f32 chunk tensors (over 18 GiB); fewer than 64 GPUs do take it
    assert!(!four.fits, "{}", fit::table(std::slice::from_ref(&four), 16));
    assert!(f4.layer_working_set > 18 << 30, "{}", f4.layer_working_set);
    assert!(four.gpus_needed.is_some_and(|n| n > 8));
    let lora = fit::search(&recipe(), &m, &avail, Training::Lora, 1).unwrap();
    assert!(lora.fits, "{}", fit::table(std::slice::from_ref(&lora), 16));
    assert_eq!(lora.plan.worker.master, 0);
    assert_eq!(lora.plan.row_tokens, 256 + 11_264 + 1);
}

fn polaris() -> Command {
    Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
}

#[test]
fn plan_gpus_prints_which_training_fits_each_count() {
    let o = polaris()
        .args(["plan", "--model", "assets/qwen3_5-9b", "--gpus", "1,2,4", "--gpu-memory", "80"])
        .args(["--set", "model.dtype=\"bf16\"", "--set", "step.sampling.max_new_tokens=11264"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    for needle in ["full fine-tune", "LoRA r=16", "of 80.00 GiB", "ZeRO-1 over 4", "11521 tokens"] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
    assert_eq!(out.lines().filter(|l| l.contains("full fine-tune")).count(), 3, "{out}");
    // one count: the run's plan per GPU, then the same table
    let o = polaris()
        .args(["plan", "--model", "assets/qwen3_5-9b", "--gpus", "4", "--gpu-memory", "80GiB"])
        .args(["--set", "model.dtype=\"bf16\"", "--set", "model.lora.enabled=true"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    for needle in ["cuda:0", "cuda:3", "on 4 GPUs", "f32 LoRA adapters", "full fine-tune", "fits:"] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
    let o = polaris().args(["plan", "--model", "tiny", "--gpus", "0"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--gpus"), "{err}");
}

#[test]
fn a_config_with_a_field_missing_is_refused_naming_the_field_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("assets/qwen3_5-9b/config.json").unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("linear_num_value_heads");
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    let o = polaris()
        .args(["plan", "--model"])
        .arg(dir.path())
        .args(["--gpus", "4", "--gpu-memory", "80"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("missing field linear_num_value_heads") && err.contains("config.json"), "{err}");
}
