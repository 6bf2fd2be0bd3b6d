//! The LoRA branch of one projection, `s · dropout(x) Aᵀ Bᵀ`, and the dropout its adapters
//! share; `layers::linear::Linear` adds it to the frozen `x Wᵀ (+ b)`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::layers::kernels::{linear, Kernels};

/// LoRA dropout shared by every adapter of a model: on only in training mode.
pub struct Dropout {
    p: f64,
    training: AtomicBool,
    rng: Mutex<ChaCha8Rng>,
}

impl Dropout {
    pub fn new(p: f64, seed: u64) -> Self {
        Self { p, training: AtomicBool::new(false), rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)) }
    }

    pub fn set_training(&self, on: bool) {
        self.training.store(on, Ordering::Relaxed);
    }

    /// Position of the mask generator (32-bit words drawn), for checkpoints.
    pub fn position(&self) -> u128 {
        self.rng.lock().expect("dropout rng").get_word_pos()
    }

    pub fn set_position(&self, words: u128) {
        self.rng.lock().expect("dropout rng").set_word_pos(words);
    }

    /// x with each element zeroed with probability p and the rest scaled by 1/(1 − p)
    /// (inverted dropout, as torch), or x itself outside training forwards.
    fn apply(&self, x: &Tensor, kernels: Kernels) -> Result<Tensor> {
        if self.p == 0.0 || kernels != Kernels::Differentiable || !self.training.load(Ordering::Relaxed) {
            return Ok(x.clone());
        }
        let keep = 1.0 / (1.0 - self.p) as f32;
        let mask: Vec<f32> = {
            let mut rng = self.rng.lock().expect("dropout rng");
            (0..x.elem_count()).map(|_| if rng.random::<f64>() < self.p { 0.0 } else { keep }).collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), &candle_core::Device::Cpu)?
            .to_dtype(x.dtype())?
            .to_device(x.device())?;
        Ok((x * mask)?)
    }
}

/// A low-rank update of one projection.
pub struct Lora {
    /// [r, in]
    pub a: Tensor,
    /// [out, r]
    pub b: Tensor,
    pub scale: f64,
    pub dropout: Arc<Dropout>,
}

impl Lora {
    /// s · dropout(x) Aᵀ Bᵀ for x: [..., in] -> [..., out], in the adapter's own dtype
    /// (`adapter_dtype`): x is widened for it, so gradients reach A and B in f32.
    pub fn forward(&self, x: &Tensor, kernels: Kernels) -> Result<Tensor> {
        let xa = x.to_dtype(self.a.dtype())?;
        let down = linear(&self.dropout.apply(&xa, kernels)?, &self.a, None, kernels)?; // [..., r]
        let up = linear(&down, &self.b, None, kernels)?;
        Ok((up * self.scale)?)
    }
}

/// The dtype LoRA adapters are kept and trained in over a base of `base` dtype: f32 over
/// bf16, f16 and f32 bases (mixed precision: a bf16 adapter would lose updates below 2^-8
/// of its weights, and B starts at zero), f64 over f64 (the tests' finite differences).
pub fn adapter_dtype(base: DType) -> DType {
    if base == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// PEFT's initialisation of A: kaiming_uniform_(a=√5) on [r, in], i.e. gain √(2/(1+5)),
/// bound = gain·√3/√in = 1/√in.
pub fn kaiming_uniform(rng: &mut ChaCha8Rng, r: usize, inp: usize) -> Vec<f32> {
    let bound = 1.0 / (inp as f32).sqrt();
    (0..r * inp).map(|_| rng.random_range(-bound..bound)).collect()
}
