//! The device-generic path: composed candle ops, one block of queries (forward, dQ) or keys
//! (dK, dV) at a time against its whole visible range of the row.

use super::*;

/// [n, heads, Dh] positions -> [Hkv, rep * n, Dh]: query head h = g * rep + j is row
/// block j of kv group g, so one batched matmul per group serves all its query heads.
fn grouped(x: &Tensor, hkv: usize) -> Result<Tensor> {
    let (n, heads, dh) = x.dims3()?;
    Ok(x.transpose(0, 1)?.contiguous()?.reshape((hkv, heads / hkv * n, dh))?)
}

/// The inverse of `grouped`, for `heads` heads: -> [n, heads, last].
fn ungrouped(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (_, rows, last) = x.dims3()?;
    Ok(x.reshape((heads, rows * x.dim(0)? / heads, last))?.transpose(0, 1)?.contiguous()?)
}

/// Additive causal bias [n, n] (0 where key <= query, -inf after), from index comparison.
fn causal_bias(n: usize, dtype: DType, device: &candle_core::Device) -> Result<Tensor> {
    let idx = Tensor::arange(0u32, n as u32, device)?;
    let after = idx.unsqueeze(0)?.broadcast_gt(&idx.unsqueeze(1)?)?; // [query, key]
    let zeros = Tensor::zeros((n, n), dtype, device)?;
    let neg_inf = Tensor::full(f32::NEG_INFINITY, (n, n), device)?.to_dtype(dtype)?;
    Ok(after.where_cond(&neg_inf, &zeros)?)
}

/// Scaled scores [Hkv, rep, nq, nk] of queries q_pos.. against keys k_pos.., where the
/// `diag` positions the two ranges share (at the end of the keys, at the start of the
/// queries) are masked causally. qg: [Hkv, rep * nq, Dh], kg: [Hkv, nk, Dh].
fn scores(
    qg: &Tensor,
    kg: &Tensor,
    rep: usize,
    scale: f64,
    bias: &Tensor,
    queries_first: bool,
) -> Result<Tensor> {
    let (hkv, rows, _) = qg.dims3()?;
    let nk = kg.dim(1)?;
    let nq = rows / rep;
    let s = (qg.matmul(&kg.t()?)? * scale)?.reshape((hkv, rep, nq, nk))?;
    let n = nq.min(nk);
    let bias = bias.narrow(0, 0, n)?.narrow(1, 0, n)?;
    Ok(if queries_first {
        // keys k0..k0+nk, queries k0..: the first nk queries share the keys' range
        let diag = s.narrow(2, 0, n)?.broadcast_add(&bias)?;
        if nq == n {
            diag
        } else {
            Tensor::cat(&[&diag, &s.narrow(2, n, nq - n)?], 2)?
        }
    } else {
        // queries q0..q1, keys row_start..q1: the last nq keys share the queries' range
        let diag = s.narrow(3, nk - n, n)?.broadcast_add(&bias)?;
        if nk == n {
            diag
        } else {
            Tensor::cat(&[&s.narrow(3, 0, nk - n)?, &diag], 3)?
        }
    })
}

/// (O [T, H, Dh], lse [T, H]), detached inputs in the compute dtype.
pub(super) fn forward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    cu_seqlens: &[usize],
    scale: f64,
) -> Result<(Tensor, Tensor)> {
    let (h, hkv) = (q.dim(1)?, k.dim(1)?);
    let rep = h / hkv;
    let bias = causal_bias(GENERIC_BLOCK, q.dtype(), q.device())?;
    let (mut outs, mut lses) = (Vec::new(), Vec::new());
    for blk in blocks(cu_seqlens, GENERIC_BLOCK) {
        let (bq, keys) = (blk.len(), blk.end - blk.row_start);
        let qg = grouped(&q.narrow(0, blk.start, bq)?, hkv)?;
        let kg = grouped(&k.narrow(0, blk.row_start, keys)?, hkv)?;
        let vg = grouped(&v.narrow(0, blk.row_start, keys)?, hkv)?;
        let s = scores(&qg, &kg, rep, scale, &bias, false)?.reshape((hkv, rep * bq, keys))?;
        let m = s.max_keepdim(D::Minus1)?;
        let p = s.broadcast_sub(&m)?.exp()?;
        let l = p.sum_keepdim(D::Minus1)?;
        let o = p.broadcast_div(&l)?.matmul(&vg)?; // [Hkv, rep * bq, Dh]
        outs.push(ungrouped(&o, h)?);
        lses.push(ungrouped(&(m + l.log()?)?, h)?.squeeze(2)?);
    }
    Ok((Tensor::cat(&outs, 0)?, Tensor::cat(&lses, 0)?))
}

/// (dq, dk, dv): a pass over query blocks for dQ, one over key blocks for dK and dV.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    o: &Tensor,
    d_o: &Tensor,
    lse: &Tensor,
    cu_seqlens: &[usize],
    scale: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (q, k, v, o, d_o) = (q.detach(), k.detach(), v.detach(), o.detach(), d_o.detach());
    let (h, hkv) = (q.dim(1)?, k.dim(1)?);
    let rep = h / hkv;
    let bias = causal_bias(GENERIC_BLOCK, q.dtype(), q.device())?;
    let d = (&d_o * &o)?.sum_keepdim(D::Minus1)?; // [T, H, 1]
    let lse = lse.unsqueeze(2)?; // [T, H, 1]
    let (mut dqs, mut dks, mut dvs) = (Vec::new(), Vec::new(), Vec::new());
    for blk in blocks(cu_seqlens, GENERIC_BLOCK) {
        // dQ of queries blk against keys row_start..blk.end
        let (bq, keys) = (blk.len(), blk.end - blk.row_start);
        let qg = grouped(&q.narrow(0, blk.start, bq)?, hkv)?;
        let kg = grouped(&k.narrow(0, blk.row_start, keys)?, hkv)?;
        let vg = grouped(&v.narrow(0, blk.row_start, keys)?, hkv)?;
        let dog = grouped(&d_o.narrow(0, blk.start, bq)?, hkv)?;
        let s = scores(&qg, &kg, rep, scale, &bias, false)?.reshape((hkv, rep * bq, keys))?;
        let p = s.broadcast_sub(&grouped(&lse.narrow(0, blk.start, bq)?, hkv)?)?.exp()?;
        let dp = dog.matmul(&vg.t()?)?;
        let ds = (p * dp.broadcast_sub(&grouped(&d.narrow(0, blk.start, bq)?, hkv)?)?)?;
        dqs.push(ungrouped(&(ds.matmul(&kg)? * scale)?, h)?);

        // dK, dV of keys blk against queries blk.start..row_end
        let (bk, queries) = (blk.len(), blk.row_end - blk.start);
        let qg = grouped(&q.narrow(0, blk.start, queries)?, hkv)?;
        let kg = grouped(&k.narrow(0, blk.start, bk)?, hkv)?;
        let vg = grouped(&v.narrow(0, blk.start, bk)?, hkv)?;
        let dog = grouped(&d_o.narrow(0, blk.start, queries)?, hkv)?;
        let s = scores(&qg, &kg, rep, scale, &bias, true)?.reshape((hkv, rep * queries, bk))?;
        let p = s.broadcast_sub(&grouped(&lse.narrow(0, blk.start, queries)?, hkv)?)?.exp()?;
        let dp = dog.matmul(&vg.t()?)?;
        let ds = (&p * dp.broadcast_sub(&grouped(&d.narrow(0, blk.start, queries)?, hkv)?)?)?;
        // contracting over rep * queries sums the group's query heads (GQA)
        dvs.push(ungrouped(&p.t()?.matmul(&dog)?, hkv)?);
        dks.push(ungrouped(&(ds.t()?.matmul(&qg)? * scale)?, hkv)?);
    }
    Ok((Tensor::cat(&dqs, 0)?, Tensor::cat(&dks, 0)?, Tensor::cat(&dvs, 0)?))
}
