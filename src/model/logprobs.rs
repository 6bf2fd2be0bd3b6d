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

use super::layers::uniform_segments;
use super::Model;

/// Positions per chunk: chunk x vocab logits exist at a time (256 x 248k x 4 B = 254 MB).
pub const DEFAULT_CHUNK: usize = 256;

/// Pass 1 of a training pass keeps every chunk's logits, with their graph to the head, for
/// pass 2 when all of them together take at most this many bytes: the head's forward matmul
/// then runs once instead of twice (a tenth of a 50M Qwen3.5's update at 4096 tokens, whose
/// vocabulary of 32k makes the head a third of the work). Past it, pass 2 recomputes each
/// chunk's logits and the head holds one chunk at a time. (PyTorch keeps the logits and
/// their log-softmax whatever their size.)
pub const KEEP_LOGITS_BYTES: u64 = 512 << 20;

/// Bytes a kept logit takes for a model of `w` bytes per element: the f32 logits, and for a
/// half-precision model the matmul's output they were cast from.
pub fn kept_logit_bytes(w: u64) -> u64 {
    w.max(4) + if w < 4 { w } else { 0 }
}

/// Whether a training pass over `n` positions keeps its logits between its two head passes.
pub fn keeps_logits(n: u64, vocab: u64, w: u64) -> bool {
    n * vocab * kept_logit_bytes(w) <= KEEP_LOGITS_BYTES
}

/// Gradients by canonical parameter name.
pub type Gradients = Vec<(String, Tensor)>;

/// log p(target_i | h_i) for hidden rows h: [N, D] and targets [N] -> [N], in f32 for
/// half-precision models (the softmax needs the range), else in the model's dtype.
fn chunk_logprobs(h: &Tensor, lm_head: &Tensor, targets: &Tensor) -> Result<Tensor> {
    Ok(chunk_distribution(h, lm_head, targets, false)?.0)
}

/// As `chunk_logprobs`, with each position's entropy −Σ p log p [N] (nats) when asked.
fn chunk_distribution(
    h: &Tensor,
    lm_head: &Tensor,
    targets: &Tensor,
    entropy: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let logits = h.matmul(&lm_head.t()?)?; // [N, V]
    let logits = match logits.dtype() {
        DType::BF16 | DType::F16 => logits.to_dtype(DType::F32)?,
        _ => logits,
    };
    // one kernel for the log-probs on every path (scoring, training, a frozen reference), so
    // equal weights give bit-equal log-probs; the entropy, when asked for, beside it
    let lp = super::fused::target_logprobs(&logits, targets)?;
    let ent = if entropy {
        let logp = candle_nn::ops::log_softmax(&logits.detach(), D::Minus1)?;
        Some((logp.exp()? * &logp)?.sum(D::Minus1)?.neg()?)
    } else {
        None
    };
    Ok((lp, ent))
}

/// What a training pass returns.
pub struct Backward {
    /// Log-probs of the targets ([B, T], or [N] for a packed stream; values, no graph).
    pub logprobs: Tensor,
    /// Entropy of each position's distribution, shaped as `logprobs`, when asked for.
    pub entropy: Option<Tensor>,
    /// The gradient of every trainable parameter, by name.
    pub grads: Gradients,
}

/// How a training pass runs.
#[derive(Debug, Clone, Copy)]
pub struct BackwardOptions {
    /// Positions per head chunk.
    pub chunk: usize,
    /// Also return per-position entropies (one extra exp over each chunk's logits).
    pub entropy: bool,
    /// Per-layer activation checkpointing: keep only each layer's input [B, T, D] from the
    /// forward, and recompute one layer's graph at a time in backward (about one more
    /// forward of compute; activation memory of one layer instead of all).
    pub checkpoint_layers: bool,
}

impl Default for BackwardOptions {
    fn default() -> Self {
        Self { chunk: DEFAULT_CHUNK, entropy: false, checkpoint_layers: false }
    }
}

/// How the body (everything below the head) is differentiated.
enum Body {
    /// `hidden` carries the whole graph.
    Graph,
    /// `hidden` carries only the final norm's graph over `last`; the layers are recomputed.
    Checkpointed { ctx: super::layers::TrainContext, embedded: Tensor, inputs: Vec<Tensor>, last: Var },
}

/// Log-probs of `targets` [B, T] given inputs `ids` [B, T] (target t follows input t; each
/// row on its own): returns [B, T] (f32, or f64 for an f64 model), no gradient kept.
pub fn logprobs(model: &Model, ids: &Tensor, targets: &Tensor, chunk: usize) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let lp =
        logprobs_packed(model, &ids.flatten_all()?, &targets.flatten_all()?, &uniform_segments(b, t), chunk)?;
    Ok(lp.reshape((b, t))?)
}

/// Log-probs of `targets` [N] given a packed stream `ids` [N] whose rows end at `cu_seqlens`:
/// [N], no gradient kept.
pub fn logprobs_packed(
    model: &Model,
    ids: &Tensor,
    targets: &Tensor,
    cu_seqlens: &[usize],
    chunk: usize,
) -> Result<Tensor> {
    let hidden = model.hidden_states_packed(ids, cu_seqlens)?.detach();
    let (_, n, d) = hidden.dims3()?;
    let flat = hidden.reshape((n, d))?;
    let mut parts = Vec::new();
    for (start, len) in chunks(n, chunk) {
        parts.push(
            chunk_logprobs(&flat.narrow(0, start, len)?, model.lm_head(), &targets.narrow(0, start, len)?)?
                .detach(),
        );
    }
    Ok(Tensor::cat(&parts, 0)?)
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
    let opts = BackwardOptions { chunk, ..BackwardOptions::default() };
    let out = backward(model, ids, targets, opts, coefficients)?;
    Ok((out.logprobs, out.grads))
}

/// `logprobs_backward` with options, over rows ids, targets: [B, T] of equal length (each
/// row on its own); log-probs and entropies come back as [B, T].
pub fn backward(
    model: &Model,
    ids: &Tensor,
    targets: &Tensor,
    opts: BackwardOptions,
    coefficients: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Backward> {
    let (b, t) = ids.dims2()?;
    let out = backward_packed(
        model,
        &ids.flatten_all()?,
        &targets.flatten_all()?,
        &uniform_segments(b, t),
        opts,
        |lp| Ok(coefficients(&lp.reshape((b, t))?)?.flatten_all()?),
    )?;
    Ok(Backward {
        logprobs: out.logprobs.reshape((b, t))?,
        entropy: out.entropy.map(|e| e.reshape((b, t))).transpose()?,
        grads: out.grads,
    })
}

/// The training pass over a packed stream: ids, targets [N], rows ending at `cu_seqlens`
/// (positions restart and attention stops at every boundary). `coefficients` receives the
/// log-probs [N] and returns dL/dlogp [N]; log-probs and entropies come back as [N].
pub fn backward_packed(
    model: &Model,
    ids: &Tensor,
    targets: &Tensor,
    cu_seqlens: &[usize],
    opts: BackwardOptions,
    coefficients: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Backward> {
    let chunk = opts.chunk;
    if model.trainable().is_empty() {
        bail!("no parameter of this model is trainable");
    }
    let n = ids.dim(0)?;
    let (hidden, body) = if opts.checkpoint_layers {
        let ctx = model.train_context(cu_seqlens)?;
        let embedded = model.embed(ids)?;
        let mut inputs = Vec::with_capacity(model.num_layers());
        let mut x = embedded.detach();
        for i in 0..model.num_layers() {
            inputs.push(x.clone());
            x = model.layer(&ctx, i, &x)?.detach();
        }
        let last = Var::from_tensor(&x)?;
        (model.final_norm(last.as_tensor())?, Body::Checkpointed { ctx, embedded, inputs, last })
    } else {
        (model.hidden_states_packed(ids, cu_seqlens)?, Body::Graph) // graph kept for the body's backward
    };
    let d = hidden.dim(2)?;
    let flat = hidden.detach().reshape((n, d))?;
    let tgt = targets.flatten_all()?;
    let spans = chunks(n, chunk);

    // pass 1: values, and each chunk's graph from its hidden rows when the logits are kept
    let vocab = model.lm_head().dim(0)? as u64;
    let keep = keeps_logits(n as u64, vocab, hidden.dtype().size_in_bytes() as u64);
    let mut parts = Vec::with_capacity(spans.len());
    let mut kept: Vec<Option<(Var, Tensor)>> = Vec::with_capacity(if keep { spans.len() } else { 0 });
    let mut entropies = Vec::new();
    for &(start, len) in &spans {
        let rows = flat.narrow(0, start, len)?;
        let h = if keep { Some(Var::from_tensor(&rows.contiguous()?)?) } else { None };
        let (lp, ent) = chunk_distribution(
            h.as_ref().map_or(&rows, |h| h.as_tensor()),
            model.lm_head(),
            &tgt.narrow(0, start, len)?,
            opts.entropy,
        )?;
        parts.push(lp.detach());
        entropies.extend(ent);
        if let Some(h) = h {
            kept.push(Some((h, lp)));
        }
    }
    let logp = Tensor::cat(&parts, 0)?;
    let entropy = if opts.entropy { Some(Tensor::cat(&entropies, 0)?) } else { None };
    let coeff = coefficients(&logp)?.to_dtype(logp.dtype())?.flatten_all()?;

    // pass 2: head gradients per chunk, and dL/dH
    let mut acc: HashMap<TensorId, Tensor> = HashMap::new();
    let mut dh_parts = Vec::with_capacity(spans.len());
    for (i, &(start, len)) in spans.iter().enumerate() {
        // a kept chunk is taken (and freed after its backward); otherwise recomputed
        let (h, lp) = match kept.get_mut(i).and_then(Option::take) {
            Some(chunk) => chunk,
            None => {
                let h = Var::from_tensor(&flat.narrow(0, start, len)?.contiguous()?)?;
                let lp = chunk_logprobs(h.as_tensor(), model.lm_head(), &tgt.narrow(0, start, len)?)?;
                (h, lp)
            }
        };
        let seeded = (lp * coeff.narrow(0, start, len)?)?.sum_all()?;
        let grads = seeded.backward()?;
        // detached: dL/dH is a constant seed for the body, not a function of the head
        dh_parts.push(match grads.get(h.as_tensor()) {
            Some(g) => g.detach(),
            None => h.as_tensor().zeros_like()?,
        });
        accumulate(&mut acc, model, &grads)?;
    }
    let dh = Tensor::cat(&dh_parts, 0)?.reshape((1, n, d))?.to_dtype(hidden.dtype())?;

    // body: backward of Σ H ⊙ dL/dH
    let grads = (hidden * dh)?.sum_all()?.backward()?;
    accumulate(&mut acc, model, &grads)?;
    if let Body::Checkpointed { ctx, embedded, mut inputs, last } = body {
        // layer by layer from the top: recompute layer i from its saved input, and backward
        // Σ y_i ⊙ dL/dy_i, which gives the layer's parameter gradients and dL/dx_i
        let mut seed = input_grad(&grads, &last)?;
        for i in (0..inputs.len()).rev() {
            let x = Var::from_tensor(&inputs.pop().expect("one input per layer"))?;
            let grads = (model.layer(&ctx, i, x.as_tensor())? * &seed)?.sum_all()?.backward()?;
            accumulate(&mut acc, model, &grads)?;
            seed = input_grad(&grads, &x)?;
        }
        let grads = (embedded * seed)?.sum_all()?.backward()?;
        accumulate(&mut acc, model, &grads)?;
    }

    let mut out = Vec::with_capacity(model.trainable().len());
    for (name, var) in model.trainable() {
        let g = match acc.remove(&var.as_tensor().id()) {
            Some(g) => g,
            None => var.as_tensor().zeros_like()?,
        };
        out.push((name.clone(), g));
    }
    Ok(Backward { logprobs: logp, entropy, grads: out })
}

/// dL/dx for a leaf x of a backward pass, detached (zeros when nothing depended on it).
fn input_grad(grads: &candle_core::backprop::GradStore, x: &Var) -> Result<Tensor> {
    Ok(match grads.get(x.as_tensor()) {
        Some(g) => g.detach(),
        None => x.as_tensor().zeros_like()?,
    })
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
