//! Fused CPU kernels, with their backward, for the elementwise chains of the training path:
//! RMSNorm, rotate-half RoPE, SwiGLU's silu(gate) ⊙ up, and the log-softmax + gather of the
//! per-token log-probs. Composed candle ops make each of these 5-15 full passes over the
//! activations forward and as many again backward, each with a fresh allocation; a kernel
//! here is one pass forward and one backward (issue 18's profile: at 4096 tokens on the
//! tiny model these chains took as long as every matmul together).
//!
//! Each is a candle custom op whose `bwd` applies a second custom op, so autograd sees one
//! node. They run on CPU tensors of f32 (the models' training dtype) and f64 (the tests'
//! finite differences); any other device or dtype takes the composed ops, which compute the
//! same function (tests/fused_kernels.rs holds the two to each other and to finite
//! differences). Rows are split over rayon's pool, the one gemm uses, so the two never
//! oversubscribe the cores; reductions over rows (RMSNorm's weight gradient) sum fixed
//! chunks in a fixed order, so results do not depend on the thread count.

pub(crate) mod buffer;
pub mod causal_conv;
pub mod gate_up;
pub mod gemm;
pub mod log_softmax;
pub mod rms_norm;
pub mod rope;
pub mod swiglu;

use candle_core::{CpuStorage, DType, Layout, Tensor, WithDType};
use num_traits::Float;

pub use causal_conv::causal_conv_silu;
pub use gate_up::gate_up;
pub use log_softmax::target_logprobs;
pub use rms_norm::rms_norm;
pub use rope::rope;
pub use swiglu::swiglu;

/// Rows per rayon task: enough work to amortise a task (~256 x 256 elements), and enough
/// tasks for every core at a few hundred rows.
const ROWS_PER_TASK: usize = 64;

/// The kernels' element types.
pub trait Real: WithDType + Float {
    /// y = silu(gate) ⊙ up over one chunk, every element of y written (SwiGLU's product).
    fn silu_product(gate: &[Self], up: &[Self], y: &mut [std::mem::MaybeUninit<Self>]) {
        swiglu::silu_product_scalar(gate, up, y)
    }
}
impl Real for f32 {
    fn silu_product(gate: &[f32], up: &[f32], y: &mut [std::mem::MaybeUninit<f32>]) {
        swiglu::silu_product_f32(gate, up, y)
    }
}
impl Real for f64 {}

/// Whether the fused kernel serves these tensors (CPU, f32 or f64, every one the same dtype,
/// and the device-generic path not forced on this thread: `generic_only`).
pub(crate) fn kernel_serves(tensors: &[&Tensor]) -> bool {
    let Some(first) = tensors.first() else { return false };
    host_kernels(first)
        && matches!(first.dtype(), DType::F32 | DType::F64)
        && tensors.iter().all(|t| t.device().is_cpu() && t.dtype() == first.dtype())
}

/// Whether a CPU-only kernel (this module's, the decode step's host buffers, the small-batch
/// matmul, decode attention, blockwise attention's CPU op, the delta rule's fused op) may
/// serve a tensor: it is on the CPU and the device-generic path is not forced
/// (`generic_only`). Every such kernel has a device-generic twin of candle ops, which is what
/// CUDA (and Metal) run.
pub fn host_kernels(t: &Tensor) -> bool {
    t.device().is_cpu() && !GENERIC_ONLY.with(|g| g.get())
}

thread_local! {
    static GENERIC_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every CPU-only kernel switched off on the calling thread, so that what runs
/// is exactly the device-generic path a GPU runs (composed candle ops and candle's own
/// kernels), on the CPU: the twin tests hold the two to each other, and `bench gpu-check`
/// times the generic path on a host. The choice is made where each op is built, on the
/// calling thread; ops already built keep theirs.
pub fn generic_only<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GENERIC_ONLY.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GENERIC_ONLY.with(|g| g.replace(true)));
    f()
}

/// The contiguous elements a layout views, or an error naming the op.
pub(crate) fn contiguous<'a, T: WithDType>(
    op: &str,
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a [T]> {
    let data = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: the fused kernel needs contiguous inputs"),
    }
}

/// Σ a_i b_i with eight independent accumulators, so the loop vectorises (a single running
/// sum is a serial chain of adds the compiler may not reorder).
#[inline(always)]
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = ca.remainder().iter().zip(cb.remainder()).fold(T::zero(), |s, (&x, &y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().fold(tail, |s, &v| s + v)
}
