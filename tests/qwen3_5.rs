//! Qwen3.5 beyond the reference outputs: the two forms of the delta rule agree, the cache
//! equals recomputation, padding is inert, gradients match finite differences, the 9B config
//! parses, and LoRA targets are addressable by their checkpoint names.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};
use common::*;
use polaris::generate::{generate, Request, SamplingParams};
use polaris::model::deltanet;
use polaris::model::deltanet::DeltaForm;
use polaris::model::logprobs::{logprobs, logprobs_backward};
use polaris::model::{all_trainable, frozen, Model, ModelConfig};

const PATTERN: &[&str] = &["linear_attention", "full_attention", "linear_attention"];

fn randn(shape: &[usize], seed: u64) -> Tensor {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let data: Vec<f64> = (0..n).map(|_| rand_distr::StandardNormal.sample(&mut rng)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

#[test]
fn chunked_and_recurrent_forms_agree() {
    let (b, h, dk, dv) = (2, 3, 8, 5);
    for (t, with_state) in [(1, false), (63, false), (64, true), (150, false), (150, true)] {
        let q = deltanet::l2_normalize(&randn(&[b, h, t, dk], 1)).unwrap();
        let k = deltanet::l2_normalize(&randn(&[b, h, t, dk], 2)).unwrap();
        let v = randn(&[b, h, t, dv], 3);
        let g = (randn(&[b, h, t], 4).abs().unwrap() * -0.1).unwrap(); // log-decays <= 0
        let beta = candle_nn::ops::sigmoid(&randn(&[b, h, t], 5)).unwrap();
        let s0 = with_state.then(|| randn(&[b, h, dk, dv], 6));
        let (o1, s1) = deltanet::recurrent(&q, &k, &v, &g, &beta, s0.as_ref()).unwrap();
        let (o2, s2) = deltanet::chunked(&q, &k, &v, &g, &beta, s0.as_ref()).unwrap();
        // f64 throughout: the two forms differ only by rounding
        assert!(tensor_max_diff(&o1, &o2) < 1e-10, "T={t}: outputs differ by {}", tensor_max_diff(&o1, &o2));
        assert!(tensor_max_diff(&s1, &s2) < 1e-10, "T={t}: states differ by {}", tensor_max_diff(&s1, &s2));
    }
}

#[test]
fn model_forms_agree_over_several_chunks() {
    let mut model = random_qwen3_5(DType::F64, frozen(), PATTERN);
    let seq: Vec<u32> = (0..140).map(|i| (i * 7 % 53) as u32).collect();
    let a = model.logits(&ids(std::slice::from_ref(&seq))).unwrap();
    model.set_delta_form(DeltaForm::Recurrent);
    let b = model.logits(&ids(&[seq])).unwrap();
    assert!(tensor_max_diff(&a, &b) < 1e-9, "{}", tensor_max_diff(&a, &b));
}

fn qwen3_5_tiny() -> Model {
    Model::load_dir(&shared().join("models/qwen3_5-tiny"), &cpu(DType::F32)).unwrap()
}

fn greedy(n: usize) -> SamplingParams {
    SamplingParams { temperature: 0.0, max_new_tokens: n, thinking_budget: None, ..SamplingParams::default() }
}

#[test]
fn cached_generation_equals_recomputation() {
    let model = qwen3_5_tiny();
    // a prompt longer than one chunk, so prefill runs the chunked form with a padded tail
    let prompt: Vec<u32> = (0..70).map(|i| (i * 13 % 479) as u32).collect();
    let out = generate(
        &model,
        &Request::group(prompt.clone(), 1, greedy(20), vec![], None),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    let mut seq = prompt.clone();
    for &tok in &out[0].tokens {
        let logits = model.logits(&ids(&[seq.clone()])).unwrap().squeeze(0).unwrap();
        let next = logits.get(seq.len() - 1).unwrap().argmax(D::Minus1).unwrap().to_scalar::<u32>().unwrap();
        assert_eq!(next, tok, "step {}", seq.len() - prompt.len());
        seq.push(next);
    }
}

#[test]
fn left_padding_is_inert_and_groups_decode_together() {
    let model = qwen3_5_tiny();
    let prompts = vec![vec![5u32, 99, 300, 7, 12, 40, 41, 8, 9], vec![8u32, 2], vec![100u32, 200, 300, 400]];
    let batched = generate(
        &model,
        &Request { prompts: prompts.clone(), params: greedy(12), stop_ids: vec![], think: None },
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    for (i, p) in prompts.iter().enumerate() {
        let alone = generate(
            &model,
            &Request::group(p.clone(), 1, greedy(12), vec![], None),
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(batched[i].tokens, alone[0].tokens, "row {i}");
    }
    // a sampled group of 6 with its conv/recurrent states, rows finishing at different times
    let params = SamplingParams {
        temperature: 1.0,
        max_new_tokens: 15,
        seed: 9,
        thinking_budget: None,
        ..SamplingParams::default()
    };
    let group = generate(
        &model,
        &Request::group(vec![1, 2, 3], 6, params.clone(), vec![7, 11, 13], None),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    let again = generate(
        &model,
        &Request::group(vec![1, 2, 3], 6, params, vec![7, 11, 13], None),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    for (a, b) in group.iter().zip(&again) {
        assert_eq!(a.tokens, b.tokens);
    }
}

#[test]
fn every_parameter_gets_a_gradient_and_they_match_finite_differences() {
    let (inputs, targets) = {
        let seq: Vec<u32> = (0..71).map(|i| (i * 11 % 53) as u32).collect(); // two chunks
        (ids(&[seq[..70].to_vec()]), ids(&[seq[1..].to_vec()]))
    };
    let c: Vec<f64> = (0..70).map(|i| ((i * 5 % 9) as f64 - 4.0) / 3.0).collect();
    let c = Tensor::from_vec(c, (1, 70), &Device::Cpu).unwrap();

    let model = random_qwen3_5(DType::F64, all_trainable(), PATTERN);
    let (_, grads) = logprobs_backward(&model, &inputs, &targets, 16, |_| Ok(c.clone())).unwrap();
    for (name, g) in &grads {
        let norm: f64 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(norm > 0.0 && norm.is_finite(), "{name}: gradient norm {norm}");
    }
    let loss = |m: &Model| -> f64 {
        (logprobs(m, &inputs, &targets, 16).unwrap() * &c).unwrap().sum_all().unwrap().to_scalar().unwrap()
    };
    let mut checked = 0;
    for ((name, var), (_, g)) in model.trainable().iter().zip(&grads) {
        if !name.contains("layers.0.linear_attn") && !name.contains("layers.1.self_attn") {
            continue;
        }
        let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for &i in &[0, base.len() / 2, base.len() - 1] {
            let h = 1e-5;
            let mut x = base.clone();
            x[i] += h;
            var.set(&Tensor::from_vec(x.clone(), var.shape(), var.device()).unwrap()).unwrap();
            let up = loss(&model);
            x[i] -= 2.0 * h;
            var.set(&Tensor::from_vec(x, var.shape(), var.device()).unwrap()).unwrap();
            let down = loss(&model);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), var.device()).unwrap()).unwrap();
            let fd = (up - down) / (2.0 * h);
            // f64 central differences: error ~1e-10; 1e-6 relative leaves margin, while a
            // missing gradient path through the gates or the chunk solve is off by O(|g|)
            assert!(
                (fd - g[i]).abs() < 1e-6 * g[i].abs().max(1.0),
                "{name}[{i}]: backward {} vs finite difference {fd}",
                g[i]
            );
            checked += 1;
        }
    }
    // in_proj_qkv/z/b/a, conv1d, A_log, dt_bias, norm, out_proj; q/k/v/o_proj, q_norm, k_norm
    assert_eq!(checked, 3 * (9 + 6));
}

#[test]
fn lora_targets_are_addressable_by_checkpoint_name() {
    let targets = ["in_proj_qkv", "in_proj_z", "out_proj", "q_proj", "v_proj", "gate_proj"];
    let pick: polaris::model::TrainableFn =
        Arc::new(move |n: &str| targets.iter().any(|t| n.ends_with(&format!(".{t}.weight"))));
    let model =
        Model::load_dir(&shared().join("models/qwen3_5-tiny"), &cpu(DType::F32).trainable(pick)).unwrap();
    let names: Vec<&str> = model.trainable().iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"model.layers.0.linear_attn.in_proj_qkv.weight"), "{names:?}");
    assert!(names.contains(&"model.layers.2.linear_attn.in_proj_z.weight"));
    assert!(names.contains(&"model.layers.1.linear_attn.out_proj.weight"));
    assert!(names.contains(&"model.layers.3.self_attn.q_proj.weight"));
    // 3 DeltaNet layers x 3 + 1 attention layer x 2 + 4 MLPs
    assert_eq!(names.len(), 9 + 2 + 4, "{names:?}");
}

#[test]
fn the_9b_config_parses_with_its_parameter_count() {
    let cfg = ModelConfig::from_file(&fixtures().join("configs/qwen3_5-9b.json")).unwrap();
    assert_eq!(cfg.num_hidden_layers, 32);
    let full: Vec<usize> = cfg
        .layer_types
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == polaris::model::config::LayerType::FullAttention)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(full, vec![3, 7, 11, 15, 19, 23, 27, 31]);
    assert_eq!(cfg.rotary_dim(), 64);
    assert_eq!(cfg.rope_theta, 1e7);
    assert!(!cfg.tie_word_embeddings);
    // counted independently from the MODELS.md sizes (embeddings, 8 gated-attention and
    // 24 DeltaNet layers, 32 MLPs, norms, untied head): 8,953,803,264
    assert_eq!(cfg.parameter_count(), 8_953_803_264);
}

#[test]
fn bad_hybrid_configs_name_the_field() {
    let mut v = serde_json::json!({
        "model_type": "qwen3_5_text", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
        "num_hidden_layers": 2, "layer_types": ["linear_attention"], "num_attention_heads": 2, "head_dim": 8,
        "linear_num_key_heads": 2, "linear_num_value_heads": 3, "linear_key_head_dim": 4, "linear_value_head_dim": 4
    });
    let e = format!("{:#}", ModelConfig::from_json(&v).unwrap_err());
    assert!(e.contains("layer_types has 1 entries"), "{e}");
    v["layer_types"] = serde_json::json!(["linear_attention", "mamba"]);
    let e = format!("{:#}", ModelConfig::from_json(&v).unwrap_err());
    assert!(e.contains("layer_types[1]"), "{e}");
    v["layer_types"] = serde_json::json!(["linear_attention", "full_attention"]);
    let e = format!("{:#}", ModelConfig::from_json(&v).unwrap_err());
    assert!(e.contains("linear_num_value_heads (3) must be a multiple of linear_num_key_heads (2)"), "{e}");
}
