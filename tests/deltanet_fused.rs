//! The fused CPU op of the gated delta rule (src/model/deltanet/fused.rs) against the
//! composed recurrent form, forward and backward, and against finite differences.
//!
//! Every comparison runs in f64: the two compute the same sums in a different order, so
//! they agree to a few ulps of the largest intermediate (entries here are O(1) and the
//! state sums at most T rank-1 terms), far inside the tolerances below.

use candle_core::{DType, Device, Tensor, Var};
use polaris::model::deltanet::{fused::gated_delta_rule, l2_normalize, recurrent};

const B: usize = 2;
const H: usize = 3;
const DK: usize = 8;
const DV: usize = 5;

/// Deterministic inputs in the ranges the model feeds the rule: q, k unit rows, log decays
/// g in (-2, 0), beta in (0, 1).
fn inputs(t: usize, seed: u64) -> [Tensor; 5] {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let mut take = |n: usize| -> Vec<f64> { (0..n).map(|_| next()).collect() };
    let dev = Device::Cpu;
    let q = Tensor::from_vec(take(B * H * t * DK), (B, H, t, DK), &dev).unwrap();
    let k = Tensor::from_vec(take(B * H * t * DK), (B, H, t, DK), &dev).unwrap();
    let v = Tensor::from_vec(take(B * H * t * DV), (B, H, t, DV), &dev).unwrap();
    let g: Vec<f64> = take(B * H * t).into_iter().map(|x| x - 1.0).collect();
    let beta: Vec<f64> = take(B * H * t).into_iter().map(|x| (x + 1.0) / 2.0).collect();
    [
        l2_normalize(&q).unwrap(),
        l2_normalize(&k).unwrap(),
        v,
        Tensor::from_vec(g, (B, H, t), &dev).unwrap(),
        Tensor::from_vec(beta, (B, H, t), &dev).unwrap(),
    ]
}

/// The composed recurrent form, run segment by segment from a zero state.
fn composed(x: &[Tensor; 5], starts: &[usize]) -> Tensor {
    let t = x[0].dim(2).unwrap();
    let mut bounds = starts.to_vec();
    bounds.push(t);
    let outs: Vec<Tensor> = bounds
        .windows(2)
        .map(|w| {
            let seg = |x: &Tensor| x.narrow(2, w[0], w[1] - w[0]).unwrap();
            recurrent(&seg(&x[0]), &seg(&x[1]), &seg(&x[2]), &seg(&x[3]), &seg(&x[4]), None).unwrap().0
        })
        .collect();
    Tensor::cat(&outs, 2).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
}

/// T = 150 crosses the op's 64-position blocks twice; segments start inside blocks and one
/// block holds a whole short segment.
const T: usize = 150;
const STARTS: [usize; 4] = [0, 37, 100, 120];

#[test]
fn forward_equals_the_composed_recurrence_segment_by_segment() {
    let x = inputs(T, 1);
    let fused = gated_delta_rule(&x[0], &x[1], &x[2], &x[3], &x[4], &STARTS).unwrap();
    assert_eq!(fused.dims(), &[B, H, T, DV]);
    let d = max_abs_diff(&fused, &composed(&x, &STARTS));
    assert!(d < 1e-12, "outputs differ by {d}");
    // and one segment: no restart
    let d = max_abs_diff(
        &gated_delta_rule(&x[0], &x[1], &x[2], &x[3], &x[4], &[0]).unwrap(),
        &composed(&x, &[0]),
    );
    assert!(d < 1e-12, "single-segment outputs differ by {d}");
}

#[test]
fn gradients_equal_the_composed_recurrence_for_every_input() {
    let x = inputs(T, 2);
    let seed = inputs(T, 3)[2].clone(); // dL/do: [B, H, T, DV]
    let grads = |fused: bool| -> Vec<Tensor> {
        let vars: Vec<Var> = x.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let t: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let o = if fused {
            gated_delta_rule(&t[0], &t[1], &t[2], &t[3], &t[4], &STARTS).unwrap()
        } else {
            composed(&[t[0].clone(), t[1].clone(), t[2].clone(), t[3].clone(), t[4].clone()], &STARTS)
        };
        let store = (o * &seed).unwrap().sum_all().unwrap().backward().unwrap();
        vars.iter().map(|v| store.get(v.as_tensor()).expect("a gradient").clone()).collect()
    };
    let (fast, slow) = (grads(true), grads(false));
    for (name, (f, s)) in ["q", "k", "v", "g", "beta"].iter().zip(fast.iter().zip(&slow)) {
        assert_eq!(f.dims(), s.dims(), "{name}");
        let d = max_abs_diff(f, s);
        assert!(d < 1e-10, "d{name} differs by {d}");
    }
}

#[test]
fn gradients_match_central_finite_differences() {
    // small: every entry of every input perturbed
    let t = 7;
    let starts = [0, 4];
    let x = inputs(t, 4);
    let seed = inputs(t, 5)[2].clone();
    let loss = |x: &[Tensor]| -> f64 {
        let o = gated_delta_rule(&x[0], &x[1], &x[2], &x[3], &x[4], &starts).unwrap();
        (o * &seed).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
    };
    let vars: Vec<Var> = x.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let o =
        gated_delta_rule(&tensors[0], &tensors[1], &tensors[2], &tensors[3], &tensors[4], &starts).unwrap();
    let store = (o * &seed).unwrap().sum_all().unwrap().backward().unwrap();
    let h = 1e-5;
    for (i, var) in vars.iter().enumerate() {
        let analytic: Vec<f64> =
            store.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = x[i].flatten_all().unwrap().to_vec1().unwrap();
        for (j, &a) in analytic.iter().enumerate() {
            let shifted = |delta: f64| -> f64 {
                let mut v = base.clone();
                v[j] += delta;
                let mut xs = x.to_vec();
                xs[i] = Tensor::from_vec(v, x[i].shape(), &Device::Cpu).unwrap();
                loss(&xs)
            };
            let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
            // central differences: O(h²) truncation (~1e-10 at these magnitudes) plus
            // rounding ε·|L|/h (~1e-11)
            assert!((numeric - a).abs() < 1e-7, "input {i} entry {j}: analytic {a}, numeric {numeric}");
        }
    }
}

#[test]
fn f32_agrees_with_f64() {
    let x = inputs(T, 6);
    let x32: Vec<Tensor> = x.iter().map(|t| t.to_dtype(DType::F32).unwrap()).collect();
    let o64 = gated_delta_rule(&x[0], &x[1], &x[2], &x[3], &x[4], &STARTS).unwrap();
    let o32 = gated_delta_rule(&x32[0], &x32[1], &x32[2], &x32[3], &x32[4], &STARTS).unwrap();
    // f32 rounding (6e-8 relative) over at most 100 decaying steps of O(1) terms
    let d = max_abs_diff(&o32.to_dtype(DType::F64).unwrap(), &o64);
    assert!(d < 1e-5, "f32 differs from f64 by {d}");
}

#[test]
fn bad_segments_and_shapes_are_refused() {
    let x = inputs(10, 7);
    let run = |starts: &[usize]| gated_delta_rule(&x[0], &x[1], &x[2], &x[3], &x[4], starts);
    assert!(run(&[1]).unwrap_err().to_string().contains("start at 0"));
    assert!(run(&[0, 5, 5]).unwrap_err().to_string().contains("ascend"));
    assert!(run(&[0, 10]).unwrap_err().to_string().contains("ascend"));
    let err = gated_delta_rule(
        &x[0],
        &x[1],
        &x[2].narrow(3, 0, 2).unwrap().narrow(2, 0, 9).unwrap(),
        &x[3],
        &x[4],
        &[0],
    )
    .unwrap_err();
    assert!(err.to_string().contains("v"), "{err}");
}
