//! Building blocks shared by the architectures, each in two forms: a differentiable one
//! made of candle ops that carry gradients (training, scoring) and a fused one
//! (`Kernels::Fused`) for generation, which candle gives no gradient for (MODELS.md).
//! Both forms compute the same function; tests hold them to each other.
//!
//! Here: rotary embeddings, attention and its masks, the norms of qwen3.5, the left-padding
//! bookkeeping of a cached forward, and the packed rows of training. Beside it: `kernels`
//! (`linear`, RMSNorm, softmax), `linear` (the `Linear` projection every architecture holds,
//! with its LoRA branch) and `mlp` (SwiGLU).

use anyhow::Result;
use candle_core::{DType, Device, Tensor, D};

use self::kernels::{linear, rms_norm, softmax_last, Kernels};
use super::config::RopeScaling;

pub mod kernels;
pub mod linear;
pub mod mlp;

/// Inverse frequencies of the rotary embedding, as transformers computes them (f32).
pub fn rope_inv_freq(rotary_dim: usize, theta: f64, scaling: &RopeScaling) -> Vec<f32> {
    let base = theta as f32;
    let inv: Vec<f32> =
        (0..rotary_dim / 2).map(|i| 1.0 / base.powf((2 * i) as f32 / rotary_dim as f32)).collect();
    match scaling {
        RopeScaling::None => inv,
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let old = *original_max_position_embeddings as f64;
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            inv.into_iter()
                .map(|f| {
                    let f = f as f64;
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let scaled = if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    };
                    scaled as f32
                })
                .collect()
        }
    }
}

/// cos and sin tables for the given positions: each [B, T, rotary_dim/2] in `dtype`.
/// Computed in f32 like transformers does, then cast.
pub fn rope_tables(
    positions: &[Vec<u32>],
    inv_freq: &[f32],
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let b = positions.len();
    let t = positions.first().map_or(0, Vec::len);
    let half = inv_freq.len();
    let mut cos = Vec::with_capacity(b * t * half);
    let mut sin = Vec::with_capacity(b * t * half);
    for row in positions {
        for &p in row {
            for &f in inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
    }
    let cos = Tensor::from_vec(cos, (b, t, half), device)?.to_dtype(dtype)?;
    let sin = Tensor::from_vec(sin, (b, t, half), device)?.to_dtype(dtype)?;
    Ok((cos, sin))
}

/// Rotate-half RoPE on x: [B, H, T, Dh] with cos/sin: [B, T, Dh/2].
pub fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor, kernels: Kernels) -> Result<Tensor> {
    match kernels {
        Kernels::Fused => Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?),
        Kernels::Differentiable => {
            let half = x.dim(D::Minus1)? / 2;
            let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
            let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
            let x1 = x.narrow(D::Minus1, 0, half)?;
            let x2 = x.narrow(D::Minus1, half, half)?;
            let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
            Ok((x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?)
        }
    }
}

/// Additive attention mask [B, 1, T, S]: 0 where query t (absolute position `start + t`)
/// may see key s, -inf elsewhere. Keys before a row's left padding are hidden; a padded
/// query sees itself so its softmax stays finite (its output is never used).
pub fn attention_mask(
    pad: &[usize],
    start: usize,
    t: usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let s = start + t;
    let mut m = Vec::with_capacity(pad.len() * t * s);
    for &p in pad {
        for q in 0..t {
            let abs = start + q;
            for k in 0..s {
                let visible = k <= abs && (k >= p || k == abs);
                m.push(if visible { 0f32 } else { f32::NEG_INFINITY });
            }
        }
    }
    Ok(Tensor::from_vec(m, (pad.len(), 1, t, s), device)?.to_dtype(dtype)?)
}

/// Which keys each query may see.
#[derive(Clone, Copy)]
pub enum Mask<'a> {
    /// every key (one query per row, nothing padded)
    None,
    /// additive [B, 1, T, S]
    Additive(&'a Tensor),
    /// one query per row at the last position; row b's keys before pad[b] are padding
    DecodeStep { pad: &'a [usize] },
}

/// Grouped-query attention. q: [B, H, T, Dh]; k, v: [B, Hkv, S, Dh].
/// Query head h uses kv head h / (H / Hkv), as transformers' repeat_kv does; the
/// grouping is done by reshaping q instead of copying k and v.
/// Returns [B, T, H * Dh].
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Mask, kernels: Kernels) -> Result<Tensor> {
    let (b, h, t, dh) = q.dims4()?;
    let (_, hkv, s, _) = k.dims4()?;
    let mask = match mask {
        Mask::DecodeStep { pad }
            if kernels == Kernels::Fused
                && q.dtype() == DType::F32
                && crate::model::fused::host_kernels(q) =>
        {
            let out = crate::model::decode_attention::decode_attention(q, k, v, pad)?; // [B, H, 1, Dh]
            return Ok(out.reshape((b, 1, h * dh))?);
        }
        Mask::DecodeStep { pad } if pad.iter().any(|&p| p > 0) => {
            Some(attention_mask(pad, s - 1, 1, q.dtype(), q.device())?)
        }
        Mask::DecodeStep { .. } | Mask::None => None,
        Mask::Additive(m) => Some(m.clone()),
    };
    let rep = h / hkv;
    let dtype = q.dtype();
    let scale = 1.0 / (dh as f64).sqrt();
    let qg = (q.contiguous()?.reshape((b, hkv, rep * t, dh))? * scale)?;
    // k and v may be strided views of the KV cache: matmul reads them in place
    let att = qg.matmul(&k.t()?)?; // [B, Hkv, rep*T, S]
                                   // softmax in f32 for half-precision models, as transformers does
    let att = if matches!(dtype, DType::BF16 | DType::F16) { att.to_dtype(DType::F32)? } else { att };
    let att = match &mask {
        Some(m) => att
            .reshape((b, hkv, rep, t, s))?
            .broadcast_add(&m.to_dtype(att.dtype())?.unsqueeze(1)?)?
            .reshape((b, hkv, rep * t, s))?,
        None => att,
    };
    let probs = softmax_last(&att, kernels)?.to_dtype(dtype)?;
    let out = probs.matmul(v)?; // [B, Hkv, rep*T, Dh]
    Ok(out.reshape((b, h, t, dh))?.transpose(1, 2)?.reshape((b, t, h * dh))?)
}

/// RMSNorm of the (1 + w) form, computed in at least f32 (qwen3_5: weights stored around 0).
pub fn rms_norm_one_plus(x: &Tensor, w: &Tensor, eps: f64, kernels: Kernels) -> Result<Tensor> {
    let dtype = x.dtype();
    let inner = if dtype == DType::F64 { DType::F64 } else { DType::F32 };
    let xf = x.to_dtype(inner)?;
    let scale = (w.to_dtype(inner)? + 1.0)?;
    rms_norm(&xf, &scale, eps, kernels)?.to_dtype(dtype).map_err(Into::into)
}

/// Gated RMSNorm of DeltaNet outputs: normalise x in at least f32, times w (plain form),
/// times silu(gate). x, gate: [..., d]; w: [d].
pub fn gated_rms_norm(x: &Tensor, gate: &Tensor, w: &Tensor, eps: f64, kernels: Kernels) -> Result<Tensor> {
    let dtype = x.dtype();
    let inner = if dtype == DType::F64 { DType::F64 } else { DType::F32 };
    let normed = rms_norm(&x.to_dtype(inner)?, &w.to_dtype(inner)?, eps, kernels)?;
    // silu(gate) ⊙ normed is SwiGLU's product: one fused pass each way on the CPU
    Ok(crate::model::fused::swiglu(&gate.to_dtype(inner)?, &normed)?.to_dtype(dtype)?)
}

/// Rotary positions of `t` new tokens after `start` cached ones, per left-padded row.
pub fn cached_positions(pad: &[usize], start: usize, t: usize) -> Vec<Vec<u32>> {
    pad.iter().map(|&p| (start..start + t).map(|a| a.saturating_sub(p) as u32).collect()).collect()
}

/// Token embeddings: ids [B, T] -> [B, T, D], rows of the [V, D] table.
pub fn embed(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    Ok(table.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, table.dim(1)?))?)
}

/// What a cached forward of ids [B, T] after `start` cached positions needs, for rows
/// left-padded by `pad[r]` positions: each row's rotary positions, and which keys each
/// query sees.
pub struct CachedStep<'a> {
    /// [B][T] rotary positions (padding not counted)
    pub positions: Vec<Vec<u32>>,
    pad: &'a [usize],
    /// additive [B, 1, T, S] when T > 1; one query per row masks by `pad` alone
    additive: Option<Tensor>,
}

impl<'a> CachedStep<'a> {
    pub fn new(ids: &Tensor, pad: &'a [usize], start: usize, dtype: DType, device: &Device) -> Result<Self> {
        let (b, t) = ids.dims2()?;
        if b != pad.len() {
            anyhow::bail!("batch of {b} rows does not match the cache's {}", pad.len());
        }
        // keys in a row's left padding stay hidden at every later step too
        let additive = if t > 1 { Some(attention_mask(pad, start, t, dtype, device)?) } else { None };
        Ok(Self { positions: cached_positions(pad, start, t), pad, additive })
    }

    pub fn mask(&self) -> Mask<'_> {
        match &self.additive {
            Some(m) => Mask::Additive(m),
            None => Mask::DecodeStep { pad: self.pad },
        }
    }
}

/// The last position's logits [B, V] in f32 of final-normed hidden states [B, T, D].
pub fn last_logits(hidden: &Tensor, lm_head: &Tensor, kernels: Kernels) -> Result<Tensor> {
    let t = hidden.dim(1)?;
    let last = hidden.narrow(1, t - 1, 1)?.squeeze(1)?; // [B, D]
    Ok(linear(&last, lm_head, None, kernels)?.to_dtype(DType::F32)?)
}

/// Keeps the given rows of a KV cache, with the capacity it had. candle's cache grows by
/// its first capacity each time it fills, copying all it holds: a cache made to fit what
/// it holds (one position after a group's shared prompt of BOS) grew by one position a
/// step, a copy of the whole cache per token (12% of a group's decode time, 15M llama).
pub fn select_kv_rows(cache: &mut candle_nn::kv_cache::KvCache, rows: &Tensor) -> Result<()> {
    let (Some(k), Some(v)) = (cache.k()?, cache.v()?) else { return Ok(()) };
    let rows = rows.to_device(k.device())?;
    let (k, v) = (k.contiguous()?.index_select(&rows, 0)?, v.contiguous()?.index_select(&rows, 0)?);
    let mut fresh = candle_nn::kv_cache::KvCache::new(2, cache.k_cache().max_seq_len());
    fresh.append(&k, &v)?;
    *cache = fresh;
    Ok(())
}

/// Row boundaries of a packed stream: row r occupies positions cu_seqlens[r]..cu_seqlens[r+1]
/// (flash-attention's varlen convention). Checks that they start at 0 and never go back.
pub fn check_segments(cu_seqlens: &[usize], n: usize) -> Result<()> {
    if cu_seqlens.first() != Some(&0) || cu_seqlens.last() != Some(&n) {
        anyhow::bail!("row boundaries {cu_seqlens:?} do not span the packed stream of {n} positions");
    }
    if cu_seqlens.windows(2).any(|w| w[1] <= w[0]) {
        anyhow::bail!("row boundaries {cu_seqlens:?} hold an empty row");
    }
    Ok(())
}

/// What every layer of a packed training forward shares: the row boundaries and the RoPE
/// tables of each position (positions restart at 0 in every row).
pub struct TrainContext {
    /// Row boundaries, [R + 1].
    pub cu_seqlens: Vec<usize>,
    /// [N, 1, rotary_dim]: cos and sin of each position's angles, halves repeated, ready to
    /// broadcast over heads of a [N, H, rotary_dim] tensor.
    pub cos: Tensor,
    pub sin: Tensor,
}

impl TrainContext {
    pub fn packed(cu_seqlens: &[usize], inv_freq: &[f32], dtype: DType, device: &Device) -> Result<Self> {
        let n = *cu_seqlens.last().unwrap_or(&0);
        check_segments(cu_seqlens, n)?;
        let positions: Vec<u32> = cu_seqlens.windows(2).flat_map(|w| 0..(w[1] - w[0]) as u32).collect();
        let (cos, sin) = rope_tables(&[positions], inv_freq, dtype, device)?; // [1, N, half]
        let full = |t: Tensor| -> Result<Tensor> {
            Ok(Tensor::cat(&[&t, &t], D::Minus1)?.squeeze(0)?.unsqueeze(1)?.contiguous()?)
        };
        Ok(Self { cu_seqlens: cu_seqlens.to_vec(), cos: full(cos)?, sin: full(sin)? })
    }

    /// Positions in the stream.
    pub fn len(&self) -> usize {
        *self.cu_seqlens.last().unwrap_or(&0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rotate-half RoPE of packed heads x: [N, H, rotary_dim], differentiable.
    pub fn rope(&self, x: &Tensor) -> Result<Tensor> {
        crate::model::fused::rope(x, &self.cos, &self.sin)
    }
}

/// The boundaries of `b` rows of `t` positions each, laid one after another.
pub fn uniform_segments(b: usize, t: usize) -> Vec<usize> {
    (0..=b).map(|r| r * t).collect()
}

#[cfg(test)]
mod tests {
    use candle_nn::kv_cache::KvCache;

    use super::*;

    #[test]
    fn selected_rows_keep_their_positions_and_the_capacity() {
        // [B=3, H=1, T=2, Dh=2], row r holding r * 10 + position
        let x = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().reshape((3, 1, 2, 2)).unwrap();
        let mut cache = KvCache::new(2, 512);
        cache.append(&x, &(&x + 100.0).unwrap()).unwrap();
        let rows = Tensor::new(&[2u32, 0, 2], &Device::Cpu).unwrap();
        select_kv_rows(&mut cache, &rows).unwrap();
        assert_eq!(cache.k_cache().max_seq_len(), 512, "the capacity, so appends do not copy the cache");
        assert_eq!(cache.current_seq_len(), 2);
        let k: Vec<f32> = cache.k().unwrap().unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(k, [8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 3.0, 8.0, 9.0, 10.0, 11.0]);
        let v: Vec<f32> = cache.v().unwrap().unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v[4..8], [100.0, 101.0, 102.0, 103.0]);
    }
}
