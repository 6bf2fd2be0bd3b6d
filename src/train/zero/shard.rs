//! One rank's part of a ZeRO-1 update: its shard of the master weights and AdamW moments,
//! and the update that reduce-scatters the gradients, clips, steps its shard and all-gathers
//! the weights into its replica.

use std::collections::HashSet;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var};

use super::layout::ShardLayout;
use crate::train::adamw_update::{self, Coefficients};
use crate::train::collective::Collective;
use crate::train::optim::{master_dtype, AdamWConfig, Grads};

/// What rank r keeps between steps: shard_len elements each, in the master dtype (f32, or
/// f64 for f64 parameters), on the rank's device. With world_size ranks the optimizer holds
/// 3 · ⌈P / world_size⌉ elements per rank instead of 3 · P.
pub struct RankShard {
    pub master: Tensor,
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
}

impl RankShard {
    /// Rank `rank`'s shard of `weights` (its replica's parameters, all identical across
    /// ranks) and of the moments `moment_of(name)` gives as (exp_avg, exp_avg_sq) (a resumed
    /// run's; zeros for a parameter without). The master weights are `master_of(name)` where
    /// it gives one (a half-precision parameter's f32 master from an unsharded optimizer or a
    /// checkpoint), else the parameter itself.
    pub fn new<F, M>(
        layout: &ShardLayout,
        rank: usize,
        weights: &[(String, Var)],
        moment_of: F,
        master_of: M,
    ) -> Result<Self>
    where
        F: Fn(&str) -> Option<(Tensor, Tensor)>,
        M: Fn(&str) -> Option<Tensor>,
    {
        let (dtype, device) = replica_kind(weights)?;
        let shard = layout.shard(rank);
        let take = |flat: Tensor| -> Result<Tensor> { Ok(flat.narrow(0, shard.start, shard.len())?.copy()?) };
        let by_name = |name: &str| {
            master_of(name)
                .or_else(|| weights.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_tensor().clone()))
        };
        let master = take(layout.flatten(by_name, dtype, &device)?)?;
        let exp_avg = take(layout.flatten(|n| moment_of(n).map(|(m, _)| m), dtype, &device)?)?;
        let exp_avg_sq = take(layout.flatten(|n| moment_of(n).map(|(_, v)| v), dtype, &device)?)?;
        Ok(Self { master, exp_avg, exp_avg_sq })
    }
}

/// The step-wide settings of one update, the same on every rank.
#[derive(Debug, Clone, Copy)]
pub struct UpdateSettings {
    pub adamw: AdamWConfig,
    /// The update's number, from 1 (bias correction).
    pub step: usize,
    pub lr: f64,
    /// Global gradient-norm clip (as torch.nn.utils.clip_grad_norm_).
    pub max_norm: f64,
}

/// Rank `rank`'s part of one ZeRO-1 update; every rank of `collective` calls this with its
/// own replica's `weights` and its own gradients (summed over its micro-batches; a missing
/// name is a zero gradient). Returns the global gradient norm before clipping, the same on
/// every rank; a non-finite norm leaves the weights and the shard untouched (the caller
/// fails the step).
///
/// The arithmetic is torch.optim.AdamW's, as `AdamW::apply` does it unsharded: a parameter
/// no rank has a gradient for is not updated (no decay, no moment change).
pub fn update(
    collective: &dyn Collective,
    layout: &ShardLayout,
    shard: &mut RankShard,
    weights: &[(String, Var)],
    grads: &Grads,
    s: UpdateSettings,
) -> Result<f64> {
    let rank = collective.rank();
    if collective.world_size() != layout.world_size {
        bail!("a ZeRO layout for {} ranks used by a group of {}", layout.world_size, collective.world_size());
    }
    let (dtype, device) = replica_kind(weights)?;

    // which parameters have a gradient on some rank: (params,) counts
    let have: HashSet<&str> = grads.iter().map(|(n, _)| n.as_str()).collect();
    let mine: Vec<f64> =
        layout.segments.iter().map(|s| have.contains(s.name.as_str()) as u8 as f64).collect();
    let counts = collective
        .all_reduce_sum(&Tensor::from_vec(mine, layout.segments.len(), &device)?.to_dtype(dtype)?)?;
    let present: Vec<bool> =
        counts.to_dtype(DType::F64)?.to_vec1::<f64>()?.iter().map(|&c| c > 0.0).collect();

    // Σ over ranks of the gradients, this rank's shard_len elements of it
    let by_name = |name: &str| grads.iter().find(|(n, _)| n == name).map(|(_, g)| g.clone());
    let g = collective.reduce_scatter_sum(&layout.flatten(by_name, dtype, &device)?)?;

    // global norm: Σ g² over each shard in f64, summed over ranks
    let sq = g.to_dtype(DType::F64)?.sqr()?.sum_all()?.reshape(1)?;
    let norm = collective.all_reduce_sum(&sq)?.to_vec1::<f64>()?[0].sqrt();
    if !norm.is_finite() {
        return Ok(norm);
    }
    let coef = s.max_norm / (norm + 1e-6);
    let g = if coef < 1.0 { (g * coef)? } else { g };

    let c = Coefficients::new(&s.adamw, s.step, s.lr);
    let (p, m, v) = adamw_update::update(&shard.master, &g, Some((&shard.exp_avg, &shard.exp_avg_sq)), c)?;
    let pieces = layout.pieces(rank);
    let keep_old: Vec<_> = pieces.iter().filter(|(i, _)| !present[*i]).cloned().collect();
    let (p, m, v) = if keep_old.is_empty() {
        (p, m, v)
    } else {
        // a parameter without gradient anywhere keeps its weights and moments
        let splice = |new: &Tensor, old: &Tensor| -> Result<Tensor> {
            let mut parts = Vec::new();
            let mut at = 0;
            for (i, r) in &pieces {
                if r.start > at {
                    parts.push(new.narrow(0, at, r.start - at)?);
                }
                let from = if present[*i] { new } else { old };
                parts.push(from.narrow(0, r.start, r.len())?);
                at = r.end;
            }
            if at < layout.shard_len {
                parts.push(new.narrow(0, at, layout.shard_len - at)?);
            }
            Ok(Tensor::cat(&parts, 0)?)
        };
        (splice(&p, &shard.master)?, splice(&m, &shard.exp_avg)?, splice(&v, &shard.exp_avg_sq)?)
    };
    // padding stays zero: its gradient is zero and its weight was zero, so p, m, v stay 0
    shard.master = p;
    shard.exp_avg = m;
    shard.exp_avg_sq = v;

    // every rank's replica gets the whole updated vector, cast to the parameters' dtype
    let full = collective.all_gather(&shard.master)?;
    for ((name, var), (other, w)) in weights.iter().zip(layout.unflatten(&full)?) {
        debug_assert_eq!(name, &other);
        var.set(&w.to_dtype(var.dtype())?)?;
    }
    Ok(norm)
}

/// The master dtype of a replica's parameters (f32, or f64 when every parameter is f64) and
/// their device.
fn replica_kind(weights: &[(String, Var)]) -> Result<(DType, Device)> {
    let Some((_, first)) = weights.first() else { bail!("ZeRO over no trainable parameters") };
    if let Some((name, v)) = weights.iter().find(|(_, v)| !v.device().same_device(first.device())) {
        bail!(
            "ZeRO needs a replica on one device: {name} is on {:?}, the first on {:?}",
            v.device(),
            first.device()
        );
    }
    let all_f64 = weights.iter().all(|(_, v)| v.dtype() == DType::F64);
    Ok((master_dtype(if all_f64 { DType::F64 } else { DType::F32 }), first.device().clone()))
}
