//! The gated delta rule as one CPU op with its backward: the training and scoring form.
//!
//! The chunked form in composed ops is built for a GPU (its work is matmuls over C x C
//! blocks); on a CPU its ~15 small ops per chunk, their autograd nodes and the [C, C] decay
//! tensors kept for backward cost far more than the recurrence itself (issue 14's profile of
//! a 50M Qwen3.5 at 4096 tokens: under a third of the time in matmuls). Step by step, the
//! recurrence is O(T dk dv) per head with its state S [dk, dv] resident in L1, so this op
//! runs it directly, one rayon task per (row, head):
//!
//!   S_a = e^{g_t} S_{t-1};  u_t = v_t − S_aᵀ k_t;  δ_t = β_t u_t;  S_t = S_a + k_t δ_tᵀ;
//!   o_t = S_tᵀ (q_t / √dk)
//!
//! Backward walks the positions in reverse carrying dS = dL/dS_t:
//!
//!   dS += q̂_t do_tᵀ;  dq_t = S_t do_t / √dk;  dδ = dSᵀ k_t;  dk_t = dS δ_t;
//!   dβ_t = dδ · u_t;  dv_t = β_t dδ;  dS += k_t (−dv_t)ᵀ;  dk_t += S_a (−dv_t);
//!   dg_t = Σ S_a ⊙ dS;  dS ← e^{g_t} dS   (now dL/dS_{t-1})
//!
//! which needs S_{t-1} at every step. Forward keeps nothing but its output; backward reruns
//! the recurrence once keeping the state at every BLOCK-th position, then per block (last
//! first) reruns the block keeping each step's S_{t-1} (BLOCK dk dv numbers a task) and
//! walks it back. Memory: T/BLOCK + BLOCK states per task, never T of them.
//!
//! The state restarts at zero at every segment start (a packed stream's row boundary), and
//! no gradient crosses a boundary.

use std::sync::Arc;

use anyhow::{ensure, Result};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::model::fused::{dot, kernel_serves, Real};

/// Positions between the states backward keeps (a task holds T/BLOCK + BLOCK states).
const BLOCK: usize = 64;

/// Whether the fused op serves these inputs (CPU, f32 or f64).
pub fn serves(q: &Tensor) -> bool {
    kernel_serves(&[q])
}

/// o [B, H, T, dv] of the gated delta rule from a zero state, restarting at every position
/// in `starts` (ascending, first 0; the packed stream's row starts along T; every row b
/// shares them). q, k: [B, H, T, dk] (L2-normalised; scaled by dk^-1/2 here), v: [B, H, T,
/// dv], g (log decay), beta: [B, H, T]. Differentiable in all five.
pub fn gated_delta_rule(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    g: &Tensor,
    beta: &Tensor,
    starts: &[usize],
) -> Result<Tensor> {
    let (b, h, t, dk) = q.dims4()?;
    let dv = v.dim(3)?;
    ensure!(k.dims() == q.dims(), "delta rule: k {:?} differs from q {:?}", k.dims(), q.dims());
    ensure!(v.dims() == [b, h, t, dv], "delta rule: v {:?} does not match q {:?}", v.dims(), q.dims());
    ensure!(g.dims() == [b, h, t] && beta.dims() == [b, h, t], "delta rule: g, beta must be [B, H, T]");
    ensure!(starts.first() == Some(&0), "delta rule: the first segment must start at 0");
    ensure!(
        starts.windows(2).all(|w| w[0] < w[1]) && starts.last().is_some_and(|&s| s < t.max(1)),
        "delta rule: segment starts {starts:?} must ascend within 0..{t}"
    );
    ensure!(kernel_serves(&[q, k, v, g, beta]), "delta rule: the fused op runs on CPU f32 or f64 tensors");
    // one packed input [B, H, T, 2dk + dv + 2], so autograd sees one node (cat's backward
    // splits the gradient back)
    let x = Tensor::cat(&[q, k, v, &g.unsqueeze(3)?, &beta.unsqueeze(3)?], 3)?.contiguous()?;
    let mut start = vec![false; t];
    for &s in starts {
        start[s] = true;
    }
    Ok(x.apply_op1(DeltaRule { dims: Dims { t, dk, dv }, start: Arc::new(start) })?)
}

#[derive(Debug, Clone, Copy)]
struct Dims {
    t: usize,
    dk: usize,
    dv: usize,
}

impl Dims {
    /// Elements of one position of the packed input: q, k, v, g, beta.
    fn width(&self) -> usize {
        2 * self.dk + self.dv + 2
    }
}

/// One position of the packed input.
struct Position<'a, T> {
    q: &'a [T],
    k: &'a [T],
    v: &'a [T],
    g: T,
    beta: T,
}

fn position<T: Real>(x: &[T], d: Dims, t: usize) -> Position<'_, T> {
    let row = &x[t * d.width()..(t + 1) * d.width()];
    let (q, rest) = row.split_at(d.dk);
    let (k, rest) = rest.split_at(d.dk);
    let (v, rest) = rest.split_at(d.dv);
    Position { q, k, v, g: rest[0], beta: rest[1] }
}

/// y += a x
#[inline(always)]
fn axpy<T: Real>(y: &mut [T], a: T, x: &[T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// One forward step on a task's state s: S_{t-1} -> S_t; leaves u_t in `u` and δ_t in
/// `delta`, and writes o_t = S_tᵀ q̂ into `o` when given.
#[inline(always)]
fn step<T: Real>(s: &mut [T], p: &Position<T>, scale: T, u: &mut [T], delta: &mut [T], o: Option<&mut [T]>) {
    let dv = p.v.len();
    let a = p.g.exp();
    // S_a = a S, and Σ_i k_i S_a[i] (S_aᵀ k) beside it
    u.fill(T::zero());
    for (row, &ki) in s.chunks_exact_mut(dv).zip(p.k) {
        for x in row.iter_mut() {
            *x *= a;
        }
        axpy(u, ki, row);
    }
    for ((u, d), &v) in u.iter_mut().zip(delta.iter_mut()).zip(p.v) {
        *u = v - *u;
        *d = p.beta * *u;
    }
    match o {
        Some(o) => {
            o.fill(T::zero());
            for ((row, &ki), &qi) in s.chunks_exact_mut(dv).zip(p.k).zip(p.q) {
                axpy(row, ki, delta);
                axpy(o, qi * scale, row);
            }
        }
        None => {
            for (row, &ki) in s.chunks_exact_mut(dv).zip(p.k) {
                axpy(row, ki, delta);
            }
        }
    }
}

/// The forward of one (row, head): x [T, width] -> o [T, dv].
#[inline(always)]
fn forward_task<T: Real>(x: &[T], o: &mut [T], d: Dims, start: &[bool]) {
    let scale = T::from_f64((d.dk as f64).powf(-0.5));
    let mut s = vec![T::zero(); d.dk * d.dv];
    let (mut u, mut delta) = (vec![T::zero(); d.dv], vec![T::zero(); d.dv]);
    for (t, o) in o.chunks_exact_mut(d.dv).enumerate() {
        if start[t] {
            s.fill(T::zero());
        }
        step(&mut s, &position(x, d, t), scale, &mut u, &mut delta, Some(o));
    }
}

/// The backward of one (row, head): x [T, width], do [T, dv] -> dx [T, width].
#[inline(always)]
fn backward_task<T: Real>(x: &[T], dout: &[T], dx: &mut [T], d: Dims, start: &[bool]) {
    let (dk, dv, w) = (d.dk, d.dv, d.width());
    let scale = T::from_f64((dk as f64).powf(-0.5));
    let (mut u, mut delta) = (vec![T::zero(); dv], vec![T::zero(); dv]);
    // the state entering every block (after its reset, if the block starts a segment: the
    // reset is redone on the rerun)
    let blocks = d.t.div_ceil(BLOCK);
    let mut entering = vec![T::zero(); blocks * dk * dv];
    let mut s = vec![T::zero(); dk * dv];
    for t in 0..d.t {
        if t % BLOCK == 0 {
            entering[t / BLOCK * dk * dv..][..dk * dv].copy_from_slice(&s);
        }
        if start[t] {
            s.fill(T::zero());
        }
        step(&mut s, &position(x, d, t), scale, &mut u, &mut delta, None);
    }

    // per block, last first: S_{t-1}, u_t, δ_t of each step, then the walk back
    let mut prev = vec![T::zero(); BLOCK * dk * dv];
    let mut us = vec![T::zero(); BLOCK * dv];
    let mut deltas = vec![T::zero(); BLOCK * dv];
    let mut ds = vec![T::zero(); dk * dv]; // dL/dS_t
    let (mut st, mut ddelta, mut dkv) = (vec![T::zero(); dv], vec![T::zero(); dv], vec![T::zero(); dv]);
    for blk in (0..blocks).rev() {
        let (t0, t1) = (blk * BLOCK, ((blk + 1) * BLOCK).min(d.t));
        s.copy_from_slice(&entering[blk * dk * dv..][..dk * dv]);
        for (j, &restart) in start[t0..t1].iter().enumerate() {
            let t = t0 + j;
            if restart {
                s.fill(T::zero());
            }
            prev[j * dk * dv..][..dk * dv].copy_from_slice(&s);
            let (u_t, d_t) = (&mut us[j * dv..][..dv], &mut deltas[j * dv..][..dv]);
            step(&mut s, &position(x, d, t), scale, u_t, d_t, None);
        }
        for t in (t0..t1).rev() {
            let j = t - t0;
            let p = position(x, d, t);
            let a = p.g.exp();
            let sp = &prev[j * dk * dv..][..dk * dv];
            let (u_t, d_t) = (&us[j * dv..][..dv], &deltas[j * dv..][..dv]);
            let do_t = &dout[t * dv..][..dv];
            let dx_t = &mut dx[t * w..][..w];
            let (dq, rest) = dx_t.split_at_mut(dk);
            let (dkey, rest) = rest.split_at_mut(dk);
            let (dval, rest) = rest.split_at_mut(dv);
            // the output o = S_tᵀ q̂ and the update S_t = S_a + k δᵀ
            ddelta.fill(T::zero());
            for i in 0..dk {
                let ds_row = &mut ds[i * dv..][..dv];
                for ((x, &sp), &dl) in st.iter_mut().zip(&sp[i * dv..][..dv]).zip(d_t) {
                    *x = a * sp + p.k[i] * dl;
                }
                axpy(ds_row, p.q[i] * scale, do_t);
                dq[i] = scale * dot(&st, do_t);
                axpy(&mut ddelta, p.k[i], ds_row);
                dkey[i] = dot(ds_row, d_t);
            }
            // δ = β u, u = v − S_aᵀ k
            rest[1] = dot(&ddelta, u_t);
            for ((dvj, kv), &dd) in dval.iter_mut().zip(dkv.iter_mut()).zip(&ddelta) {
                *dvj = p.beta * dd;
                *kv = -*dvj;
            }
            // S_aᵀ k, then S_a = e^g S_{t-1}
            let mut dg = T::zero();
            for i in 0..dk {
                let ds_row = &mut ds[i * dv..][..dv];
                for (x, &sp) in st.iter_mut().zip(&sp[i * dv..][..dv]) {
                    *x = a * sp; // S_a's row i
                }
                axpy(ds_row, p.k[i], &dkv);
                dkey[i] += dot(&st, &dkv);
                dg += dot(&st, ds_row);
                for x in ds_row.iter_mut() {
                    *x *= a;
                }
            }
            rest[0] = dg;
            if start[t] {
                // S_{t-1} was the reset's zero: nothing flows into the segment before
                ds.fill(T::zero());
            }
        }
    }
}

/// The forward over every (row, head), tasks in parallel: x [BH, T, width] -> o [BH, T, dv].
fn forward<T: Real>(x: &[T], d: Dims, start: &[bool]) -> Vec<T> {
    let tasks = x.len() / (d.t * d.width());
    let mut o = vec![T::zero(); tasks * d.t * d.dv];
    o.par_chunks_mut(d.t * d.dv).zip(x.par_chunks(d.t * d.width())).for_each(|(o, x)| {
        #[cfg(target_arch = "x86_64")]
        if simd::available() {
            // SAFETY: the CPU has the features `simd` compiles for.
            return unsafe { simd::forward_task(x, o, d, start) };
        }
        forward_task(x, o, d, start)
    });
    o
}

/// The backward over every (row, head): x [BH, T, width], do [BH, T, dv] -> dx.
fn backward<T: Real>(x: &[T], dout: &[T], d: Dims, start: &[bool]) -> Vec<T> {
    let mut dx = vec![T::zero(); x.len()];
    dx.par_chunks_mut(d.t * d.width())
        .zip(x.par_chunks(d.t * d.width()).zip(dout.par_chunks(d.t * d.dv)))
        .for_each(|(dx, (x, dout))| {
            #[cfg(target_arch = "x86_64")]
            if simd::available() {
                // SAFETY: as in `forward`.
                return unsafe { simd::backward_task(x, dout, dx, d, start) };
            }
            backward_task(x, dout, dx, d, start)
        });
    dx
}

/// The same task bodies compiled for AVX2 + FMA: the loops over a state row (dv contiguous
/// numbers) then run 8 f32 lanes wide; the baseline x86-64 target has 4.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::*;

    pub fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn forward_task<T: Real>(x: &[T], o: &mut [T], d: Dims, start: &[bool]) {
        super::forward_task(x, o, d, start)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn backward_task<T: Real>(x: &[T], dout: &[T], dx: &mut [T], d: Dims, start: &[bool]) {
        super::backward_task(x, dout, dx, d, start)
    }
}

fn slice<'a, T: Real>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [T]> {
    crate::model::fused::contiguous::<T>("gated delta rule", s, l)
}

struct DeltaRule {
    dims: Dims,
    /// start[t]: the state restarts at position t.
    start: Arc<Vec<bool>>,
}

impl CustomOp1 for DeltaRule {
    fn name(&self) -> &'static str {
        "gated-delta-rule"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.dims;
        let dims = l.dims();
        let out_shape = Shape::from((dims[0], dims[1], d.t, d.dv));
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(forward(slice::<f32>(s, l)?, d, &self.start)),
            CpuStorage::F64(_) => CpuStorage::F64(forward(slice::<f64>(s, l)?, d, &self.start)),
            _ => candle_core::bail!("gated delta rule: f32 or f64 only"),
        };
        Ok((out, out_shape))
    }

    fn bwd(&self, x: &Tensor, _o: &Tensor, dout: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let back = DeltaRuleBackward { dims: self.dims, start: self.start.clone() };
        Ok(Some(x.apply_op2_no_bwd(&dout.contiguous()?, &back)?))
    }
}

struct DeltaRuleBackward {
    dims: Dims,
    start: Arc<Vec<bool>>,
}

impl CustomOp2 for DeltaRuleBackward {
    fn name(&self) -> &'static str {
        "gated-delta-rule-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.dims;
        let out = match xs {
            CpuStorage::F32(_) => {
                CpuStorage::F32(backward(slice::<f32>(xs, xl)?, slice::<f32>(ds, dl)?, d, &self.start))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(backward(slice::<f64>(xs, xl)?, slice::<f64>(ds, dl)?, d, &self.start))
            }
            _ => candle_core::bail!("gated delta rule backward: f32 or f64 only"),
        };
        Ok((out, xl.shape().clone()))
    }
}
