//! Qwen3.5's text model (`qwen3_5`), after transformers' `modeling_qwen3_5.py`: a hybrid of
//! Gated DeltaNet layers (linear attention, `deltanet.rs`) and gated full-attention layers.
//! Norms are of the (1 + w) form, computed in f32; full attention rotates only the first
//! `partial_rotary_factor` of each head and gates its output with sigmoid(gate).
//!
//! Shapes: B batch, T new positions, D hidden, H heads, Dh head dim; for DeltaNet Hk key
//! heads and Hv value heads of dims dk, dv, C = 2·Hk·dk + Hv·dv conv channels.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::kv_cache::KvCache;

use super::config::{LayerType, LinearAttention, ModelConfig};
use super::decoder::{self, CacheState, Decoder};
use super::deltanet::{self, compute_dtype, l2_normalize, softplus, DeltaForm};
use super::flash_attention::varlen_attention;
use super::fused;
use super::layers::kernels::Kernels;
use super::layers::linear::Linear;
use super::layers::mlp::SwiGlu;
use super::layers::{
    apply_rope, attention, embed, gated_rms_norm, last_logits, rms_norm_one_plus, rope_inv_freq, rope_tables,
    select_kv_rows, CachedStep, Mask, TrainContext,
};
use super::params::{NormStyle, ParamBuilder};

/// Gated full attention: q_proj gives [query | gate] per head.
struct GatedAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: Tensor,
    k_norm: Tensor,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    rotary_dim: usize,
    eps: f64,
}

impl GatedAttention {
    fn load(p: &mut ParamBuilder, cfg: &ModelConfig, prefix: &str) -> Result<Self> {
        let (d, h, hkv, dh) =
            (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim);
        if cfg.attention_bias {
            bail!("qwen3_5 with attention_bias is not supported");
        }
        Ok(Self {
            q_proj: p.linear(&format!("{prefix}.q_proj"), 2 * h * dh, d, false)?,
            k_proj: p.linear(&format!("{prefix}.k_proj"), hkv * dh, d, false)?,
            v_proj: p.linear(&format!("{prefix}.v_proj"), hkv * dh, d, false)?,
            o_proj: p.linear(&format!("{prefix}.o_proj"), d, h * dh, false)?,
            q_norm: p.norm(&format!("{prefix}.q_norm.weight"), dh, NormStyle::OnePlus)?,
            k_norm: p.norm(&format!("{prefix}.k_norm.weight"), dh, NormStyle::OnePlus)?,
            n_heads: h,
            n_kv_heads: hkv,
            head_dim: dh,
            rotary_dim: cfg.rotary_dim(),
            eps: cfg.rms_norm_eps,
        })
    }

    /// RoPE on the first rotary_dim dims of each head; the rest pass through.
    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, kernels: Kernels) -> Result<Tensor> {
        if self.rotary_dim == self.head_dim {
            return apply_rope(x, cos, sin, kernels);
        }
        let rot = apply_rope(&x.narrow(D::Minus1, 0, self.rotary_dim)?.contiguous()?, cos, sin, kernels)?;
        let pass = x.narrow(D::Minus1, self.rotary_dim, self.head_dim - self.rotary_dim)?;
        Ok(Tensor::cat(&[&rot, &pass], D::Minus1)?)
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: (&Tensor, &Tensor),
        mask: Mask,
        cache: Option<&mut KvCache>,
        kernels: Kernels,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, hkv, dh) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let qg = self.q_proj.forward(x, kernels)?.reshape((b, t, h, 2 * dh))?;
        let q = qg.narrow(3, 0, dh)?;
        let gate = qg.narrow(3, dh, dh)?.reshape((b, t, h * dh))?;
        let q = rms_norm_one_plus(&q, &self.q_norm, self.eps, kernels)?.transpose(1, 2)?; // [B, H, T, Dh]
        let k = self.k_proj.forward(x, kernels)?.reshape((b, t, hkv, dh))?;
        let k = rms_norm_one_plus(&k, &self.k_norm, self.eps, kernels)?.transpose(1, 2)?;
        let v = self.v_proj.forward(x, kernels)?.reshape((b, t, hkv, dh))?.transpose(1, 2)?;
        let q = self.rope(&q, rope.0, rope.1, kernels)?;
        let k = self.rope(&k, rope.0, rope.1, kernels)?;
        let (k, v) = match cache {
            Some(c) => c.append(&k.contiguous()?, &v.contiguous()?)?,
            None => (k.contiguous()?, v.contiguous()?),
        };
        let out = attention(&q, &k, &v, mask, kernels)?; // [B, T, H*Dh]
        let out = (out * candle_nn::ops::sigmoid(&gate)?)?;
        self.o_proj.forward(&out, kernels)
    }

    /// The training form over a packed stream x: [1, N, D] -> [1, N, D]: blockwise attention
    /// that never crosses a row boundary, differentiable.
    fn forward_packed(&self, x: &Tensor, ctx: &TrainContext) -> Result<Tensor> {
        let n = x.dim(1)?;
        let kernels = Kernels::Differentiable;
        let (h, hkv, dh) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let qg = self.q_proj.forward(x, kernels)?.reshape((n, h, 2 * dh))?;
        let q = rms_norm_one_plus(&qg.narrow(2, 0, dh)?, &self.q_norm, self.eps, kernels)?; // [N, H, Dh]
        let gate = qg.narrow(2, dh, dh)?.reshape((1, n, h * dh))?;
        let k = self.k_proj.forward(x, kernels)?.reshape((n, hkv, dh))?;
        let k = rms_norm_one_plus(&k, &self.k_norm, self.eps, kernels)?;
        let v = self.v_proj.forward(x, kernels)?.reshape((n, hkv, dh))?;
        let rope = |x: &Tensor| -> Result<Tensor> {
            if self.rotary_dim == dh {
                return ctx.rope(x);
            }
            let rot = ctx.rope(&x.narrow(D::Minus1, 0, self.rotary_dim)?)?;
            let pass = x.narrow(D::Minus1, self.rotary_dim, dh - self.rotary_dim)?;
            Ok(Tensor::cat(&[&rot, &pass], D::Minus1)?)
        };
        let (q, k) = (rope(&q)?, rope(&k)?);
        let scale = 1.0 / (dh as f64).sqrt();
        let out = varlen_attention(&q, &k, &v.contiguous()?, &ctx.cu_seqlens, scale)?; // [N, H, Dh]
        let out = (out.reshape((1, n, h * dh))? * candle_nn::ops::sigmoid(&gate)?)?;
        self.o_proj.forward(&out, kernels)
    }
}

/// Generation state of one DeltaNet layer.
#[derive(Clone)]
pub struct DeltaState {
    /// The last kernel-1 pre-conv inputs: [B, K-1, C]
    conv: Tensor,
    /// The recurrent state: [B, Hv, dk, dv] (f32)
    recurrent: Tensor,
}

struct GatedDeltaNet {
    in_proj_qkv: Linear,
    in_proj_z: Linear,
    in_proj_b: Linear,
    in_proj_a: Linear,
    /// depthwise conv weights [C, K]
    conv1d: Tensor,
    a_log: Tensor,
    dt_bias: Tensor,
    norm: Tensor,
    out_proj: Linear,
    sizes: LinearAttention,
    eps: f64,
}

impl GatedDeltaNet {
    fn load(p: &mut ParamBuilder, cfg: &ModelConfig, l: &LinearAttention, prefix: &str) -> Result<Self> {
        let d = cfg.hidden_size;
        let (conv, nv, kernel) = (l.conv_dim(), l.num_value_heads, l.conv_kernel);
        let conv1d = p.custom(&format!("{prefix}.conv1d.weight"), &[conv, 1, kernel], |rng| {
            random_fill(rng, conv * kernel, 0.0, 0.3)
        })?;
        Ok(Self {
            in_proj_qkv: p.linear(&format!("{prefix}.in_proj_qkv"), conv, d, false)?,
            in_proj_z: p.linear(&format!("{prefix}.in_proj_z"), l.value_dim(), d, false)?,
            in_proj_b: p.linear(&format!("{prefix}.in_proj_b"), nv, d, false)?,
            in_proj_a: p.linear(&format!("{prefix}.in_proj_a"), nv, d, false)?,
            conv1d: conv1d.reshape((conv, kernel))?,
            // decay rates: A = exp(A_log) in (1, 16) as transformers initialises them
            a_log: p.custom(&format!("{prefix}.A_log"), &[nv], |rng| {
                use rand::Rng;
                (0..nv).map(|_| rng.random_range(1f32..16.0).ln()).collect()
            })?,
            dt_bias: p.custom(&format!("{prefix}.dt_bias"), &[nv], |_| vec![1.0; nv])?,
            norm: p.norm(&format!("{prefix}.norm.weight"), l.value_head_dim, NormStyle::Scale)?,
            out_proj: p.linear(&format!("{prefix}.out_proj"), d, l.value_dim(), false)?,
            sizes: l.clone(),
            eps: cfg.rms_norm_eps,
        })
    }

    /// x: [B, T, D]. `keep`: [B, T, 1] with 0 at left-padding positions (their inputs are
    /// zeroed so padding leaves the conv and recurrent state untouched).
    fn forward(
        &self,
        x: &Tensor,
        keep: Option<&Tensor>,
        state: Option<&mut Option<DeltaState>>,
        form: DeltaForm,
        kernels: Kernels,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let kernel = self.sizes.conv_kernel;
        let x = match keep {
            Some(m) => x.broadcast_mul(m)?,
            None => x.clone(),
        };
        let (qkv, z, beta, a) = self.project(&x, kernels)?;

        // depthwise causal conv over time, then SiLU: out_t = Σ_j w[:, j] · x_{t+j-(K-1)}
        let prev = match state.as_deref().and_then(|s| s.as_ref()) {
            Some(s) => s.conv.clone(),
            None => Tensor::zeros((b, kernel - 1, qkv.dim(2)?), qkv.dtype(), qkv.device())?,
        };
        let ext = Tensor::cat(&[&prev, &qkv], 1)?; // [B, T+K-1, C]
                                                   // the first K-1 outputs read before the history: computed and dropped
        let conv = fused::causal_conv_silu(&ext, &self.conv1d, &[0])?.narrow(1, kernel - 1, t)?;
        let new_conv = ext.narrow(1, t, kernel - 1)?;

        let (q, k, v, g, beta) = self.rule_inputs(&conv, &beta, &a)?;
        let initial = state.as_deref().and_then(|s| s.as_ref()).map(|s| s.recurrent.clone());
        let (out, last) = match (form, t) {
            (_, 1) | (DeltaForm::Recurrent, _) => {
                deltanet::recurrent(&q, &k, &v, &g, &beta, initial.as_ref())?
            }
            (DeltaForm::Chunked, _) => deltanet::chunked(&q, &k, &v, &g, &beta, initial.as_ref())?,
        };
        if let Some(slot) = state {
            *slot = Some(DeltaState { conv: new_conv, recurrent: last });
        }
        self.output(&out, &z, x.dtype(), kernels)
    }

    /// The training form over a packed stream x: [1, N, D] -> [1, N, D]: the conv window and
    /// the recurrent state restart at every row boundary, as if each row ran alone.
    fn forward_packed(&self, x: &Tensor, cu_seqlens: &[usize]) -> Result<Tensor> {
        let kernels = Kernels::Differentiable;
        let (qkv, z, beta, a) = self.project(x, kernels)?;
        // rows start where they are not empty
        let starts: Vec<usize> = cu_seqlens.windows(2).filter(|w| w[1] > w[0]).map(|w| w[0]).collect();
        let conv = fused::causal_conv_silu(&qkv, &self.conv1d, &starts)?;
        let (q, k, v, g, beta) = self.rule_inputs(&conv, &beta, &a)?;
        let out = if deltanet::fused::serves(&q) {
            // one op over the whole stream, restarting at each row
            deltanet::fused::gated_delta_rule(&q, &k, &v, &g, &beta, &starts)?
        } else {
            let mut outs = Vec::with_capacity(cu_seqlens.len() - 1);
            for w in cu_seqlens.windows(2) {
                let row = |x: &Tensor| x.narrow(2, w[0], w[1] - w[0]);
                let (out, _) =
                    deltanet::chunked(&row(&q)?, &row(&k)?, &row(&v)?, &row(&g)?, &row(&beta)?, None)?;
                outs.push(out);
            }
            Tensor::cat(&outs, 2)?
        }; // [1, Hv, N, dv]
        self.output(&out, &z, x.dtype(), kernels)
    }

    /// The input projections of x: [B, T, D]: (qkv [B, T, C], z [B, T, Hv, dv],
    /// beta [B, T, Hv], a [B, T, Hv]).
    fn project(&self, x: &Tensor, kernels: Kernels) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let l = &self.sizes;
        let qkv = self.in_proj_qkv.forward(x, kernels)?;
        let z = self.in_proj_z.forward(x, kernels)?.reshape((b, t, l.num_value_heads, l.value_head_dim))?;
        let beta = candle_nn::ops::sigmoid(&self.in_proj_b.forward(x, kernels)?)?;
        let a = self.in_proj_a.forward(x, kernels)?;
        Ok((qkv, z, beta, a))
    }

    /// The delta rule's inputs from the conv output [B, T, C]: q, k [B, Hv, T, dk]
    /// (L2-normalised, key heads repeated), v [B, Hv, T, dv], g, beta [B, Hv, T].
    #[allow(clippy::type_complexity)]
    fn rule_inputs(
        &self,
        conv: &Tensor,
        beta: &Tensor,
        a: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor, Tensor, Tensor)> {
        let (b, t, _) = conv.dims3()?;
        let l = &self.sizes;
        let (nk, nv, dk, dv) = (l.num_key_heads, l.num_value_heads, l.key_head_dim, l.value_head_dim);
        let cd = compute_dtype(conv.dtype());
        let heads = |start: usize, n: usize, dim: usize| -> Result<Tensor> {
            Ok(conv.narrow(2, start, n * dim)?.reshape((b, t, n, dim))?.to_dtype(cd)?)
        };
        let q = heads(0, nk, dk)?;
        let k = heads(nk * dk, nk, dk)?;
        let v = heads(2 * nk * dk, nv, dv)?.transpose(1, 2)?.contiguous()?; // [B, Hv, T, dv]
                                                                            // key head i serves value heads i·r .. i·r + r-1 (repeat_interleave)
        let rep = nv / nk;
        let expand = |x: Tensor| -> Result<Tensor> {
            let x = l2_normalize(&x)?; // [B, T, Hk, dk]
            let x = if rep > 1 {
                x.unsqueeze(3)?.repeat((1, 1, 1, rep, 1))?.reshape((b, t, nv, dk))?
            } else {
                x
            };
            Ok(x.transpose(1, 2)?.contiguous()?) // [B, Hv, T, dk]
        };
        let (q, k) = (expand(q)?, expand(k)?);
        let beta = beta.to_dtype(cd)?.transpose(1, 2)?.contiguous()?; // [B, Hv, T]
        let g = softplus(&a.to_dtype(cd)?.broadcast_add(&self.dt_bias.to_dtype(cd)?)?)?
            .broadcast_mul(&self.a_log.to_dtype(cd)?.exp()?.neg()?)?
            .transpose(1, 2)?
            .contiguous()?; // [B, Hv, T]
        Ok((q, k, v, g, beta))
    }

    /// The rule's output [B, Hv, T, dv] -> gated norm per value head -> out_proj: [B, T, D].
    fn output(&self, out: &Tensor, z: &Tensor, dtype: DType, kernels: Kernels) -> Result<Tensor> {
        let (b, nv, t, dv) = out.dims4()?;
        let out = out.transpose(1, 2)?.to_dtype(dtype)?; // [B, T, Hv, dv]
        let out = gated_rms_norm(&out, z, &self.norm, self.eps, kernels)?.reshape((b, t, nv * dv))?;
        self.out_proj.forward(&out, kernels)
    }
}

fn random_fill(rng: &mut rand_chacha::ChaCha8Rng, n: usize, mean: f32, std: f32) -> Vec<f32> {
    use rand_distr::{Distribution, Normal};
    let dist = Normal::new(mean, std).expect("valid normal");
    (0..n).map(|_| dist.sample(rng)).collect()
}

enum Mixer {
    Attention(GatedAttention),
    DeltaNet(GatedDeltaNet),
}

struct DecoderLayer {
    input_layernorm: Tensor,
    mixer: Mixer,
    post_attention_layernorm: Tensor,
    mlp: SwiGlu,
}

/// Per-layer generation state.
pub enum LayerCache {
    Kv(KvCache),
    Delta(Option<DeltaState>),
}

pub struct Cache {
    layers: Vec<LayerCache>,
    pad: Vec<usize>,
    len: usize,
}

impl CacheState for Cache {
    fn len(&self) -> usize {
        self.len
    }
    fn retain_rows(&mut self, rows: &[usize]) -> Result<()> {
        let idx = Tensor::new(rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), &Device::Cpu)?;
        for layer in &mut self.layers {
            match layer {
                LayerCache::Kv(c) => select_kv_rows(c, &idx)?,
                LayerCache::Delta(Some(s)) => {
                    let idx = idx.to_device(s.conv.device())?;
                    s.conv = s.conv.contiguous()?.index_select(&idx, 0)?;
                    s.recurrent = s.recurrent.contiguous()?.index_select(&idx, 0)?;
                }
                LayerCache::Delta(None) => {}
            }
        }
        self.pad = rows.iter().map(|&r| self.pad[r]).collect();
        Ok(())
    }
}

pub struct Qwen35 {
    pub cfg: ModelConfig,
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: Tensor,
    lm_head: Tensor,
    inv_freq: Vec<f32>,
    /// Form of the delta rule for multi-position forwards (prefill, training).
    pub prefill_form: DeltaForm,
    dtype: DType,
    device: Device,
}

impl Qwen35 {
    pub fn load(p: &mut ParamBuilder, cfg: &ModelConfig) -> Result<Self> {
        let (v, d) = (cfg.vocab_size, cfg.hidden_size);
        let Some(linear_cfg) = &cfg.linear else { bail!("qwen3_5 config without linear-attention sizes") };
        let embed_tokens = p.weight("model.embed_tokens.weight", &[v, d])?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for (i, kind) in cfg.layer_types.iter().enumerate() {
            let prefix = format!("model.layers.{i}");
            let input_layernorm =
                p.norm(&format!("{prefix}.input_layernorm.weight"), d, NormStyle::OnePlus)?;
            let mixer = match kind {
                LayerType::FullAttention => {
                    Mixer::Attention(GatedAttention::load(p, cfg, &format!("{prefix}.self_attn"))?)
                }
                LayerType::LinearAttention => Mixer::DeltaNet(GatedDeltaNet::load(
                    p,
                    cfg,
                    linear_cfg,
                    &format!("{prefix}.linear_attn"),
                )?),
            };
            let post_attention_layernorm =
                p.norm(&format!("{prefix}.post_attention_layernorm.weight"), d, NormStyle::OnePlus)?;
            let mlp = SwiGlu::load(p, d, cfg.intermediate_size, &format!("{prefix}.mlp"))?;
            layers.push(DecoderLayer { input_layernorm, mixer, post_attention_layernorm, mlp });
        }
        let norm = p.norm("model.norm.weight", d, NormStyle::OnePlus)?;
        let lm_head =
            if cfg.tie_word_embeddings { embed_tokens.clone() } else { p.weight("lm_head.weight", &[v, d])? };
        let inv_freq = rope_inv_freq(cfg.rotary_dim(), cfg.rope_theta, &cfg.rope_scaling);
        Ok(Self {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            inv_freq,
            prefill_form: DeltaForm::Chunked,
            dtype: p.dtype(),
            device: p.device().clone(),
        })
    }

    fn run(
        &self,
        ids: &Tensor,
        positions: &[Vec<u32>],
        mask: Mask,
        keep: Option<&Tensor>,
        mut caches: Option<&mut Vec<LayerCache>>,
        kernels: Kernels,
    ) -> Result<Tensor> {
        let (cos, sin) = rope_tables(positions, &self.inv_freq, self.dtype, &self.device)?;
        let eps = self.cfg.rms_norm_eps;
        let mut x = embed(&self.embed_tokens, ids)?;
        let form = self.prefill_form;
        for i in 0..self.layers.len() {
            let cache = caches.as_deref_mut().map(|c| &mut c[i]);
            x = self.decoder_layer(i, &x, kernels, |mixer, h| match (mixer, cache) {
                (Mixer::Attention(a), Some(LayerCache::Kv(c))) => {
                    a.forward(h, (&cos, &sin), mask, Some(c), kernels)
                }
                (Mixer::Attention(a), _) => a.forward(h, (&cos, &sin), mask, None, kernels),
                (Mixer::DeltaNet(n), Some(LayerCache::Delta(s))) => {
                    n.forward(h, keep, Some(s), form, kernels)
                }
                (Mixer::DeltaNet(n), _) => n.forward(h, keep, None, form, kernels),
            })?;
        }
        rms_norm_one_plus(&x, &self.norm, eps, kernels)
    }

    /// Decoder layer i: x [B, T, D] -> [B, T, D]; `mix` is the token mixer (attention or
    /// DeltaNet) in its cached or packed form.
    fn decoder_layer(
        &self,
        i: usize,
        x: &Tensor,
        kernels: Kernels,
        mix: impl FnOnce(&Mixer, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let layer = &self.layers[i];
        let eps = self.cfg.rms_norm_eps;
        let h = rms_norm_one_plus(x, &layer.input_layernorm, eps, kernels)?;
        let x = (x + mix(&layer.mixer, &h)?)?;
        let h = rms_norm_one_plus(&x, &layer.post_attention_layernorm, eps, kernels)?;
        Ok((&x + layer.mlp.forward(&h, kernels)?)?)
    }
}

impl Decoder for Qwen35 {
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn lm_head(&self) -> &Tensor {
        &self.lm_head
    }

    /// The training forward one piece at a time (activation checkpointing) over a packed
    /// stream: the embedded ids [N] -> [1, N, D], the rows' context, each layer, the final norm.
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        embed(&self.embed_tokens, &ids.flatten_all()?.unsqueeze(0)?)
    }

    fn train_context(&self, cu_seqlens: &[usize]) -> Result<TrainContext> {
        TrainContext::packed(cu_seqlens, &self.inv_freq, self.dtype, &self.device)
    }

    /// Layer i over a packed stream x: [1, N, D].
    fn layer(&self, ctx: &TrainContext, i: usize, x: &Tensor) -> Result<Tensor> {
        self.decoder_layer(i, x, Kernels::Differentiable, |mixer, h| match mixer {
            Mixer::Attention(a) => a.forward_packed(h, ctx),
            Mixer::DeltaNet(n) => n.forward_packed(h, &ctx.cu_seqlens),
        })
    }

    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        rms_norm_one_plus(x, &self.norm, self.cfg.rms_norm_eps, Kernels::Differentiable)
    }

    fn new_cache(&self, pad: Vec<usize>) -> decoder::Cache {
        let layers = self
            .layers
            .iter()
            .map(|l| match l.mixer {
                Mixer::Attention(_) => LayerCache::Kv(KvCache::new(2, 512)),
                Mixer::DeltaNet(_) => LayerCache::Delta(None),
            })
            .collect();
        decoder::Cache::new(Cache { layers, pad, len: 0 })
    }

    /// ids [B, T] after what the cache holds -> last-position logits [B, V] (f32).
    fn forward_cached(&self, ids: &Tensor, cache: &mut decoder::Cache, kernels: Kernels) -> Result<Tensor> {
        let cache: &mut Cache = cache.state()?;
        let (b, t) = ids.dims2()?;
        let start = cache.len;
        let step = CachedStep::new(ids, &cache.pad, start, self.dtype, &self.device)?;
        // DeltaNet layers see zeros at left-padding positions
        let keep = if cache.pad.iter().any(|&p| p > start) {
            let m: Vec<f32> = cache
                .pad
                .iter()
                .flat_map(|&p| (start..start + t).map(move |a| if a >= p { 1.0 } else { 0.0 }))
                .collect();
            Some(Tensor::from_vec(m, (b, t, 1), &self.device)?.to_dtype(self.dtype)?)
        } else {
            None
        };
        let hidden =
            self.run(ids, &step.positions, step.mask(), keep.as_ref(), Some(&mut cache.layers), kernels)?;
        cache.len += t;
        last_logits(&hidden, &self.lm_head, kernels)
    }

    fn set_delta_form(&mut self, form: DeltaForm) {
        self.prefill_form = form;
    }
}
