//! Whether tensors hold only finite numbers: checked on every weight a model or a checkpoint
//! loads, and on the trainable weights after every update, so that NaN or an infinity is
//! refused with the tensor's name instead of spreading through a run.

use anyhow::Result;
use candle_core::{DType, Tensor};

/// Whether every element of `t` is finite. x·0 is 0 for a finite x and NaN for NaN or ±inf,
/// and a sum of zeros cannot overflow in any dtype (f16 included), so one sum tells.
pub fn all_finite(t: &Tensor) -> Result<bool> {
    if !t.dtype().is_float() {
        return Ok(true);
    }
    let zeros = t.affine(0.0, 0.0)?.sum_all()?;
    Ok(zeros.to_dtype(DType::F32)?.to_scalar::<f32>()?.is_finite())
}

/// The name of the first tensor that holds a NaN or an infinity, if any.
pub fn first_non_finite<'a>(
    named: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
) -> Result<Option<String>> {
    for (name, t) in named {
        if !all_finite(t)? {
            return Ok(Some(name.to_string()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn nan_and_infinities_are_found_in_every_float_dtype_and_large_finite_sums_are_not() {
        for dtype in [DType::F32, DType::BF16, DType::F16, DType::F64] {
            let ok = Tensor::new(&[1.0f32, -2.5, 0.0], &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            assert!(all_finite(&ok).unwrap(), "{dtype:?}");
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let t = Tensor::new(&[1.0f32, bad, 3.0], &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
                assert!(!all_finite(&t).unwrap(), "{dtype:?} {bad}");
            }
        }
        // 100k values of 60000 sum far past f16's largest (65504): still finite elementwise
        let big = Tensor::full(60000f32, 100_000, &Device::Cpu).unwrap().to_dtype(DType::F16).unwrap();
        assert!(all_finite(&big).unwrap());
        let a = Tensor::new(&[1.0f32], &Device::Cpu).unwrap();
        let b = Tensor::new(&[f32::NAN], &Device::Cpu).unwrap();
        assert_eq!(first_non_finite([("a", &a), ("b", &b)]).unwrap().as_deref(), Some("b"));
        assert_eq!(first_non_finite([("a", &a)]).unwrap(), None);
    }
}
