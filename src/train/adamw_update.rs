//! One AdamW update of one tensor, torch.optim.AdamW's arithmetic:
//!
//!   m ← β1 m + (1 − β1) g,  v ← β2 v + (1 − β2) g²
//!   p ← p (1 − lr·wd) − (lr / bias1) · m / (sqrt(v) / sqrt(bias2) + eps)
//!
//! On CPU tensors of f32 or f64 it is one pass over the four arrays (rayon over chunks);
//! elsewhere (GPU, other dtypes) the same formula in composed candle ops, about fifteen
//! passes with an allocation each (issue 18's profile counted the optimizer among the
//! elementwise chains). Both the unsharded `AdamW::apply` and ZeRO-1's shard update use it.

use anyhow::Result;
use candle_core::{DType, Device, Storage, Tensor, WithDType};
use rayon::prelude::*;

use super::optim::AdamWConfig;
use crate::model::fused::buffer;

/// Elements per rayon task: large enough to amortise a task, small enough to split a
/// million-element matrix over every core.
const CHUNK: usize = 1 << 14;

/// The update's scalars for one step.
#[derive(Clone, Copy, Debug)]
pub struct Coefficients {
    pub beta1: f64,
    pub beta2: f64,
    /// 1 − lr·wd
    pub decay: f64,
    /// lr / bias1
    pub step_size: f64,
    /// sqrt(bias2)
    pub sqrt_bias2: f64,
    pub eps: f64,
}

impl Coefficients {
    /// At `step` (1 for the first update) and learning rate `lr`.
    pub fn new(cfg: &AdamWConfig, step: usize, lr: f64) -> Self {
        let t = step as i32;
        Self {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            decay: 1.0 - lr * cfg.weight_decay,
            step_size: lr / (1.0 - cfg.beta1.powi(t)),
            sqrt_bias2: (1.0 - cfg.beta2.powi(t)).sqrt(),
            eps: cfg.eps,
        }
    }
}

/// (p', m', v') from the weights `p`, gradient `g` and moments (None: zeros, the first
/// update), all of one shape and dtype.
pub fn update(
    p: &Tensor,
    g: &Tensor,
    moments: Option<(&Tensor, &Tensor)>,
    c: Coefficients,
) -> Result<(Tensor, Tensor, Tensor)> {
    let host = matches!(p.device(), Device::Cpu) && matches!(p.dtype(), DType::F32 | DType::F64);
    if !host {
        return composed(p, g, moments, c);
    }
    match p.dtype() {
        DType::F32 => fused::<f32>(p, g, moments, c),
        _ => fused::<f64>(p, g, moments, c),
    }
}

/// The formula in candle ops, for any device and dtype (and the tests' reference).
pub fn composed(
    p: &Tensor,
    g: &Tensor,
    moments: Option<(&Tensor, &Tensor)>,
    c: Coefficients,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (m, v) = match moments {
        Some((m, v)) => {
            ((m * c.beta1)? + (g * (1.0 - c.beta1))?, (v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)
        }
        None => ((g * (1.0 - c.beta1)), (g.sqr()? * (1.0 - c.beta2))),
    };
    let (m, v) = (m?, v?);
    let denom = ((v.sqrt()? / c.sqrt_bias2)? + c.eps)?;
    let p = ((p * c.decay)? - ((&m / denom)? * c.step_size)?)?;
    Ok((p, m, v))
}

fn fused<F: WithDType + num_traits::Float + Send + Sync>(
    p: &Tensor,
    g: &Tensor,
    moments: Option<(&Tensor, &Tensor)>,
    c: Coefficients,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (p, g) = (p.contiguous()?, g.to_dtype(p.dtype())?.contiguous()?);
    let moments = match moments {
        Some((m, v)) => Some((m.to_dtype(p.dtype())?.contiguous()?, v.to_dtype(p.dtype())?.contiguous()?)),
        None => None,
    };
    let n = p.elem_count();
    let (mut pn, mut mn, mut vn) = (buffer::unfilled(n), buffer::unfilled(n), buffer::unfilled(n));
    let f = |x: f64| F::from(x).expect("a finite coefficient");
    // 1 / sqrt(bias2) multiplies, as candle's division of a tensor by a scalar does
    let (b1, b2, decay, step_size, inv_sqrt_bias2, eps) =
        (f(c.beta1), f(c.beta2), f(c.decay), f(c.step_size), f(1.0 / c.sqrt_bias2), f(c.eps));
    let (one_b1, one_b2) = (F::one() - b1, F::one() - b2);
    {
        let (ps, pl) = p.storage_and_layout();
        let (gs, gl) = g.storage_and_layout();
        let (ps, gs) = (host_slice::<F>(&ps, pl)?, host_slice::<F>(&gs, gl)?);
        let guards = moments.as_ref().map(|(m, v)| (m.storage_and_layout(), v.storage_and_layout()));
        let mv = match &guards {
            Some(((ms, ml), (vs, vl))) => Some((host_slice::<F>(ms, ml)?, host_slice::<F>(vs, vl)?)),
            None => None,
        };
        pn.par_chunks_mut(CHUNK)
            .zip(mn.par_chunks_mut(CHUNK))
            .zip(vn.par_chunks_mut(CHUNK))
            .enumerate()
            .for_each(|(i, ((po, mo), vo))| {
                let at = i * CHUNK;
                for j in 0..po.len() {
                    let k = at + j;
                    let gk = gs[k];
                    let (m0, v0) = mv.map_or((F::zero(), F::zero()), |(m, v)| (m[k], v[k]));
                    let m1 = b1 * m0 + one_b1 * gk;
                    let v1 = b2 * v0 + one_b2 * (gk * gk);
                    po[j].write(ps[k] * decay - step_size * (m1 / (v1.sqrt() * inv_sqrt_bias2 + eps)));
                    mo[j].write(m1);
                    vo[j].write(v1);
                }
            });
    }
    // SAFETY: the chunks cover all n elements of each, and every one was written
    let (pn, mn, vn) = unsafe { (buffer::filled(pn), buffer::filled(mn), buffer::filled(vn)) };
    let (shape, dev) = (p.shape().clone(), p.device().clone());
    Ok((
        Tensor::from_vec(pn, shape.clone(), &dev)?,
        Tensor::from_vec(mn, shape.clone(), &dev)?,
        Tensor::from_vec(vn, shape, &dev)?,
    ))
}

/// A contiguous CPU tensor's elements in place.
fn host_slice<'a, F: WithDType>(storage: &'a Storage, layout: &candle_core::Layout) -> Result<&'a [F]> {
    let Storage::Cpu(cpu) = storage else { anyhow::bail!("adamw: not a CPU tensor") };
    let Some((start, end)) = layout.contiguous_offsets() else { anyhow::bail!("adamw: not contiguous") };
    Ok(&F::cpu_storage_as_slice(cpu)?[start..end])
}
