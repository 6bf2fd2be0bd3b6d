//! SwiGLU's product silu(gate) ⊙ up, the MLP's widest activation ([tokens, intermediate]).
//!
//! With σ = sigmoid(gate): silu = gate σ, silu' = σ (1 + gate (1 − σ)); backward
//! dgate = dy ⊙ up ⊙ silu', dup = dy ⊙ silu, both written by one pass over (gate, up, dy).

use std::mem::MaybeUninit;

use anyhow::{ensure, Result};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{buffer, contiguous, kernel_serves, Real};
use crate::model::flash_attention::cpu::simd;
use crate::model::isa::Isa;

/// Elements per rayon task.
const ELEMS_PER_TASK: usize = 16 * 1024;

/// silu(gate) ⊙ up; gate and up of one shape. Differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    ensure!(gate.dims() == up.dims(), "swiglu: gate {:?} and up {:?} differ", gate.dims(), up.dims());
    if !kernel_serves(&[gate, up]) {
        return Ok((gate.silu()? * up)?);
    }
    Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)?)
}

#[inline(always)]
fn sigmoid<T: Real>(x: T) -> T {
    (T::one() + (-x).exp()).recip()
}

/// silu(gate) ⊙ up, elementwise over slices of one length, in parallel.
pub(super) fn product<T: Real>(gate: &[T], up: &[T]) -> Vec<T> {
    assert_eq!(gate.len(), up.len());
    let mut y = buffer::unfilled(gate.len());
    y.par_chunks_mut(ELEMS_PER_TASK)
        .zip(gate.par_chunks(ELEMS_PER_TASK).zip(up.par_chunks(ELEMS_PER_TASK)))
        .for_each(|(ys, (gs, us))| T::silu_product(gs, us, ys));
    // SAFETY: the chunks cover y, and every element of each was written
    unsafe { buffer::filled(y) }
}

/// y = silu(gate) ⊙ up for one chunk: element by element with libm's exp (f64, the tests'
/// finite differences).
pub(super) fn silu_product_scalar<T: Real>(gate: &[T], up: &[T], y: &mut [MaybeUninit<T>]) {
    for ((y, &g), &u) in y.iter_mut().zip(gate).zip(up) {
        y.write(g * sigmoid(g) * u);
    }
}

/// y = silu(gate) ⊙ up for f32, sixteen or eight lanes at a time where the CPU has AVX-512 or
/// AVX2 + FMA: with e = e^-|gate| through the softmax's exp (Cephes', about 2 ulp, never
/// overflowing), σ = 1 / (1 + e) for gate >= 0 and e / (1 + e) below, where libm's expf was
/// a call per element (a group of 6's decode step on the 15M llama spent
/// 45-55 µs of its ~2 ms in them). Every element goes through the same instructions wherever
/// it lies (a slice's tail is a masked step, not a scalar loop), so its bits do not depend on
/// its neighbours or on how a caller splits the slice: the training forward and the decode
/// step agree, and a row decoded in a group gets the bits it gets alone.
pub fn silu_product_f32(gate: &[f32], up: &[f32], y: &mut [MaybeUninit<f32>]) {
    assert!(gate.len() == up.len() && y.len() == gate.len(), "silu_product: lengths differ");
    // SAFETY: three slices of one length; y is written, each element once
    unsafe {
        silu_product_raw(Isa::best(), gate.as_ptr(), up.as_ptr(), y.as_mut_ptr() as *mut f32, gate.len())
    }
}

/// `silu_product_f32` into gate itself (the decode step's buffers).
pub fn silu_product_in_place(gate: &mut [f32], up: &[f32]) {
    assert!(gate.len() == up.len(), "silu_product: lengths differ");
    let g = gate.as_mut_ptr();
    // SAFETY: each element of gate is read before it is written, by the same step
    unsafe { silu_product_raw(Isa::best(), g, up.as_ptr(), g, gate.len()) }
}

/// y[i] = silu(gate[i]) up[i] for i < n, with `isa`.
///
/// # Safety
/// gate and up are valid for n reads, y for n writes; y may be gate (each step reads its
/// elements before it writes them) but overlaps neither otherwise; the CPU has `isa`.
unsafe fn silu_product_raw(isa: Isa, gate: *const f32, up: *const f32, y: *mut f32, n: usize) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => lanes::avx512(gate, up, y, n),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => lanes::avx2(gate, up, y, n),
        Isa::Portable => {
            for i in 0..n {
                let g = *gate.add(i);
                let e = simd::exp(-g.abs());
                let num = if g >= 0.0 { g } else { g * e };
                *y.add(i) = num / (1.0 + e) * *up.add(i);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod lanes {
    use std::arch::x86_64::*;

    use crate::model::flash_attention::cpu::simd::{exp_avx2, exp_avx512};

    /// Sixteen elements a step, the last n mod 16 a masked one.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(gate: *const f32, up: *const f32, y: *mut f32, n: usize) {
        let one = _mm512_set1_ps(1.0);
        let step = |i: usize, m: __mmask16| {
            let g = _mm512_maskz_loadu_ps(m, gate.add(i));
            let u = _mm512_maskz_loadu_ps(m, up.add(i));
            let e = exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(g)));
            let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(g, _mm512_setzero_ps());
            let num = _mm512_mask_mul_ps(g, negative, g, e);
            let silu = _mm512_div_ps(num, _mm512_add_ps(one, e));
            _mm512_mask_storeu_ps(y.add(i), m, _mm512_mul_ps(silu, u));
        };
        let mut i = 0;
        while i + 16 <= n {
            step(i, !0);
            i += 16;
        }
        if i < n {
            step(i, ((1u32 << (n - i)) - 1) as __mmask16);
        }
    }

    /// Eight elements a step, the last n mod 8 a masked one.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(gate: *const f32, up: *const f32, y: *mut f32, n: usize) {
        let one = _mm256_set1_ps(1.0);
        let step = |i: usize, m: __m256i| {
            let g = _mm256_maskload_ps(gate.add(i), m);
            let u = _mm256_maskload_ps(up.add(i), m);
            let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), g);
            let e = exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), abs));
            let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(g, _mm256_setzero_ps());
            let num = _mm256_blendv_ps(g, _mm256_mul_ps(g, e), negative);
            let silu = _mm256_div_ps(num, _mm256_add_ps(one, e));
            _mm256_maskstore_ps(y.add(i), m, _mm256_mul_ps(silu, u));
        };
        let mut i = 0;
        while i + 8 <= n {
            step(i, _mm256_set1_epi32(-1));
            i += 8;
        }
        if i < n {
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            step(i, _mm256_cmpgt_epi32(_mm256_set1_epi32((n - i) as i32), lane));
        }
    }
}

/// The product's backward: dgate = dy ⊙ up ⊙ silu'(gate), dup = dy ⊙ silu(gate).
/// Every element of dgate and dup is written (their lengths are gate's).
pub(super) fn product_grad<T: Real>(
    gate: &[T],
    up: &[T],
    dy: &[T],
    dgate: &mut [MaybeUninit<T>],
    dup: &mut [MaybeUninit<T>],
) {
    let n = gate.len();
    assert!(up.len() == n && dy.len() == n && dgate.len() == n && dup.len() == n);
    dgate
        .par_chunks_mut(ELEMS_PER_TASK)
        .zip(dup.par_chunks_mut(ELEMS_PER_TASK))
        .zip(gate.par_chunks(ELEMS_PER_TASK).zip(up.par_chunks(ELEMS_PER_TASK)))
        .zip(dy.par_chunks(ELEMS_PER_TASK))
        .for_each(|(((dgs, dus), (gs, us)), dys)| {
            for ((((dg, du), &g), &u), &d) in dgs.iter_mut().zip(dus).zip(gs).zip(us).zip(dys) {
                let (s, ds) = silu_and_grad(g);
                du.write(d * s);
                dg.write(d * u * ds);
            }
        });
}

/// (silu(x), silu'(x)): with σ = sigmoid(x), silu = x σ and silu' = σ (1 + x (1 − σ)).
#[inline(always)]
pub(super) fn silu_and_grad<T: Real>(x: T) -> (T, T) {
    let s = sigmoid(x);
    (x * s, s * (T::one() + x * (T::one() - s)))
}

struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            gs: &CpuStorage,
            gl: &Layout,
            us: &CpuStorage,
            ul: &Layout,
        ) -> candle_core::Result<CpuStorage> {
            let gate = contiguous::<T>("swiglu", gs, gl)?;
            let up = contiguous::<T>("swiglu", us, ul)?;
            Ok(T::to_cpu_storage_owned(product(gate, up)))
        }
        let out = match gs {
            CpuStorage::F32(_) => run::<f32>(gs, gl, us, ul)?,
            CpuStorage::F64(_) => run::<f64>(gs, gl, us, ul)?,
            _ => candle_core::bail!("fused swiglu: f32 or f64 only"),
        };
        Ok((out, gl.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let both = gate.apply_op3_no_bwd(up, &dy.contiguous()?, &SwiGluBackward)?; // [2, elems]
        let dgate = both.get(0)?.reshape(gate.shape())?;
        let dup = both.get(1)?.reshape(up.shape())?;
        Ok((Some(dgate), Some(dup)))
    }
}

/// (gate, up, dy) -> [2, elems]: dgate, then dup.
struct SwiGluBackward;

impl CustomOp3 for SwiGluBackward {
    fn name(&self) -> &'static str {
        "fused-swiglu-backward"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            (gs, gl): (&CpuStorage, &Layout),
            (us, ul): (&CpuStorage, &Layout),
            (ds, dl): (&CpuStorage, &Layout),
        ) -> candle_core::Result<(CpuStorage, Shape)> {
            let gate = contiguous::<T>("swiglu backward", gs, gl)?;
            let up = contiguous::<T>("swiglu backward", us, ul)?;
            let dy = contiguous::<T>("swiglu backward", ds, dl)?;
            let n = gate.len();
            let mut out = buffer::unfilled(2 * n);
            let (dgate, dup) = out.split_at_mut(n);
            product_grad(gate, up, dy, dgate, dup);
            // SAFETY: product_grad wrote both halves
            let out = unsafe { buffer::filled(out) };
            Ok((T::to_cpu_storage_owned(out), Shape::from((2, n))))
        }
        match gs {
            CpuStorage::F32(_) => run::<f32>((gs, gl), (us, ul), (ds, dl)),
            CpuStorage::F64(_) => run::<f64>((gs, gl), (us, ul), (ds, dl)),
            _ => candle_core::bail!("fused swiglu backward: f32 or f64 only"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gates over SiLU's whole range: both tails, where e^-gate overflows and underflows.
    fn gates(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37).sin() * 12.0 + if i % 7 == 0 { -95.0 } else { 0.0 }).collect()
    }

    fn run(isa: Isa, gate: &[f32], up: &[f32]) -> Vec<f32> {
        let mut y = vec![f32::NAN; gate.len()];
        // SAFETY: `isa` is one this CPU has; three slices of one length
        unsafe { silu_product_raw(isa, gate.as_ptr(), up.as_ptr(), y.as_mut_ptr(), gate.len()) };
        y
    }

    #[test]
    fn every_isa_is_silu_times_up_within_four_ulp() {
        let gate = gates(1003);
        let up: Vec<f32> = (0..1003).map(|i| 1.0 + (i % 13) as f32 * 0.25).collect();
        for isa in Isa::available() {
            for (i, &got) in run(isa, &gate, &up).iter().enumerate() {
                let g = gate[i] as f64;
                let want = g / (1.0 + (-g).exp()) * up[i] as f64;
                // the exp is good to ~2 ulp, the divide and the products add half an ulp each;
                // and e^-|gate| is 0 from |gate| > 87 (e^-87 = 1.6e-38), so a gate below -87
                // gives 0 for at most 87 x 1.6e-38 x |up| (up <= 4 here): under 1e-35
                let ulp = want.abs() * f32::EPSILON as f64;
                assert!(
                    (got as f64 - want).abs() <= 4.0 * ulp + 1e-35,
                    "{isa:?}: silu({}) * {} = {got}, want {want}",
                    gate[i],
                    up[i]
                );
            }
        }
    }

    #[test]
    fn an_element_gets_the_same_bits_wherever_it_lies() {
        // the decode step splits a group's product across threads at any element, and a row
        // decoded alone must get the bits it gets in a group
        let gate = gates(77);
        let up: Vec<f32> = (0..77).map(|i| 0.5 - (i % 5) as f32 * 0.3).collect();
        for isa in Isa::available() {
            let whole = run(isa, &gate, &up);
            for (from, to) in [(0, 1), (3, 20), (16, 17), (5, 77), (40, 56)] {
                let part = run(isa, &gate[from..to], &up[from..to]);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&part), bits(&whole[from..to]), "{isa:?} {from}..{to}");
            }
        }
    }

    #[test]
    fn the_tails_and_the_specials_are_silus() {
        let gate = [0.0, -0.0, 100.0, -100.0, f32::INFINITY, f32::NAN, 88.5, -88.5];
        let up = [1.0; 8];
        for isa in Isa::available() {
            let y = run(isa, &gate, &up);
            assert_eq!(y[0], 0.0, "{isa:?}");
            assert_eq!(y[2], 100.0, "{isa:?}: silu of a large gate is the gate");
            assert!(y[3].abs() < 1e-30, "{isa:?}: silu(-100) = {}", y[3]);
            assert_eq!(y[4], f32::INFINITY, "{isa:?}");
            assert!(y[5].is_nan(), "{isa:?}");
            assert_eq!(y[6], 88.5, "{isa:?}");
            assert!(y[7].abs() < 1e-30, "{isa:?}: silu(-88.5) = {}", y[7]);
        }
    }
}
