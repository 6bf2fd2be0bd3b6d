//! Attention for one new position per sequence (a decode step), reading the KV cache in
//! place. candle's batched matmul runs one small gemm per (row, head); at a group of 6 that
//! per-call cost outweighs the arithmetic. Forward only; f32 on CPU.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// q: [B, H, 1, Dh]; k, v: [B, Hkv, S, Dh] (strided views allowed, last dim contiguous);
/// row b attends to keys pad[b]..S. Returns [B, H, 1, Dh].
pub fn decode_attention(q: &Tensor, k: &Tensor, v: &Tensor, pad: &[usize]) -> Result<Tensor> {
    q.contiguous()?.apply_op3_no_bwd(k, v, &DecodeAttention { pad: pad.to_vec() })
}

struct DecodeAttention {
    pad: Vec<usize>,
}

/// A KV cache tensor [B, Hkv, S, Dh] read in place: element [b, h, s, e] lies at
/// start + b * strides[0] + h * strides[1] + s * strides[2] + e.
#[derive(Clone, Copy)]
pub struct CacheView<'a> {
    pub data: &'a [f32],
    pub start: usize,
    pub strides: [usize; 3],
}

impl<'a> CacheView<'a> {
    /// The view of a 4-d tensor stored in `data` with layout `l` (last dim contiguous).
    pub fn new(data: &'a [f32], l: &Layout) -> Self {
        let st = l.stride();
        Self { data, start: l.start_offset(), strides: [st[0], st[1], st[2]] }
    }

    /// Head dims of row b, kv head h, position s.
    fn at(&self, b: usize, h: usize, s: usize, d: usize) -> &'a [f32] {
        let o = self.start + b * self.strides[0] + h * self.strides[1] + s * self.strides[2];
        &self.data[o..o + d]
    }
}

/// The shape of one decode step's attention: B rows, H query heads sharing Hkv kv heads,
/// S cached positions (the new one included), Dh dims per head.
#[derive(Clone, Copy, Debug)]
pub struct StepShape {
    pub rows: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub positions: usize,
    pub head_dim: usize,
}

/// out [B, H, Dh] = softmax(q kᵀ / sqrt(Dh)) v for every row and head, q: [B, H, Dh];
/// row b sees positions pad[b]..S. `scores` is scratch, grown to S.
#[allow(clippy::needless_range_loop)] // si indexes scores and the cache's positions alike
pub fn attend(
    q: &[f32],
    k: CacheView,
    v: CacheView,
    shape: StepShape,
    pad: &[usize],
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let StepShape { rows: b, heads: h, kv_heads: hkv, positions: s, head_dim: d } = shape;
    assert!(q.len() == b * h * d && out.len() == b * h * d && pad.len() == b && s > 0);
    let rep = h / hkv;
    let scale = 1.0 / (d as f32).sqrt();
    scores.resize(s, 0.0);
    out.fill(0.0);
    for bi in 0..b {
        let first = pad[bi].min(s - 1);
        for hi in 0..h {
            let qv = &q[(bi * h + hi) * d..(bi * h + hi + 1) * d];
            let mut max = f32::NEG_INFINITY;
            for si in first..s {
                let sc = dot(qv, k.at(bi, hi / rep, si, d)) * scale;
                scores[si] = sc;
                max = max.max(sc);
            }
            let mut total = 0f32;
            for sc in &mut scores[first..s] {
                *sc = (*sc - max).exp();
                total += *sc;
            }
            let o = &mut out[(bi * h + hi) * d..(bi * h + hi + 1) * d];
            for si in first..s {
                let p = scores[si];
                for (acc, &x) in o.iter_mut().zip(v.at(bi, hi / rep, si, d)) {
                    *acc += p * x;
                }
            }
            let inv = 1.0 / total;
            o.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) = (s1, s2, s3) else {
            candle_core::bail!("decode-attention: f32 only");
        };
        let (b, h, t, d) = l1.shape().dims4()?;
        let (_, hkv, s, dk) = l2.shape().dims4()?;
        if t != 1
            || dk != d
            || l2.shape() != l3.shape()
            || l2.stride()[3] != 1
            || l3.stride()[3] != 1
            || self.pad.len() != b
            || !l1.is_contiguous()
        {
            candle_core::bail!(
                "decode-attention: unexpected shapes q {:?} k {:?} v {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let q = &q[l1.start_offset()..l1.start_offset() + b * h * d];
        let shape = StepShape { rows: b, heads: h, kv_heads: hkv, positions: s, head_dim: d };
        let mut out = vec![0f32; b * h * d];
        let (k, v) = (CacheView::new(k, l2), CacheView::new(v, l3));
        attend(q, k, v, shape, &self.pad, &mut Vec::new(), &mut out);
        Ok((CpuStorage::F32(out), Shape::from((b, h, 1, d))))
    }
}

/// Dot product with eight independent partial sums, so the compiler can vectorise it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use crate::model::layers::kernels::Kernels;
    use crate::model::layers::{attention, Mask};

    #[test]
    fn equals_the_composed_attention_with_padding_and_gqa() {
        let (b, h, hkv, s, d) = (3, 4, 2, 9, 16);
        let q = Tensor::randn(0f32, 1.0, (b, h, 1, d), &Device::Cpu).unwrap();
        // k and v as strided views, like the cache's narrowed buffer
        let k = Tensor::randn(0f32, 1.0, (b, hkv, s + 5, d), &Device::Cpu).unwrap().narrow(2, 0, s).unwrap();
        let v = Tensor::randn(0f32, 1.0, (b, hkv, s + 5, d), &Device::Cpu).unwrap().narrow(2, 0, s).unwrap();
        let pad = [0usize, 3, 8];
        let fast = attention(&q, &k, &v, Mask::DecodeStep { pad: &pad }, Kernels::Fused).unwrap();
        let slow = attention(
            &q,
            &k.contiguous().unwrap(),
            &v.contiguous().unwrap(),
            Mask::DecodeStep { pad: &pad },
            Kernels::Differentiable,
        )
        .unwrap();
        let diff = (fast - slow)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // f32 softmax-weighted sums of O(1) values in two summation orders
        assert!(diff < 1e-5, "max diff {diff}");
    }
}
