//! Packed micro-batches: rows concatenated into one stream give the same log-probs, loss and
//! gradients as each row run on its own (positions restart, attention never crosses a row
//! boundary, DeltaNet's conv window and state restart), for both architectures, in f64.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use polaris::model::logprobs::{backward, backward_packed, BackwardOptions, Gradients};
use polaris::model::{all_trainable, Model};
use polaris::train::batch::{pack, response_rows, spread};

/// Rows of very different lengths: 1-token responses beside ones that cross DeltaNet's
/// 64-position chunks and several attention blocks.
fn rows(vocab: u32) -> Vec<(Vec<u32>, Vec<u32>)> {
    let seq = |seed: u32, n: usize| -> Vec<u32> {
        (0..n as u32).map(|i| (seed * 31 + i * 17 + i * i) % vocab).collect()
    };
    vec![
        (seq(1, 5), seq(2, 140)),
        (seq(3, 2), seq(4, 1)),
        (seq(5, 9), seq(6, 61)),
        (seq(7, 1), seq(8, 3)),
        (seq(9, 70), seq(10, 66)),
    ]
}

/// dL/dlogp of response token j of row r: varied in sign and size.
fn coefficient(r: usize, j: usize) -> f64 {
    ((r * 13 + j * 7) % 11) as f64 / 8.0 - 0.6
}

/// Each row alone: its log-probs and the sum of its gradients.
fn unpacked(
    model: &Model,
    rows: &[(Vec<u32>, Vec<u32>)],
    opts: BackwardOptions,
) -> (Vec<Vec<f64>>, Gradients) {
    let mut logprobs = Vec::new();
    let mut total: Option<Gradients> = None;
    for (r, (p, resp)) in rows.iter().enumerate() {
        let seq: Vec<u32> = p.iter().chain(resp).copied().collect();
        let t = seq.len() - 1;
        let inputs = Tensor::from_vec(seq[..t].to_vec(), (1, t), &Device::Cpu).unwrap();
        let targets = Tensor::from_vec(seq[1..].to_vec(), (1, t), &Device::Cpu).unwrap();
        let start = p.len() - 1;
        let out = backward(model, &inputs, &targets, opts, |lp| {
            let mut c = vec![0f64; t];
            for j in 0..resp.len() {
                c[start + j] = coefficient(r, j);
            }
            Ok(Tensor::from_vec(c, (1, t), lp.device())?)
        })
        .unwrap();
        let lp: Vec<f64> = out.logprobs.flatten_all().unwrap().to_vec1().unwrap();
        logprobs.push(lp[start..start + resp.len()].to_vec());
        total = Some(match total {
            None => out.grads,
            Some(prev) => {
                prev.into_iter().zip(out.grads).map(|((n, a), (_, b))| (n, (a + b).unwrap())).collect()
            }
        });
    }
    (logprobs, total.unwrap())
}

/// All rows in one packed stream.
fn packed(model: &Model, rows: &[(Vec<u32>, Vec<u32>)], opts: BackwardOptions) -> (Vec<Vec<f64>>, Gradients) {
    let seqs: Vec<(&[u32], &[u32])> = rows.iter().map(|(p, r)| (p.as_slice(), r.as_slice())).collect();
    let p = pack(&seqs, &Device::Cpu).unwrap();
    let coeffs: Vec<Vec<f64>> = rows
        .iter()
        .enumerate()
        .map(|(r, (_, resp))| (0..resp.len()).map(|j| coefficient(r, j)).collect())
        .collect();
    let out = backward_packed(model, &p.inputs, &p.targets, &p.cu_seqlens, opts, |_| {
        spread(&coeffs, &p.spans, p.len(), &Device::Cpu)
    })
    .unwrap();
    (response_rows(&out.logprobs, &p.spans).unwrap(), out.grads)
}

/// Packed and unpacked agree to 1e-10: in f64 the only differences are summation orders
/// (gradients summed over rows vs. within one pass), ~1e-14 relative.
fn assert_same(name: &str, model: &Model, vocab: u32) {
    let rows = rows(vocab);
    for checkpoint_layers in [false, true] {
        let opts = BackwardOptions { chunk: 37, checkpoint_layers, ..BackwardOptions::default() };
        let (lp_a, g_a) = unpacked(model, &rows, opts);
        let (lp_b, g_b) = packed(model, &rows, opts);
        for (r, (a, b)) in lp_a.iter().zip(&lp_b).enumerate() {
            assert_eq!(a.len(), b.len());
            let d = max_abs_diff(a, b);
            assert!(d < 1e-10, "{name}: row {r} log-probs differ by {d}");
        }
        assert_eq!(g_a.len(), model.trainable().len());
        for ((n, a), (_, b)) in g_a.iter().zip(&g_b) {
            let d = tensor_max_diff(a, b);
            let scale = a.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap();
            assert!(scale > 0.0, "{name}: {n} has no gradient");
            assert!(
                d <= 1e-10 * scale.max(1.0),
                "{name} (checkpoint {checkpoint_layers}): {n} differs by {d}"
            );
        }
    }
}

#[test]
fn packed_rows_equal_rows_run_alone_llama_family() {
    for arch in ["qwen3", "llama"] {
        let model = random_model(arch, false, DType::F64, all_trainable());
        assert_same(arch, &model, 61);
    }
}

#[test]
fn packed_rows_equal_rows_run_alone_qwen3_5() {
    let model = random_qwen3_5(
        DType::F64,
        all_trainable(),
        &["linear_attention", "full_attention", "linear_attention"],
    );
    assert_same("qwen3_5", &model, 53);
}

#[test]
fn a_row_does_not_see_its_neighbour() {
    // changing row 0's tokens leaves row 1's log-probs exactly as they were
    let model = random_qwen3_5(DType::F64, all_trainable(), &["linear_attention", "full_attention"]);
    let lp_of_second = |first: Vec<u32>| -> Vec<f64> {
        let second = (vec![4u32, 9, 1], vec![7u32, 7, 30, 2]);
        let seqs: Vec<(&[u32], &[u32])> = vec![(&first[..2], &first[2..]), (&second.0, &second.1)];
        let p = pack(&seqs, &Device::Cpu).unwrap();
        let lp = polaris::model::logprobs::logprobs_packed(&model, &p.inputs, &p.targets, &p.cu_seqlens, 8)
            .unwrap();
        response_rows(&lp, &p.spans).unwrap()[1].clone()
    };
    let a = lp_of_second((0..20).map(|i| i % 50).collect());
    let b = lp_of_second((0..20).map(|i| (i * 7 + 3) % 50).collect());
    assert_eq!(a, b);
}
