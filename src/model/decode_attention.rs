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

/// Element offset of [b, h, s, 0] in a 4-d layout.
fn offset(l: &Layout, b: usize, h: usize, s: usize) -> usize {
    let st = l.stride();
    l.start_offset() + b * st[0] + h * st[1] + s * st[2]
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
        {
            candle_core::bail!(
                "decode-attention: unexpected shapes q {:?} k {:?} v {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let rep = h / hkv;
        let scale = 1.0 / (d as f32).sqrt();
        let (ks, vs) = (l2.stride()[2], l3.stride()[2]);
        let mut out = vec![0f32; b * h * d];
        let mut scores = vec![0f32; s];
        for bi in 0..b {
            let first = self.pad[bi].min(s - 1);
            for hi in 0..h {
                let qo = offset(l1, bi, hi, 0);
                let qv = &q[qo..qo + d];
                let (k0, v0) = (offset(l2, bi, hi / rep, 0), offset(l3, bi, hi / rep, 0));
                let mut max = f32::NEG_INFINITY;
                for si in first..s {
                    let sc = dot(qv, &k[k0 + si * ks..k0 + si * ks + d]) * scale;
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
                    for (acc, &x) in o.iter_mut().zip(&v[v0 + si * vs..v0 + si * vs + d]) {
                        *acc += p * x;
                    }
                }
                let inv = 1.0 / total;
                o.iter_mut().for_each(|x| *x *= inv);
            }
        }
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

    use crate::model::layers::{attention, Kernels, Mask};

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
