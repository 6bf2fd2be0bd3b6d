//! Where a model's tensors come from (a checkpoint, or a seeded random initialisation)
//! and which of them train. A trainable tensor is a candle `Var`; a frozen one is a plain
//! tensor that backward never reaches.

use std::sync::Arc;

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::weights::Checkpoint;

/// Decides by canonical tensor name whether a parameter trains.
pub type TrainableFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Nothing trains (inference).
pub fn frozen() -> TrainableFn {
    Arc::new(|_| false)
}

/// Every parameter trains (full fine-tune).
pub fn all_trainable() -> TrainableFn {
    Arc::new(|_| true)
}

#[derive(Clone)]
pub struct LoadOptions {
    pub dtype: DType,
    pub device: Device,
    pub trainable: TrainableFn,
}

impl LoadOptions {
    pub fn new(dtype: DType, device: Device) -> Self {
        Self { dtype, device, trainable: frozen() }
    }
    pub fn trainable(mut self, f: TrainableFn) -> Self {
        self.trainable = f;
        self
    }
}

pub enum Source<'a> {
    Checkpoint(&'a Checkpoint),
    /// Weights ~ N(0, std²); norm weights 1 + N(0, norm_jitter²) so that a wrong norm
    /// convention changes the output.
    Random {
        rng: Box<ChaCha8Rng>,
        std: f64,
        norm_jitter: f64,
    },
}

impl Source<'_> {
    pub fn random(seed: u64, std: f64, norm_jitter: f64) -> Self {
        Source::Random { rng: Box::new(ChaCha8Rng::seed_from_u64(seed)), std, norm_jitter }
    }
}

/// How a norm weight is stored, so random init knows its neutral value.
#[derive(Clone, Copy)]
pub enum NormStyle {
    /// y = x̂ * w, neutral w = 1 (llama, qwen3)
    Scale,
    /// y = x̂ * (1 + w), neutral w = 0 (qwen3.5)
    OnePlus,
}

/// Hands out tensors by canonical name and records the trainable ones.
pub struct ParamBuilder<'a> {
    source: Source<'a>,
    opts: LoadOptions,
    /// (canonical name, variable) for every trainable parameter, in creation order.
    pub trainable: Vec<(String, Var)>,
    /// every tensor created, with its name (for saving and counting)
    pub all: Vec<(String, Tensor)>,
}

impl<'a> ParamBuilder<'a> {
    pub fn new(source: Source<'a>, opts: LoadOptions) -> Self {
        Self { source, opts, trainable: Vec::new(), all: Vec::new() }
    }

    pub fn device(&self) -> &Device {
        &self.opts.device
    }

    pub fn dtype(&self) -> DType {
        self.opts.dtype
    }

    /// Whether the checkpoint (or random source) has `name`; random sources have everything.
    pub fn contains(&self, name: &str) -> bool {
        match &self.source {
            Source::Checkpoint(c) => c.contains(name),
            Source::Random { .. } => true,
        }
    }

    /// A weight matrix or bias.
    pub fn weight(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = match &mut self.source {
            Source::Checkpoint(c) => c.load(name, shape, self.opts.dtype, &self.opts.device)?,
            Source::Random { rng, std, .. } => {
                random(rng, shape, 0.0, *std, self.opts.dtype, &self.opts.device)?
            }
        };
        self.register(name, t)
    }

    /// A norm weight.
    pub fn norm(&mut self, name: &str, size: usize, style: NormStyle) -> Result<Tensor> {
        let t = match &mut self.source {
            Source::Checkpoint(c) => c.load(name, &[size], self.opts.dtype, &self.opts.device)?,
            Source::Random { rng, norm_jitter, .. } => {
                let mean = match style {
                    NormStyle::Scale => 1.0,
                    NormStyle::OnePlus => 0.0,
                };
                random(rng, &[size], mean, *norm_jitter, self.opts.dtype, &self.opts.device)?
            }
        };
        self.register(name, t)
    }

    /// A tensor with a given fill when the source is random (gates, decay parameters).
    pub fn custom(
        &mut self,
        name: &str,
        shape: &[usize],
        init: impl FnOnce(&mut ChaCha8Rng) -> Vec<f32>,
    ) -> Result<Tensor> {
        let t = match &mut self.source {
            Source::Checkpoint(c) => c.load(name, shape, self.opts.dtype, &self.opts.device)?,
            Source::Random { rng, .. } => {
                Tensor::from_vec(init(rng), shape, &self.opts.device)?.to_dtype(self.opts.dtype)?
            }
        };
        self.register(name, t)
    }

    fn register(&mut self, name: &str, t: Tensor) -> Result<Tensor> {
        let t = if (self.opts.trainable)(name) {
            let var = Var::from_tensor(&t)?;
            let t = var.as_tensor().clone();
            self.trainable.push((name.to_string(), var));
            t
        } else {
            t
        };
        self.all.push((name.to_string(), t.clone()));
        Ok(t)
    }
}

fn random(
    rng: &mut ChaCha8Rng,
    shape: &[usize],
    mean: f64,
    std: f64,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = if std == 0.0 {
        vec![mean as f32; n]
    } else {
        let dist = Normal::new(mean as f32, std as f32)?;
        (0..n).map(|_| dist.sample(rng)).collect()
    };
    Ok(Tensor::from_vec(data, shape, device)?.to_dtype(dtype)?)
}
