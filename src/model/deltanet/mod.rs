//! The gated delta rule of Gated DeltaNet layers, in its two forms. Both are composed of
//! differentiable candle ops and give the same numbers (tested).
//!
//! Per head, with state S: [dk, dv], for each position t:
//!   S <- exp(g_t) S;  delta = beta_t (v_t - Sᵀ k_t);  S <- S + k_t deltaᵀ;  o_t = Sᵀ q_t.
//!
//! Shapes: q, k: [B, H, T, dk] (L2-normalised); v: [B, H, T, dv]; g, beta: [B, H, T];
//! state: [B, H, dk, dv]. All f32 (f64 for f64 models); q is scaled by dk^-1/2 here.

pub mod fused;

use anyhow::Result;
use candle_core::{DType, Tensor, D};

/// Positions per chunk of the chunked form (transformers and fla use 64).
pub const CHUNK: usize = 64;

/// Batched matmul over any number of leading dims (candle's CPU kernel takes at most two).
fn mm(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (ad, bd) = (a.dims(), b.dims());
    let r = ad.len();
    let batch: usize = ad[..r - 2].iter().product();
    let (m, k, n) = (ad[r - 2], ad[r - 1], bd[r - 1]);
    let y = a.contiguous()?.reshape((batch, m, k))?.matmul(&b.contiguous()?.reshape((batch, k, n))?)?;
    let mut shape = ad[..r - 2].to_vec();
    shape.extend([m, n]);
    y.reshape(shape)
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

/// Which form of the gated delta rule a multi-position forward uses: `chunked`, or
/// `recurrent` one position at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaForm {
    Chunked,
    Recurrent,
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

    // A = -(k_beta kᵀ ⊙ decay), strictly lower; T = (I - A)⁻¹
    let a = mm(&k_beta, &k.transpose(3, 4)?)?.mul(&decay)?.broadcast_mul(&strict)?.neg()?;
    let t_inv = unit_lower_inverse(&a)?;
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

/// (I - A)⁻¹ for strictly lower-triangular A: [..., C, C], differentiable. On the CPU one
/// op that keeps only its result for backward (C² numbers a chunk, where composed forward
/// substitution keeps ~C³/2); elsewhere (GPUs) the product form in batched matmuls.
pub fn unit_lower_inverse(a: &Tensor) -> Result<Tensor> {
    if crate::model::fused::host_kernels(a) && matches!(a.dtype(), DType::F32 | DType::F64) {
        return Ok(a.contiguous()?.apply_op1(UnitLowerInverse)?);
    }
    composed_inverse(a)
}

/// `unit_lower_inverse` in composed ops (any device). A strictly lower C x C is nilpotent
/// (A^C = 0), so (I - A)⁻¹ = Σ_{k<C} A^k = (I + A)(I + A²)(I + A⁴)···(I + A^(2^(m-1))) with
/// 2^m ≥ C: 2(m - 1) batched [C, C] matmuls (10 at C = 64), each over every chunk and head
/// at once, where forward substitution is C - 1 dependent row solves whose autograd keeps
/// ~C³/2 numbers a chunk (this keeps 2(m - 1) C²). Every power A^k is summed exactly once.
fn composed_inverse(a: &Tensor) -> Result<Tensor> {
    let c = a.dim(D::Minus1)?;
    let eye = Tensor::eye(c, a.dtype(), a.device())?;
    let mut x = a.broadcast_add(&eye)?; // Σ_{k<2} A^k
    let mut power = a.clone(); // A^(span/2)
    let mut span = 2;
    while span < c {
        power = mm(&power, &power)?;
        x = (&x + mm(&x, &power)?)?; // Σ_{k<2·span} A^k
        span *= 2;
    }
    Ok(x)
}

/// The CPU op behind `unit_lower_inverse`. With X = (I - A)⁻¹, dX = X dA X, so
/// dL/dA = Xᵀ (dL/dX) Xᵀ.
struct UnitLowerInverse;

impl UnitLowerInverse {
    /// X = I + A X row by row, for each C x C matrix of `a` (row-major, contiguous).
    fn solve<T>(a: &[T], c: usize) -> Vec<T>
    where
        T: Copy + Send + Sync + num_like::Float,
    {
        use rayon::prelude::*;
        let mut x = vec![T::zero(); a.len()];
        x.par_chunks_mut(c * c).zip(a.par_chunks(c * c)).for_each(|(x, a)| {
            for i in 0..c {
                x[i * c + i] = T::one();
                for j in 0..i {
                    let aij = a[i * c + j];
                    if aij == T::zero() {
                        continue;
                    }
                    // X_i += A_ij X_j, X_j nonzero only up to column j
                    let (done, rest) = x.split_at_mut(i * c);
                    let xj = &done[j * c..j * c + j + 1];
                    for (o, &v) in rest[..j + 1].iter_mut().zip(xj) {
                        *o = *o + aij * v;
                    }
                }
            }
        });
        x
    }
}

impl candle_core::CustomOp1 for UnitLowerInverse {
    fn name(&self) -> &'static str {
        "unit-lower-inverse"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage;
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("unit-lower-inverse needs a contiguous input")
        };
        let c = layout.dims()[layout.dims().len() - 1];
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(Self::solve(&v[start..end], c)),
            CpuStorage::F64(v) => CpuStorage::F64(Self::solve(&v[start..end], c)),
            _ => candle_core::bail!("unit-lower-inverse runs in f32 or f64"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _a: &Tensor, x: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let xt = x.t()?;
        Ok(Some(mm(&mm(&xt, grad)?, &xt)?))
    }
}

/// The two element types the CPU solve runs in.
mod num_like {
    pub trait Float: Copy + PartialEq + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> {
        fn zero() -> Self;
        fn one() -> Self;
    }
    impl Float for f32 {
        fn zero() -> Self {
            0.0
        }
        fn one() -> Self {
            1.0
        }
    }
    impl Float for f64 {
        fn zero() -> Self {
            0.0
        }
        fn one() -> Self {
            1.0
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Largest |x| of a tensor.
    fn max_abs(x: &Tensor) -> f64 {
        x.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
    }

    /// A strictly lower [2, C, C] of values in (-1, 1), as the chunked form's A is.
    fn strictly_lower(c: usize) -> Tensor {
        let v: Vec<f64> = (0..2 * c * c)
            .map(|i| {
                let (r, col) = ((i / c) % c, i % c);
                if col < r {
                    ((i * 37 % 101) as f64 / 50.0 - 1.0) * 0.9
                } else {
                    0.0
                }
            })
            .collect();
        Tensor::from_vec(v, (2, c, c), &Device::Cpu).unwrap()
    }

    #[test]
    fn the_cpu_inverse_equals_the_product_form_and_inverts() {
        let a = strictly_lower(CHUNK);
        let fast = unit_lower_inverse(&a).unwrap();
        let slow = composed_inverse(&a).unwrap();
        // f64, the same products summed in another order: ~1e-15 relative to entries of up to ~1e3
        let d = (&fast - &slow)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(d < 1e-9, "differs by {d}");
        // (I - A) X = I
        let eye = Tensor::eye(CHUNK, DType::F64, &Device::Cpu).unwrap();
        let prod = mm(&eye.broadcast_sub(&a).unwrap(), &fast).unwrap().broadcast_sub(&eye).unwrap();
        let d = max_abs(&prod);
        assert!(d < 1e-9, "(I - A) X - I reaches {d}");
    }

    #[test]
    fn the_cpu_inverse_gradient_matches_composed_ops() {
        let c = 9;
        let a = Var::from_tensor(&strictly_lower(c)).unwrap();
        let seed: Vec<f64> = (0..2 * c * c).map(|i| ((i * 13 % 17) as f64 - 8.0) / 5.0).collect();
        let seed = Tensor::from_vec(seed, (2, c, c), &Device::Cpu).unwrap();
        let grad = |x: Tensor| -> Tensor {
            let g = (x * &seed).unwrap().sum_all().unwrap().backward().unwrap();
            g.get(a.as_tensor()).unwrap().clone()
        };
        let fast = grad(unit_lower_inverse(a.as_tensor()).unwrap());
        let slow = grad(composed_inverse(a.as_tensor()).unwrap());
        // compare on the strictly lower part (A's only free entries); f64, ~1e-14 relative
        let lower = Tensor::tril2(c, DType::F64, &Device::Cpu)
            .unwrap()
            .sub(&Tensor::eye(c, DType::F64, &Device::Cpu).unwrap())
            .unwrap();
        let d =
            max_abs(&(fast.broadcast_mul(&lower).unwrap() - slow.broadcast_mul(&lower).unwrap()).unwrap());
        assert!(d < 1e-10, "gradients differ by {d}");
    }
}
