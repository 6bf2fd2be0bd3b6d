//! ZeRO-1 and the in-process collective, without a GPU: the flat layout and its uneven last
//! shard, shard → gather round trips, N sharded ranks against one unsharded AdamW (and an
//! independent f64 AdamW written out below), the mixed-precision update (bf16 weights, f32
//! master weights and moments) against f64, and collectives that fail instead of hanging.
//!
//! The parameters: three tensors of 15, 7 and 4 elements, P = 26, which no world size from 3
//! to 5 divides (shard_len = ⌈26 / N⌉, the last rank's shard part padding).

use std::sync::Arc;
use std::time::Duration;

use candle_core::{DType, Device, Shape, Tensor, Var};
use polaris::train::collective::cpu::CpuCollective;
use polaris::train::collective::{Collective, CollectiveError};
use polaris::train::optim::{clip_grad_norm, AdamW, AdamWConfig, Grads};
use polaris::train::zero::{update, RankShard, ShardLayout, UpdateSettings};

const SHAPES: [(&str, &[usize]); 3] = [("a", &[3, 5]), ("b", &[7]), ("c", &[2, 2])];
const P: usize = 26;
/// Generous: the tests run in parallel on two shared cores; a healthy call takes microseconds.
const PATIENT: Duration = Duration::from_secs(120);

/// Deterministic values in (-1, 1), different for each (seed, element).
fn values(seed: u64, n: usize) -> Vec<f64> {
    (0..n as u64)
        .map(|i| {
            let x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
            let x = (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn params(dtype: DType, seed: u64) -> Vec<(String, Var)> {
    SHAPES
        .iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let n = shape.iter().product();
            let t = Tensor::from_vec(values(seed + k as u64, n), *shape, &Device::Cpu).unwrap();
            (name.to_string(), Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap())
        })
        .collect()
}

/// Rank `rank`'s gradients at `step`, in `dtype`; `skip` names a parameter no rank has a
/// gradient for this step.
fn grads(rank: usize, step: usize, dtype: DType, skip: Option<&str>) -> Grads {
    SHAPES
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| Some(*name) != skip)
        .map(|(k, (name, shape))| {
            let n = shape.iter().product();
            let seed = 1000 + 100 * step as u64 + 10 * rank as u64 + k as u64;
            let t = Tensor::from_vec(values(seed, n), *shape, &Device::Cpu).unwrap();
            (name.to_string(), t.to_dtype(dtype).unwrap())
        })
        .collect()
}

fn flat(params: &[(String, Var)]) -> Vec<f64> {
    params
        .iter()
        .flat_map(|(_, v)| {
            v.as_tensor().flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
        })
        .collect()
}

fn to_f64(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn layout(world: usize) -> ShardLayout {
    let shapes: Vec<(&str, Shape)> = SHAPES.iter().map(|(n, s)| (*n, Shape::from(s.to_vec()))).collect();
    ShardLayout::new(shapes.iter().map(|(n, s)| (*n, s)), world).unwrap()
}

/// Runs `f(rank, handle)` on one thread per rank of a fresh group; results in rank order.
fn on_ranks<T: Send>(
    world: usize,
    timeout: Duration,
    f: impl Fn(usize, &dyn Collective) -> T + Sync,
) -> Vec<T> {
    let group = CpuCollective::group(world, timeout).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = group
            .iter()
            .enumerate()
            .map(|(r, c)| {
                let f = &f;
                s.spawn(move || f(r, c))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn the_layout_shards_every_element_once_with_the_padding_on_the_last_rank() {
    let l = layout(4);
    assert_eq!((l.total, l.shard_len, l.padded_len()), (P, 7, 28));
    assert_eq!(l.owned(3), 21..26, "the last rank owns 5 real elements and 2 of padding");
    let owned: usize = (0..4).map(|r| l.owned(r).len()).sum();
    assert_eq!(owned, P);
    // a: elements 0..15, b: 15..22, c: 22..26
    assert_eq!(l.pieces(1), vec![(0, 0..7)]);
    assert_eq!(l.pieces(2), vec![(0, 0..1), (1, 1..7)]);
    assert_eq!(l.pieces(3), vec![(1, 0..1), (2, 1..5)]);
    // flatten → unflatten is exact; a parameter without a tensor and the padding are zeros
    let p = params(DType::F64, 1);
    let by_name = |n: &str| (n != "b").then(|| p.iter().find(|(m, _)| m == n).unwrap().1.as_tensor().clone());
    let v = l.flatten(by_name, DType::F64, &Device::Cpu).unwrap();
    let v = to_f64(&v);
    assert_eq!(v.len(), 28);
    assert!(v[15..22].iter().chain(&v[26..]).all(|&x| x == 0.0));
    let back = l.unflatten(&Tensor::new(v.as_slice(), &Device::Cpu).unwrap()).unwrap();
    assert_eq!(back[0].1.dims(), &[3, 5]);
    assert_eq!(to_f64(&back[0].1), to_f64(p[0].1.as_tensor()));
    assert_eq!(to_f64(&back[2].1), to_f64(p[2].1.as_tensor()));
    // a tensor of the wrong size is named
    let wrong = |n: &str| (n == "c").then(|| Tensor::zeros(5, DType::F64, &Device::Cpu).unwrap());
    let e = l.flatten(wrong, DType::F64, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("c: 5 elements where the layout has 4"), "{e}");
}

#[test]
fn shards_gather_back_to_the_whole_vector_and_reduce_scatter_sums_each_shard() {
    for world in 1..=5 {
        let l = layout(world);
        let whole: Vec<f64> = values(7, l.padded_len());
        let results = on_ranks(world, PATIENT, |r, c| {
            let shard = Tensor::new(&whole[l.shard(r)], &Device::Cpu).unwrap();
            let gathered = to_f64(&c.all_gather(&shard).unwrap());
            // rank r puts in (r + 1) · whole: the sum is (1 + … + world) · whole
            let mine = (Tensor::new(whole.as_slice(), &Device::Cpu).unwrap() * (r + 1) as f64).unwrap();
            let summed = to_f64(&c.reduce_scatter_sum(&mine).unwrap());
            (gathered, summed)
        });
        let k = (world * (world + 1) / 2) as f64;
        for (r, (gathered, summed)) in results.iter().enumerate() {
            assert_eq!(gathered, &whole, "world {world}: rank {r}'s gather");
            let expect: Vec<f64> = whole[l.shard(r)].iter().map(|x| x * k).collect();
            // Σ of world small multiples of x in f64: exact to a few ulp
            assert!(max_abs_diff(summed, &expect) < 1e-14, "world {world}: rank {r}'s reduce-scatter");
        }
    }
}

/// A plain-loop AdamW over the whole flat vector in f64 (torch.optim.AdamW), with global-norm
/// clipping and parameters that had no gradient left alone: the independent reference.
struct ReferenceAdamW {
    cfg: AdamWConfig,
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl ReferenceAdamW {
    fn new(cfg: AdamWConfig, p: Vec<f64>) -> Self {
        let n = p.len();
        Self { cfg, p, m: vec![0.0; n], v: vec![0.0; n], t: 0 }
    }

    /// `g`: the summed gradient (None for an element of a parameter without gradient).
    fn step(&mut self, g: &[Option<f64>], lr: f64, max_norm: f64) {
        self.t += 1;
        let norm = g.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
        let coef = (max_norm / (norm + 1e-6)).min(1.0);
        let c = self.cfg;
        let (b1, b2) = (1.0 - c.beta1.powi(self.t), 1.0 - c.beta2.powi(self.t));
        for (i, g) in g.iter().enumerate() {
            let Some(g) = g else { continue };
            let g = g * coef;
            self.m[i] = c.beta1 * self.m[i] + (1.0 - c.beta1) * g;
            self.v[i] = c.beta2 * self.v[i] + (1.0 - c.beta2) * g * g;
            self.p[i] *= 1.0 - lr * c.weight_decay;
            self.p[i] -= lr / b1 * self.m[i] / ((self.v[i] / b2).sqrt() + c.eps);
        }
    }
}

/// The summed gradient of `world` ranks at `step` as the reference wants it (None where no
/// rank has a gradient).
fn summed(world: usize, step: usize, dtype: DType, skip: Option<&str>) -> Vec<Option<f64>> {
    let mut sum: Vec<Option<f64>> = vec![None; P];
    for r in 0..world {
        let g = grads(r, step, dtype, skip);
        let mut at = 0;
        for (name, shape) in SHAPES {
            if let Some((_, t)) = g.iter().find(|(n, _)| n == name) {
                for (k, x) in to_f64(t).iter().enumerate() {
                    *sum[at + k].get_or_insert(0.0) += x;
                }
            }
            at += shape.iter().product::<usize>();
        }
    }
    sum
}

const LR: [f64; 3] = [1e-2, 2e-2, 1e-2];
/// Step 2 clips (the summed gradient's norm is several units), step 3 leaves "c" without a
/// gradient on every rank.
const MAX_NORM: [f64; 3] = [100.0, 0.5, 100.0];
const SKIP: [Option<&str>; 3] = [None, None, Some("c")];

#[test]
fn n_sharded_ranks_take_the_update_of_one_unsharded_adamw() {
    // f64 throughout. Sharded and unsharded differ only in the order of floating-point sums:
    // the gradients over ranks (N terms) and Σg² for the norm, each within N·ε relative
    // (ε = 1.1e-16) of the same value. The AdamW step lr·m̂/(√v̂ + eps) is most sensitive
    // to g where |g| ≈ 0: d/dg [g / (|g| + eps)] ≤ 1/eps = 1e8, so an absolute gradient
    // error N·ε·max|g_rank| ≤ 5·1.1e-16·1 moves a weight by at most lr·1e8·5.5e-16 ≈ 1.1e-9
    // per step at lr 2e-2; three steps: < 4e-9. (Away from g ≈ 0 the error is ~1e-16.)
    const BOUND: f64 = 4e-9;
    let cfg = AdamWConfig { weight_decay: 0.1, ..AdamWConfig::default() };
    for world in 1..=5 {
        let l = layout(world);
        // the unsharded optimizer on one replica, fed the summed gradients
        let single = params(DType::F64, 1);
        let mut opt = AdamW::new(cfg);
        let mut reference = ReferenceAdamW::new(cfg, flat(&single));
        let replicas: Vec<Vec<(String, Var)>> = (0..world).map(|_| params(DType::F64, 1)).collect();
        let mut shards: Vec<RankShard> = replicas
            .iter()
            .enumerate()
            .map(|(r, w)| RankShard::new(&l, r, w, |_| None, |_| None).unwrap())
            .collect();
        let group = CpuCollective::group(world, PATIENT).unwrap();
        for step in 0..3 {
            let mut sum = polaris::train::optim::GradSum::default();
            for r in 0..world {
                sum.add(grads(r, step, DType::F64, SKIP[step])).unwrap();
            }
            let mut g = sum.take();
            let norm1 = clip_grad_norm(&mut g, MAX_NORM[step]).unwrap();
            opt.apply(&single, &g, LR[step]).unwrap();
            reference.step(&summed(world, step, DType::F64, SKIP[step]), LR[step], MAX_NORM[step]);
            let s = UpdateSettings { adamw: cfg, step: step + 1, lr: LR[step], max_norm: MAX_NORM[step] };
            let norms: Vec<f64> = std::thread::scope(|sc| {
                let handles: Vec<_> = shards
                    .iter_mut()
                    .zip(&replicas)
                    .zip(&group)
                    .enumerate()
                    .map(|(r, ((shard, w), c))| {
                        let l = &l;
                        sc.spawn(move || {
                            update(c, l, shard, w, &grads(r, step, DType::F64, SKIP[step]), s).unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for n in &norms {
                assert!((n - norm1).abs() < 1e-12 * norm1, "world {world} step {step}: norm {n} vs {norm1}");
            }
            if step == 1 {
                assert!(norm1 > MAX_NORM[1], "step 2 clips ({norm1})");
            }
        }
        let unsharded = flat(&single);
        assert!(max_abs_diff(&unsharded, &reference.p) < BOUND, "world {world}: AdamW vs the reference");
        for (r, w) in replicas.iter().enumerate() {
            let d = max_abs_diff(&flat(w), &unsharded);
            assert!(d < BOUND, "world {world}: rank {r}'s replica differs by {d}");
            // and every replica holds the identical weights
            assert_eq!(flat(w), flat(&replicas[0]));
        }
        // "c" had no gradient in step 3: its weights and moments are step 2's on every path
        let c_at = 22..26;
        assert!(max_abs_diff(&flat(&replicas[0])[c_at.clone()], &reference.p[c_at]) < BOUND);
        // the gathered moments are the unsharded ones (what a checkpoint stores)
        let m: Vec<f64> = shards.iter().flat_map(|s| to_f64(&s.exp_avg)).collect();
        let v: Vec<f64> = shards.iter().flat_map(|s| to_f64(&s.exp_avg_sq)).collect();
        // Σ over steps of (1−β)·g: errors of order N·ε·|g| ≪ 1e-12
        assert!(max_abs_diff(&m[..P], &reference.m) < 1e-12, "world {world}: exp_avg");
        assert!(max_abs_diff(&v[..P], &reference.v) < 1e-12, "world {world}: exp_avg_sq");
        assert!(m[P..].iter().chain(&v[P..]).all(|&x| x == 0.0), "the padding stays zero");
        // optimizer state per rank: 3 · ⌈P / N⌉ elements (master, exp_avg, exp_avg_sq)
        for s in &shards {
            let held = s.master.elem_count() + s.exp_avg.elem_count() + s.exp_avg_sq.elem_count();
            assert_eq!(held, 3 * P.div_ceil(world));
        }
    }
}

#[test]
fn bf16_weights_update_through_f32_master_weights_as_f64_does() {
    // bf16 parameters and gradients, two ranks; the update runs in f32 (master weights and
    // moments) and only the replica's copy is rounded to bf16. Against the f64 reference fed
    // the same bf16 gradient values (exact in f32, and their sum over two ranks too: bf16 has
    // 8 significant bits, so a sum of two needs at most 9 + the exponent gap, well inside 24):
    // each f32 step rounds p, m, v and the quotient, a few ulp, i.e. ≲ 4·2⁻²⁴·(|p| + lr)
    // ≈ 2.4e-7 per step for |p| < 1; four steps: < 1e-6. The bf16 copy is the master rounded
    // to nearest: within half a unit in the last of its 8 significant bits, 2⁻⁸ relative.
    let cfg = AdamWConfig::default();
    let world = 2;
    let lr = 1e-4; // one step moves a weight by ≈ lr, under bf16's spacing (2⁻⁸ at 0.5)
    let l = layout(world);
    let replicas: Vec<Vec<(String, Var)>> = (0..world).map(|_| params(DType::BF16, 1)).collect();
    let start = flat(&replicas[0]);
    let mut reference = ReferenceAdamW::new(cfg, start.clone());
    let mut shards: Vec<RankShard> = replicas
        .iter()
        .enumerate()
        .map(|(r, w)| RankShard::new(&l, r, w, |_| None, |_| None).unwrap())
        .collect();
    assert_eq!(shards[0].master.dtype(), DType::F32, "f32 master weights for bf16 parameters");
    let group = CpuCollective::group(world, PATIENT).unwrap();
    for step in 0..4 {
        reference.step(&summed(world, step, DType::BF16, None), lr, 1e9);
        let s = UpdateSettings { adamw: cfg, step: step + 1, lr, max_norm: 1e9 };
        std::thread::scope(|sc| {
            for (r, ((shard, w), c)) in shards.iter_mut().zip(&replicas).zip(&group).enumerate() {
                let l = &l;
                sc.spawn(move || update(c, l, shard, w, &grads(r, step, DType::BF16, None), s).unwrap());
            }
        });
    }
    let master: Vec<f64> = shards.iter().flat_map(|s| to_f64(&s.master)).collect();
    let d = max_abs_diff(&master[..P], &reference.p);
    assert!(d < 1e-6, "f32 master weights vs f64: {d}");
    // the updates accumulated in the master weights: each moved by ≈ 4·lr
    let moved = max_abs_diff(&master[..P], &start);
    assert!(moved > 3.0 * lr, "the master weights moved {moved}");
    for w in &replicas {
        assert_eq!(w[0].1.dtype(), DType::BF16);
        for (x, m) in flat(w).iter().zip(&master) {
            assert!((x - m).abs() <= m.abs() * 2f64.powi(-8) + 1e-30, "bf16 copy {x} of master {m}");
        }
    }
}

#[test]
fn one_unsharded_adamw_updates_bf16_weights_through_f32_master_weights() {
    // The one-GPU path: AdamW::apply on bf16 parameters keeps an f32 master copy. The bound is
    // the sharded test's above: each f32 step rounds p, m, v and the quotient, ≲ 4·2⁻²⁴·(|p| +
    // lr) ≈ 2.4e-7 per step for |p| < 1; eight steps: < 2e-6. lr = 1e-4 moves a weight by
    // ≈ lr a step, under bf16's spacing (2⁻⁸ at 0.5): without the master copy every one of
    // these updates would round away and the weights would never move.
    let cfg = AdamWConfig { weight_decay: 0.1, ..AdamWConfig::default() };
    let lr = 1e-4;
    let steps = 8;
    let weights = params(DType::BF16, 1);
    let start = flat(&weights);
    let mut reference = ReferenceAdamW::new(cfg, start.clone());
    let mut opt = AdamW::new(cfg);
    for step in 0..steps {
        reference.step(&summed(1, step, DType::BF16, None), lr, 1e9);
        opt.apply(&weights, &grads(0, step, DType::BF16, None), lr).unwrap();
    }
    let state = opt.state().unwrap();
    let master: Vec<f64> =
        SHAPES.iter().flat_map(|(name, _)| to_f64(&state[&format!("master.{name}")])).collect();
    assert_eq!(state["master.a"].dtype(), DType::F32, "f32 master weights for bf16 parameters");
    assert_eq!(state["exp_avg.a"].dtype(), DType::F32, "f32 moments for bf16 parameters");
    let d = max_abs_diff(&master, &reference.p);
    assert!(d < 2e-6, "f32 master weights vs f64: {d}");
    let moved = max_abs_diff(&master, &start);
    assert!(moved > 6.0 * lr, "the master weights moved only {moved}");
    // the bf16 weights are the master rounded to nearest (half a unit of 8 significant bits)
    for (x, m) in flat(&weights).iter().zip(&master) {
        assert!((x - m).abs() <= m.abs() * 2f64.powi(-8) + 1e-30, "bf16 copy {x} of master {m}");
    }
    assert!(max_abs_diff(&flat(&weights), &start) > 0.0, "some bf16 weight crossed a rounding step");

    // f32 parameters keep no copy: their own values are the master
    let plain = params(DType::F32, 1);
    let mut opt32 = AdamW::new(cfg);
    opt32.apply(&plain, &grads(0, 0, DType::F32, None), lr).unwrap();
    assert!(opt32.state().unwrap().keys().all(|k| !k.starts_with("master.")));
}

#[test]
fn a_resumed_bf16_run_continues_from_the_saved_master_weights() {
    // state() -> load_state() between steps equals never stopping, bit for bit: the master
    // weights travel with the moments (a resume from the bf16 weights alone would restart the
    // master from their rounding). Then a handoff to two ZeRO ranks carries the master too.
    let cfg = AdamWConfig::default();
    let lr = 1e-4;
    let (a, b) = (params(DType::BF16, 1), params(DType::BF16, 1));
    let (mut whole, mut first) = (AdamW::new(cfg), AdamW::new(cfg));
    for step in 0..3 {
        whole.apply(&a, &grads(0, step, DType::BF16, None), lr).unwrap();
        first.apply(&b, &grads(0, step, DType::BF16, None), lr).unwrap();
    }
    let mut resumed = AdamW::new(cfg);
    resumed.load_state(first.step, &first.state().unwrap()).unwrap();
    for step in 3..6 {
        whole.apply(&a, &grads(0, step, DType::BF16, None), lr).unwrap();
        resumed.apply(&b, &grads(0, step, DType::BF16, None), lr).unwrap();
    }
    let (sw, sr) = (whole.state().unwrap(), resumed.state().unwrap());
    for (name, _) in SHAPES {
        let key = format!("master.{name}");
        assert_eq!(to_f64(&sw[&key]), to_f64(&sr[&key]), "{key} after a resume");
    }
    assert_eq!(flat(&a), flat(&b));

    // the unsharded master seeds the shards: rank shards hold it, not the bf16 rounding
    let l = layout(2);
    let shards: Vec<RankShard> = (0..2)
        .map(|r| {
            RankShard::new(
                &l,
                r,
                &b,
                |n| Some((sr[&format!("exp_avg.{n}")].clone(), sr[&format!("exp_avg_sq.{n}")].clone())),
                |n| sr.get(&format!("master.{n}")).cloned(),
            )
            .unwrap()
        })
        .collect();
    let sharded: Vec<f64> = shards.iter().flat_map(|s| to_f64(&s.master)).collect();
    let saved: Vec<f64> = SHAPES.iter().flat_map(|(n, _)| to_f64(&sr[&format!("master.{n}")])).collect();
    assert_eq!(&sharded[..P], &saved[..]);
    assert_ne!(saved, flat(&b), "the master differs from its bf16 rounding");
}

#[test]
fn a_rank_that_never_arrives_fails_the_collective_naming_who_waited_on_what() {
    let group = CpuCollective::group(3, Duration::from_millis(200)).unwrap();
    let x = Tensor::new(&[1f32, 2., 3.], &Device::Cpu).unwrap();
    // ranks 0 and 1 all-reduce; rank 2 never comes
    let errors: Vec<anyhow::Error> = std::thread::scope(|s| {
        let handles: Vec<_> =
            group[..2].iter().map(|c| s.spawn(|| c.all_reduce_sum(&x).unwrap_err())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let timeouts: Vec<&CollectiveError> =
        errors.iter().filter_map(|e| e.downcast_ref::<CollectiveError>()).collect();
    assert_eq!(timeouts.len(), 2, "{errors:?}");
    // the first to give up names itself, the call and the missing rank; the other either
    // timed out too or was told the group had ended, with the first one's reason
    let first = timeouts
        .iter()
        .find_map(|e| match e {
            CollectiveError::Timeout { rank, op, call, missing, .. } => {
                Some((*rank, *op, *call, missing.clone()))
            }
            _ => None,
        })
        .expect("a timeout");
    assert!(first.0 < 2);
    assert_eq!((first.1, first.2, first.3), ("all_reduce", 1, vec![2]));
    for e in &errors {
        let text = e.to_string();
        assert!(text.contains("all_reduce") && text.contains("rank(s) [2]"), "{text}");
    }
    // the group is over: the late rank is told so at once instead of waiting
    let late = group[2].all_reduce_sum(&x).unwrap_err();
    assert!(
        matches!(late.downcast_ref::<CollectiveError>(), Some(CollectiveError::Aborted { .. })),
        "{late}"
    );
}

#[test]
fn mismatched_calls_and_an_aborting_rank_end_the_group_for_everyone() {
    let x = Tensor::new(&[1f64, 2.], &Device::Cpu).unwrap();
    let results = on_ranks(2, PATIENT, |r, c| {
        if r == 0 {
            c.all_reduce_sum(&x).map(|_| ()).unwrap_err().to_string()
        } else {
            c.all_gather(&x).map(|_| ()).unwrap_err().to_string()
        }
    });
    assert!(results.iter().any(|e| e.contains("called all_gather while rank") || e.contains("called all_reduce while rank")), "{results:?}");

    let results = on_ranks(2, PATIENT, |r, c| {
        if r == 1 {
            c.abort("its backward pass failed");
            String::new()
        } else {
            c.all_reduce_sum(&x).map(|_| ()).unwrap_err().to_string()
        }
    });
    assert!(results[0].contains("rank 1 stopped: its backward pass failed"), "{results:?}");
}

#[test]
fn a_shard_update_on_a_group_missing_a_rank_fails_instead_of_hanging() {
    // two replicas of a three-rank group: ZeRO's first collective cannot complete
    let l = layout(3);
    let group: Vec<Arc<dyn Collective>> = CpuCollective::group(3, Duration::from_millis(200))
        .unwrap()
        .into_iter()
        .map(|c| Arc::new(c) as Arc<dyn Collective>)
        .collect();
    let replicas: Vec<Vec<(String, Var)>> = (0..2).map(|_| params(DType::F32, 1)).collect();
    let s = UpdateSettings { adamw: AdamWConfig::default(), step: 1, lr: 1e-3, max_norm: 1.0 };
    let errors: Vec<String> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..2)
            .map(|r| {
                let (l, c, w) = (&l, &group[r], &replicas[r]);
                sc.spawn(move || {
                    let mut shard = RankShard::new(l, r, w, |_| None, |_| None).unwrap();
                    update(&**c, l, &mut shard, w, &grads(r, 0, DType::F32, None), s).unwrap_err().to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for e in &errors {
        assert!(e.contains("timed out") && e.contains("rank(s) [2]"), "{e}");
    }
}
