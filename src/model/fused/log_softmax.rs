//! The log-probability of each row's target under a softmax over the vocabulary:
//! out_i = x_{i,t_i} − lse_i, lse_i = log Σ_j exp x_{ij}, without a [rows, vocab] log-softmax.
//!
//! Backward: dx_{ij} = g_i (δ_{j,t_i} − exp(x_{ij} − lse_i)), one pass over the logits with
//! the forward's lse (kept by the op: [rows] numbers).

use std::sync::Mutex;

use anyhow::{ensure, Result};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::{contiguous, kernel_serves, Real};
use crate::model::flash_attention::cpu::Real as SoftmaxRows;

/// logits: [N, V]; targets: [N] (u32). Returns [N] log-probs, differentiable in the logits.
pub fn target_logprobs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, _) = logits.dims2()?;
    ensure!(targets.dims() == [n], "target_logprobs: targets {:?} for {n} rows", targets.dims());
    if !kernel_serves(&[logits]) {
        let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
        return Ok(logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?);
    }
    let targets: Vec<u32> = targets.to_dtype(candle_core::DType::U32)?.to_vec1()?;
    let op = TargetLogprobs { targets, lse: Mutex::new(Vec::new()) };
    Ok(logits.contiguous()?.apply_op1(op)?)
}

struct TargetLogprobs {
    targets: Vec<u32>,
    /// Each row's log-sum-exp, written by the forward for the backward.
    lse: Mutex<Vec<f64>>,
}

/// Rows per rayon task (a row is a whole vocabulary).
const ROWS_PER_TASK: usize = 4;

impl TargetLogprobs {
    fn target(&self, row: usize, v: usize) -> candle_core::Result<usize> {
        let t = self.targets[row] as usize;
        if t >= v {
            candle_core::bail!("target_logprobs: target {t} of row {row} is outside the vocabulary of {v}");
        }
        Ok(t)
    }
}

impl CustomOp1 for TargetLogprobs {
    fn name(&self) -> &'static str {
        "fused-target-logprobs"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real + SoftmaxRows>(
            op: &TargetLogprobs,
            s: &CpuStorage,
            l: &Layout,
        ) -> candle_core::Result<CpuStorage> {
            let x = contiguous::<T>("target_logprobs", s, l)?;
            let (n, v) = l.shape().dims2()?;
            for row in 0..n {
                op.target(row, v)?;
            }
            let mut lse = vec![0f64; n];
            lse.par_chunks_mut(ROWS_PER_TASK).zip(x.par_chunks(v * ROWS_PER_TASK)).for_each(|(lse, xs)| {
                let mut scratch = vec![T::zero(); v];
                for (lse, x) in lse.iter_mut().zip(xs.chunks_exact(v)) {
                    let m = <T as SoftmaxRows>::max_of(x);
                    scratch.copy_from_slice(x);
                    let sum = <T as SoftmaxRows>::exp_shifted(&mut scratch, m);
                    *lse = m.to_f64() + sum.to_f64().ln();
                }
            });
            let out: Vec<T> =
                (0..n).map(|i| T::from_f64(x[i * v + op.targets[i] as usize].to_f64() - lse[i])).collect();
            *op.lse.lock().unwrap_or_else(|p| p.into_inner()) = lse;
            Ok(T::to_cpu_storage_owned(out))
        }
        let out = match s {
            CpuStorage::F32(_) => run::<f32>(self, s, l)?,
            CpuStorage::F64(_) => run::<f64>(self, s, l)?,
            _ => candle_core::bail!("fused target_logprobs: f32 or f64 only"),
        };
        Ok((out, Shape::from(l.shape().dims()[0])))
    }

    fn bwd(&self, logits: &Tensor, _out: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let lse = self.lse.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let op = TargetLogprobsBackward { targets: self.targets.clone(), lse };
        Ok(Some(logits.apply_op2_no_bwd(&g.contiguous()?, &op)?))
    }
}

/// (logits [N, V], g [N]) -> dlogits [N, V].
struct TargetLogprobsBackward {
    targets: Vec<u32>,
    lse: Vec<f64>,
}

impl CustomOp2 for TargetLogprobsBackward {
    fn name(&self) -> &'static str {
        "fused-target-logprobs-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real + SoftmaxRows>(
            op: &TargetLogprobsBackward,
            (xs, xl): (&CpuStorage, &Layout),
            (gs, gl): (&CpuStorage, &Layout),
        ) -> candle_core::Result<CpuStorage> {
            let x = contiguous::<T>("target_logprobs backward", xs, xl)?;
            let g = contiguous::<T>("target_logprobs backward", gs, gl)?;
            let (n, v) = xl.shape().dims2()?;
            if op.lse.len() != n {
                candle_core::bail!("target_logprobs backward: no forward statistics for {n} rows");
            }
            let mut dx = x.to_vec();
            dx.par_chunks_mut(v).enumerate().for_each(|(i, row)| {
                // row <- exp(x - lse) = softmax, then times -g_i, plus g_i at the target
                <T as SoftmaxRows>::exp_shifted(row, T::from_f64(op.lse[i]));
                let gi = g[i];
                for p in row.iter_mut() {
                    *p = -(*p * gi);
                }
                row[op.targets[i] as usize] += gi;
            });
            Ok(T::to_cpu_storage_owned(dx))
        }
        let out = match xs {
            CpuStorage::F32(_) => run::<f32>(self, (xs, xl), (gs, gl))?,
            CpuStorage::F64(_) => run::<f64>(self, (xs, xl), (gs, gl))?,
            _ => candle_core::bail!("fused target_logprobs backward: f32 or f64 only"),
        };
        Ok((out, xl.shape().clone()))
    }
}
