//! The llama family: `llama` and `qwen3` (llama plus a per-head RMSNorm on q and k
//! before RoPE). Reads top to bottom like transformers' `modeling_llama.py` /
//! `modeling_qwen3.py`: attention, MLP, decoder layer, model, forward.
//!
//! Shapes: B batch, T new positions, S positions attended (cache + new), D hidden,
//! H query heads, Hkv key/value heads, Dh head dim, V vocabulary.

use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Tensor};

use super::config::ModelConfig;
use super::decode_attention::StepShape;
use super::decode_cache::LayerKv;
use super::decode_step::{
    add_rows, project_rows, rms_norm_in_place, rms_norm_rows, rope_angles, rope_rows, serves, sized,
    swiglu_rows, with_host, StepScratch,
};
use super::decoder::{self, CacheState, Decoder};
use super::flash_attention::varlen_attention;
use super::fused::buffer::{filled, unfilled};
use super::fused::host_kernels;
use super::huge_pages::{self, Backing};
use super::layers::kernels::{rms_norm, Kernels};
use super::layers::linear::Linear;
use super::layers::mlp::SwiGlu;
use super::layers::{
    apply_rope, attention, embed, last_logits, rope_inv_freq, rope_tables, CachedStep, Mask, TrainContext,
};
use super::params::{NormStyle, ParamBuilder};
use super::small_matmul::matmul_rows_unfilled;

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    /// qwen3 only: [Dh] norms applied per head
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    eps: f64,
}

impl Attention {
    fn load(p: &mut ParamBuilder, cfg: &ModelConfig, prefix: &str) -> Result<Self> {
        let (d, h, hkv, dh) =
            (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim);
        let bias = cfg.attention_bias;
        let q_proj = p.linear(&format!("{prefix}.q_proj"), h * dh, d, bias)?;
        let k_proj = p.linear(&format!("{prefix}.k_proj"), hkv * dh, d, bias)?;
        let v_proj = p.linear(&format!("{prefix}.v_proj"), hkv * dh, d, bias)?;
        let o_proj = p.linear(&format!("{prefix}.o_proj"), d, h * dh, false)?;
        let (q_norm, k_norm) = if cfg.qk_norm() {
            (
                Some(p.norm(&format!("{prefix}.q_norm.weight"), dh, NormStyle::Scale)?),
                Some(p.norm(&format!("{prefix}.k_norm.weight"), dh, NormStyle::Scale)?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            q_proj,
            k_proj,
            v_proj,
            o_proj,
            q_norm,
            k_norm,
            n_heads: h,
            n_kv_heads: hkv,
            head_dim: dh,
            eps: cfg.rms_norm_eps,
        })
    }

    /// x: [B, T, D] -> [B, T, D]. With a cache, the new k/v are appended and attention
    /// runs over everything cached.
    fn forward(
        &self,
        x: &Tensor,
        rope: (&Tensor, &Tensor),
        mask: &Mask,
        cache: Option<&mut LayerKv>,
        kernels: Kernels,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let heads = |proj: &Linear, n: usize| -> Result<Tensor> {
            // [B, T, n*Dh] -> [B, n, T, Dh]
            Ok(proj.forward(x, kernels)?.reshape((b, t, n, self.head_dim))?.transpose(1, 2)?)
        };
        let mut q = heads(&self.q_proj, self.n_heads)?;
        let mut k = heads(&self.k_proj, self.n_kv_heads)?;
        let v = heads(&self.v_proj, self.n_kv_heads)?;
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = rms_norm(&q, qn, self.eps, kernels)?;
            k = rms_norm(&k, kn, self.eps, kernels)?;
        }
        let q = apply_rope(&q, rope.0, rope.1, kernels)?;
        let k = apply_rope(&k, rope.0, rope.1, kernels)?;
        let (k, v) = match cache {
            Some(c) => c.append(&k, &v)?,
            None => (k.contiguous()?, v.contiguous()?),
        };
        let out = attention(&q, &k, &v, *mask, kernels)?;
        self.o_proj.forward(&out, kernels)
    }

    /// The training form over a packed stream x: [1, N, D] -> [1, N, D]: blockwise attention
    /// that never crosses a row boundary, differentiable.
    fn forward_packed(&self, x: &Tensor, ctx: &TrainContext) -> Result<Tensor> {
        let n = x.dim(1)?;
        let kernels = Kernels::Differentiable;
        let heads = |proj: &Linear, h: usize| -> Result<Tensor> {
            Ok(proj.forward(x, kernels)?.reshape((n, h, self.head_dim))?) // [N, h, Dh]
        };
        let mut q = heads(&self.q_proj, self.n_heads)?;
        let mut k = heads(&self.k_proj, self.n_kv_heads)?;
        let v = heads(&self.v_proj, self.n_kv_heads)?;
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            q = rms_norm(&q, qn, self.eps, kernels)?;
            k = rms_norm(&k, kn, self.eps, kernels)?;
        }
        let (q, k) = (ctx.rope(&q)?, ctx.rope(&k)?);
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let out = varlen_attention(&q, &k, &v.contiguous()?, &ctx.cu_seqlens, scale)?; // [N, H, Dh]
        self.o_proj.forward(&out.reshape((1, n, self.n_heads * self.head_dim))?, kernels)
    }
}

struct DecoderLayer {
    input_layernorm: Tensor,
    self_attn: Attention,
    post_attention_layernorm: Tensor,
    mlp: SwiGlu,
    eps: f64,
}

impl DecoderLayer {
    fn load(p: &mut ParamBuilder, cfg: &ModelConfig, i: usize) -> Result<Self> {
        let prefix = format!("model.layers.{i}");
        Ok(Self {
            input_layernorm: p.norm(
                &format!("{prefix}.input_layernorm.weight"),
                cfg.hidden_size,
                NormStyle::Scale,
            )?,
            self_attn: Attention::load(p, cfg, &format!("{prefix}.self_attn"))?,
            post_attention_layernorm: p.norm(
                &format!("{prefix}.post_attention_layernorm.weight"),
                cfg.hidden_size,
                NormStyle::Scale,
            )?,
            mlp: SwiGlu::load(p, cfg.hidden_size, cfg.intermediate_size, &format!("{prefix}.mlp"))?,
            eps: cfg.rms_norm_eps,
        })
    }

    /// x + attend(norm(x)), then the MLP block; `attend` is the cached or the packed form.
    fn forward(
        &self,
        x: &Tensor,
        kernels: Kernels,
        attend: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let h = rms_norm(x, &self.input_layernorm, self.eps, kernels)?;
        let x = (x + attend(&h)?)?;
        let h = rms_norm(&x, &self.post_attention_layernorm, self.eps, kernels)?;
        Ok((&x + self.mlp.forward(&h, kernels)?)?)
    }
}

/// Generation state: one KV cache per layer, plus each row's left padding.
pub struct Cache {
    layers: Vec<LayerKv>,
    /// Left-pad positions per row: row r's real tokens start at pad[r].
    pad: Vec<usize>,
    /// Positions filled so far (padding included).
    len: usize,
    /// Buffers of the host decode step, reused from step to step (boxed: 14 vectors).
    scratch: Box<StepScratch>,
}

impl CacheState for Cache {
    fn len(&self) -> usize {
        self.len
    }
    /// Keeps only the given rows (finished sequences dropped from a batch).
    fn retain_rows(&mut self, rows: &[usize]) -> Result<()> {
        for c in &mut self.layers {
            c.retain_rows(rows)?;
        }
        self.pad = rows.iter().map(|&r| self.pad[r]).collect();
        Ok(())
    }

    fn reserve(&mut self, positions: usize) {
        self.layers.iter_mut().for_each(|c| c.reserve(positions));
    }
}

pub struct Llama {
    pub cfg: ModelConfig,
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: Tensor,
    /// [V, D]; the embedding itself when tied
    lm_head: Tensor,
    inv_freq: Vec<f32>,
    dtype: DType,
    device: Device,
    /// The weights the decode step streams, put on 2 MiB pages before its first step.
    pages: OnceLock<Backing>,
}

impl Llama {
    pub fn load(p: &mut ParamBuilder, cfg: &ModelConfig) -> Result<Self> {
        let (v, d) = (cfg.vocab_size, cfg.hidden_size);
        let embed_tokens = p.weight("model.embed_tokens.weight", &[v, d])?;
        let layers =
            (0..cfg.num_hidden_layers).map(|i| DecoderLayer::load(p, cfg, i)).collect::<Result<Vec<_>>>()?;
        let norm = p.norm("model.norm.weight", d, NormStyle::Scale)?;
        let lm_head =
            if cfg.tie_word_embeddings { embed_tokens.clone() } else { p.weight("lm_head.weight", &[v, d])? };
        let inv_freq = rope_inv_freq(cfg.head_dim, cfg.rope_theta, &cfg.rope_scaling);
        Ok(Self {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            inv_freq,
            dtype: p.dtype(),
            device: p.device().clone(),
            pages: OnceLock::new(),
        })
    }
}

impl Decoder for Llama {
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn lm_head(&self) -> &Tensor {
        &self.lm_head
    }

    fn huge_pages(&self) -> Option<Backing> {
        self.pages.get().copied()
    }

    /// The training forward one piece at a time over a packed stream: the embedded ids
    /// [N] -> [1, N, D], the rows' context, each layer, the final norm.
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        embed(&self.embed_tokens, &ids.flatten_all()?.unsqueeze(0)?)
    }

    fn train_context(&self, cu_seqlens: &[usize]) -> Result<TrainContext> {
        TrainContext::packed(cu_seqlens, &self.inv_freq, self.dtype, &self.device)
    }

    /// Layer i over a packed stream x: [1, N, D].
    fn layer(&self, ctx: &TrainContext, i: usize, x: &Tensor) -> Result<Tensor> {
        let layer = &self.layers[i];
        layer.forward(x, Kernels::Differentiable, |h| layer.self_attn.forward_packed(h, ctx))
    }

    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        rms_norm(x, &self.norm, self.cfg.rms_norm_eps, Kernels::Differentiable)
    }

    fn new_cache(&self, pad: Vec<usize>) -> decoder::Cache {
        // ours where the host kernels serve the model's f32 (a GPU's and bf16's are candle's)
        let host = host_kernels(&self.embed_tokens) && self.dtype == DType::F32;
        let layers = (0..self.layers.len()).map(|_| LayerKv::new(host)).collect();
        decoder::Cache::new(Cache { layers, pad, len: 0, scratch: Box::default() })
    }

    /// Incremental forward: ids [B, T] follow what the cache holds; returns the
    /// last position's logits [B, V] in f32.
    fn forward_cached(&self, ids: &Tensor, cache: &mut decoder::Cache, kernels: Kernels) -> Result<Tensor> {
        let cache: &mut Cache = cache.state()?;
        let t = ids.dim(1)?;
        if t == 1
            && kernels == Kernels::Fused
            && ids.device().is_cpu()
            && cache.layers.iter().all(LayerKv::is_host)
            && serves(&self.step_tensors())
        {
            // once, before the first step (a model that never decodes on the CPU pays nothing)
            self.pages.get_or_init(|| huge_pages::back(self.step_tensors()));
            return self.decode_step(&ids.flatten_all()?.to_vec1::<u32>()?, cache);
        }
        let step = CachedStep::new(ids, &cache.pad, cache.len, self.dtype, &self.device)?;
        let hidden = self.run(ids, &step.positions, &step.mask(), Some(&mut cache.layers), kernels)?;
        cache.len += t;
        last_logits(&hidden, &self.lm_head, kernels)
    }
}

impl Llama {
    /// The tensors a decode step reads (it runs on host buffers when every one is f32 on the
    /// CPU, contiguous).
    fn step_tensors(&self) -> Vec<&Tensor> {
        let mut all: Vec<&Tensor> = vec![&self.embed_tokens, &self.norm, &self.lm_head];
        for layer in &self.layers {
            let a = &layer.self_attn;
            all.extend([&layer.input_layernorm, &layer.post_attention_layernorm]);
            all.extend(a.q_norm.iter().chain(&a.k_norm));
            for p in [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj].into_iter().chain(layer.mlp.projections()) {
                all.extend(p.tensors());
            }
        }
        all
    }

    /// `forward_cached` of one new token per row (ids [B]) on host buffers, in one pass over
    /// each weight for the whole batch: the same function as `run`, step by step, and the
    /// same bits. Returns the logits [B, V].
    fn decode_step(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, d, dh, vocab) = (ids.len(), cfg.hidden_size, cfg.head_dim, cfg.vocab_size);
        let (h, hkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let eps = cfg.rms_norm_eps as f32;
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            bail!("token id {bad} is outside the model's vocabulary of {vocab}");
        }
        if b != cache.pad.len() {
            bail!("batch of {b} rows does not match the cache's {}", cache.pad.len());
        }
        let Cache { layers: kv_caches, pad, len, scratch } = cache;
        let StepScratch { x, xb, q, k, v, att, out, gate, up, lora_down, lora_up, cos, sin, scores } =
            &mut **scratch;
        let x = sized(x, b * d);
        with_host(&self.embed_tokens, |table| {
            for (row, &id) in x.chunks_exact_mut(d).zip(ids) {
                row.copy_from_slice(&table[id as usize * d..(id as usize + 1) * d]);
            }
        })?;
        rope_angles(pad.iter().map(|&p| len.saturating_sub(p) as u32), &self.inv_freq, cos, sin);
        let (xb, out) = (sized(xb, b * d), sized(out, b * d));
        for (layer, kv_cache) in self.layers.iter().zip(kv_caches.iter_mut()) {
            // attention block: x += o_proj(attend(rope(q), cache + rope(k), cache + v))
            let a = &layer.self_attn;
            with_host(&layer.input_layernorm, |w| rms_norm_rows(x, w, eps, xb))?;
            let (q, k, v) = (sized(q, b * h * dh), sized(k, b * hkv * dh), sized(v, b * hkv * dh));
            project_rows(xb, &[&a.q_proj, &a.k_proj, &a.v_proj], &mut [q, k, v], lora_down, lora_up)?;
            if let (Some(qn), Some(kn)) = (&a.q_norm, &a.k_norm) {
                with_host(qn, |w| rms_norm_in_place(q, w, eps))?;
                with_host(kn, |w| rms_norm_in_place(k, w, eps))?;
            }
            rope_rows(q, dh, cos, sin);
            rope_rows(k, dh, cos, sin);
            let kv = kv_cache.host().ok_or_else(|| anyhow!("decode step: a KV cache not on the host"))?;
            let shape = StepShape { rows: b, heads: h, kv_heads: hkv, positions: kv.len() + 1, head_dim: dh };
            let att = sized(att, b * h * dh);
            kv.attend_step(q, k, v, shape, pad, scores, att)?;
            a.o_proj.forward_rows(att, out, lora_down, lora_up)?;
            add_rows(x, out);
            // MLP block: x += down(silu(gate(xb)) * up(xb))
            with_host(&layer.post_attention_layernorm, |w| rms_norm_rows(x, w, eps, xb))?;
            let [gate_proj, up_proj, down_proj] = layer.mlp.projections();
            let inter = gate_proj.weight.dim(0)?;
            let (gate, up) = (sized(gate, b * inter), sized(up, b * inter));
            project_rows(xb, &[gate_proj, up_proj], &mut [gate, up], lora_down, lora_up)?;
            swiglu_rows(gate, up);
            down_proj.forward_rows(gate, out, lora_down, lora_up)?;
            add_rows(x, out);
        }
        *len += 1;
        with_host(&self.norm, |w| rms_norm_rows(x, w, eps, xb))?;
        let mut logits = unfilled(b * vocab);
        with_host(&self.lm_head, |w| matmul_rows_unfilled(xb, w, d, &mut logits))?;
        // SAFETY: matmul_rows_unfilled writes every element
        Ok(Tensor::from_vec(unsafe { filled(logits) }, (b, vocab), &self.device)?)
    }

    fn run(
        &self,
        ids: &Tensor,
        positions: &[Vec<u32>],
        mask: &Mask,
        mut caches: Option<&mut Vec<LayerKv>>,
        kernels: Kernels,
    ) -> Result<Tensor> {
        let (cos, sin) = rope_tables(positions, &self.inv_freq, self.dtype, &self.device)?;
        let mut x = embed(&self.embed_tokens, ids)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let cache = caches.as_deref_mut().map(|c| &mut c[i]);
            x = layer
                .forward(&x, kernels, |h| layer.self_attn.forward(h, (&cos, &sin), mask, cache, kernels))?;
        }
        rms_norm(&x, &self.norm, self.cfg.rms_norm_eps, kernels)
    }
}
