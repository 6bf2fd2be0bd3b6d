//! ZeRO-1: the optimizer state sharded across data-parallel workers. Each rank owns a
//! contiguous shard of the flattened trainable parameters (layout.rs) and keeps, for its
//! shard only, the master weights and both AdamW moments (shard.rs). An update
//! reduce-scatters the gradients (each rank receives the sum over ranks of its shard), clips
//! by the global norm (one all-reduce of Σg²), steps its shard, and all-gathers the master
//! weights into every replica. Optimizer memory per rank: 3 · ⌈P / N⌉ master-dtype elements
//! instead of 3 · P; gradients cross devices only through the [`Collective`].
//!
//! Master weights are f32 (f64 when the parameters are f64, as the equivalence tests use):
//! with bf16 parameters the update accumulates in f32 and only the copy in the replica is
//! rounded to bf16.

pub mod layout;
pub mod shard;

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::{anyhow, Result};
use candle_core::{Device, Tensor};

pub use layout::{Segment, ShardLayout};
pub use shard::{update, RankShard, UpdateSettings};

use super::collective::CollectiveError;
use super::optim::{needs_master, AdamW, Grads};
use super::workers::Workers;

/// The sharded state of one group of workers: rank r's shard at index r (None until the
/// rank's first update builds it).
pub struct ZeroState {
    pub layout: ShardLayout,
    pub ranks: Vec<Mutex<Option<RankShard>>>,
    /// Whether the replicas' parameters are half precision, so the f32 master shards are
    /// more than a copy of the weights and a checkpoint keeps them (`AdamW::state`).
    pub mixed_precision: bool,
}

impl ZeroState {
    fn new(layout: ShardLayout, mixed_precision: bool) -> Self {
        let ranks = (0..layout.world_size).map(|_| Mutex::new(None)).collect();
        Self { layout, ranks, mixed_precision }
    }

    /// The master weights of every parameter as whole tensors on the CPU, by name, when the
    /// parameters are half precision (empty otherwise, or before the first update).
    pub fn masters(&self) -> Result<BTreeMap<String, Tensor>> {
        if !self.mixed_precision {
            return Ok(BTreeMap::new());
        }
        let mut parts = Vec::new();
        for slot in &self.ranks {
            let slot = slot.lock().map_err(|_| anyhow!("a ZeRO rank panicked"))?;
            let Some(shard) = slot.as_ref() else { return Ok(BTreeMap::new()) };
            parts.push(shard.master.to_device(&Device::Cpu)?);
        }
        Ok(self.layout.unflatten(&Tensor::cat(&parts, 0)?)?.into_iter().collect())
    }

    /// Both moments of every parameter as whole tensors on the CPU, by name (what a
    /// checkpoint stores, the same as the unsharded optimizer's): the shards gathered in
    /// this process.
    pub fn moments(&self) -> Result<BTreeMap<String, (Tensor, Tensor)>> {
        let (mut m, mut v) = (Vec::new(), Vec::new());
        for (r, slot) in self.ranks.iter().enumerate() {
            let slot = slot.lock().map_err(|_| anyhow!("a ZeRO rank panicked"))?;
            let Some(shard) = slot.as_ref() else { return Ok(BTreeMap::new()) };
            debug_assert_eq!(shard.exp_avg.elem_count(), self.layout.shard(r).len());
            m.push(shard.exp_avg.to_device(&Device::Cpu)?);
            v.push(shard.exp_avg_sq.to_device(&Device::Cpu)?);
        }
        let m = self.layout.unflatten(&Tensor::cat(&m, 0)?)?;
        let v = self.layout.unflatten(&Tensor::cat(&v, 0)?)?;
        Ok(m.into_iter().zip(v).map(|((name, m), (_, v))| (name, (m, v))).collect())
    }
}

/// One ZeRO-1 update of every worker's replica: rank w (a thread) updates its shard from
/// `per_worker[w]`, its gradients. Moments the optimizer holds unsharded (a resumed
/// checkpoint's) move into the shards on the first update. Returns the global gradient norm
/// before clipping; with a non-finite norm nothing is updated and `opt.step` stays.
pub fn step(
    opt: &mut AdamW,
    workers: &Workers,
    per_worker: Vec<Grads>,
    lr: f64,
    max_norm: f64,
) -> Result<f64> {
    let n = workers.len();
    if workers.collectives.len() != n || per_worker.len() != n {
        return Err(anyhow!(
            "ZeRO over {n} workers with {} collective handles and {} gradient sets",
            workers.collectives.len(),
            per_worker.len()
        ));
    }
    // the group's size shards the state: the workers of this process are its ranks 0..n
    let world = workers.collectives.first().map_or(n, |c| c.world_size());
    let trainable = workers.primary().model.trainable();
    let layout = ShardLayout::of_vars(trainable, world)?;
    let mixed = trainable.iter().any(|(_, v)| needs_master(v.dtype()));
    if opt.zero.as_ref().is_none_or(|z| z.layout != layout) {
        opt.zero = Some(ZeroState::new(layout, mixed));
    }
    let settings = UpdateSettings { adamw: opt.cfg, step: opt.step + 1, lr, max_norm };
    let (zero, unsharded, masters) = (opt.zero.as_ref().expect("set above"), &opt.moments, &opt.masters);
    let results: Vec<Result<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = per_worker
            .into_iter()
            .enumerate()
            .map(|(w, grads)| {
                let collective = &*workers.collectives[w];
                s.spawn(move || {
                    let weights = workers.replicas[w].lm.model.trainable();
                    let run = || -> Result<f64> {
                        let rank = collective.rank();
                        let mut slot =
                            zero.ranks[rank].lock().map_err(|_| anyhow!("a ZeRO rank panicked"))?;
                        if slot.is_none() {
                            *slot = Some(RankShard::new(
                                &zero.layout,
                                rank,
                                weights,
                                |name| unsharded.get(name).cloned(),
                                |name| masters.get(name).cloned(),
                            )?);
                        }
                        let shard = slot.as_mut().expect("set above");
                        update(collective, &zero.layout, shard, weights, &grads, settings)
                    };
                    let result = run();
                    if let Err(e) = &result {
                        collective.abort(&format!("{e:#}"));
                    }
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a ZeRO rank panicked"))))
            .collect()
    });
    let norm = first_cause(results)?;
    if norm.is_finite() {
        opt.step += 1;
        opt.moments.clear(); // now held in the shards
        opt.masters.clear();
    }
    Ok(norm)
}

/// The ranks' common result, or the error that explains the others: a rank that ended the
/// group (a timeout, a failure) rather than one told that the group had ended.
fn first_cause(results: Vec<Result<f64>>) -> Result<f64> {
    let mut errors: Vec<anyhow::Error> = Vec::new();
    let mut norm = None;
    for r in results {
        match r {
            Ok(x) => norm = norm.or(Some(x)),
            Err(e) => errors.push(e),
        }
    }
    let is_aborted = |e: &anyhow::Error| {
        matches!(e.downcast_ref::<CollectiveError>(), Some(CollectiveError::Aborted { .. }))
    };
    if let Some(i) = errors.iter().position(|e| !is_aborted(e)) {
        return Err(errors.swap_remove(i));
    }
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => norm.ok_or_else(|| anyhow!("ZeRO over no workers")),
    }
}
