//! The host decode step (one new token per row, every weight read once for the whole
//! group): its logits equal a full recomputation through the differentiable path, with
//! left padding, GQA, qwen3's q/k norms and LoRA adapters; and a row's logits do not depend
//! on the group it is decoded in.

mod common;

use candle_core::{DType, Tensor};
use common::*;
use polaris::model::{adapters_only, Kernels, LoraConfig, LoraInit, LoraSpec, Model};

/// Feeds `rows` (each [prefix ++ steps], prefix left-padded to `pad[r]`) as one prefill of
/// the prefix, then one token per step; checks each step's logits against `model.logits`
/// of that row's real tokens so far, alone.
fn check_steps_against_recomputation(model: &Model, rows: &[Vec<u32>], prefix: usize, pad: &[usize]) {
    let b = rows.len();
    let padded: Vec<Vec<u32>> = rows
        .iter()
        .zip(pad)
        .map(|(r, &p)| std::iter::repeat_n(r[p], p).chain(r[p..prefix].iter().copied()).collect())
        .collect();
    let mut cache = model.new_cache(pad.to_vec());
    model.forward_cached(&ids(&padded), &mut cache, Kernels::Fused).unwrap(); // prefill: the general path
    for t in prefix..rows[0].len() {
        let next: Vec<u32> = rows.iter().map(|r| r[t]).collect();
        let logits = model
            .forward_cached(
                &Tensor::from_vec(next, (b, 1), &candle_core::Device::Cpu).unwrap(),
                &mut cache,
                Kernels::Fused,
            )
            .unwrap();
        let got: Vec<Vec<f32>> = logits.to_vec2().unwrap();
        for (r, row) in rows.iter().enumerate() {
            let seen = ids(&[row[pad[r]..=t].to_vec()]);
            let full = model.logits(&seen).unwrap().squeeze(0).unwrap();
            let want: Vec<f32> = full.get(t - pad[r]).unwrap().to_vec1().unwrap();
            let d = want.iter().zip(&got[r]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            // f32, host step vs composed kernels: a few ulps of O(1)-O(10) logits
            assert!(d < 1e-4, "row {r} position {t}: step and recomputation differ by {d}");
        }
    }
}

fn rows() -> Vec<Vec<u32>> {
    vec![
        vec![1, 17, 42, 5, 9, 33, 8, 12, 3],
        vec![1, 7, 21, 50, 2, 18, 44, 29, 6],
        vec![1, 4, 4, 30, 11, 19, 2, 7, 40],
    ]
}

#[test]
fn stories260k_steps_equal_recomputation_with_left_padding() {
    let model = Model::load_dir(&shared().join("models/stories260K-hf"), &cpu(DType::F32)).unwrap();
    check_steps_against_recomputation(&model, &rows(), 4, &[0, 2, 1]);
}

#[test]
fn qwen3_steps_equal_recomputation() {
    let model = random_model("qwen3", false, DType::F32, polaris::model::frozen());
    check_steps_against_recomputation(&model, &rows(), 3, &[1, 0, 2]);
}

#[test]
fn lora_steps_equal_recomputation() {
    let spec = LoraSpec {
        config: LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            target_modules: vec!["all-linear".into()],
            use_rslora: false,
        },
        init: LoraInit::Fresh { seed: 3 },
    };
    let model = random_model_with("llama", true, &cpu(DType::F32).lora(spec).trainable(adapters_only()));
    // a fresh B is zero: give every adapter a B so it changes the output
    for (name, var) in model.trainable() {
        if name.ends_with("lora_B.weight") {
            let b =
                (Tensor::randn(0f32, 0.5, var.shape(), var.device()).unwrap()).to_dtype(var.dtype()).unwrap();
            var.set(&b).unwrap();
        }
    }
    check_steps_against_recomputation(&model, &rows(), 2, &[0, 0, 1]);
}

#[test]
fn a_row_gets_the_same_logits_alone_and_in_a_group_of_six() {
    let model = Model::load_dir(&shared().join("models/stories260K-hf"), &cpu(DType::F32)).unwrap();
    let group: Vec<Vec<u32>> =
        (0..6u32).map(|r| (0..12u32).map(|t| 1 + (r * 37 + t * 11) % 500).collect()).collect();
    let decode = |rows: &[Vec<u32>]| -> Vec<Vec<Vec<f32>>> {
        let mut cache = model.new_cache(vec![0; rows.len()]);
        (0..rows[0].len())
            .map(|t| {
                let step: Vec<Vec<u32>> = rows.iter().map(|r| vec![r[t]]).collect();
                model.forward_cached(&ids(&step), &mut cache, Kernels::Fused).unwrap().to_vec2().unwrap()
            })
            .collect()
    };
    let together = decode(&group);
    for (r, row) in group.iter().enumerate() {
        let alone = decode(std::slice::from_ref(row));
        for t in 0..row.len() {
            assert_eq!(alone[t][0], together[t][r], "row {r} step {t}: the group changed its logits");
        }
    }
}

/// The host decode step puts the weights on 2 MiB pages before its first step, once, and
/// not before a model decodes (training's forwards never pay for it).
#[test]
fn the_first_host_step_backs_the_weights_with_huge_pages() {
    let model = random_model("qwen3", false, DType::F32, polaris::model::frozen());
    assert_eq!(model.huge_pages(), None);
    let before = model.logits(&ids(&[vec![1, 2, 3]])).unwrap();
    assert_eq!(model.huge_pages(), None, "a differentiable forward asked for pages");
    let mut cache = model.new_cache(vec![0]);
    model.forward_cached(&ids(&[vec![1]]), &mut cache, Kernels::Fused).unwrap();
    let backing = model.huge_pages().expect("the host step ran, so the weights were asked for");
    // the model's few KiB of weights lie in at least one 2 MiB span; whether the kernel
    // backed it depends on the heap around them (`huge_pages`'s own tests hold the kernel to it)
    assert!(backing.asked >= 2 << 20 && backing.backed <= backing.asked, "{backing:?}");
    // asked once: a second step keeps the first answer, and the weights are unchanged
    model.forward_cached(&ids(&[vec![2]]), &mut cache, Kernels::Fused).unwrap();
    assert_eq!(model.huge_pages(), Some(backing));
    let after = model.logits(&ids(&[vec![1, 2, 3]])).unwrap();
    assert_eq!(before.to_vec3::<f32>().unwrap(), after.to_vec3::<f32>().unwrap());
}
