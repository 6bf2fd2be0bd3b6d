//! Blockwise varlen attention (model::flash_attention) against the dense composed reference
//! (a causal block-diagonal masked softmax, built here at small shapes), against finite
//! differences, and its two implementations (CPU kernel, device-generic path) against each
//! other. Outputs and the gradients of q, k and v, with GQA, rows of very different lengths
//! crossing the kernels' block edges (128 and 256 positions), and an odd head dim.

use candle_core::{DType, Device, Tensor, Var, D};
use polaris::model::flash_attention::{varlen_attention, varlen_attention_generic};

type Attention = fn(&Tensor, &Tensor, &Tensor, &[usize], f64) -> anyhow::Result<Tensor>;

/// Deterministic values in [-2, 2) (an LCG), so failures reproduce.
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
        })
        .collect()
}

fn tensor(shape: (usize, usize, usize), seed: u64, dtype: DType) -> Tensor {
    let n = shape.0 * shape.1 * shape.2;
    Tensor::from_vec(values(n, seed), shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn cu(lens: &[usize]) -> Vec<usize> {
    let mut cu = vec![0];
    for l in lens {
        cu.push(cu.last().unwrap() + l);
    }
    cu
}

/// The dense reference: kv heads repeated (repeat_kv), scores [H, T, T] with an additive
/// mask that is 0 where key j is in query i's row and j <= i, softmax, times V.
fn dense(q: &Tensor, k: &Tensor, v: &Tensor, cu: &[usize], scale: f64) -> Tensor {
    let (t, h, _) = q.dims3().unwrap();
    let hkv = k.dim(1).unwrap();
    let heads =
        Tensor::from_vec((0..h as u32).map(|i| i / (h / hkv) as u32).collect(), h, &Device::Cpu).unwrap();
    let k = k.index_select(&heads, 1).unwrap().transpose(0, 1).unwrap();
    let v = v.index_select(&heads, 1).unwrap().transpose(0, 1).unwrap();
    let row = |i: usize| cu.windows(2).position(|w| w[0] <= i && i < w[1]).unwrap();
    let mask: Vec<f32> = (0..t * t)
        .map(|ij| {
            let (i, j) = (ij / t, ij % t);
            if row(i) == row(j) && j <= i {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap().to_dtype(q.dtype()).unwrap();
    let q = q.transpose(0, 1).unwrap();
    let s = (q.matmul(&k.t().unwrap()).unwrap() * scale).unwrap().broadcast_add(&mask).unwrap();
    let p = candle_nn::ops::softmax(&s, D::Minus1).unwrap();
    p.matmul(&v.contiguous().unwrap()).unwrap().transpose(0, 1).unwrap()
}

/// (output, dq, dk, dv) of L = Σ o ∘ w (so dO = w) for the inputs drawn from `seed`.
fn run(
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
    (t, h, hkv, dh): (usize, usize, usize, usize),
    dtype: DType,
    seed: u64,
) -> [Vec<f64>; 4] {
    let q = Var::from_tensor(&tensor((t, h, dh), seed, dtype)).unwrap();
    let k = Var::from_tensor(&tensor((t, hkv, dh), seed + 1, dtype)).unwrap();
    let v = Var::from_tensor(&tensor((t, hkv, dh), seed + 2, dtype)).unwrap();
    let w = tensor((t, h, dh), seed + 3, dtype);
    let o = f(&q, &k, &v);
    assert_eq!(o.dims(), &[t, h, dh]);
    assert_eq!(o.dtype(), dtype);
    let grads = (&o * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let flat = |x: &Tensor| x.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
    let g = |x: &Var| {
        let g = grads.get(x).expect("a gradient");
        assert_eq!(g.dtype(), dtype);
        flat(g)
    };
    [flat(&o), g(&q), g(&k), g(&v)]
}

/// Largest |a - b| over the largest |b|: one relative figure per tensor.
fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, x| m.max(x.abs()));
    assert!(scale > 0.0, "an all-zero reference proves nothing");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

fn assert_close(what: &str, got: &[Vec<f64>; 4], want: &[Vec<f64>; 4], tol: f64) {
    for (name, (g, w)) in ["output", "dq", "dk", "dv"].iter().zip(got.iter().zip(want)) {
        assert!(g.iter().all(|x| x.is_finite()), "{what}: {name} not finite");
        let d = rel_diff(g, w);
        assert!(
            d < tol,
            "{what}: {name} differs by {d:e} (relative to its largest element), tolerance {tol:e}"
        );
    }
}

/// (rows' lengths, H, Hkv, Dh) of the comparisons against the dense reference.
const CASES: [(&[usize], usize, usize, usize); 4] = [
    // rows of 1 and 3 tokens beside rows crossing the 128- and 256-position block edges
    (&[1, 3, 70, 130], 4, 2, 64),
    (&[130, 1, 70, 3], 4, 1, 24),
    (&[1, 3, 70, 130, 260], 4, 4, 24),
    // a single row
    (&[200], 4, 2, 64),
];

fn against_dense(name: &str, f: Attention, dtype: DType, tol: f64) {
    for (i, &(lens, h, hkv, dh)) in CASES.iter().enumerate() {
        let cu = cu(lens);
        let t = *cu.last().unwrap();
        let scale = 1.0 / (dh as f64).sqrt();
        let shape = (t, h, hkv, dh);
        let got = run(|q, k, v| f(q, k, v, &cu, scale).unwrap(), shape, dtype, 10 * i as u64);
        let want = run(|q, k, v| dense(q, k, v, &cu, scale), shape, dtype, 10 * i as u64);
        assert_close(&format!("{name} {dtype:?} rows {lens:?} H={h} Hkv={hkv} Dh={dh}"), &got, &want, tol);
    }
}

#[test]
fn cpu_kernel_matches_the_dense_reference_in_f64() {
    // the same sums in another order: f64 rounding (1e-16) grown by sums of a few hundred terms
    against_dense("cpu kernel", varlen_attention, DType::F64, 1e-12);
}

#[test]
fn cpu_kernel_matches_the_dense_reference_in_f32() {
    // f32 rounding (6e-8) over sums of up to 260 keys and 64 head dims in another order, and
    // the kernel's polynomial exp (about 2 ulp): a few 1e-6 relative; 2e-5 leaves margin
    // while a wrong mask or a missed block (errors of order 1e-2 and up) still fails
    against_dense("cpu kernel", varlen_attention, DType::F32, 2e-5);
}

#[test]
fn generic_path_matches_the_dense_reference_in_f64() {
    // as for the CPU kernel in f64
    against_dense("generic path", varlen_attention_generic, DType::F64, 1e-12);
}

#[test]
fn generic_path_matches_the_dense_reference_in_f32() {
    // composed ops with libm exp, f32 sums in another order
    against_dense("generic path", varlen_attention_generic, DType::F32, 2e-5);
}

#[test]
fn generic_path_equals_the_cpu_kernel() {
    // longer rows than the dense cases can afford: 520 crosses the 128-position blocks four
    // times and the forward's 256-position key blocks twice
    let cu = cu(&[1, 3, 70, 130, 520, 64]);
    let t = *cu.last().unwrap();
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-5)] {
        let got =
            run(|q, k, v| varlen_attention_generic(q, k, v, &cu, 0.125).unwrap(), (t, 4, 2, 64), dtype, 7);
        let want = run(|q, k, v| varlen_attention(q, k, v, &cu, 0.125).unwrap(), (t, 4, 2, 64), dtype, 7);
        assert_close(&format!("generic vs cpu kernel {dtype:?}"), &got, &want, tol);
    }
}

/// Central differences of L = Σ o ∘ w in every element of q, k and v against the gradients.
fn finite_differences(name: &str, f: Attention) {
    let lens = [1, 3, 5];
    let cu = cu(&lens);
    let (t, h, hkv, dh) = (9, 4, 2, 5);
    let scale = 0.7;
    let inputs = [
        tensor((t, h, dh), 1, DType::F64),
        tensor((t, hkv, dh), 2, DType::F64),
        tensor((t, hkv, dh), 3, DType::F64),
    ];
    let w = tensor((t, h, dh), 4, DType::F64);
    let loss = |x: &[Tensor; 3]| -> f64 {
        let o = f(&x[0], &x[1], &x[2], &cu, scale).unwrap();
        (o * &w).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
    };
    let got = run(|q, k, v| f(q, k, v, &cu, scale).unwrap(), (t, h, hkv, dh), DType::F64, 1);
    let eps = 1e-5;
    for (which, grad) in got[1..].iter().enumerate() {
        let base: Vec<f64> = inputs[which].flatten_all().unwrap().to_vec1().unwrap();
        for (e, &analytic) in grad.iter().enumerate() {
            let at = |delta: f64| {
                let mut x = inputs.clone();
                let mut vals = base.clone();
                vals[e] += delta;
                x[which] = Tensor::from_vec(vals, inputs[which].dims(), &Device::Cpu).unwrap();
                loss(&x)
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            // truncation eps^2 |L'''| ~ 1e-10 and rounding 1e-16 |L| / eps ~ 1e-10: 1e-7 is
            // far above both and far below any real gradient error
            assert!(
                (numeric - analytic).abs() < 1e-7 * (1.0 + analytic.abs()),
                "{name}: d{} [{e}]: finite difference {numeric} vs gradient {analytic}",
                ["q", "k", "v"][which]
            );
        }
        assert!(grad.iter().any(|g| g.abs() > 1e-3), "{name}: the gradients are not all near zero");
    }
}

#[test]
fn cpu_kernel_gradients_match_finite_differences() {
    finite_differences("cpu kernel", varlen_attention);
}

#[test]
fn generic_path_gradients_match_finite_differences() {
    finite_differences("generic path", varlen_attention_generic);
}

#[test]
fn rows_are_independent_of_each_other() {
    // a packed stream gives each row exactly what that row alone gives
    let lens = [70, 3, 130];
    let cu_all = cu(&lens);
    let t = *cu_all.last().unwrap();
    let (q, k, v) = (
        tensor((t, 4, 24), 1, DType::F32),
        tensor((t, 2, 24), 2, DType::F32),
        tensor((t, 2, 24), 3, DType::F32),
    );
    let packed = varlen_attention(&q, &k, &v, &cu_all, 0.2).unwrap();
    for (r, &len) in lens.iter().enumerate() {
        let at = |x: &Tensor| x.narrow(0, cu_all[r], len).unwrap();
        let alone = varlen_attention(&at(&q), &at(&k), &at(&v), &[0, len], 0.2).unwrap();
        let d = (at(&packed) - alone).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(d, 0.0, "row {r}: packing changed its output");
    }
}

#[test]
fn the_backward_gives_the_same_bits_on_every_run() {
    // rows of many 128-position blocks, so each query block's dQ sums several key blocks'
    // terms, computed by rayon tasks in whatever order the threads take them: the order of
    // that sum must not depend on the schedule (exact resume, repeatable runs)
    let cu = cu(&[700, 130, 520]);
    let t = *cu.last().unwrap();
    let once = || run(|q, k, v| varlen_attention(q, k, v, &cu, 0.125).unwrap(), (t, 4, 2, 64), DType::F32, 5);
    let first = once();
    for attempt in 1..8 {
        let again = once();
        for (name, (a, b)) in ["output", "dq", "dk", "dv"].iter().zip(first.iter().zip(&again)) {
            assert!(a == b, "run {attempt}: {name} differs from the first run's");
        }
    }
}

#[test]
fn half_precision_runs_in_f32_and_is_close_to_f32() {
    let cu = cu(&[1, 3, 70, 130]);
    let t = *cu.last().unwrap();
    for (dtype, tol) in [
        // bf16 keeps 8 significant bits: rounding the output and gradients costs up to 2^-8
        // relative to an element, so 1e-2 of the largest element
        (DType::BF16, 1e-2),
        // f16 keeps 11 bits: 2^-11 ~ 5e-4
        (DType::F16, 2e-3),
    ] {
        for f in [varlen_attention as Attention, varlen_attention_generic] {
            // the same (rounded) inputs in f32, so only the output rounding differs
            let half = run(|q, k, v| f(q, k, v, &cu, 0.125).unwrap(), (t, 4, 2, 64), dtype, 3);
            let round = |x: &Tensor| x.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap();
            let full = run(
                |q, k, v| f(&round(q), &round(k), &round(v), &cu, 0.125).unwrap(),
                (t, 4, 2, 64),
                DType::F32,
                3,
            );
            assert_close(&format!("{dtype:?}"), &half, &full, tol);
        }
    }
}

#[test]
fn bad_shapes_and_boundaries_are_refused() {
    let q = tensor((6, 4, 8), 1, DType::F32);
    let k = tensor((6, 2, 8), 2, DType::F32);
    let k3 = tensor((6, 3, 8), 2, DType::F32);
    assert!(varlen_attention(&q, &k, &k, &[0, 6], 1.0).is_ok());
    assert!(varlen_attention(&q, &k, &k, &[0, 5], 1.0).is_err(), "cu_seqlens must end at T");
    assert!(varlen_attention(&q, &k, &k, &[1, 6], 1.0).is_err(), "cu_seqlens must start at 0");
    assert!(varlen_attention(&q, &k, &k, &[0, 4, 2, 6], 1.0).is_err(), "cu_seqlens must not fall");
    assert!(varlen_attention(&q, &k3, &k3, &[0, 6], 1.0).is_err(), "4 heads over 3 kv heads");
}
