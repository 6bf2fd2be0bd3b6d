//! The plan on CUDA devices (issue 15): one worker (rank) per GPU, mixed precision, the
//! optimizer state sharded over the ranks (ZeRO-1). Bytes one rank of N holds, for a model
//! of P parameters of which P_t are trained (P_a LoRA adapter parameters):
//!
//! | item                        | full fine-tune, bf16 | LoRA over a bf16 base | where        |
//! |-----------------------------|----------------------|-----------------------|--------------|
//! | weights                     | 2 P                  | 2 P + 4 P_a           | every rank   |
//! | master weights (f32)        | 4 P / N              | 0 (adapters are f32)  | ZeRO-1 shard |
//! | AdamW m and v (f32)         | 8 P / N              | 8 P_a / N             | ZeRO-1 shard |
//! | gradients (training)        | 2 x 2 P              | 2 x 4 P_a             | every rank   |
//! | reduced gradient (update)   | 4 P / N              | 4 P_a / N             | ZeRO-1 shard |
//!
//! Gradients are full on every rank: ZeRO-1 shards only the optimizer state (ZeRO-2 would
//! shard gradients too; this trainer does not). They are in the trained weights' dtype,
//! bf16 for a full fine-tune (f32 for LoRA adapters), because candle's backward makes a
//! variable's gradient in its dtype, and two sets are alive at once: the running sum over
//! a worker's micro-batches and the micro-batch's own backward (model::logprobs returns a
//! whole set, the trainer adds it to the sum). f32 comes back at the reduce-scatter: each
//! rank receives its shard of the summed gradient in f32, clips it with the global norm
//! and updates its f32 master weights and moments, then all ranks all-gather the new bf16
//! weights. An f32 running sum would cost 2 bytes more per parameter on every rank
//! (gradient_bytes is where to change it if the trainer does that).
//!
//! Activations, a layer's working set, the log-prob chunk and the generation caches are
//! the host plan's arithmetic (figures.rs, measured against RSS on CPU) in the model dtype,
//! with the f32 parts (log-sum-exp, DeltaNet's recurrence, log-probs and the loss) in f32:
//! this assumes item 2's CUDA kernels keep what their CPU twins keep. No GPU measurement
//! backs these figures yet; the CUDA margins below are budgets, stated as such.

use super::figures::{self, Figures, Shape, ADAMW_TEMPS};

/// Per GPU: the CUDA context (~0.5 GiB on an A100 / H100), candle's kernel modules, cuBLAS
/// and cuBLASLt handles with their workspaces. A budget, not a measurement.
pub const RUNTIME_CUDA: u64 = 1 << 30;
/// Per GPU when there are several: NCCL's communicator, its channel buffers (NCCL_BUFFSIZE
/// 4 MiB per channel and peer) and proxy state. A budget.
pub const RUNTIME_NCCL: u64 = 512 << 20;
/// The CUDA allocator's fragmentation over what a phase allocates and frees (activations,
/// working sets, caches, the update's temporaries), in percent: tensors of many sizes come
/// and go every layer. Not applied to the weights, master weights, moments and gradients,
/// which are allocated once per step at the same sizes. A budget: 10%.
pub const CUDA_ALLOCATOR_PERCENT: u64 = 110;

/// Bytes per element of the trained parameters: the model dtype for a full fine-tune, f32
/// for LoRA adapters (they are small, and bf16 would round away lr 1e-5 updates).
pub fn trainable_bytes(s: &Shape) -> u64 {
    if s.lora.is_some() {
        4
    } else {
        s.w
    }
}

/// Bytes per element of the gradients' running sum and of one micro-batch's gradients: the
/// trained weights' own dtype (see the module's comment; an f32 sum would make this 4).
pub fn gradient_bytes(s: &Shape) -> u64 {
    trainable_bytes(s)
}

/// Elements of one rank's ZeRO-1 shard of `n` elements: ceil(n / ranks) (every tensor is
/// split over the ranks; the plan takes the largest piece for every rank).
pub fn shard(n: u64, ranks: u64) -> u64 {
    n.div_ceil(ranks.max(1))
}

/// One rank's figures out of `ranks` ZeRO-1 ranks (1: one GPU, nothing sharded).
pub fn rank(s: &Shape, ranks: u64) -> Figures {
    let (params, trainable) = figures::parameters(s);
    let own = shard(trainable, ranks);
    // LoRA: the bf16 base and the f32 adapters; a full fine-tune: every weight in the model
    // dtype
    let weights = match s.lora {
        Some(_) => (params - trainable) * s.w + trainable * 4,
        None => params * s.w,
    };
    // master weights exist only where the trained weights are narrower than f32
    let master = if trainable_bytes(s) < 4 { own * 4 } else { 0 };
    // a GPU runs the chunked delta rule (the fused op is the CPU's)
    let host = figures::figures(&Shape { fused_delta_rule: false, ..s.clone() });
    Figures {
        weights,
        reference: host.reference,
        gradients: 2 * trainable * gradient_bytes(s),
        master,
        optimizer: 2 * own * 4,
        optimizer_update: update_working_set(s, ranks),
        activations: host.activations,
        layer_working_set: host.layer_working_set,
        logprob_chunk: host.logprob_chunk,
        generation: host.generation,
    }
}

/// The update's temporaries beside the summed gradients: the reduce-scatter's f32 shard
/// (several ranks: all of it before any update, since clipping needs the global norm; one
/// rank reads its gradients in place); then one tensor at a time, for the largest trainable
/// one: its gradient cast to f32 (the reduce-scatter's input), AdamW's f32 working copies
/// of this rank's piece of it (every tensor is split over the ranks, ceil(n / N) each) and
/// the all-gathered new weights in the model dtype. Both stages are summed: conservative by
/// a few copies of one tensor.
pub fn update_working_set(s: &Shape, ranks: u64) -> u64 {
    let (_, trainable) = figures::parameters(s);
    let reduced = if ranks > 1 { shard(trainable, ranks) * 4 } else { 0 };
    let largest = figures::largest_trainable(s);
    reduced + largest * (4 + s.w) + shard(largest, ranks) * ADAMW_TEMPS * 4
}

/// Per-GPU runtime: the CUDA budget, and NCCL's when there are several ranks.
pub fn runtime(ranks: u64) -> u64 {
    RUNTIME_CUDA + if ranks > 1 { RUNTIME_NCCL } else { 0 }
}

/// `bytes` with the allocator's margin.
fn margin(bytes: u64) -> u64 {
    bytes * CUDA_ALLOCATOR_PERCENT / 100
}

/// Training on top of the resident bytes: both gradient sets, then the saved activations
/// and the larger of a layer's backward and the log-prob chunk with the margin.
pub fn training(f: &Figures) -> u64 {
    f.gradients + margin(f.activations + f.layer_working_set.max(f.logprob_chunk))
}

/// Generation: a group's caches (KV of the attention layers in the model dtype, DeltaNet's
/// f32 state, fixed in T) with the margin.
pub fn generation(f: &Figures) -> u64 {
    margin(f.generation)
}

/// The update: the summed gradients (full, until the reduce-scatter has read them) and the
/// update's temporaries with the margin.
pub fn update(s: &Shape, f: &Figures) -> u64 {
    let (_, trainable) = figures::parameters(s);
    trainable * gradient_bytes(s) + margin(f.optimizer_update)
}
