//! The memory plan (issue 14, item 5): its arithmetic on a small hand-computed config, the
//! micro-batch sizing, "auto" checkpointing, the refusal's advice, and the `plan` / `train`
//! command lines.

use std::process::Command;

use polaris::model::{LoraConfig, ModelConfig};
use polaris::plan::figures::{self, Shape};
use polaris::plan::{advice, micro_batch, places, Place, Plan};
use polaris::train::config::TrainConfig;
use polaris::train::step::LayerCheckpointing;

/// llama, D 16, F 24, 2 layers, 4 heads / 2 kv heads of 4 dims (q 16, kv 8), V 64, untied.
fn small() -> ModelConfig {
    ModelConfig::from_json(&serde_json::json!({
        "model_type": "llama", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 24,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4,
        "tie_word_embeddings": false
    }))
    .unwrap()
}

fn shape(checkpoint_layers: bool) -> Shape {
    Shape {
        model: small(),
        w: 4,
        lora: None,
        reference: false,
        checkpoint_layers,
        fused_delta_rule: true,
        logprob_chunk: 32,
        tokens: 100,
        generation_rows: 5,
        generation_tokens: 600,
        prompt_tokens: 10,
    }
}

#[test]
fn the_figures_of_a_small_llama_are_the_hand_counted_ones() {
    // parameters: embed 64·16 = 1024; per layer attention 16·16 + 2·16·8 + 16·16 = 768,
    // MLP 3·16·24 = 1152, two norms 32 -> 1952, twice = 3904; final norm 16; head 1024
    let f = figures::figures(&shape(false));
    assert_eq!(figures::parameters(&shape(false)), (5968, 5968));
    assert_eq!(f.weights, 5968 * 4, "f32 weights");
    assert_eq!(f.gradients, 2 * 5968 * 4, "the micro-batches' running sum + the backward in flight");
    assert_eq!(f.optimizer, 2 * 5968 * 4, "two f32 moments per parameter");
    // AdamW's 3 working f32 copies of the largest tensor (the 64 x 16 embedding / head)
    assert_eq!(f.optimizer_update, 3 * 1024 * 4);
    // per token per layer (elements), with the fused kernels: two norms' outputs 16 each, two
    // residuals, o_proj 16 -> 80; MLP gate, up, silu(gate)·up (3·24) + down 16 -> 88; q, k, v
    // 16 + 8 + 8; RoPE's output 16 + 8; the attention's output 16 -> 240 elements = 960 B,
    // plus one f32 log-sum-exp per head: 16 B -> 976 B (blockwise: no score is kept)
    assert_eq!(figures::layer_bytes_per_token(&shape(false), 0), 976);
    // head: embedding out, final norm (1), dL/dH cat, cast, product: 5·16·4 + one f32 row 64 = 384
    assert_eq!(f.activations, (2 * 976 + 384) * 100);
    // one layer's gradients in flight (0.7 x its graph, measured: 683 B) + the attention's
    // f32 dq, dk, dv (16 + 8 + 8 elements = 128 B)
    assert_eq!(f.layer_working_set, (683 + 128) * 100);
    // 3 copies of chunk x V in f32, and the whole micro-batch's f32 logits, which pass 1
    // keeps for pass 2 (100 x 64 x 4 B is under model::logprobs::KEEP_LOGITS_BYTES)
    assert_eq!(f.logprob_chunk, 3 * 32 * 64 * 4 + 100 * 64 * 4);
    // generation: 5 rows, capacity 600 -> 1024 (grows by 512): K and V [5, 2, 1024, 4] f32 =
    // 327680 B per layer, 2 layers + one layer's growth copy (K or V: 163840); prefill
    // scores 3·5·4·10·10·4 = 24000; logits 4·5·64·4 = 5120
    assert_eq!(f.generation, 2 * 327_680 + 163_840 + 24_000 + 5_120);
}

#[test]
fn checkpointing_keeps_only_each_layers_input_and_recomputes_one_layer() {
    let f = figures::figures(&shape(true));
    // inputs [T, D] of both layers (2·16·4 = 128 B per token) + the head's 384
    assert_eq!(f.activations, (128 + 384) * 100);
    // the recomputed layer's graph and its gradients (1 + 1.0 graphs: 1952 B) + dq, dk, dv
    assert_eq!(f.layer_working_set, (1952 + 128) * 100);
    assert!(f.training() < figures::figures(&shape(false)).training());
}

#[test]
fn lora_trains_only_adapters_and_a_kl_reference_adds_the_base_weights() {
    let lora = LoraConfig {
        r: 2,
        alpha: 4.0,
        dropout: 0.0,
        target_modules: vec!["all-linear".into()],
        use_rslora: false,
    };
    // per layer r·(in + out): q 2·32, k 2·24, v 2·24, o 2·32, gate / up / down 2·40 each
    // = 464, two layers = 928
    assert_eq!(figures::adapter_parameters(&small(), &lora), 928);
    let s = Shape { lora: Some(lora), reference: true, ..shape(false) };
    let f = figures::figures(&s);
    assert_eq!(figures::parameters(&s), (5968 + 928, 928));
    assert_eq!(f.weights, (5968 + 928) * 4);
    assert_eq!(f.reference, 5968 * 4, "the frozen base, without adapters");
    assert_eq!((f.gradients, f.optimizer), (2 * 928 * 4, 2 * 928 * 4));
}

#[test]
fn a_micro_batch_packs_rows_up_to_the_token_budget_and_a_long_row_is_its_own() {
    // 12 rows of 1000 tokens
    assert_eq!(micro_batch(1000, 12, 4096, 0), 4096, "filled up to the budget");
    assert_eq!(micro_batch(1000, 12, 512, 0), 1000, "a row longer than the budget alone");
    assert_eq!(micro_batch(1000, 12, 0, 0), 12_000, "no budget: every row at once");
    assert_eq!(micro_batch(1000, 12, 0, 2), 2000, "micro_batch_rows");
    assert_eq!(micro_batch(1000, 3, 16_384, 0), 3000, "fewer rows than the budget holds");
}

fn config(sets: &[&str]) -> TrainConfig {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    TrainConfig::parse("", "test", &sets).unwrap()
}

fn tiny() -> ModelConfig {
    polaris::plan::model_config("tiny").unwrap()
}

#[test]
fn cpu_workers_share_the_host_and_the_first_holds_the_optimizer() {
    assert_eq!(places("cpu").unwrap(), vec![(Place::Host, 1)]);
    assert_eq!(places("cpu:4").unwrap(), vec![(Place::Host, 4)]);
    assert_eq!(places("cuda:0,cuda:1").unwrap(), vec![(Place::Cuda(0), 1), (Place::Cuda(1), 1)]);
    assert!(places("tpu:0").unwrap_err().to_string().contains("run.devices"));
    let one = Plan::compute(&config(&["step.checkpoint_layers=false"]), &tiny(), &|_| None).unwrap();
    let four =
        Plan::compute(&config(&["step.checkpoint_layers=false", "run.devices=\"cpu:4\""]), &tiny(), &|_| {
            None
        })
        .unwrap();
    let (p1, p4) = (&one.pools[0], &four.pools[0]);
    assert_eq!(p4.resident, 4 * one.worker.weights + one.worker.optimizer);
    assert_eq!(p1.resident, one.worker.weights + one.worker.optimizer);
    // 8 prompts over 4 workers: 2 groups of 6 rows each, so smaller micro-batches
    assert_eq!((one.rows_per_worker, four.rows_per_worker), (48, 12));
}

#[test]
fn auto_checkpointing_turns_on_when_activations_would_be_large() {
    let cfg = config(&[]);
    assert_eq!(cfg.step.checkpoint_layers, LayerCheckpointing::Auto, "the default");
    let roomy = Plan::compute(&cfg, &tiny(), &|_| Some(1 << 40)).unwrap();
    assert!(!roomy.checkpoint_layers && roomy.checkpoint_auto);
    // activations over a quarter of what is available: on
    let tight_bytes = 2 * roomy.worker.activations;
    let tight = Plan::compute(&cfg, &tiny(), &|_| Some(tight_bytes)).unwrap();
    assert!(tight.checkpoint_layers && tight.checkpoint_auto);
    // given explicitly, the plan keeps it
    let off =
        Plan::compute(&config(&["step.checkpoint_layers=false"]), &tiny(), &|_| Some(tight_bytes)).unwrap();
    assert!(!off.checkpoint_layers && !off.checkpoint_auto);
}

#[test]
fn checkpoint_layers_reads_true_false_and_auto_and_names_the_key_otherwise() {
    assert_eq!(config(&["step.checkpoint_layers=true"]).step.checkpoint_layers, LayerCheckpointing::On);
    assert_eq!(config(&["step.checkpoint_layers=false"]).step.checkpoint_layers, LayerCheckpointing::Off);
    assert_eq!(config(&["step.checkpoint_layers=\"auto\""]).step.checkpoint_layers, LayerCheckpointing::Auto);
    let e = TrainConfig::parse("", "test", &["step.checkpoint_layers=\"maybe\"".into()]).unwrap_err();
    let text = format!("{e:#}");
    assert!(text.contains("checkpoint_layers") && text.contains("auto"), "{text}");
    // the resolved configuration writes it back as it was given
    let toml = config(&["step.checkpoint_layers=true"]).to_toml().unwrap();
    assert!(toml.contains("checkpoint_layers = true"), "{toml}");
}

#[test]
fn a_run_that_does_not_fit_is_told_which_settings_to_change_each_with_its_peak() {
    let cfg = config(&["step.checkpoint_layers=false"]);
    let full = Plan::compute(&cfg, &tiny(), &|_| None).unwrap();
    let available = full.pools[0].peak() / 2;
    let avail = |_: &Place| Some(available);
    let plan = Plan::compute(&cfg, &tiny(), &avail).unwrap();
    assert!(!plan.fits());
    let changes = advice::advise(&cfg, &tiny(), &avail);
    assert!(!changes.is_empty());
    for c in &changes {
        assert!(c.fits && c.peak <= available, "{c:?}");
    }
    let flags: Vec<String> = changes.iter().map(|c| c.flags()).collect();
    assert!(flags.iter().any(|f| f.contains("--set step.checkpoint_layers=true")), "{flags:?}");
    assert!(flags.iter().any(|f| f.contains("--set step.micro_batch_tokens=")), "{flags:?}");
    // the micro-batch it names fits, and it is the largest that does (to within rounding)
    let mbt = changes
        .iter()
        .flat_map(|c| &c.sets)
        .find_map(|s| s.strip_prefix("step.micro_batch_tokens="))
        .unwrap();
    let n: u64 = mbt.parse().unwrap();
    let bigger = config(&["step.checkpoint_layers=false", &format!("step.micro_batch_tokens={}", n + 512)]);
    assert!(!Plan::compute(&bigger, &tiny(), &avail).unwrap().fits());
    let text = advice::refusal(&plan, &changes);
    for needle in ["would not fit", "saved activations", "--set step.checkpoint_layers=true", "--ignore-plan"]
    {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn a_9b_plan_needs_only_its_config_json() {
    // Qwen3.5-9B's sizes (MODELS.md): nothing but config.json is read
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "model_type": "qwen3_5_text", "vocab_size": 248320, "hidden_size": 4096,
        "intermediate_size": 12288, "num_hidden_layers": 32, "num_attention_heads": 16,
        "num_key_value_heads": 4, "head_dim": 256, "linear_num_key_heads": 16,
        "linear_key_head_dim": 128, "linear_num_value_heads": 32, "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4, "tie_word_embeddings": false, "partial_rotary_factor": 0.25
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let started = std::time::Instant::now();
    let mut cfg = config_for(dir.path(), &["model.dtype=\"bf16\""]);
    // set directly: a build without CUDA does not validate cuda devices
    cfg.run.devices = "cuda:0,cuda:1,cuda:2,cuda:3".into();
    let plan =
        Plan::compute(&cfg, &polaris::plan::model_config(&cfg.model.path).unwrap(), &|_| Some(80 << 30))
            .unwrap();
    assert!(started.elapsed().as_millis() < 500, "instant");
    assert!(plan.parameters > 8_000_000_000 && plan.parameters < 10_000_000_000, "{}", plan.parameters);
    assert_eq!(plan.pools.len(), 4);
    // ZeRO-1 (issue 15): every GPU holds a quarter of the optimizer state, none all of it
    assert_eq!(plan.pools[0].peak(), plan.pools[1].peak(), "equal shards");
    assert_eq!(plan.worker.optimizer, 8 * plan.trainable.div_ceil(4), "f32 m and v of a quarter");
}

fn config_for(model: &std::path::Path, sets: &[&str]) -> TrainConfig {
    let mut all = vec![format!("model.path={:?}", model.display().to_string())];
    all.extend(sets.iter().map(|s| s.to_string()));
    TrainConfig::parse("", "test", &all).unwrap()
}

fn polaris() -> Command {
    Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
}

#[test]
fn plan_prints_the_figures_and_says_what_to_change_when_it_does_not_fit() {
    let o = polaris().args(["plan", "--model", "tiny", "--memory", "64GiB"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    for needle in [
        "weights",
        "gradients",
        "optimizer state",
        "saved activations",
        "log-prob chunk",
        "generation",
        "peak",
        "available",
        "fits",
    ] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
    let o = polaris()
        .args(["plan", "--model", "tiny", "--memory", "300MiB", "--set", "step.checkpoint_layers=false"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("would not fit") && out.contains("--set step."), "{out}");
}

#[test]
fn train_refuses_a_run_the_plan_says_cannot_fit_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // an address-space limit of 1 GiB: the plan's room is below the default run's peak
    let mut cmd = polaris();
    cmd.args(["train", "--model", "tiny", "--judge", "offline", "--steps", "1"])
        .args(["--set", "step.checkpoint_layers=false", "--out"])
        .arg(&out);
    limit_address_space(&mut cmd, 1 << 30);
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("would not fit") && err.contains("--set step.micro_batch_tokens="), "{err}");
    assert!(!out.exists(), "nothing was started");
}

fn limit_address_space(cmd: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
