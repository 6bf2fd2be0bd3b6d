//! Gradients through the differentiable path: every trainable parameter gets one, they
//! agree with finite differences, chunking changes nothing, and frozen parameters stay out.

mod common;

use std::sync::Arc;

use candle_core::{DType, Tensor, D};
use common::*;
use polaris::model::logprobs::{logprobs, logprobs_backward};
use polaris::model::{all_trainable, Model};

fn batch() -> (Tensor, Tensor) {
    let rows = [vec![3u32, 17, 42, 5, 9, 60, 1, 33, 12], vec![7u32, 7, 21, 50, 2, 18, 44, 0, 29]];
    let inputs: Vec<Vec<u32>> = rows.iter().map(|r| r[..r.len() - 1].to_vec()).collect();
    let targets: Vec<Vec<u32>> = rows.iter().map(|r| r[1..].to_vec()).collect();
    (ids(&inputs), ids(&targets))
}

/// Fixed per-token coefficients dL/dlogp, varied in sign and size, zero on one "padding" token.
fn coefficients(shape: &Tensor) -> Tensor {
    let (b, t) = shape.dims2().unwrap();
    let c: Vec<f32> =
        (0..b * t).map(|i| if i == b * t - 1 { 0.0 } else { ((i * 7 % 11) as f32 - 5.0) / 4.0 }).collect();
    Tensor::from_vec(c, (b, t), shape.device()).unwrap()
}

/// L(θ) = Σ c_i logp_i(θ) evaluated in f64.
fn loss(model: &Model, inputs: &Tensor, targets: &Tensor, c: &Tensor) -> f64 {
    let lp = logprobs(model, inputs, targets, 5).unwrap();
    (lp.to_dtype(DType::F64).unwrap() * c.to_dtype(DType::F64).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn every_trainable_parameter_gets_a_nonzero_gradient() {
    for (arch, tied) in [("qwen3", false), ("qwen3", true), ("llama", false)] {
        let model = random_model(arch, tied, DType::F32, all_trainable());
        let (inputs, targets) = batch();
        let (_, grads) = logprobs_backward(&model, &inputs, &targets, 4, |lp| Ok(coefficients(lp))).unwrap();
        assert_eq!(grads.len(), model.trainable().len());
        assert!(grads.len() >= 2 * 9 + 2, "{arch}: expected every tensor trainable, got {}", grads.len());
        for (name, g) in &grads {
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 0.0 && norm.is_finite(), "{arch} tied={tied}: {name} has gradient norm {norm}");
        }
        if arch == "qwen3" {
            assert!(grads.iter().any(|(n, _)| n.ends_with("q_norm.weight")), "qwen3 has q/k norms");
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    for tied in [false, true] {
        let model = random_model("qwen3", tied, DType::F64, all_trainable());
        let (inputs, targets) = batch();
        let c = coefficients(&inputs);
        let (_, grads) = logprobs_backward(&model, &inputs, &targets, 3, |_| Ok(c.clone())).unwrap();
        let mut checked = 0;
        for ((name, var), (gname, g)) in model.trainable().iter().zip(&grads) {
            assert_eq!(name, gname);
            let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
            let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            // three elements per tensor: first, middle, last
            for &i in &[0, base.len() / 2, base.len() - 1] {
                let h = 1e-5;
                let mut plus = base.clone();
                plus[i] += h;
                var.set(&Tensor::from_vec(plus, var.shape(), var.device()).unwrap()).unwrap();
                let lp = loss(&model, &inputs, &targets, &c);
                let mut minus = base.clone();
                minus[i] -= h;
                var.set(&Tensor::from_vec(minus, var.shape(), var.device()).unwrap()).unwrap();
                let lm = loss(&model, &inputs, &targets, &c);
                var.set(&Tensor::from_vec(base.clone(), var.shape(), var.device()).unwrap()).unwrap();
                let fd = (lp - lm) / (2.0 * h);
                // Central differences in f64 with h = 1e-5: truncation ~h²·|f'''| ≈ 1e-10 and
                // rounding ~ε·|L|/h ≈ 1e-11·|L|; 1e-6 relative (absolute below 1) leaves
                // margin while a missing or wrong gradient term is off by O(|g|).
                let tol = 1e-6 * g[i].abs().max(1.0);
                assert!(
                    (fd - g[i]).abs() < tol,
                    "tied={tied} {name}[{i}]: backward {} vs finite difference {fd}",
                    g[i]
                );
                checked += 1;
            }
        }
        assert!(checked >= 60);
    }
}

#[test]
fn chunked_logprobs_equal_the_full_log_softmax() {
    let model = random_model("qwen3", false, DType::F64, polaris::model::frozen());
    let (inputs, targets) = batch();
    let full = candle_nn::ops::log_softmax(&model.logits(&inputs).unwrap(), D::Minus1).unwrap();
    let expect: Vec<Vec<f64>> = full
        .gather(&targets.unsqueeze(2).unwrap(), 2)
        .unwrap()
        .squeeze(2)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec2()
        .unwrap();
    for chunk in [1, 3, 7, 16, 1000] {
        let got: Vec<Vec<f64>> = logprobs(&model, &inputs, &targets, chunk)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec2()
            .unwrap();
        for (a, b) in got.iter().flatten().zip(expect.iter().flatten()) {
            // log-probs leave the chunk in f32: 1e-6 is f32 rounding of values O(5)
            assert!((a - b).abs() < 1e-5, "chunk {chunk}: {a} vs {b}");
        }
    }
    // and the gradients do not depend on the chunk size
    let model = random_model("qwen3", true, DType::F64, all_trainable());
    let c = coefficients(&inputs);
    let (_, g1) = logprobs_backward(&model, &inputs, &targets, 1, |_| Ok(c.clone())).unwrap();
    let (_, g2) = logprobs_backward(&model, &inputs, &targets, 100, |_| Ok(c.clone())).unwrap();
    for ((n, a), (_, b)) in g1.iter().zip(&g2) {
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_keepdim(0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(d < 1e-9, "{n}: chunking changed the gradient by {d}");
    }
}

#[test]
fn only_the_chosen_parameters_train() {
    let only: polaris::model::TrainableFn =
        Arc::new(|n: &str| n == "lm_head.weight" || n.starts_with("model.layers.1.self_attn.q_proj"));
    let model = random_model("qwen3", false, DType::F32, only);
    let names: Vec<&str> = model.trainable().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["model.layers.1.self_attn.q_proj.weight", "lm_head.weight"]);
    let (inputs, targets) = batch();
    let (_, grads) = logprobs_backward(&model, &inputs, &targets, 4, |lp| Ok(coefficients(lp))).unwrap();
    assert_eq!(grads.len(), 2);
    for (name, g) in &grads {
        assert!(g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0, "{name}");
    }
    // a frozen model refuses to train
    let frozen = random_model("qwen3", false, DType::F32, polaris::model::frozen());
    assert!(logprobs_backward(&frozen, &inputs, &targets, 4, |lp| Ok(coefficients(lp))).is_err());
}

#[test]
fn activation_checkpointing_gives_the_same_gradients() {
    use polaris::model::logprobs::{backward, BackwardOptions};
    let models = [
        ("qwen3 untied", random_model("qwen3", false, DType::F64, all_trainable())),
        ("qwen3 tied", random_model("qwen3", true, DType::F64, all_trainable())),
        ("llama", random_model("llama", false, DType::F64, all_trainable())),
        ("qwen3_5", random_qwen3_5(DType::F64, all_trainable(), &["linear_attention", "full_attention"])),
        // frozen embedding: the recompute must still reach every layer
        (
            "qwen3 frozen embedding",
            random_model("qwen3", false, DType::F64, Arc::new(|n: &str| !n.contains("embed"))),
        ),
    ];
    for (what, model) in &models {
        // ids below every test model's vocabulary (qwen3_5's is the smallest)
        let (inputs, targets) = batch();
        let vocab = model.config().vocab_size as f64;
        let (inputs, targets) = (
            inputs
                .to_dtype(DType::F64)
                .unwrap()
                .clamp(0.0, vocab - 1.0)
                .unwrap()
                .to_dtype(DType::U32)
                .unwrap(),
            targets
                .to_dtype(DType::F64)
                .unwrap()
                .clamp(0.0, vocab - 1.0)
                .unwrap()
                .to_dtype(DType::U32)
                .unwrap(),
        );
        let run = |checkpoint_layers: bool| {
            let opts = BackwardOptions { chunk: 4, checkpoint_layers, ..BackwardOptions::default() };
            backward(model, &inputs, &targets, opts, |lp| Ok(coefficients(lp))).unwrap()
        };
        let (whole, layered) = (run(false), run(true));
        assert_eq!(tensor_max_diff(&whole.logprobs, &layered.logprobs), 0.0, "{what}: same forward values");
        assert_eq!(whole.grads.len(), layered.grads.len());
        for ((name, a), (other, b)) in whole.grads.iter().zip(&layered.grads) {
            assert_eq!(name, other);
            // the same operations on the same values, summed in another order: f64 round-off
            let scale = a.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap().max(1e-3);
            let d = tensor_max_diff(a, b);
            assert!(d <= 1e-12 * scale, "{what}: {name} differs by {d} (scale {scale})");
        }
    }
}

#[test]
fn a_weight_seen_transposed_gets_its_gradient_in_its_own_layout() {
    // vendor/candle-core computes the gradient of x Wᵀ with respect to W as (gᵀ x) in W's
    // layout; once used (dW = gᵀ x) and twice (the second use's gradient is added)
    let dev = candle_core::Device::Cpu;
    let x = Tensor::randn(0f64, 1.0, (5, 3), &dev).unwrap();
    let x2 = Tensor::randn(0f64, 1.0, (2, 3), &dev).unwrap();
    let c = Tensor::randn(0f64, 1.0, (5, 4), &dev).unwrap();
    let c2 = Tensor::randn(0f64, 1.0, (2, 4), &dev).unwrap();
    let w = candle_core::Var::from_tensor(&Tensor::randn(0f64, 1.0, (4, 3), &dev).unwrap()).unwrap();
    let once = (x.matmul(&w.t().unwrap()).unwrap() * &c).unwrap().sum_all().unwrap();
    let twice = (&once + (x2.matmul(&w.t().unwrap()).unwrap() * &c2).unwrap().sum_all().unwrap()).unwrap();
    let want_once = c.t().unwrap().matmul(&x).unwrap();
    let want_twice = (&want_once + c2.t().unwrap().matmul(&x2).unwrap()).unwrap();
    for (loss, want) in [(once, want_once), (twice, want_twice)] {
        let grads = loss.backward().unwrap();
        let got = grads.get(&w).unwrap();
        assert!(got.is_contiguous(), "W's gradient is strided: {:?}", got.layout());
        let diff = (got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        // the same f64 products summed in gemm's order and in this test's: rounding only
        assert!(diff < 1e-12, "W's gradient off by {diff}");
    }
}
