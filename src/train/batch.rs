//! Prompt + response rows packed for a training pass: right-padded inputs and targets, and
//! where each response sits among the target positions.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};

pub struct Packed {
    /// [R, T] token ids; target t follows input t
    pub inputs: Tensor,
    /// [R, T]
    pub targets: Tensor,
    /// Per row (start, len): the response occupies target positions [prompt_len − 1, len − 1).
    pub spans: Vec<(usize, usize)>,
}

/// Packs (prompt ids, response ids) rows. Right padding: causal attention keeps it out of
/// the real positions, and padded targets get coefficient 0.
pub fn pack(rows: &[(&[u32], &[u32])], device: &Device) -> Result<Packed> {
    if rows.iter().any(|(p, _)| p.is_empty()) {
        bail!("a training row has an empty prompt (a response needs a token to follow)");
    }
    let len = |(p, r): &(&[u32], &[u32])| p.len() + r.len();
    let t = rows.iter().map(len).max().unwrap_or(1).max(2) - 1;
    let (mut inputs, mut targets) = (Vec::with_capacity(rows.len() * t), Vec::with_capacity(rows.len() * t));
    for (p, r) in rows {
        let seq: Vec<u32> = p.iter().chain(r.iter()).copied().collect();
        let pad = t + 1 - seq.len();
        inputs.extend(seq[..seq.len() - 1].iter().copied().chain(std::iter::repeat_n(0, pad)));
        targets.extend(seq[1..].iter().copied().chain(std::iter::repeat_n(0, pad)));
    }
    Ok(Packed {
        inputs: Tensor::from_vec(inputs, (rows.len(), t), device)?,
        targets: Tensor::from_vec(targets, (rows.len(), t), device)?,
        spans: rows.iter().map(|(p, r)| (p.len() - 1, r.len())).collect(),
    })
}

/// The response span of each row of a [R, T] tensor, as f64.
pub fn response_rows(x: &Tensor, spans: &[(usize, usize)]) -> Result<Vec<Vec<f64>>> {
    let all: Vec<Vec<f64>> = x.to_dtype(DType::F64)?.to_vec2()?;
    Ok(spans.iter().zip(&all).map(|(&(s, n), row)| row[s..s + n].to_vec()).collect())
}

/// Per-row response coefficients laid out over the [R, T] target positions (zeros elsewhere).
pub fn spread(
    coefficients: &[Vec<f64>],
    spans: &[(usize, usize)],
    t: usize,
    device: &Device,
) -> Result<Tensor> {
    let mut out = vec![vec![0f64; t]; spans.len()];
    for ((row, &(s, _)), c) in out.iter_mut().zip(spans).zip(coefficients) {
        row[s..s + c.len()].copy_from_slice(c);
    }
    Ok(Tensor::new(out, device)?)
}
