//! A Gated DeltaNet layer's short convolution: depthwise and causal over time, then SiLU,
//! restarting at every row of a packed stream.
//!
//!   pre[t, c] = Σ_j w[c, j] · x[t + j − (K−1), c]   (taps reaching before t's row read 0)
//!   y[t, c] = silu(pre[t, c])
//!
//! Composed, that is K narrowed products, K masks, K − 1 sums and a SiLU over [N, C], each
//! op kept for backward; here one pass forward keeping nothing, and one backward pass that
//! recomputes pre and gives dx and dw: dpre = dy ⊙ silu'(pre), dx[s, c] = Σ_j w[c, j]
//! dpre[s + (K−1) − j, c], dw[c, j] = Σ_t x[t + j − (K−1), c] dpre[t, c]. Tasks split the
//! channels, so dw needs no cross-task sum and does not depend on the thread count.

use std::sync::Arc;

use anyhow::{ensure, Result};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::swiglu::silu_and_grad;
use super::{contiguous, kernel_serves, Real};

/// Channels per rayon task.
const CHANNELS_PER_TASK: usize = 64;

/// y [B, N, C] = silu(causal depthwise conv of x [B, N, C] with w [C, K]); the window
/// restarts at every position in `starts` (ascending, first 0; shared by every b).
/// Differentiable in x and w. Any device or dtype the kernel does not serve takes composed ops.
pub fn causal_conv_silu(x: &Tensor, w: &Tensor, starts: &[usize]) -> Result<Tensor> {
    let (_, n, c) = x.dims3()?;
    let (wc, k) = w.dims2()?;
    ensure!(wc == c && k >= 1, "causal conv: weights {:?} for {c} channels", w.dims());
    ensure!(starts.first() == Some(&0), "causal conv: the first row must start at 0");
    ensure!(
        starts.windows(2).all(|p| p[0] < p[1]) && starts.last().is_some_and(|&s| s < n.max(1)),
        "causal conv: row starts {starts:?} must ascend within 0..{n}"
    );
    let row_start = row_starts(starts, n);
    if !kernel_serves(&[x, w]) {
        return composed(x, w, &row_start);
    }
    let op = CausalConv { k, row_start: Arc::new(row_start) };
    Ok(x.contiguous()?.apply_op2(&w.contiguous()?, op)?)
}

/// The start of each position's row.
fn row_starts(starts: &[usize], n: usize) -> Vec<usize> {
    let mut out = vec![0; n];
    let mut current = 0;
    for (t, slot) in out.iter_mut().enumerate() {
        if starts.binary_search(&t).is_ok() {
            current = t;
        }
        *slot = current;
    }
    out
}

/// The same function in composed candle ops (any device or dtype).
fn composed(x: &Tensor, w: &Tensor, row_start: &[usize]) -> Result<Tensor> {
    let (b, n, c) = x.dims3()?;
    let k = w.dim(1)?;
    let ext = Tensor::cat(&[&Tensor::zeros((b, k - 1, c), x.dtype(), x.device())?, x], 1)?;
    let mut acc: Option<Tensor> = None;
    for j in 0..k {
        let back = k - 1 - j;
        let mut term = ext.narrow(1, j, n)?.broadcast_mul(&w.narrow(1, j, 1)?.squeeze(1)?)?;
        if back > 0 {
            let keep: Vec<f32> = (0..n).map(|t| if t >= row_start[t] + back { 1.0 } else { 0.0 }).collect();
            let keep = Tensor::from_vec(keep, (1, n, 1), x.device())?.to_dtype(x.dtype())?;
            term = term.broadcast_mul(&keep)?;
        }
        acc = Some(match acc {
            Some(a) => (a + term)?,
            None => term,
        });
    }
    Ok(acc.expect("k >= 1").silu()?)
}

/// pre[t, ch] of one row b (x: that row, [N, C]; w: [C, K]).
#[inline(always)]
fn pre<T: Real>(x: &[T], w: &[T], k: usize, c: usize, row_start: &[usize], t: usize, ch: usize) -> T {
    let mut acc = T::zero();
    for j in 0..k {
        let back = k - 1 - j;
        if t >= row_start[t] + back {
            acc += w[ch * k + j] * x[(t - back) * c + ch];
        }
    }
    acc
}

struct CausalConv {
    k: usize,
    row_start: Arc<Vec<usize>>,
}

impl CustomOp2 for CausalConv {
    fn name(&self) -> &'static str {
        "fused-causal-conv-silu"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            op: &CausalConv,
            xs: (&CpuStorage, &Layout),
            ws: (&CpuStorage, &Layout),
        ) -> candle_core::Result<CpuStorage> {
            let x = contiguous::<T>("causal conv", xs.0, xs.1)?;
            let w = contiguous::<T>("causal conv", ws.0, ws.1)?;
            let (b, n, c) = xs.1.shape().dims3()?;
            let k = op.k;
            let mut y = vec![T::zero(); b * n * c];
            // tasks: (row b, channel block); each writes its block of every position
            let blocks = c.div_ceil(CHANNELS_PER_TASK);
            let ptr = SendPtr(y.as_mut_ptr());
            (0..b * blocks).into_par_iter().for_each(|task| {
                let (bi, blk) = (task / blocks, task % blocks);
                let (c0, c1) = (blk * CHANNELS_PER_TASK, ((blk + 1) * CHANNELS_PER_TASK).min(c));
                let xr = &x[bi * n * c..(bi + 1) * n * c];
                for t in 0..n {
                    for ch in c0..c1 {
                        let p = pre(xr, w, k, c, &op.row_start, t, ch);
                        // SAFETY: tasks write disjoint (row, channel-block) cells of y.
                        unsafe { *ptr.at(bi * n * c + t * c + ch) = silu_and_grad(p).0 };
                    }
                }
            });
            Ok(T::to_cpu_storage_owned(y))
        }
        let out = match xs {
            CpuStorage::F32(_) => run::<f32>(self, (xs, xl), (ws, wl))?,
            CpuStorage::F64(_) => run::<f64>(self, (xs, xl), (ws, wl))?,
            _ => candle_core::bail!("fused causal conv: f32 or f64 only"),
        };
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let back = CausalConvBackward { k: self.k, row_start: self.row_start.clone() };
        let both = x.apply_op3_no_bwd(w, &dy.contiguous()?, &back)?; // [B N C + C K]
        let n_x = x.elem_count();
        let dx = both.narrow(0, 0, n_x)?.reshape(x.shape())?;
        let dw = both.narrow(0, n_x, w.elem_count())?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw)))
    }
}

/// A raw pointer the parallel tasks write through (each to cells no other task touches).
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    /// # Safety
    /// `i` is in bounds of the allocation and no other task writes cell `i`.
    unsafe fn at(self, i: usize) -> *mut T {
        self.0.add(i)
    }
}

/// (x [B, N, C], w [C, K], dy [B, N, C]) -> [B N C + C K]: dx, then dw.
struct CausalConvBackward {
    k: usize,
    row_start: Arc<Vec<usize>>,
}

impl CustomOp3 for CausalConvBackward {
    fn name(&self) -> &'static str {
        "fused-causal-conv-silu-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            op: &CausalConvBackward,
            (xs, xl): (&CpuStorage, &Layout),
            (ws, wl): (&CpuStorage, &Layout),
            (ds, dl): (&CpuStorage, &Layout),
        ) -> candle_core::Result<(CpuStorage, Shape)> {
            let x = contiguous::<T>("causal conv backward", xs, xl)?;
            let w = contiguous::<T>("causal conv backward", ws, wl)?;
            let dy = contiguous::<T>("causal conv backward", ds, dl)?;
            let (b, n, c) = xl.shape().dims3()?;
            let k = op.k;
            let rs = &op.row_start;
            let mut out = vec![T::zero(); b * n * c + c * k];
            let (dx, dw) = out.split_at_mut(b * n * c);
            let blocks = c.div_ceil(CHANNELS_PER_TASK);
            let (dx_ptr, dw_ptr) = (SendPtr(dx.as_mut_ptr()), SendPtr(dw.as_mut_ptr()));
            // tasks: channel blocks, each over every row b (dw sums over b and t in a fixed
            // order within its task)
            (0..blocks).into_par_iter().for_each(|blk| {
                let (c0, c1) = (blk * CHANNELS_PER_TASK, ((blk + 1) * CHANNELS_PER_TASK).min(c));
                let mut dpre = vec![T::zero(); n * (c1 - c0)];
                for bi in 0..b {
                    let off = bi * n * c;
                    let (xr, dyr) = (&x[off..off + n * c], &dy[off..off + n * c]);
                    for t in 0..n {
                        for ch in c0..c1 {
                            let p = pre(xr, w, k, c, rs, t, ch);
                            dpre[t * (c1 - c0) + ch - c0] = dyr[t * c + ch] * silu_and_grad(p).1;
                        }
                    }
                    for t in 0..n {
                        for ch in c0..c1 {
                            let g = dpre[t * (c1 - c0) + ch - c0];
                            for j in 0..k {
                                let back = k - 1 - j;
                                if t >= rs[t] + back {
                                    let s = t - back;
                                    // SAFETY: this task alone owns channels c0..c1 of dx and dw.
                                    unsafe {
                                        *dx_ptr.at(off + s * c + ch) =
                                            *dx_ptr.at(off + s * c + ch) + w[ch * k + j] * g;
                                        *dw_ptr.at(ch * k + j) = *dw_ptr.at(ch * k + j) + xr[s * c + ch] * g;
                                    }
                                }
                            }
                        }
                    }
                }
            });
            let len = out.len();
            Ok((T::to_cpu_storage_owned(out), Shape::from(len)))
        }
        match xs {
            CpuStorage::F32(_) => run::<f32>(self, (xs, xl), (ws, wl), (ds, dl)),
            CpuStorage::F64(_) => run::<f64>(self, (xs, xl), (ws, wl), (ds, dl)),
            _ => candle_core::bail!("fused causal conv backward: f32 or f64 only"),
        }
    }
}
