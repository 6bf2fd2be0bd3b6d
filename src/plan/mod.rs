//! The memory plan: a run's predicted peak bytes per device, from its configuration and the
//! model's config.json alone (instant for a 9B model: no weights are read), against what the
//! device has available. `polaris-tui plan` prints it; `train` checks it before any work and
//! refuses a run that cannot fit, saying what to change (advice.rs). The arithmetic is in
//! figures.rs (measured on the host), on CUDA devices in gpu.rs (mixed precision, ZeRO-1),
//! what a device has in available.rs, which training fits N GPUs in fit.rs.

pub mod advice;
pub mod available;
pub mod figures;
pub mod fit;
pub mod gpu;
mod render;

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::model::ModelConfig;
use crate::train::config::TrainConfig;
use crate::train::layer_checkpointing::{LayerCheckpointing, AUTO_ACTIVATION_SHARE};
pub use figures::{Figures, Shape};

/// Prompt tokens a row is planned with: the recipe's prompts are at most 256 tokens
/// (MODELS.md, "Long sequences"), chat template included.
pub const PROMPT_TOKENS: u64 = 256;
/// The process itself on the host: code, tokenizer, dataset, judge client and its runtime,
/// thread stacks, allocator slack (measured: a tiny-model train run of 2 x 61-token rows
/// peaks at 134 MiB RSS, of which the model, its gradients and AdamW's state are ~70 MiB).
pub const RUNTIME_HOST: u64 = 64 << 20;

/// Where workers live: the host (every CPU worker of the process shares its memory) or one
/// CUDA device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Host,
    Cuda(usize),
}

impl Place {
    pub fn name(&self) -> String {
        match self {
            Place::Host => "cpu (host)".into(),
            Place::Cuda(i) => format!("cuda:{i}"),
        }
    }
}

/// One memory pool of the plan: its figures summed over the workers it holds.
#[derive(Debug, Clone)]
pub struct Pool {
    pub place: Place,
    pub workers: u64,
    /// Holds optimizer state and takes an update: on the host the first pool, which holds
    /// all of it; on CUDA every rank, each its ZeRO-1 shard.
    pub primary: bool,
    /// One worker's figures here (host: f32 or the model dtype throughout; CUDA: mixed
    /// precision, this rank's shards).
    pub worker: Figures,
    pub runtime: u64,
    /// Weights, reference model, master weights, optimizer moments: held all run long.
    pub resident: u64,
    /// The three phases of a step: only the largest adds to the resident bytes.
    pub training: u64,
    pub generation: u64,
    pub update: u64,
    pub available: Option<u64>,
}

impl Pool {
    pub fn peak(&self) -> u64 {
        self.runtime + self.resident + self.training.max(self.generation).max(self.update)
    }

    pub fn fits(&self) -> bool {
        self.available.is_none_or(|a| self.peak() <= a)
    }

    /// Which phase sets the peak.
    pub fn peak_phase(&self) -> &'static str {
        if self.training >= self.generation && self.training >= self.update {
            "training"
        } else if self.generation >= self.update {
            "generation"
        } else {
            "optimizer update"
        }
    }
}

/// The plan of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What a worker trains on: the longest row and the largest packed micro-batch (tokens).
    pub row_tokens: u64,
    pub micro_batch_tokens: u64,
    pub rows_per_worker: u64,
    /// Whether layers are checkpointed, and whether "auto" decided it.
    pub checkpoint_layers: bool,
    pub checkpoint_auto: bool,
    /// One worker's figures on the first pool.
    pub worker: Figures,
    /// CUDA workers: the ranks the optimizer state is sharded over (ZeRO-1); 0 without GPUs.
    pub ranks: u64,
    pub parameters: u64,
    pub trainable: u64,
    pub pools: Vec<Pool>,
    pub model: String,
    pub dtype: String,
}

impl Plan {
    /// The plan of `cfg` on this machine: the model's config.json, the devices' memory now.
    pub fn for_run(cfg: &TrainConfig) -> Result<Self> {
        let model = model_config(&cfg.model.path)?;
        Self::compute(cfg, &model, &|p: &Place| match p {
            Place::Host => available::host(),
            Place::Cuda(i) => available::cuda(*i),
        })
    }

    /// The plan of `cfg` for `model` with `available` bytes per place (None: unknown, taken
    /// to fit). "auto" checkpointing is decided here.
    pub fn compute(
        cfg: &TrainConfig,
        model: &ModelConfig,
        available: &dyn Fn(&Place) -> Option<u64>,
    ) -> Result<Self> {
        match cfg.step.checkpoint_layers {
            LayerCheckpointing::On => Self::with(cfg, model, available, true, false),
            LayerCheckpointing::Off => Self::with(cfg, model, available, false, false),
            LayerCheckpointing::Auto => {
                let without = Self::with(cfg, model, available, false, true)?;
                let heavy = without.pools.iter().any(|p| {
                    let act = p.workers * p.worker.activations;
                    !p.fits() || p.available.is_some_and(|a| act as f64 > AUTO_ACTIVATION_SHARE * a as f64)
                });
                if heavy {
                    Self::with(cfg, model, available, true, true)
                } else {
                    Ok(without)
                }
            }
        }
    }

    fn with(
        cfg: &TrainConfig,
        model: &ModelConfig,
        available: &dyn Fn(&Place) -> Option<u64>,
        checkpoint_layers: bool,
        checkpoint_auto: bool,
    ) -> Result<Self> {
        let places = places(&cfg.run.devices)?;
        let workers: u64 = places.iter().map(|(_, n)| n).sum();
        let s = &cfg.step;
        let row_tokens = PROMPT_TOKENS + s.sampling.max_new_tokens as u64 + 1;
        let groups = (cfg.run.prompts_per_step as u64).div_ceil(workers.max(1));
        let rows_per_worker = groups * s.group_size as u64;
        let micro_batch_tokens =
            micro_batch(row_tokens, rows_per_worker, s.micro_batch_tokens as u64, s.micro_batch_rows as u64);
        let w = crate::device::parse_dtype(&cfg.model.dtype).context("model.dtype")?.size_in_bytes() as u64;
        let shape = Shape {
            model: model.clone(),
            w,
            lora: cfg.model.lora.config(),
            reference: s.loss.kl_coef != 0.0,
            checkpoint_layers,
            fused_delta_rule: true, // the host's figures; gpu::rank takes the chunked form
            logprob_chunk: s.logprob_chunk.max(1) as u64,
            tokens: micro_batch_tokens,
            generation_rows: if s.hri { (s.group_size as u64 - 1).max(1) } else { s.group_size as u64 },
            generation_tokens: PROMPT_TOKENS + s.sampling.max_new_tokens as u64,
            prompt_tokens: PROMPT_TOKENS,
        };
        let f = figures::figures(&shape);
        let (parameters, trainable) = figures::parameters(&shape);
        let ranks: u64 = places.iter().filter(|(p, _)| matches!(p, Place::Cuda(_))).map(|(_, n)| n).sum();
        let rank = gpu::rank(&shape, ranks);
        let pools: Vec<Pool> = places
            .iter()
            .enumerate()
            .map(|(i, (place, n))| match place {
                Place::Host => {
                    let primary = i == 0;
                    // the update: every worker's gradients, their sum when there are several,
                    // AdamW's copies
                    let sets = if workers > 1 { workers + 1 } else { 1 };
                    let update = if primary { sets * trainable * w + f.optimizer_update } else { 0 };
                    Pool {
                        place: place.clone(),
                        workers: *n,
                        primary,
                        worker: f,
                        runtime: RUNTIME_HOST,
                        resident: n * (f.weights + f.reference) + if primary { f.optimizer } else { 0 },
                        training: n * f.training(),
                        generation: n * f.generation,
                        update,
                        available: available(place),
                    }
                }
                Place::Cuda(_) => Pool {
                    place: place.clone(),
                    workers: *n,
                    primary: true,
                    worker: rank,
                    runtime: gpu::runtime(ranks),
                    resident: rank.weights + rank.reference + rank.master + rank.optimizer,
                    training: gpu::training(&rank),
                    generation: gpu::generation(&rank),
                    update: gpu::update(&shape, &rank),
                    available: available(place),
                },
            })
            .collect();
        let worker = pools.first().map_or(f, |p| p.worker);
        Ok(Self {
            row_tokens,
            micro_batch_tokens,
            rows_per_worker,
            checkpoint_layers,
            checkpoint_auto,
            worker,
            ranks,
            parameters,
            trainable,
            pools,
            model: cfg.model.path.clone(),
            dtype: cfg.model.dtype.clone(),
        })
    }

    pub fn fits(&self) -> bool {
        self.pools.iter().all(Pool::fits)
    }

    /// The pool closest to (or furthest past) its limit.
    pub fn tightest(&self) -> &Pool {
        let ratio = |p: &Pool| p.available.map_or(0.0, |a| p.peak() as f64 / a.max(1) as f64);
        self.pools.iter().max_by(|a, b| ratio(a).total_cmp(&ratio(b))).expect("a plan has a pool")
    }

    /// One line: `predicted peak 3.1 GiB of 20.4 GiB available on cpu (host)`.
    pub fn summary(&self) -> String {
        let p = self.tightest();
        let avail = p.available.map_or("unknown".to_string(), gib);
        format!("predicted peak {} of {avail} available on {}", gib(p.peak()), p.place.name())
    }

    /// The table `polaris-tui plan` prints.
    pub fn table(&self) -> String {
        render::table(self)
    }
}

/// Tokens of the largest micro-batch a worker packs: rows of `row` tokens at most, filled up
/// to `budget` tokens (0: no budget) and `max_rows` rows (0: no limit); a row longer than the
/// budget is a micro-batch of its own.
pub fn micro_batch(row: u64, rows: u64, budget: u64, max_rows: u64) -> u64 {
    let rows = if max_rows == 0 { rows } else { rows.min(max_rows) };
    let all = rows.max(1) * row;
    if budget == 0 {
        all
    } else {
        all.min(budget).max(row)
    }
}

/// `cpu` (1 worker), `cpu:N` (N workers on the host), `cuda:0,cuda:1` (one each).
pub fn places(devices: &str) -> Result<Vec<(Place, u64)>> {
    let spec = devices.trim();
    if spec == "cpu" {
        return Ok(vec![(Place::Host, 1)]);
    }
    if let Some(n) = spec.strip_prefix("cpu:") {
        let n: u64 = n
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .with_context(|| format!("run.devices = {spec:?}: expected cpu:N, N >= 1"))?;
        return Ok(vec![(Place::Host, n)]);
    }
    let mut out = Vec::new();
    for d in spec.split(',') {
        let d = d.trim();
        match d.strip_prefix("cuda:").and_then(|i| i.parse::<usize>().ok()) {
            Some(i) => out.push((Place::Cuda(i), 1)),
            None if d == "cpu" => out.push((Place::Host, 1)),
            None => bail!("run.devices = {spec:?}: {d:?} is not cpu, cpu:N or cuda:N"),
        }
    }
    Ok(out)
}

/// The model's config.json (`tiny`: the built-in one), without its weights.
pub fn model_config(path: &str) -> Result<ModelConfig> {
    if path == "tiny" {
        let json: serde_json::Value = serde_json::from_str(crate::model::tiny::CONFIG_JSON)?;
        return ModelConfig::from_json(&json);
    }
    ModelConfig::from_file(&Path::new(path).join("config.json")).context("model.path")
}

/// `1.23 GiB`, `456 MiB`.
pub fn gib(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", b / (1u64 << 20) as f64)
    }
}
