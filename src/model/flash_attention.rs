//! TEMPORARY stand-in (replaced by the blockwise op from branch `flash` before commit).
use anyhow::Result;
use candle_core::{Tensor, D};

pub fn varlen_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cu_seqlens: &[usize],
    scale: f64,
) -> Result<Tensor> {
    let (_, h, dh) = q.dims3()?;
    let hkv = k.dim(1)?;
    let rep = h / hkv;
    let mut outs = Vec::new();
    for w in cu_seqlens.windows(2) {
        let (s, l) = (w[0], w[1] - w[0]);
        let q = q.narrow(0, s, l)?.transpose(0, 1)?.contiguous()?; // [H, l, Dh]
        let k = k.narrow(0, s, l)?.transpose(0, 1)?.contiguous()?;
        let v = v.narrow(0, s, l)?.transpose(0, 1)?.contiguous()?;
        let k = k.unsqueeze(1)?.repeat((1, rep, 1, 1))?.reshape((h, l, dh))?;
        let v = v.unsqueeze(1)?.repeat((1, rep, 1, 1))?.reshape((h, l, dh))?;
        let att = (q.matmul(&k.t()?)? * scale)?;
        let mask: Vec<f32> =
            (0..l).flat_map(|i| (0..l).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY })).collect();
        let mask = Tensor::from_vec(mask, (l, l), q.device())?.to_dtype(q.dtype())?;
        let att = att.broadcast_add(&mask)?;
        let p = candle_nn::ops::softmax(&att, D::Minus1)?;
        outs.push(p.matmul(&v)?.transpose(0, 1)?);
    }
    Ok(Tensor::cat(&outs, 0)?)
}
