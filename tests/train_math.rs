//! The trainer's math against hand-computed examples: advantages with HRI, schedules, the
//! clipped surrogate with its coefficients, the loss gradient through a model against finite
//! differences, and AdamW.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::*;
use polaris::model::all_trainable;
use polaris::model::logprobs::{logprobs, logprobs_backward};
use polaris::train::advantage::group_advantages;
use polaris::train::loss::{grpo_loss, Aggregation, LossConfig, RowTerms};
use polaris::train::optim::{clip_grad_norm, AdamW, AdamWConfig};
use polaris::train::schedule::{Decay, HriSchedule, LrSchedule};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn advantages_exclude_the_reference_from_the_statistics() {
    // policy 1..5: mean 3, sample std sqrt(2.5)
    let a = group_advantages(&[1.0, 2.0, 3.0, 4.0, 5.0], Some(6.0), true);
    let s = 2.5f64.sqrt();
    assert!(close(a.mean, 3.0, 1e-12) && close(a.std, s, 1e-12));
    let want: Vec<f64> = [-2.0, -1.0, 0.0, 1.0, 2.0].iter().map(|d| d / (s + 1e-6)).collect();
    for (x, y) in a.policy.iter().zip(&want) {
        assert!(close(*x, *y, 1e-12));
    }
    assert!(close(a.reference.unwrap(), 3.0 / (s + 1e-6), 1e-12)); // 1.8974
    assert!(!a.zero_variance);
    // Dr. GRPO: no std scaling
    let d = group_advantages(&[1.0, 2.0, 3.0, 4.0, 5.0], Some(6.0), false);
    assert_eq!(d.policy, vec![-2.0, -1.0, 0.0, 1.0, 2.0]);
    assert_eq!(d.reference, Some(3.0));
    // one policy row: mean 0, std 1
    let one = group_advantages(&[0.7], Some(0.9), true);
    assert!(
        close(one.policy[0], 0.7 / (1.0 + 1e-6), 1e-12)
            && close(one.reference.unwrap(), 0.9 / (1.0 + 1e-6), 1e-12)
    );
    // all policy rows equal: counted, and they carry no signal
    let z = group_advantages(&[0.5, 0.5, 0.5], None, true);
    assert!(z.zero_variance && z.policy.iter().all(|&x| x == 0.0));
}

#[test]
fn the_reference_advantage_of_a_tie_group_is_capped_unless_release() {
    use polaris::train::advantage::ReferenceAdvantage::{Capped, Release};
    // every policy row scored 0.2 (a judge outage filling in the batch mean): std 0, so the
    // reference's advantage is (0.9 - 0.2) / 1e-6 = 700,000 by the group formula
    let tie = group_advantages(&[0.2; 5], Some(0.9), true);
    assert!(close(tie.reference.unwrap(), 0.7 / 1e-6, 1e-3));
    let mut capped = tie.clone();
    assert!(capped.bound_reference(Capped, 5.0));
    assert_eq!(capped.reference, Some(5.0));
    assert_eq!(capped.policy, vec![0.0; 5], "the policy rows are left as they are");
    let mut below = group_advantages(&[0.2; 5], Some(-0.9), true);
    assert!(below.bound_reference(Capped, 5.0));
    assert_eq!(below.reference, Some(-5.0));
    let mut release = tie.clone();
    assert!(release.bound_reference(Release, 5.0), "counted under release too");
    assert_eq!(release.reference, tie.reference, "but left unbounded");
    // a group with spread: the reference 1.9 policy stds above the mean is under the cap
    let mut spread = group_advantages(&[1.0, 2.0, 3.0, 4.0, 5.0], Some(6.0), true);
    let before = spread.reference;
    assert!(!spread.bound_reference(Capped, 5.0));
    assert_eq!(spread.reference, before);
    // no reference: nothing to bound
    assert!(!group_advantages(&[0.5, 0.5], None, true).bound_reference(Capped, 5.0));
}

#[test]
fn hri_weight_and_learning_rate_schedules() {
    let h = HriSchedule::default();
    assert_eq!(h.weight(0), 0.0);
    assert!(close(h.weight(1), 0.4 / 15.0, 1e-15));
    assert!(close(h.weight(15), 0.4, 1e-15) && close(h.weight(160), 0.4, 1e-15));
    let lin = HriSchedule { decay: Decay::Linear { steps: 10, final_value: 0.1 }, ..h };
    assert!(close(lin.weight(18), 0.4 - 0.3 * 0.3, 1e-12) && close(lin.weight(40), 0.1, 1e-12));
    let cos = HriSchedule { decay: Decay::Cosine { steps: 10, final_value: 0.1 }, ..h };
    assert!(close(cos.weight(18), 0.1 + 0.15 * (1.0 + (0.3 * std::f64::consts::PI).cos()), 1e-12)); // 0.338168
    assert!(close(cos.weight(20), 0.25, 1e-12));

    assert_eq!(LrSchedule::default().lr(77), 1e-6);
    let wc = LrSchedule::WarmupCosine { lr: 1e-3, warmup_steps: 10, total_steps: 110, min_lr: 0.0 };
    assert!(close(wc.lr(5), 5e-4, 1e-15) && close(wc.lr(10), 1e-3, 1e-15));
    assert!(close(wc.lr(60), 5e-4, 1e-15) && close(wc.lr(110), 0.0, 1e-15));
}

#[test]
fn the_clipped_surrogate_by_hand() {
    let old = [[-1.0], [-1.0], [-1.0], [-1.0]];
    // ratios 1.5 (A=+1, clipped high), 0.5 (A=-1, clipped low), 1.1 (A=+1), 1.5 (A=-1, unclipped side)
    let new = vec![
        vec![-1.0 + 1.5f64.ln()],
        vec![-1.0 + 0.5f64.ln()],
        vec![-1.0 + 1.1f64.ln()],
        vec![-1.0 + 1.5f64.ln()],
    ];
    let adv = [1.0, -1.0, 1.0, -1.0];
    let rows = |w4: f64| -> Vec<RowTerms> {
        (0..4)
            .map(|i| RowTerms { weight: if i == 3 { w4 } else { 1.0 }, ..RowTerms::policy(&old[i], adv[i]) })
            .collect()
    };
    let cfg = LossConfig::default();
    let out = grpo_loss(&cfg, &rows(1.0), &new);
    // token losses -1.28, +0.8, -1.1, +1.5 ; token mean over 4
    assert!(close(out.loss, (-1.28 + 0.8 - 1.1 + 1.5) / 4.0, 1e-12), "{}", out.loss);
    let c: Vec<f64> = out.coefficients.iter().map(|r| r[0]).collect();
    assert!(close(c[0], 0.0, 1e-15) && close(c[1], 0.0, 1e-15));
    assert!(close(c[2], -1.1 / 4.0, 1e-12) && close(c[3], 1.5 / 4.0, 1e-12));
    assert!(close(out.clip_frac_high, 0.25, 1e-15) && close(out.clip_frac_low, 0.25, 1e-15));
    // the reference row (row 4 here) weighted by the HRI weight
    let hri = grpo_loss(&cfg, &rows(0.4), &new);
    assert!(close(hri.loss, (-1.28 + 0.8 - 1.1 + 0.4 * 1.5) / 4.0, 1e-12));
    assert!(close(hri.coefficients[3][0], 0.4 * 1.5 / 4.0, 1e-12));
}

#[test]
fn aggregations_and_kl_by_hand() {
    // two rows of 2 and 1 tokens, ratio 1 (first epoch), A = 1 and 2
    let old = [vec![-1.0, -2.0], vec![-0.5]];
    let new = vec![vec![-1.0, -2.0], vec![-0.5]];
    let rows: Vec<RowTerms> = vec![RowTerms::policy(&old[0], 1.0), RowTerms::policy(&old[1], 2.0)];
    let token = grpo_loss(&LossConfig::default(), &rows, &new);
    assert!(close(token.loss, -(1.0 + 1.0 + 2.0) / 3.0, 1e-12));
    let seq =
        grpo_loss(&LossConfig { aggregation: Aggregation::SequenceMean, ..Default::default() }, &rows, &new);
    assert!(close(seq.loss, -((1.0 + 1.0) / 2.0 + 2.0) / 2.0, 1e-12));
    let dr = grpo_loss(
        &LossConfig { aggregation: Aggregation::Constant { tokens: 10.0 }, ..Default::default() },
        &rows,
        &new,
    );
    assert!(close(dr.loss, -(1.0 + 1.0 + 2.0) / 20.0, 1e-12));
    // k3 with ref = new + 0.1 on every token: e^0.1 - 0.1 - 1 each; gradient 1 - e^0.1
    let refs = [vec![-0.9, -1.9], vec![-0.4]];
    let rows: Vec<RowTerms> =
        rows.iter().zip(&refs).map(|(r, f)| RowTerms { ref_logprobs: Some(f), ..r.clone() }).collect();
    let kl = grpo_loss(&LossConfig { kl_coef: 0.5, ..Default::default() }, &rows, &new);
    let k3 = 0.1f64.exp() - 0.1 - 1.0;
    assert!(close(kl.kl, k3, 1e-12));
    assert!(close(kl.loss, token.loss + 0.5 * k3, 1e-12));
    assert!(close(kl.coefficients[1][0], (-2.0 + 0.5 * (1.0 - 0.1f64.exp())) / 3.0, 1e-12));
}

#[test]
fn the_loss_gradient_through_the_model_matches_finite_differences() {
    let model = random_model("qwen3", false, DType::F64, all_trainable());
    let rows_ids = [vec![3u32, 17, 42, 5, 9, 60, 1, 33], vec![7u32, 7, 21, 50, 2, 18, 44, 0]];
    let inputs = ids(&rows_ids.iter().map(|r| r[..7].to_vec()).collect::<Vec<_>>());
    let targets = ids(&rows_ids.iter().map(|r| r[1..].to_vec()).collect::<Vec<_>>());
    let current: Vec<Vec<f64>> = logprobs(&model, &inputs, &targets, 4).unwrap().to_vec2().unwrap();
    // old log-probs away from the current ones so ratios spread over clipped and unclipped
    let offsets = [0.3, -0.1, 0.05, -0.4, 0.0, 0.2, -0.25];
    let old: Vec<Vec<f64>> =
        current.iter().map(|r| r.iter().zip(offsets).map(|(l, o)| l + o).collect()).collect();
    let refs: Vec<Vec<f64>> = current.iter().map(|r| r.iter().map(|l| l - 0.05).collect()).collect();
    let adv = [1.3, -0.7];
    // row 1 is the human reference: HRI weight, its own clip pair, behaviour cloning
    let cfg = LossConfig {
        kl_coef: 0.05,
        reference_clip_low: Some(0.1),
        reference_clip_high: Some(0.15),
        ..Default::default()
    };
    let terms: Vec<RowTerms> = (0..2)
        .map(|i| RowTerms {
            ref_logprobs: Some(&refs[i]),
            weight: [1.0, 0.4][i],
            reference: i == 1,
            bc_coef: [0.0, 0.3][i],
            ..RowTerms::policy(&old[i], adv[i])
        })
        .collect();
    let loss_at = |m: &polaris::model::Model| -> f64 {
        let lp: Vec<Vec<f64>> = logprobs(m, &inputs, &targets, 4).unwrap().to_vec2().unwrap();
        grpo_loss(&cfg, &terms, &lp).loss
    };
    let (_, grads) = logprobs_backward(&model, &inputs, &targets, 4, |lp| {
        let lp: Vec<Vec<f64>> = lp.to_vec2()?;
        let c = grpo_loss(&cfg, &terms, &lp).coefficients;
        Ok(Tensor::new(c, &Device::Cpu)?)
    })
    .unwrap();
    let mut checked = 0;
    for ((name, var), (_, g)) in model.trainable().iter().zip(&grads) {
        let g: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for &i in &[0, base.len() / 3, base.len() - 1] {
            let h = 1e-6;
            let mut x = base.clone();
            x[i] += h;
            var.set(&Tensor::from_vec(x.clone(), var.shape(), var.device()).unwrap()).unwrap();
            let up = loss_at(&model);
            x[i] -= 2.0 * h;
            var.set(&Tensor::from_vec(x, var.shape(), var.device()).unwrap()).unwrap();
            let down = loss_at(&model);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), var.device()).unwrap()).unwrap();
            let fd = (up - down) / (2.0 * h);
            // f64 central differences (h = 1e-6, away from the clip kinks): 1e-6 relative
            assert!(
                close(fd, g[i], 1e-6 * g[i].abs().max(1.0)),
                "{name}[{i}]: backward {} vs finite difference {fd}",
                g[i]
            );
            checked += 1;
        }
    }
    assert!(checked >= 60);
}

#[test]
fn adamw_one_step_by_hand_and_state_round_trip() {
    let p = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0], &Device::Cpu).unwrap()).unwrap();
    let params = vec![("w".to_string(), p.clone())];
    let grads = vec![("w".to_string(), Tensor::new(&[0.5f32, 0.5], &Device::Cpu).unwrap())];
    let mut opt = AdamW::new(AdamWConfig::default());
    opt.apply(&params, &grads, 0.1).unwrap();
    // m = 0.05, v = 0.00025; m̂ / (sqrt(v̂) + eps) = 0.1; p ← p(1 − 0.1·0.01) − 0.1·1
    let got: Vec<f32> = p.as_tensor().to_vec1().unwrap();
    assert!(close(got[0] as f64, 0.999 - 0.1, 1e-6) && close(got[1] as f64, -1.998 - 0.1, 1e-6), "{got:?}");
    // restoring the state continues identically
    let mut copy = AdamW::new(AdamWConfig::default());
    copy.load_state(opt.step, &opt.state().unwrap()).unwrap();
    let q = Var::from_tensor(p.as_tensor()).unwrap();
    opt.apply(&params, &grads, 0.1).unwrap();
    copy.apply(&[("w".to_string(), q.clone())], &grads, 0.1).unwrap();
    assert_eq!(p.as_tensor().to_vec1::<f32>().unwrap(), q.as_tensor().to_vec1::<f32>().unwrap());

    let mut g = vec![
        ("a".to_string(), Tensor::new(&[3.0f32], &Device::Cpu).unwrap()),
        ("b".to_string(), Tensor::new(&[4.0f32], &Device::Cpu).unwrap()),
    ];
    let norm = clip_grad_norm(&mut g, 1.0).unwrap();
    assert!(close(norm, 5.0, 1e-9));
    assert!(
        close(g[0].1.to_vec1::<f32>().unwrap()[0] as f64, 0.6, 1e-5)
            && close(g[1].1.to_vec1::<f32>().unwrap()[0] as f64, 0.8, 1e-5)
    );
    let mut small = vec![("a".to_string(), Tensor::new(&[0.3f32], &Device::Cpu).unwrap())];
    assert!(close(clip_grad_norm(&mut small, 1.0).unwrap(), 0.3, 1e-7));
    assert_eq!(small[0].1.to_vec1::<f32>().unwrap(), vec![0.3]); // under the limit: untouched
}

/// The fused CPU pass of AdamW against the same formula in composed candle ops: f32 and f64,
/// the first update (no moments) and a later one, a transposed (non-contiguous) gradient.
/// Tolerance: the two evaluate the same formula in the same order but not bit for bit
/// (candle's scalar ops fold in an add of 0 or a reciprocal differently), so a few ulps of the
/// terms: 8 · eps(dtype) · (|result| + the terms' size: |p| + lr / bias1, |m| + |g|, v + g²).
#[test]
fn fused_adamw_update_equals_the_composed_ops() {
    use polaris::train::adamw_update::{composed, update, Coefficients};
    let cfg = AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
    for dtype in [DType::F32, DType::F64] {
        let rand = |seed: u64, shape: (usize, usize)| {
            let n = shape.0 * shape.1;
            let mut s = seed;
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
                })
                .collect();
            Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
        };
        // 70_000 elements: several rayon chunks and a ragged last one
        let p = rand(1, (350, 200));
        let g = rand(2, (200, 350)).t().unwrap(); // [350, 200], not contiguous
        let m = (rand(3, (350, 200)) * 0.1).unwrap();
        let v = rand(4, (350, 200)).sqr().unwrap();
        let ulps = 8.0 * if dtype == DType::F32 { f32::EPSILON as f64 } else { f64::EPSILON };
        for (step, moments) in [(1, None), (7, Some((&m, &v)))] {
            let c = Coefficients::new(&cfg, step, 3e-3);
            let fused = update(&p, &g, moments, c).unwrap();
            let reference = composed(&p, &g, moments, c).unwrap();
            let flat = |t: &Tensor| -> Vec<f64> {
                t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
            };
            let (p0, g0) = (flat(&p), flat(&g));
            let (m0, v0) =
                moments.map_or((vec![0.0; 70_000], vec![0.0; 70_000]), |(m, v)| (flat(m), flat(v)));
            for (what, a, b) in
                [("p", &fused.0, &reference.0), ("m", &fused.1, &reference.1), ("v", &fused.2, &reference.2)]
            {
                let (a, b) = (flat(a), flat(b));
                assert_eq!(a.len(), 70_000);
                for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                    let terms = match what {
                        "p" => p0[i].abs() + c.step_size,
                        "m" => m0[i].abs() + g0[i].abs(),
                        _ => v0[i] + g0[i] * g0[i],
                    };
                    let tol = ulps * (y.abs() + terms).max(1e-30);
                    assert!((x - y).abs() <= tol, "{dtype:?} step {step} {what}[{i}]: {x} vs {y}");
                }
            }
        }
    }
}
