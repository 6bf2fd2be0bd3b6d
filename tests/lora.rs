//! LoRA: adapters leave a model unchanged until trained, train alone, agree with finite
//! differences, save in HF PEFT's layout, load back, and merge into plain weights.

mod common;

use std::path::Path;

use candle_core::{DType, Tensor};
use common::*;
use polaris::model::logprobs::{logprobs, logprobs_backward};
use polaris::model::lora::peft::{self, CONFIG_FILE, WEIGHTS_FILE};
use polaris::model::merge::{merge, Trained};
use polaris::model::{adapters_only, Kernels, LoadOptions, LoraConfig, LoraInit, LoraSpec, Model};

fn spec(targets: &[&str], seed: u64) -> LoraSpec {
    LoraSpec {
        config: LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            target_modules: targets.iter().map(|t| t.to_string()).collect(),
            use_rslora: false,
        },
        init: LoraInit::Fresh { seed },
    }
}

fn lora_opts(dtype: DType, targets: &[&str]) -> LoadOptions {
    cpu(dtype).lora(spec(targets, 3)).trainable(adapters_only())
}

/// Sets every B to seeded random values (a fresh B is zero, so the adapter would do nothing).
fn train_b(model: &Model, seed: u64) {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = rand_distr::Normal::new(0f32, 0.5).unwrap();
    for m in &model.adapters().expect("adapters").modules {
        let name = format!("{}.lora_B.weight", m.name);
        let (_, var) = model.trainable().iter().find(|(n, _)| *n == name).expect("B trains");
        let values: Vec<f32> = (0..var.elem_count()).map(|_| normal.sample(&mut rng)).collect();
        let b = Tensor::from_vec(values, var.shape(), var.device()).unwrap().to_dtype(var.dtype()).unwrap();
        var.set(&b).unwrap();
    }
}

fn rows() -> Tensor {
    ids(&[vec![3u32, 17, 42, 5, 9, 33, 1, 12], vec![7u32, 7, 21, 50, 2, 18, 44, 29]])
}

/// Last-position logits of each row through the generation path (fused kernels, cache).
fn cached_last(model: &Model, ids: &Tensor) -> Tensor {
    let mut cache = model.new_cache(vec![0; ids.dim(0).unwrap()]);
    model.forward_cached(ids, &mut cache, Kernels::Fused).unwrap()
}

fn keys(path: &Path) -> Vec<String> {
    let mut k: Vec<String> =
        candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap().into_keys().collect();
    k.sort();
    k
}

#[test]
fn peft_layout_key_names_and_config_fields() {
    let model = random_model_with("qwen3", false, &lora_opts(DType::F32, &["q_proj", "v_proj"]));
    let dir = tempfile::tempdir().unwrap();
    peft::save(dir.path(), model.adapters().unwrap()).unwrap();
    let mut expect = Vec::new();
    for layer in 0..2 {
        for proj in ["q_proj", "v_proj"] {
            for ab in ["lora_A", "lora_B"] {
                expect.push(format!("base_model.model.model.layers.{layer}.self_attn.{proj}.{ab}.weight"));
            }
        }
    }
    expect.sort();
    assert_eq!(keys(&dir.path().join(WEIGHTS_FILE)), expect);
    let saved =
        candle_core::safetensors::load(dir.path().join(WEIGHTS_FILE), &candle_core::Device::Cpu).unwrap();
    // q_proj: [H·Dh = 32, D = 16], v_proj: [Hkv·Dh = 16, 16]; r = 4
    assert_eq!(saved["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].dims(), &[4, 16]);
    assert_eq!(saved["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"].dims(), &[32, 4]);
    assert_eq!(saved["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"].dims(), &[16, 4]);

    let cfg = read_json(&dir.path().join(CONFIG_FILE));
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(cfg["r"], 4);
    assert_eq!(cfg["lora_alpha"], 8.0);
    assert_eq!(cfg["lora_dropout"], 0.0);
    assert_eq!(cfg["target_modules"], serde_json::json!(["q_proj", "v_proj"]));
    assert_eq!(cfg["bias"], "none");
    assert_eq!(cfg["fan_in_fan_out"], false);
    assert_eq!(cfg["inference_mode"], true);
    assert_eq!(cfg["use_rslora"], false);
    assert_eq!(cfg["use_dora"], false);
    assert_eq!(cfg["init_lora_weights"], true);
    assert!(cfg["modules_to_save"].is_null() && cfg["layers_to_transform"].is_null());
    assert_eq!(cfg["rank_pattern"], serde_json::json!({}));
    assert_eq!(cfg["alpha_pattern"], serde_json::json!({}));
    assert!(cfg["base_model_name_or_path"].is_null()); // a random model has no directory
                                                       // transformers and PEFT check the safetensors metadata for format "pt"
    let bytes = std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
}

#[test]
fn qwen3_5_keys_keep_the_checkpoint_prefix_and_all_linear_is_spelled_out() {
    // the reference checkpoint stores its text model under model.language_model.
    let base = shared().join("models/qwen3_5-tiny");
    let model = Model::load_dir(&base, &lora_opts(DType::F32, &["all-linear"])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    peft::save(dir.path(), model.adapters().unwrap()).unwrap();
    let keys = keys(&dir.path().join(WEIGHTS_FILE));
    // 4 layers: 3 DeltaNet (5 projections) + 1 attention (4) + 4 MLPs (3) = 31 modules
    assert_eq!(keys.len(), 2 * 31);
    assert!(keys.iter().all(|k| k.starts_with("base_model.model.model.language_model.layers.")), "{keys:?}");
    assert!(keys.contains(
        &"base_model.model.model.language_model.layers.0.linear_attn.in_proj_qkv.lora_A.weight".to_string()
    ));
    assert!(keys.contains(
        &"base_model.model.model.language_model.layers.3.self_attn.o_proj.lora_B.weight".to_string()
    ));
    assert!(!keys.iter().any(|k| k.contains("lm_head") || k.contains("embed_tokens")));
    let cfg = read_json(&dir.path().join(CONFIG_FILE));
    let expect = [
        "down_proj",
        "gate_proj",
        "in_proj_a",
        "in_proj_b",
        "in_proj_qkv",
        "in_proj_z",
        "k_proj",
        "o_proj",
        "out_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    ];
    assert_eq!(cfg["target_modules"], serde_json::json!(expect));
    assert_eq!(cfg["base_model_name_or_path"], base.display().to_string());
}

#[test]
fn only_adapters_train_and_targets_match_like_peft() {
    let model = random_model_with("llama", false, &lora_opts(DType::F32, &["o_proj", "mlp.down_proj"]));
    let names: Vec<&str> = model.trainable().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "model.layers.0.self_attn.o_proj.lora_A.weight",
            "model.layers.0.self_attn.o_proj.lora_B.weight",
            "model.layers.0.mlp.down_proj.lora_A.weight",
            "model.layers.0.mlp.down_proj.lora_B.weight",
            "model.layers.1.self_attn.o_proj.lora_A.weight",
            "model.layers.1.self_attn.o_proj.lora_B.weight",
            "model.layers.1.mlp.down_proj.lora_A.weight",
            "model.layers.1.mlp.down_proj.lora_B.weight",
        ]
    );
    // A is PEFT's kaiming-uniform: within ±1/√in and not all zero; B starts at zero
    let a = model.trainable()[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let bound = 1.0 / (32f32).sqrt(); // o_proj's input: H·Dh = 32
    assert!(a.iter().all(|x| x.abs() <= bound) && a.iter().any(|x| x.abs() > bound / 2.0));
    let b = model.trainable()[1].1.as_tensor().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(b, 0.0);
    // `proj` is not a module name: PEFT matches whole path segments
    let err = Model::build(
        &polaris::model::ModelConfig::from_json(&read_json(&shared().join("models/qwen3-tiny/config.json")))
            .unwrap(),
        polaris::model::Source::random(1, 0.3, 0.2),
        &lora_opts(DType::F32, &["proj"]),
    )
    .err()
    .expect("no module ends in .proj");
    assert!(format!("{err:#}").contains("match no linear projection"), "{err:#}");
}

#[test]
fn a_fresh_adapter_leaves_the_logits_unchanged() {
    let x = rows();
    let pairs: Vec<(Model, Model)> = vec![
        (
            random_model("llama", false, DType::F32, polaris::model::frozen()),
            random_model_with("llama", false, &lora_opts(DType::F32, &["all-linear"])),
        ),
        (
            random_model("qwen3", true, DType::F32, polaris::model::frozen()),
            random_model_with("qwen3", true, &lora_opts(DType::F32, &["all-linear"])),
        ),
        (
            random_qwen3_5(DType::F32, polaris::model::frozen(), &["linear_attention", "full_attention"]),
            random_qwen3_5_with(
                &lora_opts(DType::F32, &["all-linear"]),
                &["linear_attention", "full_attention"],
            ),
        ),
    ];
    for (base, lora) in &pairs {
        // B = 0 makes the update exactly zero, and y + 0 = y: equal bit for bit
        assert_eq!(tensor_max_diff(&base.logits(&x).unwrap(), &lora.logits(&x).unwrap()), 0.0);
        assert_eq!(tensor_max_diff(&cached_last(base, &x), &cached_last(lora, &x)), 0.0);
    }
}

#[test]
fn the_merged_model_equals_the_lora_model() {
    for (name, targets) in [
        ("qwen3-tiny", vec!["all-linear"]),
        ("qwen3_5-tiny", vec!["all-linear"]),
        ("stories260K-hf", vec!["q_proj", "v_proj", "down_proj"]),
    ] {
        let base = shared().join("models").join(name);
        let lora = Model::load_dir(&base, &lora_opts(DType::F32, &targets)).unwrap();
        train_b(&lora, 1);
        let plain = Model::load_dir(&base, &cpu(DType::F32)).unwrap();
        let x = rows();
        let (with, without) = (lora.logits(&x).unwrap(), plain.logits(&x).unwrap());
        assert!(tensor_max_diff(&with, &without) > 1e-2, "{name}: the trained adapter changes the logits");

        let work = tempfile::tempdir().unwrap();
        peft::save(&work.path().join("adapter"), lora.adapters().unwrap()).unwrap();
        let out = work.path().join("merged");
        let report = merge(&base, &Trained::Adapter(work.path().join("adapter")), &out).unwrap();
        assert_eq!(report.changed, lora.adapters().unwrap().modules.len());
        let merged = Model::load_dir(&out, &cpu(DType::F32)).unwrap();
        // x(W + sBA)ᵀ against xWᵀ + s(xAᵀ)Bᵀ in f32: the sums are ordered differently, so
        // rounding differs by a few ulps of O(1) activations per layer; 1e-4 on logits of
        // size O(1-10) is far below the >1e-2 change the adapter makes.
        let d = tensor_max_diff(&lora.logits(&x).unwrap(), &merged.logits(&x).unwrap());
        assert!(d < 1e-4, "{name}: merged logits differ by {d}");
        let d = tensor_max_diff(&cached_last(&lora, &x), &cached_last(&merged, &x));
        assert!(d < 1e-4, "{name}: generation sees the adapter: merged differs by {d}");
        // the merged directory keeps the stored names and copies the rest of the model
        let stored = keys(&base.join("model.safetensors"));
        assert_eq!(keys(&out.join("model.safetensors")), stored);
        assert!(out.join("config.json").exists() && out.join("tokenizer.json").exists());
    }
}

#[test]
fn merge_keeps_the_stored_dtype() {
    // a bf16 copy of the reference qwen3: merged weights must stay bf16
    let base = shared().join("models/qwen3-tiny");
    let work = tempfile::tempdir().unwrap();
    let bf16 = work.path().join("bf16");
    std::fs::create_dir(&bf16).unwrap();
    std::fs::copy(base.join("config.json"), bf16.join("config.json")).unwrap();
    let tensors =
        candle_core::safetensors::load(base.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let tensors: std::collections::HashMap<String, Tensor> =
        tensors.into_iter().map(|(k, t)| (k, t.to_dtype(DType::BF16).unwrap())).collect();
    polaris::model::weights::save_safetensors(&tensors, &bf16.join("model.safetensors")).unwrap();
    let lora = Model::load_dir(&bf16, &lora_opts(DType::F32, &["q_proj"])).unwrap();
    train_b(&lora, 2);
    peft::save(&work.path().join("a"), lora.adapters().unwrap()).unwrap();
    merge(&bf16, &Trained::Adapter(work.path().join("a")), &work.path().join("m")).unwrap();
    let merged =
        candle_core::safetensors::load(work.path().join("m/model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert!(merged.values().all(|t| t.dtype() == DType::BF16));
    let q0 = "model.layers.0.self_attn.q_proj.weight";
    assert!(
        tensor_max_diff(
            &merged[q0].to_dtype(DType::F32).unwrap(),
            &tensors[q0].to_dtype(DType::F32).unwrap()
        ) > 0.0
    );
}

#[test]
fn a_saved_adapter_loads_back_to_the_same_logits() {
    let base = shared().join("models/qwen3_5-tiny");
    let lora = Model::load_dir(&base, &lora_opts(DType::F32, &["all-linear"])).unwrap();
    train_b(&lora, 3);
    let dir = tempfile::tempdir().unwrap();
    peft::save(dir.path(), lora.adapters().unwrap()).unwrap();
    let loaded = Model::load_dir(&base, &cpu(DType::F32).lora(LoraSpec::open(dir.path()).unwrap())).unwrap();
    assert!(loaded.trainable().is_empty(), "an adapter opened for inference is frozen");
    let x = rows();
    // saved in the model's dtype (f32) and read back: the same numbers, the same logits
    assert_eq!(tensor_max_diff(&lora.logits(&x).unwrap(), &loaded.logits(&x).unwrap()), 0.0);
    assert_eq!(tensor_max_diff(&cached_last(&lora, &x), &cached_last(&loaded, &x)), 0.0);
}

#[test]
fn lora_gradients_match_finite_differences() {
    let models = [
        random_model_with("qwen3", false, &lora_opts(DType::F64, &["all-linear"])),
        random_qwen3_5_with(&lora_opts(DType::F64, &["all-linear"]), &["linear_attention", "full_attention"]),
    ];
    let x = rows();
    let inputs = x.narrow(1, 0, 7).unwrap();
    let targets = x.narrow(1, 1, 7).unwrap();
    let (b, t) = inputs.dims2().unwrap();
    let c: Vec<f32> = (0..b * t).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
    let c = Tensor::from_vec(c, (b, t), &candle_core::Device::Cpu).unwrap();
    let loss = |model: &Model| -> f64 {
        let lp = logprobs(model, &inputs, &targets, 5).unwrap();
        (lp.to_dtype(DType::F64).unwrap() * c.to_dtype(DType::F64).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    for model in &models {
        train_b(model, 4); // with B = 0, A's gradient is zero and says nothing
        let (_, grads) = logprobs_backward(model, &inputs, &targets, 3, |_| Ok(c.clone())).unwrap();
        assert_eq!(grads.len(), model.trainable().len());
        let mut checked = 0;
        for ((name, var), (gname, g)) in model.trainable().iter().zip(&grads) {
            assert_eq!(name, gname);
            let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
            assert!(g.iter().any(|x| *x != 0.0), "{name} gets a gradient");
            let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            for &i in &[0, base.len() / 2, base.len() - 1] {
                let h = 1e-5;
                let mut bumped = base.clone();
                bumped[i] += h;
                var.set(&Tensor::from_vec(bumped.clone(), var.shape(), var.device()).unwrap()).unwrap();
                let up = loss(model);
                bumped[i] -= 2.0 * h;
                var.set(&Tensor::from_vec(bumped, var.shape(), var.device()).unwrap()).unwrap();
                let down = loss(model);
                var.set(&Tensor::from_vec(base.clone(), var.shape(), var.device()).unwrap()).unwrap();
                let fd = (up - down) / (2.0 * h);
                // as tests/gradients.rs: central differences in f64 with h = 1e-5 are good to
                // ~1e-10 + 1e-11·|L|; 1e-6 relative (absolute below 1) catches a wrong term
                let tol = 1e-6 * g[i].abs().max(1.0);
                assert!((fd - g[i]).abs() < tol, "{name}[{i}]: backward {} vs finite difference {fd}", g[i]);
                checked += 1;
            }
        }
        assert!(checked >= 60, "{checked}");
    }
}

#[test]
fn dropout_acts_only_in_training_forwards() {
    let mut s = spec(&["all-linear"], 9);
    s.config.dropout = 0.5;
    let opts = cpu(DType::F32).lora(s).trainable(adapters_only());
    let model = random_model_with("qwen3", false, &opts);
    train_b(&model, 5);
    let x = rows();
    let eval = model.logits(&x).unwrap();
    assert_eq!(tensor_max_diff(&eval, &model.logits(&x).unwrap()), 0.0, "no dropout outside training");
    model.set_training(true);
    let dropped = model.logits(&x).unwrap();
    assert!(tensor_max_diff(&eval, &dropped) > 1e-3, "training forwards drop adapter inputs");
    // generation (fused kernels) never drops, even in training mode
    let cached = cached_last(&model, &x);
    model.set_training(false);
    assert_eq!(tensor_max_diff(&cached, &cached_last(&model, &x)), 0.0);
    // masks come from a seeded generator: the same position gives the same masks
    let pos = model.adapters().unwrap().dropout.position();
    model.set_training(true);
    let first = model.logits(&x).unwrap();
    model.adapters().unwrap().dropout.set_position(pos);
    assert_eq!(tensor_max_diff(&first, &model.logits(&x).unwrap()), 0.0);
}

/// Writes an adapter directory from a saved one with `edit` applied to its tensors/config.
fn edited(
    from: &Path,
    to: &Path,
    tensors: impl FnOnce(&mut std::collections::HashMap<String, Tensor>),
    config: impl FnOnce(&mut serde_json::Value),
) {
    std::fs::create_dir_all(to).unwrap();
    let mut t = candle_core::safetensors::load(from.join(WEIGHTS_FILE), &candle_core::Device::Cpu).unwrap();
    tensors(&mut t);
    candle_core::safetensors::save(&t, to.join(WEIGHTS_FILE)).unwrap();
    let mut c = read_json(&from.join(CONFIG_FILE));
    config(&mut c);
    std::fs::write(to.join(CONFIG_FILE), c.to_string()).unwrap();
}

#[test]
fn bad_adapters_are_clear_errors() {
    let base = shared().join("models/qwen3-tiny");
    let lora = Model::load_dir(&base, &lora_opts(DType::F32, &["q_proj", "v_proj"])).unwrap();
    let work = tempfile::tempdir().unwrap();
    let good = work.path().join("good");
    peft::save(&good, lora.adapters().unwrap()).unwrap();
    let q0a = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    let load = |dir: &Path| -> String {
        let spec = match LoraSpec::open(dir) {
            Ok(s) => s,
            Err(e) => return format!("{e:#}"),
        };
        match Model::load_dir(&base, &cpu(DType::F32).lora(spec)) {
            Ok(_) => "loaded".into(),
            Err(e) => format!("{e:#}"),
        }
    };
    let merged = |dir: &Path, out: &str| -> String {
        format!(
            "{:#}",
            merge(&base, &Trained::Adapter(dir.to_path_buf()), &work.path().join(out)).unwrap_err()
        )
    };
    assert_eq!(load(&good), "loaded");

    // a missing directory or file
    let e = load(&work.path().join("nowhere"));
    assert!(e.contains(CONFIG_FILE), "{e}");
    let no_weights = work.path().join("no-weights");
    std::fs::create_dir(&no_weights).unwrap();
    std::fs::copy(good.join(CONFIG_FILE), no_weights.join(CONFIG_FILE)).unwrap();
    let e = load(&no_weights);
    assert!(e.contains(WEIGHTS_FILE) && e.contains("missing"), "{e}");

    // a tensor of the wrong shape (another base model)
    let wrong = work.path().join("wrong-shape");
    edited(
        &good,
        &wrong,
        |t| {
            t.insert(q0a.into(), Tensor::zeros((4, 7), DType::F32, &candle_core::Device::Cpu).unwrap());
        },
        |_| {},
    );
    for e in [load(&wrong), merged(&wrong, "m1")] {
        assert!(e.contains(WEIGHTS_FILE) && e.contains(q0a) && e.contains("[4, 7]"), "{e}");
    }

    // a targeted module without its tensors
    let missing = work.path().join("missing");
    edited(
        &good,
        &missing,
        |t| {
            t.remove(q0a);
        },
        |_| {},
    );
    for e in [load(&missing), merged(&missing, "m2")] {
        assert!(e.contains(WEIGHTS_FILE) && e.contains(q0a), "{e}");
    }

    // a tensor for a module the base does not have
    let extra = work.path().join("extra");
    let ghost = "base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight";
    edited(
        &good,
        &extra,
        |t| {
            let a = t[q0a].clone();
            t.insert(ghost.into(), a);
        },
        |_| {},
    );
    for e in [load(&extra), merged(&extra, "m3")] {
        assert!(e.contains(WEIGHTS_FILE) && e.contains(ghost), "{e}");
    }

    // a key outside PEFT's layout
    let odd = work.path().join("odd-key");
    edited(
        &good,
        &odd,
        |t| {
            let a = t.remove(q0a).unwrap();
            t.insert("model.layers.0.self_attn.q_proj.lora_A.default.weight".into(), a);
        },
        |_| {},
    );
    let e = load(&odd);
    assert!(e.contains("lora_A.default.weight") && e.contains("PEFT's layout"), "{e}");

    // config fields this build cannot apply name the field
    for (field, value) in [
        ("peft_type", serde_json::json!("IA3")),
        ("use_dora", serde_json::json!(true)),
        ("rank_pattern", serde_json::json!({"q_proj": 8})),
        ("r", serde_json::json!("four")),
        ("target_modules", serde_json::json!(".*proj")),
    ] {
        let dir = work.path().join(format!("cfg-{field}"));
        edited(&good, &dir, |_| {}, |c| c[field] = value.clone());
        let e = load(&dir);
        assert!(e.contains(CONFIG_FILE) && e.contains(field), "{field}: {e}");
    }
    // nothing half-written was left behind by the failed merges
    assert!(!work.path().join("m1").exists() && !work.path().join("m3").exists());
}
