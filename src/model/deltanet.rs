//! The gated delta rule of Gated DeltaNet layers, in its two forms. Both are composed of
//! differentiable candle ops and give the same numbers (tested).
//!
//! Per head, with state S: [dk, dv], for each position t:
//!   S <- exp(g_t) S;  delta = beta_t (v_t - Sᵀ k_t);  S <- S + k_t deltaᵀ;  o_t = Sᵀ q_t.
//!
//! Shapes: q, k: [B, H, T, dk] (L2-normalised); v: [B, H, T, dv]; g, beta: [B, H, T];
//! state: [B, H, dk, dv]. All f32 (f64 for f64 models); q is scaled by dk^-1/2 here.

use anyhow::Result;
use candle_core::{DType, Tensor, D};

/// Positions per chunk of the chunked form (transformers and fla use 64).
pub const CHUNK: usize = 64;

/// Batched matmul over any number of leading dims (candle's CPU kernel takes at most two).
fn mm(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ad, bd) = (a.dims(), b.dims());
    let r = ad.len();
    let batch: usize = ad[..r - 2].iter().product();
    let (m, k, n) = (ad[r - 2], ad[r - 1], bd[r - 1]);
    let y = a.contiguous()?.reshape((batch, m, k))?.matmul(&b.contiguous()?.reshape((batch, k, n))?)?;
    let mut shape = ad[..r - 2].to_vec();
    shape.extend([m, n]);
    Ok(y.reshape(shape)?)
}

/// The state carried in, or zeros [B, H, dk, dv] for k: [B, H, T, dk], v: [B, H, T, dv].
fn initial_state(state: Option<&Tensor>, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    if let Some(s) = state {
        return Ok(s.clone());
    }
    let (b, h, _, dk) = k.dims4()?;
    let dv = v.dim(3)?;
    Ok(Tensor::zeros((b, h, dk, dv), k.dtype(), k.device())?)
}

/// One position after another: the decode form. Returns (o: [B, H, T, dv], final state).
pub fn recurrent(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    g: &Tensor,
    beta: &Tensor,
    state: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let t_len = q.dim(2)?;
    let scale = (q.dim(3)? as f64).powf(-0.5);
    let mut s = initial_state(state, k, v)?;
    let mut outs = Vec::with_capacity(t_len);
    for t in 0..t_len {
        let q_t = (q.narrow(2, t, 1)?.squeeze(2)? * scale)?; // [B, H, dk]
        let k_t = k.narrow(2, t, 1)?.squeeze(2)?;
        let v_t = v.narrow(2, t, 1)?.squeeze(2)?; // [B, H, dv]
        let decay = g.narrow(2, t, 1)?.exp()?.unsqueeze(3)?; // [B, H, 1, 1]
        let beta_t = beta.narrow(2, t, 1)?; // [B, H, 1]
        s = s.broadcast_mul(&decay)?;
        let kv_mem = s.broadcast_mul(&k_t.unsqueeze(3)?)?.sum(2)?; // Sᵀk: [B, H, dv]
        let delta = (v_t - kv_mem)?.broadcast_mul(&beta_t)?;
        s = (s + k_t.unsqueeze(3)?.broadcast_mul(&delta.unsqueeze(2)?)?)?;
        outs.push(s.broadcast_mul(&q_t.unsqueeze(3)?)?.sum(2)?.unsqueeze(2)?); // Sᵀq: [B, H, 1, dv]
    }
    Ok((Tensor::cat(&outs, 2)?, s))
}

/// Chunks of CHUNK positions, the last zero-padded: within a chunk the recurrence is solved
/// in closed form (a unit-lower-triangular system), between chunks the state carries over.
/// Returns (o: [B, H, T, dv], final state).
pub fn chunked(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    g: &Tensor,
    beta: &Tensor,
    state: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let (b, h, t_len, dk) = q.dims4()?;
    let s0 = initial_state(state, k, v)?;
    let dv = v.dim(3)?;
    let (dtype, device) = (q.dtype(), q.device());
    let c = CHUNK;
    let n = t_len.div_ceil(c);
    let pad = n * c - t_len;
    let pad3 = |x: &Tensor| -> Result<Tensor> {
        if pad == 0 {
            return Ok(x.clone());
        }
        let mut shape = x.dims().to_vec();
        shape[2] = pad;
        Ok(Tensor::cat(&[x, &Tensor::zeros(shape, dtype, device)?], 2)?)
    };
    let scale = (dk as f64).powf(-0.5);
    let q = (pad3(q)? * scale)?;
    let (k, v, g, beta) = (pad3(k)?, pad3(v)?, pad3(g)?, pad3(beta)?);
    let beta = beta.unsqueeze(3)?;
    let v_beta = v.broadcast_mul(&beta)?.reshape((b, h, n, c, dv))?;
    let k_beta = k.broadcast_mul(&beta)?.reshape((b, h, n, c, dk))?;
    let q = q.reshape((b, h, n, c, dk))?;
    let k = k.reshape((b, h, n, c, dk))?;
    let g = g.reshape((b, h, n, c))?.cumsum(3)?; // log of the decay from chunk start to each position

    // lower[i][j] = 1 for j <= i; strict[i][j] = 1 for j < i
    let lower = Tensor::tril2(c, dtype, device)?;
    let strict = (&lower - Tensor::eye(c, dtype, device)?)?;
    // decay[i][j] = exp(g_i - g_j) for j <= i, else 0 (masked before exp: the upper side overflows)
    let diff = g.unsqueeze(4)?.broadcast_sub(&g.unsqueeze(3)?)?.broadcast_mul(&lower)?;
    let decay = diff.exp()?.broadcast_mul(&lower)?; // [B, H, N, C, C]

    // A = -(k_beta kᵀ ⊙ decay), strictly lower; T = (I - A)⁻¹ by forward substitution,
    // row i: T_i = A_i + A_i[:i] T[:i]
    let a = mm(&k_beta, &k.transpose(3, 4)?)?.mul(&decay)?.broadcast_mul(&strict)?.neg()?;
    let mut rows: Vec<Tensor> = vec![a.narrow(3, 0, 1)?];
    for i in 1..c {
        let row = a.narrow(3, i, 1)?; // [B, H, N, 1, C]
        let solved = Tensor::cat(&rows, 3)?; // [B, H, N, i, C]
        rows.push((&row + mm(&row.narrow(4, 0, i)?, &solved)?)?);
    }
    let t_inv = Tensor::cat(&rows, 3)?.broadcast_add(&Tensor::eye(c, dtype, device)?)?;
    let value = mm(&t_inv, &v_beta)?; // [B, H, N, C, dv]
    let k_cumdecay = mm(&t_inv, &k_beta.broadcast_mul(&g.exp()?.unsqueeze(4)?)?)?; // [B, H, N, C, dk]

    let mut s = s0;
    let mut outs = Vec::with_capacity(n);
    for i in 0..n {
        let q_i = q.narrow(2, i, 1)?.squeeze(2)?; // [B, H, C, dk]
        let k_i = k.narrow(2, i, 1)?.squeeze(2)?;
        let g_i = g.narrow(2, i, 1)?.squeeze(2)?; // [B, H, C]
        let within = mm(&q_i, &k_i.t()?)?.mul(&decay.narrow(2, i, 1)?.squeeze(2)?)?.broadcast_mul(&lower)?;
        let v_new = (value.narrow(2, i, 1)?.squeeze(2)? - mm(&k_cumdecay.narrow(2, i, 1)?.squeeze(2)?, &s)?)?;
        let from_state = mm(&q_i.broadcast_mul(&g_i.exp()?.unsqueeze(3)?)?, &s)?;
        outs.push((from_state + mm(&within, &v_new)?)?);
        let g_last = g_i.narrow(2, c - 1, 1)?; // [B, H, 1]
        let carried = s.broadcast_mul(&g_last.exp()?.unsqueeze(3)?)?;
        let k_decayed = k_i.broadcast_mul(&g_last.broadcast_sub(&g_i)?.exp()?.unsqueeze(3)?)?;
        s = (carried + mm(&k_decayed.t()?, &v_new)?)?;
    }
    let out = Tensor::cat(&outs, 2)?.narrow(2, 0, t_len)?;
    Ok((out, s))
}

/// x / sqrt(Σx² + 1e-6) over the last dim.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = (x.sqr()?.sum_keepdim(D::Minus1)? + 1e-6)?.sqrt()?;
    Ok(x.broadcast_div(&norm)?)
}

/// softplus(x) = log(1 + e^x), computed as max(x, 0) + log(1 + e^-|x|) so it never overflows.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// The dtype the recurrence runs in: f32, or f64 for f64 models.
pub fn compute_dtype(dtype: DType) -> DType {
    if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}
