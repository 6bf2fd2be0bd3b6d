//! The device-generic path (what `cuda:N` runs: composed candle ops and candle's own kernels,
//! no CPU-only kernel) against the host kernels, on the CPU: `fused::generic_only` switches
//! every CPU-only kernel off on the calling thread, so the same model code takes exactly the
//! branches a GPU takes. Training passes (log-probs and every gradient, packed rows, with and
//! without layer checkpointing), generation (prefill and decode steps, left-padded groups)
//! and the mixed-precision forms (bf16 weights and activations, f32 LoRA adapters) are held
//! to each other here; nothing here runs on a GPU.
//!
//! Tolerances: in f64 the two paths differ only in summation order (blockwise attention's
//! online softmax against the generic path's whole-row softmax, the delta rule's recurrence
//! against its chunked closed form): relative differences ~1e-13 for llama and qwen3, checked
//! at 1e-9. The random Qwen3.5's gradients amplify rounding strongly (its DeltaNet layer: the
//! embedding's gradient differs by 7.6e-9 relative between the recurrence and the chunked
//! form, with forward substitution or the product form of the chunk inverse alike), checked
//! at 1e-7: the amplification is the model's, ~1e7, and is why bf16 is compared below on
//! log-probs only for DeltaNet layers. In f32
//! generation, the decode step's host buffers and candle's kernels round differently:
//! logits of magnitude ~1 agree to ~1e-6, checked at 1e-4.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use polaris::model::fused::generic_only;
use polaris::model::logprobs::{backward_packed, Backward, BackwardOptions};
use polaris::model::{all_trainable, Kernels, Model};

/// Two packed rows of 150 and 90 tokens: past the generic attention's 128-position block and
/// the delta rule's 64-position chunk, so block and chunk boundaries are crossed.
fn packed(vocab: u32) -> (Tensor, Tensor, Vec<usize>) {
    let n = 240;
    let ids: Vec<u32> = (0..n).map(|i| (i * 31 % vocab as usize) as u32).collect();
    let targets: Vec<u32> = (0..n).map(|i| ((i * 17 + 5) % vocab as usize) as u32).collect();
    (Tensor::new(ids, &Device::Cpu).unwrap(), Tensor::new(targets, &Device::Cpu).unwrap(), vec![0, 150, 240])
}

/// A training pass with fixed coefficients dL/dlogp (varied in sign, as advantages are).
fn train_pass(model: &Model, checkpoint_layers: bool) -> Backward {
    let vocab = model.config().vocab_size as u32;
    let (ids, targets, cu) = packed(vocab);
    let opts = BackwardOptions { chunk: 64, entropy: false, checkpoint_layers };
    backward_packed(model, &ids, &targets, &cu, opts, |lp| {
        let n = lp.dim(0)?;
        let c: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) / 40.0).collect();
        Ok(Tensor::from_vec(c, n, lp.device())?.to_dtype(lp.dtype())?)
    })
    .unwrap()
}

/// max |a - b| / max(max |b|, 1e-30) over two tensors.
fn relative(a: &Tensor, b: &Tensor) -> f64 {
    let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    let scale = scale.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap().max(1e-30);
    tensor_max_diff(&a.to_dtype(DType::F64).unwrap(), &b.to_dtype(DType::F64).unwrap()) / scale
}

fn assert_passes_agree(what: &str, generic: &Backward, host: &Backward, tol: f64) {
    let d = relative(&generic.logprobs, &host.logprobs);
    assert!(d < tol, "{what}: log-probs differ by {d:e} (relative)");
    assert_eq!(generic.grads.len(), host.grads.len(), "{what}: gradient sets differ");
    for ((n1, g1), (n2, g2)) in generic.grads.iter().zip(&host.grads) {
        assert_eq!(n1, n2);
        let d = relative(g1, g2);
        assert!(d < tol, "{what}: gradient of {n1} differs by {d:e} (relative)");
    }
}

#[test]
fn training_passes_on_the_generic_path_equal_the_host_kernels() {
    let models = [
        ("qwen3", random_model("qwen3", false, DType::F64, all_trainable())),
        ("llama tied", random_model("llama", true, DType::F64, all_trainable())),
        ("qwen3_5", random_qwen3_5(DType::F64, all_trainable(), &["linear_attention", "full_attention"])),
    ];
    for (arch, model) in &models {
        for checkpoint_layers in [false, true] {
            let host = train_pass(model, checkpoint_layers);
            let generic = generic_only(|| train_pass(model, checkpoint_layers));
            let tol = if *arch == "qwen3_5" { 1e-7 } else { 1e-9 };
            assert_passes_agree(&format!("{arch}, checkpointing {checkpoint_layers}"), &generic, &host, tol);
        }
    }
}

/// Last-position logits of a prefill over left-padded rows and then `steps` decode steps
/// (greedy on the host path's logits, fed to both paths alike), each [B, V].
fn generation_logits(model: &Model, steps: usize) -> Vec<Tensor> {
    let rows = [vec![0u32, 0, 3, 17, 42, 5], vec![7u32, 7, 21, 50, 2, 18], vec![0u32, 4, 9, 11, 30, 1]];
    let mut cache = model.new_cache(vec![2, 0, 1]);
    let mut logits = vec![model.forward_cached(&ids(&rows), &mut cache, Kernels::Fused).unwrap()];
    for step in 0..steps {
        let next: Vec<Vec<u32>> = (0..rows.len()).map(|r| vec![((step * 13 + r * 5) % 40) as u32]).collect();
        logits.push(model.forward_cached(&ids(&next), &mut cache, Kernels::Fused).unwrap());
    }
    logits
}

#[test]
fn generation_on_the_generic_path_equals_the_host_kernels() {
    let models = [
        ("qwen3", random_model("qwen3", false, DType::F32, all_trainable())),
        ("llama", random_model("llama", false, DType::F32, all_trainable())),
        ("qwen3_5", random_qwen3_5(DType::F32, all_trainable(), &["linear_attention", "full_attention"])),
    ];
    for (arch, model) in &models {
        let host = generation_logits(model, 5);
        let generic = generic_only(|| generation_logits(model, 5));
        for (i, (g, h)) in generic.iter().zip(&host).enumerate() {
            assert_eq!(g.dtype(), DType::F32);
            let d = tensor_max_diff(g, h);
            assert!(d < 1e-4, "{arch}: logits of forward {i} differ by {d:e}");
        }
    }
}

#[test]
fn the_generic_switch_is_scoped_to_its_closure_and_thread() {
    use polaris::model::fused::host_kernels;
    let t = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    assert!(host_kernels(&t));
    generic_only(|| {
        assert!(!host_kernels(&t));
        // another thread keeps the host kernels
        std::thread::scope(|s| assert!(s.spawn(|| host_kernels(&t)).join().unwrap()));
        generic_only(|| assert!(!host_kernels(&t)));
        assert!(!host_kernels(&t), "a nested scope leaves the outer one on");
    });
    assert!(host_kernels(&t));
    // a panic inside still restores the switch
    let _ = std::panic::catch_unwind(|| generic_only(|| panic!("inside")));
    assert!(host_kernels(&t));
}

/// Mixed precision on the generic path, as a GPU runs it: bf16 weights and activations, the
/// log-probs in f32, gradients in the parameters' bf16. Against the f32 model of the same
/// random weights (unrounded): bf16 keeps 8 significant bits (2^-9 relative rounding per
/// operand, weights included) through a few dozen roundings. Measured: attention-only, log-
/// probs (mean |lp| ≈ 5) within 0.066 and every gradient within 2.4e-2 of its largest entry;
/// checked at 0.15 and 5e-2. With a DeltaNet layer the model amplifies rounding ~1e7 (see
/// the module's tolerances), so only log-probs are compared: measured max 0.21, mean 0.030;
/// checked at 0.5 and 0.06 (a bf16 softmax or log-sum-exp alone is off by more).
#[test]
fn a_bf16_training_pass_on_the_generic_path_keeps_log_probs_in_f32() {
    for layers in [&["full_attention"][..], &["linear_attention", "full_attention"][..]] {
        let deltanet = layers.contains(&"linear_attention");
        let f32_model = random_qwen3_5(DType::F32, all_trainable(), layers);
        let bf16_model = random_qwen3_5(DType::BF16, all_trainable(), layers);
        let want = generic_only(|| train_pass(&f32_model, true));
        let got = generic_only(|| train_pass(&bf16_model, true));
        assert_eq!(got.logprobs.dtype(), DType::F32, "log-probs are f32 over bf16 weights");
        let d = tensor_max_diff(&got.logprobs, &want.logprobs);
        let mean = (&got.logprobs - &want.logprobs).unwrap().abs().unwrap().mean_all().unwrap();
        let mean = mean.to_scalar::<f32>().unwrap();
        let (max_tol, mean_tol) = if deltanet { (0.5, 0.06) } else { (0.15, 0.06) };
        assert!(
            d < max_tol && mean < mean_tol,
            "{layers:?}: bf16 log-probs differ from f32 by {d} (mean {mean})"
        );
        for ((name, g), (_, w)) in got.grads.iter().zip(&want.grads) {
            assert_eq!(g.dtype(), DType::BF16, "{name}: a bf16 parameter's gradient is bf16");
            let norm =
                g.to_dtype(DType::F64).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
            assert!(norm.is_finite() && norm > 0.0, "{name}: gradient norm {norm}");
            if !deltanet {
                let d = relative(g, w);
                assert!(d < 5e-2, "{name}: bf16 gradient differs from f32 by {d:e} (relative)");
            }
        }
    }
}

/// LoRA over a bf16 base, as a GPU trains it: the adapters are f32 parameters with f32
/// gradients, and an AdamW step keeps them f32 (no master copy: they are their own). Against
/// the same adapters over the f32 base, B's gradient (A's is zero while B = 0) agrees to the
/// bf16 base's rounding: ~2^-9 relative per operand over a few dozen operations (measured: up
/// to 5.6e-2 of its largest entry, k_proj's); checked at 0.1 (attention layers only: see the
/// bf16 test above).
#[test]
fn lora_over_a_bf16_base_trains_f32_adapters() {
    use polaris::model::{adapters_only, LoraConfig, LoraInit, LoraSpec};
    use polaris::train::optim::{AdamW, AdamWConfig};
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
    let layers = ["full_attention", "full_attention"];
    let model =
        |dtype| random_qwen3_5_with(&cpu(dtype).lora(spec.clone()).trainable(adapters_only()), &layers);
    let (base16, base32) = (model(DType::BF16), model(DType::F32));
    assert_eq!(base16.dtype(), DType::BF16);
    assert!(!base16.trainable().is_empty());
    for (name, v) in base16.trainable() {
        assert_eq!(v.dtype(), DType::F32, "{name}: adapters are f32 over a bf16 base");
    }
    let got = train_pass(&base16, true);
    let want = train_pass(&base32, true);
    assert_eq!(got.logprobs.dtype(), DType::F32);
    for ((name, g), (_, w)) in got.grads.iter().zip(&want.grads) {
        assert_eq!(g.dtype(), DType::F32, "{name}: an f32 adapter's gradient is f32");
        if name.contains("lora_B") {
            let d = relative(g, w);
            assert!(d < 0.1, "{name}: gradient over the bf16 base differs by {d:e} (relative)");
        }
    }
    let mut opt = AdamW::new(AdamWConfig::default());
    opt.apply(base16.trainable(), &got.grads, 1e-3).unwrap();
    let state = opt.state().unwrap();
    assert!(state.keys().all(|k| !k.starts_with("master.")), "f32 adapters keep no master copy");
    for (name, v) in base16.trainable() {
        assert_eq!(v.dtype(), DType::F32, "{name} after the update");
    }
    // after one update B is nonzero, so A gets a gradient too
    let again = train_pass(&base16, true);
    let a_norm: f64 = again
        .grads
        .iter()
        .filter(|(n, _)| n.contains("lora_A"))
        .map(|(_, g)| {
            g.to_dtype(DType::F64).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
        })
        .sum();
    assert!(a_norm > 0.0 && a_norm.is_finite(), "A's gradient norm {a_norm}");
}
