//! The Bradley-Terry pair loss: P(chosen ≻ rejected) = σ(r_c − r_r), so the negative
//! log-likelihood of a pair is −log σ(r_c − r_r) = softplus(r_r − r_c); pairs are weighted
//! by their `weight` and the loss is the weighted mean:
//!   L = Σ_i w_i · softplus(−(r_c,i − r_r,i)) / Σ_i w_i,
//!   ∂L/∂r_c,i = −w_i · σ(−(r_c,i − r_r,i)) / Σ w   (and the opposite for r_r,i).

use anyhow::{bail, Result};
use candle_core::Tensor;

/// softplus(x) = log(1 + eˣ), computed as max(x, 0) + log(1 + e^−|x|) so neither branch
/// overflows for large |x|.
fn softplus(x: &Tensor) -> Result<Tensor> {
    let pos = x.relu()?;
    let tail = x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    Ok((pos + tail)?)
}

/// The weighted mean pair loss of scores r_chosen [P], r_rejected [P] (f32 or f64) with pair
/// weights [P] (same dtype): a scalar, differentiable in both scores.
pub fn bradley_terry(r_chosen: &Tensor, r_rejected: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let total = weights.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
    if !(total.is_finite() && total > 0.0) {
        bail!("pair weights sum to {total}; the loss needs a positive total");
    }
    let per_pair = softplus(&(r_rejected - r_chosen)?)?;
    Ok(((per_pair * weights)?.sum_all()? / total)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// d = r_c − r_r = [0, ln 3], w = [1, 2]:
    ///   L = (ln 2 + 2·ln(4/3)) / 3,
    ///   ∂L/∂r_c = [−σ(0)/3, −2·σ(−ln 3)/3] = [−1/6, −1/6]   (σ(−ln 3) = 1/4),
    ///   ∂L/∂r_r = −∂L/∂r_c. Exact arithmetic in f64: tolerance 1e-12.
    #[test]
    fn matches_a_hand_computed_pair() {
        let dev = Device::Cpu;
        let rc = Var::new(&[0.5f64, 3f64.ln()], &dev).unwrap();
        let rr = Var::new(&[0.5f64, 0.0], &dev).unwrap();
        let w = Tensor::new(&[1.0f64, 2.0], &dev).unwrap();
        let loss = bradley_terry(rc.as_tensor(), rr.as_tensor(), &w).unwrap();
        let want = (2f64.ln() + 2.0 * (4.0f64 / 3.0).ln()) / 3.0;
        assert!((loss.to_scalar::<f64>().unwrap() - want).abs() < 1e-12);
        let grads = loss.backward().unwrap();
        let gc = grads.get(rc.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        let gr = grads.get(rr.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        for (g, want) in gc.iter().zip([-1.0 / 6.0, -1.0 / 6.0]) {
            assert!((g - want).abs() < 1e-12, "{gc:?}");
        }
        for (a, b) in gc.iter().zip(&gr) {
            assert!((a + b).abs() < 1e-12, "{gc:?} {gr:?}");
        }
    }

    /// Large margins do not overflow: at a margin of 40 the loss e^−40 ≈ 4e-18 is below what
    /// 1 + x resolves in f64 (so 0 up to 1e-15 is right), but its gradient −σ(−40) survives
    /// (relative 1e-6); at −40 the loss is 40 and the gradient −1 (to 1e-9).
    #[test]
    fn is_stable_far_from_zero() {
        let dev = Device::Cpu;
        let rc = Var::new(&[40.0f64, -40.0], &dev).unwrap();
        let rr = Tensor::new(&[0.0f64, 0.0], &dev).unwrap();
        let one = Tensor::new(&[1.0f64, 0.0], &dev).unwrap();
        let l = bradley_terry(rc.as_tensor(), &rr, &one).unwrap();
        assert!(l.to_scalar::<f64>().unwrap().abs() < 1e-15);
        let g = l.backward().unwrap().get(rc.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        let want = -1.0 / (1.0 + 40f64.exp());
        assert!((g[0] / want - 1.0).abs() < 1e-6, "{g:?} vs {want}");
        let other = Tensor::new(&[0.0f64, 1.0], &dev).unwrap();
        let l = bradley_terry(rc.as_tensor(), &rr, &other).unwrap();
        assert!((l.to_scalar::<f64>().unwrap() - 40.0).abs() < 1e-9);
        let g = l.backward().unwrap().get(rc.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        assert!((g[1] + 1.0).abs() < 1e-9, "{g:?}");
        let zero = Tensor::new(&[0.0f64, 0.0], &dev).unwrap();
        assert!(bradley_terry(rc.as_tensor(), &rr, &zero).is_err());
    }
}
