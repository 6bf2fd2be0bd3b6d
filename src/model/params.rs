//! Where a model's tensors come from (a checkpoint, or a seeded random initialisation)
//! and which of them train. A trainable tensor is a candle `Var`; a frozen one is a plain
//! tensor that backward never reaches.

use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::layers::linear::Linear;
use super::lora::adapters::{AdapterModule, Adapters};
use super::lora::config::LoraConfig;
use super::lora::layer::{kaiming_uniform, Dropout, Lora};
use super::lora::spec::{LoraInit, LoraSpec};
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

/// Only LoRA adapters train (`….lora_A.weight`, `….lora_B.weight`); base weights are frozen.
pub fn adapters_only() -> TrainableFn {
    Arc::new(|name| name.ends_with(".lora_A.weight") || name.ends_with(".lora_B.weight"))
}

#[derive(Clone)]
pub struct LoadOptions {
    pub dtype: DType,
    pub device: Device,
    pub trainable: TrainableFn,
    /// LoRA adapters on the projections the config targets.
    pub lora: Option<LoraSpec>,
}

impl LoadOptions {
    pub fn new(dtype: DType, device: Device) -> Self {
        Self { dtype, device, trainable: frozen(), lora: None }
    }
    pub fn trainable(mut self, f: TrainableFn) -> Self {
        self.trainable = f;
        self
    }
    /// Attaches LoRA adapters (which train only if `trainable` says so: see `adapters_only`).
    pub fn lora(mut self, spec: LoraSpec) -> Self {
        self.lora = Some(spec);
        self
    }
}

/// Adapters being attached while a model is built.
struct LoraBuilder {
    config: LoraConfig,
    init: LoraInit,
    rng: ChaCha8Rng,
    dropout: Arc<Dropout>,
    modules: Vec<AdapterModule>,
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
    lora: Option<LoraBuilder>,
}

impl<'a> ParamBuilder<'a> {
    pub fn new(source: Source<'a>, opts: LoadOptions) -> Self {
        let lora = opts.lora.clone().map(|spec| {
            // a saved adapter opened to train on would draw its dropout masks from seed 0
            let seed = match spec.init {
                LoraInit::Fresh { seed } => seed,
                LoraInit::Saved(_) => 0,
            };
            LoraBuilder {
                // its own stream, apart from A's initialisation drawn from `seed`
                dropout: Arc::new(Dropout::new(spec.config.dropout, seed ^ 0x10_4a_d0)),
                rng: ChaCha8Rng::seed_from_u64(seed),
                config: spec.config,
                init: spec.init,
                modules: Vec::new(),
            }
        });
        Self { source, opts, trainable: Vec::new(), all: Vec::new(), lora }
    }

    /// The adapters attached, once every projection is built. Errors when the target
    /// modules matched nothing, or a saved adapter holds tensors no module took.
    pub fn finish_adapters(&mut self) -> Result<Option<Adapters>> {
        let Some(l) = self.lora.take() else { return Ok(None) };
        if l.modules.is_empty() {
            bail!(
                "LoRA target_modules {:?} match no linear projection of this model \
                 (names such as q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or all-linear)",
                l.config.target_modules
            );
        }
        if let LoraInit::Saved(w) = &l.init {
            w.check_all_used(&l.modules)?;
        }
        Ok(Some(Adapters { config: l.config, modules: l.modules, dropout: l.dropout, base_model: None }))
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

    /// The projection `{module}.weight` [out, in] (and `{module}.bias` [out]), with a LoRA
    /// adapter when the model has one that targets `module`.
    pub fn linear(&mut self, module: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        let weight = self.weight(&format!("{module}.weight"), &[out, inp])?;
        let bias = if bias { Some(self.weight(&format!("{module}.bias"), &[out])?) } else { None };
        let lora = match &self.lora {
            Some(l) if l.config.targets(module) => Some(self.adapter(module, out, inp)?),
            _ => None,
        };
        Ok(Linear { weight, bias, lora })
    }

    fn adapter(&mut self, module: &str, out: usize, inp: usize) -> Result<Lora> {
        let path = match &self.source {
            Source::Checkpoint(c) => c
                .stored_name(&format!("{module}.weight"))
                .and_then(|n| n.strip_suffix(".weight"))
                .unwrap_or(module)
                .to_string(),
            Source::Random { .. } => module.to_string(),
        };
        let (dtype, device) = (super::lora::layer::adapter_dtype(self.opts.dtype), self.opts.device.clone());
        let l = self.lora.as_mut().expect("called with adapters");
        let r = l.config.r;
        let (a, b) = match &l.init {
            LoraInit::Fresh { .. } => (
                Tensor::from_vec(kaiming_uniform(&mut l.rng, r, inp), (r, inp), &device)?.to_dtype(dtype)?,
                Tensor::zeros((out, r), dtype, &device)?,
            ),
            LoraInit::Saved(w) => (
                w.get(module, "lora_A", &[r, inp], dtype, &device)?,
                w.get(module, "lora_B", &[out, r], dtype, &device)?,
            ),
        };
        let (scale, dropout) = (l.config.scale(), l.dropout.clone());
        let a = self.register(&format!("{module}.lora_A.weight"), a)?;
        let b = self.register(&format!("{module}.lora_B.weight"), b)?;
        let l = self.lora.as_mut().expect("called with adapters");
        l.modules.push(AdapterModule { name: module.to_string(), path, a: a.clone(), b: b.clone() });
        Ok(Lora { a, b, scale, dropout })
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
