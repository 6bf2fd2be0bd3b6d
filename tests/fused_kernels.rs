//! The fused CPU kernels (model::fused) against the composed candle ops they replace, forward
//! and gradient, and their gradients against central finite differences.
//!
//! Tolerances: in f64 the fused and composed forms differ only by summation order and
//! reciprocal-versus-division rounding, ~1e-15 relative, held to 1e-12. Finite differences
//! with step 1e-5 in f64 have truncation error ~h² |f'''| ~ 1e-10 and rounding ~1e-16 / h
//! ~ 1e-11, held to 1e-7. In f32 the two forms agree to a few ulp of values O(1): 1e-5.

use candle_core::{DType, Device, Tensor, Var, D};
use polaris::model::fused;
use rand::{Rng, SeedableRng};

fn random(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Forward values and the gradients of Σ f(inputs) ⊙ probe for each input, for two forms of
/// one function.
fn compare(
    inputs: &[Tensor],
    fused_form: impl Fn(&[Tensor]) -> Tensor,
    composed_form: impl Fn(&[Tensor]) -> Tensor,
    tol: f64,
) {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let (yf, yc) = (fused_form(&ts), composed_form(&ts));
    let diff = max_abs_diff(&yf, &yc);
    assert!(diff < tol, "forward differs by {diff:e}");
    let probe = random(yf.dims(), 99, yf.dtype());
    let gf = (&yf * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let gc = (&yc * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    for (i, t) in ts.iter().enumerate() {
        let (a, b) = (gf.get(t).expect("fused gradient"), gc.get(t).expect("composed gradient"));
        let diff = max_abs_diff(a, b);
        assert!(diff < tol, "gradient of input {i} differs by {diff:e}");
    }
}

/// The fused form's gradient of Σ f ⊙ probe against central differences at a few elements
/// of input `which` (f64).
fn finite_differences(inputs: &[Tensor], which: usize, f: impl Fn(&[Tensor]) -> Tensor) {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts);
    let probe = random(y.dims(), 99, DType::F64);
    let loss = |ts: &[Tensor]| (f(ts) * &probe).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    let grad = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let grad = grad.get(&ts[which]).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let base = inputs[which].flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let h = 1e-5;
    for idx in [0, base.len() / 3, base.len() / 2 + 1, base.len() - 1] {
        let at = |delta: f64| {
            let mut v = base.clone();
            v[idx] += delta;
            let mut moved = inputs.to_vec();
            moved[which] = Tensor::from_vec(v, inputs[which].dims(), &Device::Cpu).unwrap();
            loss(&moved)
        };
        let numeric = (at(h) - at(-h)) / (2.0 * h);
        let err = (numeric - grad[idx]).abs() / numeric.abs().max(1.0);
        assert!(err < 1e-7, "input {which} element {idx}: analytic {} numeric {numeric}", grad[idx]);
    }
}

#[test]
fn rms_norm_matches_composed_ops_and_finite_differences() {
    let f = |t: &[Tensor]| fused::rms_norm(&t[0], &t[1], 1e-6).unwrap();
    let c = |t: &[Tensor]| candle_nn::ops::rms_norm_slow(&t[0], &t[1], 1e-6).unwrap();
    // 150 rows: more than one task of rows, the last one partial
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let inputs = [random(&[3, 50, 24], 1, dtype), random(&[24], 2, dtype)];
        compare(&inputs, f, c, tol);
    }
    let inputs = [random(&[70, 16], 3, DType::F64), random(&[16], 4, DType::F64)];
    finite_differences(&inputs, 0, f);
    finite_differences(&inputs, 1, f);
}

#[test]
fn rms_norm_of_a_strided_view_equals_its_copy() {
    let x = random(&[40, 3, 32], 5, DType::F64);
    let w = random(&[16], 6, DType::F64);
    let view = x.narrow(D::Minus1, 8, 16).unwrap();
    let a = fused::rms_norm(&view, &w, 1e-6).unwrap();
    let b = fused::rms_norm(&view.contiguous().unwrap(), &w, 1e-6).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

/// cos and sin tables [N, 1, R] with repeating halves, as TrainContext builds them.
fn tables(n: usize, r: usize, dtype: DType) -> (Tensor, Tensor) {
    let half = r / 2;
    let mut cos = Vec::new();
    let mut sin = Vec::new();
    for p in 0..n {
        for _half in 0..2 {
            for i in 0..half {
                let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / r as f64);
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
    }
    let t = |v: Vec<f64>| Tensor::from_vec(v, (n, 1, r), &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
    (t(cos), t(sin))
}

#[test]
fn rope_matches_composed_ops_and_finite_differences() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let (cos, sin) = tables(130, 8, dtype);
        let f = |t: &[Tensor]| fused::rope(&t[0], &cos, &sin).unwrap();
        let c = |t: &[Tensor]| fused::rope::composed(&t[0], &cos, &sin).unwrap();
        compare(&[random(&[130, 3, 8], 7, dtype)], f, c, tol);
    }
    let (cos, sin) = tables(70, 8, DType::F64);
    finite_differences(&[random(&[70, 2, 8], 8, DType::F64)], 0, |t| fused::rope(&t[0], &cos, &sin).unwrap());
}

#[test]
fn rope_refuses_tables_of_another_shape() {
    let (cos, sin) = tables(10, 8, DType::F32);
    let err = fused::rope(&random(&[11, 2, 8], 9, DType::F32), &cos, &sin).unwrap_err();
    assert!(err.to_string().contains("do not fit"), "{err}");
}

#[test]
fn swiglu_matches_composed_ops_and_finite_differences() {
    let f = |t: &[Tensor]| fused::swiglu(&t[0], &t[1]).unwrap();
    let c = |t: &[Tensor]| (t[0].silu().unwrap() * &t[1]).unwrap();
    // 40k elements: more than two tasks, the last partial
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        compare(&[random(&[200, 201], 10, dtype), random(&[200, 201], 11, dtype)], f, c, tol);
    }
    let inputs = [random(&[9, 13], 12, DType::F64), random(&[9, 13], 13, DType::F64)];
    finite_differences(&inputs, 0, f);
    finite_differences(&inputs, 1, f);
}

#[test]
fn target_logprobs_match_log_softmax_gather_and_finite_differences() {
    let targets = |n: usize, v: usize| {
        let t: Vec<u32> = (0..n).map(|i| ((i * 7919) % v) as u32).collect();
        Tensor::new(t, &Device::Cpu).unwrap()
    };
    let (n, v) = (37, 301);
    let tg = targets(n, v);
    let f = |t: &[Tensor]| fused::target_logprobs(&t[0], &tg).unwrap();
    let c = |t: &[Tensor]| {
        let logp = candle_nn::ops::log_softmax(&t[0], D::Minus1).unwrap();
        logp.gather(&tg.unsqueeze(1).unwrap(), 1).unwrap().squeeze(1).unwrap()
    };
    // logits spread over ±8 so the softmax is far from uniform
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let logits = (random(&[n, v], 14, dtype) * 4.0).unwrap();
        compare(&[logits], f, c, tol);
    }
    let (n, v) = (5, 23);
    let tg = targets(n, v);
    finite_differences(&[random(&[n, v], 15, DType::F64)], 0, |t| {
        fused::target_logprobs(&t[0], &tg).unwrap()
    });
}

#[test]
fn target_logprobs_name_a_target_outside_the_vocabulary() {
    let logits = random(&[2, 10], 16, DType::F32);
    let err = fused::target_logprobs(&logits, &Tensor::new(&[3u32, 10], &Device::Cpu).unwrap()).unwrap_err();
    assert!(err.to_string().contains("target 10 of row 1"), "{err}");
}

mod causal_conv {
    use candle_core::{DType, Device, Tensor, Var};
    use polaris::model::fused::causal_conv_silu;

    /// Deterministic values in (-1, 1).
    fn values(n: usize, seed: usize) -> Vec<f64> {
        (0..n).map(|i| (((i * 7919 + seed * 104_729) % 2003) as f64 / 1001.5) - 1.0).collect()
    }

    fn inputs(b: usize, n: usize, c: usize, k: usize) -> (Tensor, Tensor) {
        let x = Tensor::from_vec(values(b * n * c, 1), (b, n, c), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(values(c * k, 2), (c, k), &Device::Cpu).unwrap();
        (x, w)
    }

    /// The definition, by loops: pre[t, c] = Σ_j w[c, j] x[t + j − (K−1), c] over taps inside
    /// t's row, then silu.
    fn by_definition(x: &Tensor, w: &Tensor, starts: &[usize]) -> Vec<f64> {
        let (b, n, c) = x.dims3().unwrap();
        let k = w.dim(1).unwrap();
        let xv: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
        let wv: Vec<f64> = w.flatten_all().unwrap().to_vec1().unwrap();
        let row_start = |t: usize| *starts.iter().filter(|&&s| s <= t).max().unwrap();
        let mut out = vec![0.0; b * n * c];
        for bi in 0..b {
            for t in 0..n {
                for ch in 0..c {
                    let mut pre = 0.0;
                    for j in 0..k {
                        let back = k - 1 - j;
                        if t >= back && t - back >= row_start(t) {
                            pre += wv[ch * k + j] * xv[bi * n * c + (t - back) * c + ch];
                        }
                    }
                    out[bi * n * c + t * c + ch] = pre / (1.0 + (-pre).exp());
                }
            }
        }
        out
    }

    const STARTS: [usize; 3] = [0, 2, 9];

    #[test]
    fn forward_is_the_definition_with_rows_restarting() {
        // 70 channels: one full task of 64 and a partial one; a 1-position row inside
        let (x, w) = inputs(2, 13, 70, 4);
        let y: Vec<f64> =
            causal_conv_silu(&x, &w, &STARTS).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let want = by_definition(&x, &w, &STARTS);
        // f64, the same few products: a few ulps
        let d = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(d < 1e-14, "differs from the definition by {d}");
        // the composed fallback (f32 on the CPU is served by the kernel; compare the kernel in
        // f32 with the definition instead)
        let y32 =
            causal_conv_silu(&x.to_dtype(DType::F32).unwrap(), &w.to_dtype(DType::F32).unwrap(), &STARTS)
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
        let d = y32.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(d < 1e-6, "f32 differs by {d}");
    }

    #[test]
    fn gradients_match_central_finite_differences() {
        let (x, w) = inputs(2, 7, 5, 3);
        let starts = [0, 3];
        let seed = Tensor::from_vec(values(2 * 7 * 5, 3), (2, 7, 5), &Device::Cpu).unwrap();
        let (xv, wv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap());
        let y = causal_conv_silu(xv.as_tensor(), wv.as_tensor(), &starts).unwrap();
        let g = (y * &seed).unwrap().sum_all().unwrap().backward().unwrap();
        let loss = |x: &Tensor, w: &Tensor| -> f64 {
            (causal_conv_silu(x, w, &starts).unwrap() * &seed)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        let h = 1e-6;
        for (which, base) in [(0, &x), (1, &w)] {
            let analytic: Vec<f64> = g
                .get(if which == 0 { xv.as_tensor() } else { wv.as_tensor() })
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let flat: Vec<f64> = base.flatten_all().unwrap().to_vec1().unwrap();
            for (i, &a) in analytic.iter().enumerate() {
                let at = |d: f64| {
                    let mut v = flat.clone();
                    v[i] += d;
                    let t = Tensor::from_vec(v, base.shape(), &Device::Cpu).unwrap();
                    if which == 0 {
                        loss(&t, &w)
                    } else {
                        loss(&x, &t)
                    }
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h);
                // central differences in f64: O(h²) truncation plus ε|L|/h rounding, ~1e-9
                assert!((a - numeric).abs() < 1e-7, "input {which} entry {i}: {a} vs {numeric}");
            }
        }
    }

    #[test]
    fn bad_weights_and_rows_are_refused() {
        let (x, w) = inputs(1, 5, 4, 3);
        assert!(causal_conv_silu(&x, &w.narrow(0, 0, 3).unwrap(), &[0]).is_err());
        assert!(causal_conv_silu(&x, &w, &[1]).unwrap_err().to_string().contains("start at 0"));
        assert!(causal_conv_silu(&x, &w, &[0, 5]).unwrap_err().to_string().contains("ascend"));
    }
}

mod gate_up {
    use candle_core::{DType, Device, Tensor, Var};
    use polaris::model::fused::gate_up;

    fn values(n: usize, seed: usize) -> Vec<f64> {
        (0..n).map(|i| ((((i * 7919 + seed * 104_729) % 2003) as f64 / 1001.5) - 1.0) * 0.8).collect()
    }

    fn tensor(shape: &[usize], seed: usize) -> Tensor {
        Tensor::from_vec(values(shape.iter().product(), seed), shape, &Device::Cpu).unwrap()
    }

    /// silu(x W_gᵀ) ⊙ (x W_uᵀ) in composed candle ops.
    fn composed(x: &Tensor, wg: &Tensor, wu: &Tensor) -> Tensor {
        let g = x.broadcast_matmul(&wg.t().unwrap()).unwrap();
        let u = x.broadcast_matmul(&wu.t().unwrap()).unwrap();
        (g.silu().unwrap() * u).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
    }

    #[test]
    fn forward_and_gradients_equal_the_composed_ops() {
        // x [1, 37, 24] (a packed stream), F = 40
        let (x, wg, wu) = (tensor(&[1, 37, 24], 1), tensor(&[40, 24], 2), tensor(&[40, 24], 3));
        let seed = tensor(&[1, 37, 40], 4);
        let run = |fused: bool| -> (Tensor, Vec<Tensor>) {
            let vars: Vec<Var> = [&x, &wg, &wu].iter().map(|t| Var::from_tensor(t).unwrap()).collect();
            let (a, b, c) = (vars[0].as_tensor(), vars[1].as_tensor(), vars[2].as_tensor());
            let h = if fused { gate_up(a, b, c).unwrap() } else { composed(a, b, c) };
            let g = (&h * &seed).unwrap().sum_all().unwrap().backward().unwrap();
            (h, vars.iter().map(|v| g.get(v.as_tensor()).unwrap().clone()).collect())
        };
        let ((hf, gf), (hc, gc)) = (run(true), run(false));
        assert_eq!(hf.dims(), &[1, 37, 40]);
        // f64, the same sums of 24-37 products in another order: ~1e-15 relative
        assert!(max_diff(&hf, &hc) < 1e-12, "forward differs by {}", max_diff(&hf, &hc));
        for (name, (f, c)) in ["x", "W_g", "W_u"].iter().zip(gf.iter().zip(&gc)) {
            assert_eq!(f.dims(), c.dims());
            let d = max_diff(f, c);
            assert!(d < 1e-12, "d{name} differs by {d}");
        }
        // f32 through the same kernel: rounding of O(1) sums of 24-40 terms
        let h32 = gate_up(
            &x.to_dtype(DType::F32).unwrap(),
            &wg.to_dtype(DType::F32).unwrap(),
            &wu.to_dtype(DType::F32).unwrap(),
        )
        .unwrap();
        let d = max_diff(&h32.to_dtype(DType::F64).unwrap(), &hc);
        assert!(d < 1e-5, "f32 differs by {d}");
    }

    #[test]
    fn gradients_match_central_finite_differences() {
        let (x, wg, wu) = (tensor(&[3, 4], 5), tensor(&[5, 4], 6), tensor(&[5, 4], 7));
        let seed = tensor(&[3, 5], 8);
        let loss = |x: &Tensor, wg: &Tensor, wu: &Tensor| -> f64 {
            (gate_up(x, wg, wu).unwrap() * &seed).unwrap().sum_all().unwrap().to_scalar().unwrap()
        };
        let vars: Vec<Var> = [&x, &wg, &wu].iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let h = gate_up(vars[0].as_tensor(), vars[1].as_tensor(), vars[2].as_tensor()).unwrap();
        let g = (h * &seed).unwrap().sum_all().unwrap().backward().unwrap();
        let inputs = [x.clone(), wg.clone(), wu.clone()];
        let eps = 1e-6;
        for (which, var) in vars.iter().enumerate() {
            let analytic: Vec<f64> =
                g.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let base: Vec<f64> = inputs[which].flatten_all().unwrap().to_vec1().unwrap();
            for (i, &a) in analytic.iter().enumerate() {
                let at = |delta: f64| {
                    let mut v = base.clone();
                    v[i] += delta;
                    let mut xs = inputs.clone();
                    xs[which] = Tensor::from_vec(v, inputs[which].shape(), &Device::Cpu).unwrap();
                    loss(&xs[0], &xs[1], &xs[2])
                };
                let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
                // f64 central differences: O(eps²) truncation + ε|L|/eps rounding, ~1e-9
                assert!((a - numeric).abs() < 1e-7, "input {which} entry {i}: {a} vs {numeric}");
            }
        }
    }

    #[test]
    fn mismatched_weights_are_refused() {
        let x = tensor(&[2, 4], 1);
        assert!(gate_up(&x, &tensor(&[5, 3], 2), &tensor(&[5, 3], 3)).is_err());
        assert!(gate_up(&x, &tensor(&[5, 4], 2), &tensor(&[6, 4], 3)).is_err());
    }
}
