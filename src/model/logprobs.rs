//! Per-token log-probabilities of target tokens, computed over chunks of positions so that
//! a long sequence never materialises [tokens x vocab] at once, forward and backward.
//!
//! Backward uses seeded backward passes (MODELS.md): the loss is a sum over tokens of a
//! function of each token's log-prob, so with c_i = dL/dlogp_i fixed,
//!   dL/dθ = Σ_i c_i dlogp_i/dθ,
//! which is the gradient of Σ_i c_i logp_i. The head is differentiated chunk by chunk
//! against detached hidden states, giving dL/dH; the body is then differentiated once
//! through Σ H ⊙ dL/dH.

use std::collections::HashMap;

use anyhow::{bail, Result};
use candle_core::{DType, Tensor, TensorId, Var, D};

use super::Model;

/// Positions per chunk: chunk x vocab logits exist at a time (256 x 248k x 4 B = 254 MB).
pub const DEFAULT_CHUNK: usize = 256;

/// Gradients by canonical parameter name.
pub type Gradients = Vec<(String, Tensor)>;

/// log p(target_i | h_i) for hidden rows h: [N, D] and targets [N] -> [N], in f32 for
/// half-precision models (the softmax needs the range), else in the model's dtype.
fn chunk_logprobs(h: &Tensor, lm_head: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logits = h.matmul(&lm_head.t()?)?; // [N, V]
    let logits = match logits.dtype() {
        DType::BF16 | DType::F16 => logits.to_dtype(DType::F32)?,
        _ => logits,
    };
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    Ok(logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?)
}

/// Log-probs of `targets` [B, T] given inputs `ids` [B, T] (target t follows input t):
/// returns [B, T] (f32, or f64 for an f64 model), no gradient kept.
pub fn logprobs(model: &Model, ids: &Tensor, targets: &Tensor, chunk: usize) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let hidden = model.hidden_states(ids)?.detach();
    let d = hidden.dim(2)?;
    let flat = hidden.reshape((b * t, d))?;
    let tgt = targets.flatten_all()?;
    let mut parts = Vec::new();
    for (start, len) in chunks(b * t, chunk) {
        parts.push(
            chunk_logprobs(&flat.narrow(0, start, len)?, model.lm_head(), &tgt.narrow(0, start, len)?)?
                .detach(),
        );
    }
    Ok(Tensor::cat(&parts, 0)?.reshape((b, t))?)
}

/// One forward and backward pass for a per-token loss.
///
/// `coefficients` receives the log-probs [B, T] and returns dL/dlogp [B, T]
/// (zero for padding). Returns the log-probs and the gradient of every trainable parameter.
pub fn logprobs_backward(
    model: &Model,
    ids: &Tensor,
    targets: &Tensor,
    chunk: usize,
    coefficients: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<(Tensor, Gradients)> {
    if model.trainable().is_empty() {
        bail!("no parameter of this model is trainable");
    }
    let (b, t) = ids.dims2()?;
    let hidden = model.hidden_states(ids)?; // graph kept for the body's backward
    let d = hidden.dim(2)?;
    let flat = hidden.detach().reshape((b * t, d))?;
    let tgt = targets.flatten_all()?;
    let spans = chunks(b * t, chunk);

    // pass 1: values only
    let mut parts = Vec::with_capacity(spans.len());
    for &(start, len) in &spans {
        parts.push(
            chunk_logprobs(&flat.narrow(0, start, len)?, model.lm_head(), &tgt.narrow(0, start, len)?)?
                .detach(),
        );
    }
    let logp = Tensor::cat(&parts, 0)?.reshape((b, t))?;
    let coeff = coefficients(&logp)?.to_dtype(logp.dtype())?.flatten_all()?;

    // pass 2: head gradients per chunk, and dL/dH
    let mut acc: HashMap<TensorId, Tensor> = HashMap::new();
    let mut dh_parts = Vec::with_capacity(spans.len());
    for &(start, len) in &spans {
        let h = Var::from_tensor(&flat.narrow(0, start, len)?.contiguous()?)?;
        let lp = chunk_logprobs(h.as_tensor(), model.lm_head(), &tgt.narrow(0, start, len)?)?;
        let seeded = (lp * coeff.narrow(0, start, len)?)?.sum_all()?;
        let grads = seeded.backward()?;
        // detached: dL/dH is a constant seed for the body, not a function of the head
        dh_parts.push(match grads.get(h.as_tensor()) {
            Some(g) => g.detach(),
            None => h.as_tensor().zeros_like()?,
        });
        accumulate(&mut acc, model, &grads)?;
    }
    let dh = Tensor::cat(&dh_parts, 0)?.reshape((b, t, d))?.to_dtype(hidden.dtype())?;

    // body: backward of Σ H ⊙ dL/dH
    let grads = (hidden * dh)?.sum_all()?.backward()?;
    accumulate(&mut acc, model, &grads)?;

    let mut out = Vec::with_capacity(model.trainable().len());
    for (name, var) in model.trainable() {
        let g = match acc.remove(&var.as_tensor().id()) {
            Some(g) => g,
            None => var.as_tensor().zeros_like()?,
        };
        out.push((name.clone(), g));
    }
    Ok((logp, out))
}

fn accumulate(
    acc: &mut HashMap<TensorId, Tensor>,
    model: &Model,
    grads: &candle_core::backprop::GradStore,
) -> Result<()> {
    for (_, var) in model.trainable() {
        let id = var.as_tensor().id();
        if let Some(g) = grads.get(var.as_tensor()) {
            let g = g.detach();
            let sum = match acc.remove(&id) {
                Some(prev) => (prev + g)?,
                None => g,
            };
            acc.insert(id, sum);
        }
    }
    Ok(())
}

/// (start, len) spans covering 0..n in steps of `size`.
fn chunks(n: usize, size: usize) -> Vec<(usize, usize)> {
    let size = size.max(1);
    (0..n).step_by(size).map(|s| (s, size.min(n - s))).collect()
}
