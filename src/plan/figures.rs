//! The plan's arithmetic: bytes a worker holds at its peak, item by item, from the model's
//! config.json and the run's settings alone (no weights are read).
//!
//! Notation: D hidden, F MLP intermediate, L layers, V vocabulary, H / Hkv query / key-value
//! heads of Dh dims, w bytes per element of the model dtype (f32 4, bf16 2), T tokens of
//! the largest packed micro-batch. Counts are elements per token unless a name says bytes.
//!
//! What autograd keeps: candle holds every intermediate tensor of a differentiable forward
//! until its backward ends, so a layer's saved activations are the sum of the tensors its
//! forward makes (each copy counted below, with the op that makes it).

use crate::model::config::LayerType;
use crate::model::{LoraConfig, ModelConfig};

/// Copies of a [T, D] row an RMSNorm keeps: its output (the fused kernel, model::fused; the
/// input is the previous op's output, counted there).
const NORM_COPIES: u64 = 1;
/// Copies of chunk x V the log-prob head holds at once: the logits under autograd, their
/// gradient, and the matmul's operand of the head's backward (the fused target log-prob
/// kernel keeps no log-softmax).
const LOGPROB_COPIES: u64 = 3;
/// Live f32 copies of one parameter beyond the optimizer's state while AdamW updates it at
/// every step after the first: the new p, m and v while the old m and v are still held.
pub const ADAMW_TEMPS: u64 = 3;
/// Gradients a layer's backward holds at once, in tenths of the layer's graph (measured with
/// `polaris-tui bench plan`, T = 1024..4096). An attention layer (tiny qwen3, fused norm, RoPE
/// and SwiGLU kernels): 0.7 of its graph without checkpointing and 1.0 over the recomputed
/// graph with it (plan / measured 0.95-1.08), since the backward stores a node's first
/// gradient instead of adding it to a zero-filled buffer (vendor/README.md; it was 1.2 with
/// that buffer). A DeltaNet layer, measured before that change and not re-measured: about 1.2
/// of its graph with the fused short conv and delta rule (the CPU's), 2.1 of the chunked
/// form's larger graph in composed ops (what a GPU runs), and 0.6 over the recomputed graph;
/// upper bounds now. With the DeltaNet layer's gated norm counted as the host's kernels run
/// it, the 50M Qwen3.5's plan reads 0.89-1.07 x the measured peak (T = 512..4096, with and
/// without checkpointing; the tiny model 0.96-1.08).
const GRADS_IN_FLIGHT_TENTHS: u64 = 7;
const GRADS_IN_FLIGHT_FUSED_DELTANET_TENTHS: u64 = 12;
const GRADS_IN_FLIGHT_DELTANET_TENTHS: u64 = 21;
const GRADS_IN_FLIGHT_CHECKPOINTED_TENTHS: u64 = 10;
const GRADS_IN_FLIGHT_CHECKPOINTED_DELTANET_TENTHS: u64 = 6;
/// Peak RSS over peak heap during training (glibc keeps freed blocks of many threads'
/// arenas): measured 1.04-1.10 on the tiny model; in percent.
const ALLOCATOR_SLACK_PERCENT: u64 = 105;
/// candle's KvCache grows by this many positions (the caches are made with 512).
pub const KV_GROW: u64 = 512;

/// What the plan needs of a run, per worker.
#[derive(Debug, Clone)]
pub struct Shape {
    pub model: ModelConfig,
    /// Bytes per element of weights and activations (f32 4, bf16 / f16 2).
    pub w: u64,
    pub lora: Option<LoraConfig>,
    /// A frozen reference model for the KL term (step.loss.kl_coef != 0).
    pub reference: bool,
    pub checkpoint_layers: bool,
    /// DeltaNet layers run the CPU's fused delta-rule op (model::deltanet::fused), which
    /// keeps no intermediate for backward; elsewhere (CUDA) the chunked form's graph.
    pub fused_delta_rule: bool,
    /// Positions per log-prob chunk (step.logprob_chunk).
    pub logprob_chunk: u64,
    /// Tokens of the largest micro-batch a worker packs.
    pub tokens: u64,
    /// Rows generated together (a group's policy rows) and the positions each caches
    /// (prompt + max_new_tokens).
    pub generation_rows: u64,
    pub generation_tokens: u64,
    /// Prompt positions prefilled at once in generation.
    pub prompt_tokens: u64,
}

/// Bytes one worker holds, item by item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Every weight (and LoRA adapter) in the model dtype.
    pub weights: u64,
    /// The frozen reference model (KL term), weights only.
    pub reference: u64,
    /// Trainable parameters' gradients: the micro-batches' running sum and the backward in
    /// flight.
    pub gradients: u64,
    /// f32 master weights the optimizer updates (CUDA, a full fine-tune in bf16 / f16: this
    /// rank's ZeRO-1 shard; 0 on the host, where the weights are their own master).
    pub master: u64,
    /// AdamW's two f32 moments per trainable parameter (the primary worker holds them; on
    /// CUDA, this rank's ZeRO-1 shard).
    pub optimizer: u64,
    /// AdamW's working copies of the largest trainable parameter during the update.
    pub optimizer_update: u64,
    /// What the forward keeps for backward over the largest micro-batch.
    pub activations: u64,
    /// One layer's backward: its recomputed graph (checkpointing) and gradients in flight.
    pub layer_working_set: u64,
    /// The log-prob head's chunk x V copies, and the logits pass 1 keeps for pass 2.
    pub logprob_chunk: u64,
    /// A group's generation caches (KV per attention layer, DeltaNet state) with the copy
    /// a growing cache makes, and the prompt's prefill scores.
    pub generation: u64,
}

impl Figures {
    /// What training holds on top of the resident weights.
    pub fn training(&self) -> u64 {
        (self.gradients + self.activations + self.layer_working_set.max(self.logprob_chunk))
            * ALLOCATOR_SLACK_PERCENT
            / 100
    }
}

/// A model's linear projections: (canonical path, in, out) for every layer.
pub fn projections(m: &ModelConfig) -> Vec<(String, u64, u64)> {
    let (d, f) = (m.hidden_size as u64, m.intermediate_size as u64);
    let q = (m.num_attention_heads * m.head_dim) as u64;
    let kv = (m.num_key_value_heads * m.head_dim) as u64;
    let gated = m.architecture == crate::model::Architecture::Qwen35;
    let mut out = Vec::new();
    for (i, t) in m.layer_types.iter().enumerate() {
        let p = format!("model.layers.{i}");
        match (t, &m.linear) {
            (LayerType::LinearAttention, Some(l)) => {
                let a = format!("{p}.linear_attn");
                out.push((format!("{a}.in_proj_qkv"), d, l.conv_dim() as u64));
                out.push((format!("{a}.in_proj_z"), d, l.value_dim() as u64));
                out.push((format!("{a}.in_proj_b"), d, l.num_value_heads as u64));
                out.push((format!("{a}.in_proj_a"), d, l.num_value_heads as u64));
                out.push((format!("{a}.out_proj"), l.value_dim() as u64, d));
            }
            _ => {
                let a = format!("{p}.self_attn");
                out.push((format!("{a}.q_proj"), d, if gated { 2 * q } else { q }));
                out.push((format!("{a}.k_proj"), d, kv));
                out.push((format!("{a}.v_proj"), d, kv));
                out.push((format!("{a}.o_proj"), q, d));
            }
        }
        out.push((format!("{p}.mlp.gate_proj"), d, f));
        out.push((format!("{p}.mlp.up_proj"), d, f));
        out.push((format!("{p}.mlp.down_proj"), f, d));
    }
    out
}

/// Parameters of the LoRA adapters (A: [r, in], B: [out, r] per targeted projection).
pub fn adapter_parameters(m: &ModelConfig, lora: &LoraConfig) -> u64 {
    let r = lora.r as u64;
    projections(m).iter().filter(|(name, _, _)| lora.targets(name)).map(|(_, i, o)| r * (i + o)).sum()
}

/// Elements per token that a LoRA adapter adds to a projection's forward: x Aᵀ [r], then
/// its B product, the scale and the sum [out] each.
fn adapter_activations(m: &ModelConfig, lora: Option<&LoraConfig>, layer: usize) -> u64 {
    let Some(lora) = lora else { return 0 };
    let prefix = format!("model.layers.{layer}.");
    projections(m)
        .iter()
        .filter(|(name, _, _)| name.starts_with(&prefix) && lora.targets(name))
        .map(|(_, _, o)| lora.r as u64 + 3 * o)
        .sum()
}

/// Elements per token one layer's differentiable forward keeps, in the model dtype and in
/// f32 (the attention's log-sum-exp, DeltaNet's recurrence, which run in f32). `half`: the
/// model's dtype is 2 bytes, so its conversions to f32 copy (in an f32 model they are views).
fn layer_activations(
    m: &ModelConfig,
    layer: usize,
    lora: Option<&LoraConfig>,
    fused_delta_rule: bool,
    half: bool,
) -> (u64, u64) {
    let (d, f) = (m.hidden_size as u64, m.intermediate_size as u64);
    let h = m.num_attention_heads as u64;
    let q = h * m.head_dim as u64;
    let kv = (m.num_key_value_heads * m.head_dim) as u64;
    // two norms, two residual sums, the mixer's output projection
    let mut model = 2 * NORM_COPIES * d + 2 * d + d;
    // MLP: gate, up, silu(gate) ⊙ up (one fused kernel), down
    model += 3 * f + d;
    let mut f32s = 0;
    match (m.layer_types[layer], &m.linear) {
        (LayerType::LinearAttention, Some(l)) => {
            let (conv, kd, vd) = (l.conv_dim() as u64, l.key_dim() as u64, l.value_dim() as u64);
            let (nv, dk, dv) = (l.num_value_heads as u64, l.key_head_dim as u64, l.value_head_dim as u64);
            let rep = nv / l.num_key_heads as u64;
            // projections qkv, z, b, a; the short conv: its fused op's output on the host;
            // elsewhere the composed ops' cat, 2 per tap and silu
            model += conv + vd + 2 * nv;
            model += if fused_delta_rule { conv } else { conv + 2 * l.conv_kernel as u64 * conv + conv };
            // q, k: f32 copy, l2-norm (x², x / norm), repeated to value heads, made contiguous
            f32s += 2 * (3 * kd + 2 * kd * rep);
            // v: its heads copied out of the conv output, then laid out [B, Hv, T, dv] (a
            // half-precision model's f32 copy between them); beta, g (softplus: 5 ops)
            f32s += 2 * vd + 8 * nv;
            if half {
                model += vd;
            }
            if fused_delta_rule {
                // the fused op (model::deltanet::fused): its packed input (q, k, v, g, β)
                // and its output, per value head; it keeps no state for backward
                f32s += nv * (2 * dk + dv + 2) + nv * dv;
            } else {
                // chunked rule per value head: padded and scaled q/k/v, k·β, v·β, decay
                // [C, C] (diff, masked, exp, masked), A, its solve (one op keeping only
                // (I - A)⁻¹: C per position), T⁻¹ V, T⁻¹ K·decay,
                // per chunk: q kᵀ masked (3 C), v_new, products (3 dv), state updates
                // (5 dk dv / C)
                let c = crate::model::deltanet::CHUNK as u64;
                f32s += nv * (3 * dk + 2 * dv + 2 * dk + 4 * c + 4 * c + c + 2 * c);
                f32s += nv * (dv + 2 * dk + 3 * c + 4 * dv + 5 * dk * dv / c);
            }
            if fused_delta_rule && !half {
                // gated norm on the host's kernels, the model computing in f32: the rule's
                // output made contiguous for the fused RMSNorm, its output, silu(z) ⊙ it
                // (one fused op); the conversions to and from f32 are no-ops
                f32s += 3 * vd;
            } else {
                // gated norm (f32 x, norm 3, silu(z), product); the output back in the
                // model dtype
                f32s += 6 * vd;
                model += vd;
            }
        }
        _ => {
            let qk_norm = m.architecture != crate::model::Architecture::Llama;
            let gated = m.architecture == crate::model::Architecture::Qwen35;
            // packed [T, heads, Dh] layout (no transposes): projections (q doubled by the
            // gate in qwen3_5, whose q half is copied out for its norm), the per-head q/k
            // norms, RoPE's output (the fused kernel; a partial rotary also copies the rotary
            // part out and concatenates the result with the rest)
            let rot = m.partial_rotary_factor;
            model += if gated { 3 * q } else { q } + 2 * kv;
            if qk_norm {
                model += NORM_COPIES * (q + kv);
            }
            let rope_copies = if rot >= 1.0 { 1.0 } else { 1.0 + 2.0 * rot };
            model += (rope_copies * (q + kv) as f64) as u64;
            // blockwise attention keeps its output [T, H, Dh] and one f32 log-sum-exp per
            // (position, head), never a score
            model += q;
            f32s += h;
            if gated {
                model += 2 * q; // sigmoid(gate), times the output
            }
        }
    }
    (model + adapter_activations(m, lora, layer), f32s)
}

/// Elements per token (model dtype, f32) of a blockwise attention backward in flight: dq,
/// dk, dv accumulated in f32.
fn attention_backward(m: &ModelConfig, layer: usize) -> u64 {
    match m.layer_types[layer] {
        LayerType::FullAttention => ((m.num_attention_heads + 2 * m.num_key_value_heads) * m.head_dim) as u64,
        LayerType::LinearAttention => 0,
    }
}

/// Bytes per token the forward of layer `i` keeps.
pub fn layer_bytes_per_token(s: &Shape, i: usize) -> u64 {
    let (model, f32s) = layer_activations(&s.model, i, s.lora.as_ref(), s.fused_delta_rule, s.w < 4);
    model * s.w + f32s * 4
}

/// Saved activations for backward, bytes, over `s.tokens` tokens: every layer's graph, or
/// with checkpoint_layers each layer's input [T, D] only; plus the embedding, the final
/// norm and the head's dL/dH (cat, cast, product).
pub fn activations(s: &Shape) -> u64 {
    let d = s.model.hidden_size as u64;
    let layers = s.model.num_hidden_layers;
    let per_token = if s.checkpoint_layers {
        layers as u64 * d * s.w
    } else {
        (0..layers).map(|i| layer_bytes_per_token(s, i)).sum()
    };
    let head = (1 + NORM_COPIES + 3) * d * s.w + d * 4;
    (per_token + head) * s.tokens
}

/// One layer's backward, bytes: its gradients in flight (GRADS_IN_FLIGHT x its graph), the
/// attention's f32 accumulators, and with checkpointing the recomputed graph itself.
pub fn layer_working_set(s: &Shape) -> u64 {
    let layers = s.model.num_hidden_layers;
    let worst = (0..layers)
        .map(|i| {
            let graph = layer_bytes_per_token(s, i);
            let tenths = match (s.checkpoint_layers, s.model.layer_types[i]) {
                (false, LayerType::FullAttention) => GRADS_IN_FLIGHT_TENTHS,
                (false, LayerType::LinearAttention) if s.fused_delta_rule => {
                    GRADS_IN_FLIGHT_FUSED_DELTANET_TENTHS
                }
                (false, LayerType::LinearAttention) => GRADS_IN_FLIGHT_DELTANET_TENTHS,
                (true, LayerType::FullAttention) => 10 + GRADS_IN_FLIGHT_CHECKPOINTED_TENTHS,
                (true, LayerType::LinearAttention) => 10 + GRADS_IN_FLIGHT_CHECKPOINTED_DELTANET_TENTHS,
            };
            tenths * graph / 10 + 4 * attention_backward(&s.model, i)
        })
        .max()
        .unwrap_or(0);
    worst * s.tokens
}

/// The model's parameter count with its adapters, and the trainable part.
pub fn parameters(s: &Shape) -> (u64, u64) {
    let base = s.model.parameter_count() as u64;
    match &s.lora {
        Some(l) => {
            let a = adapter_parameters(&s.model, l);
            (base + a, a)
        }
        None => (base, base),
    }
}

/// The largest trainable tensor, elements (AdamW's working copies are of one tensor).
pub fn largest_trainable(s: &Shape) -> u64 {
    let m = &s.model;
    let embed = (m.vocab_size * m.hidden_size) as u64;
    let biggest_projection = projections(m).iter().map(|(_, i, o)| i * o).max().unwrap_or(0);
    match &s.lora {
        Some(l) => projections(m)
            .iter()
            .filter(|(n, _, _)| l.targets(n))
            .map(|(_, i, o)| l.r as u64 * i.max(o))
            .max()
            .unwrap_or(0),
        None => embed.max(biggest_projection),
    }
}

/// A group's generation: K and V of every attention layer for `generation_rows` rows, the
/// cache's capacity rounded up to its growth step, plus the copy growing one layer makes;
/// DeltaNet layers' recurrent state (f32) and conv window; the prefill's dense scores.
pub fn generation(s: &Shape) -> u64 {
    let m = &s.model;
    let rows = s.generation_rows;
    let capacity = s.generation_tokens.div_ceil(KV_GROW) * KV_GROW;
    let kv_layer = 2 * rows * (m.num_key_value_heads * m.head_dim) as u64 * capacity * s.w;
    let attention_layers = m.layer_types.iter().filter(|t| **t == LayerType::FullAttention).count() as u64;
    let linear_layers = m.num_hidden_layers as u64 - attention_layers;
    let delta_layer = m.linear.as_ref().map_or(0, |l| {
        rows * (l.num_value_heads * l.key_head_dim * l.value_head_dim) as u64 * 4
            + rows * (l.conv_dim() * (l.conv_kernel - 1)) as u64 * s.w
    });
    let grow_copy = if attention_layers > 0 { kv_layer / 2 } else { 0 };
    let prefill = 3 * rows * m.num_attention_heads as u64 * s.prompt_tokens * s.prompt_tokens * 4;
    let logits = 4 * rows * m.vocab_size as u64 * 4;
    attention_layers * kv_layer + linear_layers * delta_layer + grow_copy + prefill + logits
}

/// The log-prob head at its peak, bytes: LOGPROB_COPIES chunks x V, and the logits of the
/// whole micro-batch when pass 1 keeps them for pass 2 (model::logprobs::keeps_logits).
pub fn logprob_head(s: &Shape) -> u64 {
    use crate::model::logprobs::{keeps_logits, kept_logit_bytes};
    let v = s.model.vocab_size as u64;
    let chunks = LOGPROB_COPIES * s.logprob_chunk.min(s.tokens.max(1)) * v * 4;
    let kept = if keeps_logits(s.tokens, v, s.w) { s.tokens * v * kept_logit_bytes(s.w) } else { 0 };
    chunks + kept
}

/// Every figure of one worker.
pub fn figures(s: &Shape) -> Figures {
    let (params, trainable) = parameters(s);
    let reference = if s.reference { s.model.parameter_count() as u64 * s.w } else { 0 };
    Figures {
        weights: params * s.w,
        reference,
        gradients: 2 * trainable * s.w,
        master: 0,
        optimizer: 2 * trainable * 4,
        optimizer_update: ADAMW_TEMPS * largest_trainable(s) * 4,
        activations: activations(s),
        layer_working_set: layer_working_set(s),
        logprob_chunk: logprob_head(s),
        generation: generation(s),
    }
}
