//! Data-parallel workers: one replica of the policy per device (`cpu`, `cpu:N`,
//! `cuda:0,cuda:1,...`), each a thread of this process (why threads: `train::collective`).
//! Each worker generates and scores its share of a step's groups and computes gradients on
//! its own rows. With one worker the optimizer updates its replica directly; with several,
//! the update is ZeRO-1 (`train::zero`): gradients are reduce-scattered and weights
//! all-gathered through the workers' collective group (in-process on CPU, NCCL on CUDA), so
//! all replicas hold identical weights after every step and each keeps 1/N of the
//! optimizer state.

use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::{DType, Device};

use super::collective::{self, Collective};
use crate::device::parse_device;
use crate::lm::LanguageModel;
use crate::model::{frozen, LoadOptions, Model, TrainableFn};

/// One worker's models: the policy replica, and the frozen reference policy when the loss
/// has a KL term.
pub struct Replica {
    pub lm: LanguageModel,
    pub reference: Option<Model>,
}

pub struct Workers {
    pub replicas: Vec<Replica>,
    /// Rank w's handle at index w when there are several replicas (empty for one).
    pub collectives: Vec<Arc<dyn Collective>>,
}

/// CPU workers at most (`cpu:N`): each is a whole replica of the model, and more workers than
/// cores only slow a step down, so a larger N is a typo, not a plan.
pub const MAX_CPU_WORKERS: usize = 64;

/// `cpu` (one worker), `cpu:N` (N CPU workers) or a comma list such as `cuda:0,cuda:1`.
pub fn parse_devices(spec: &str) -> Result<Vec<Device>> {
    let spec = spec.trim();
    if let Some(n) = spec.strip_prefix("cpu:") {
        return match n.parse::<usize>() {
            Ok(n) if (1..=MAX_CPU_WORKERS).contains(&n) => Ok(vec![Device::Cpu; n]),
            Ok(n) if n > MAX_CPU_WORKERS => bail!(
                "devices = {spec:?}: at most {MAX_CPU_WORKERS} CPU workers (each holds a whole replica of \
                 the model; this machine has {} cores)",
                std::thread::available_parallelism().map_or(1, |c| c.get())
            ),
            _ => bail!(
                "devices = {spec:?}: expected cpu:N with N a number of workers from 1 to {MAX_CPU_WORKERS}"
            ),
        };
    }
    let devices: Vec<Device> = spec
        .split(',')
        .map(|d| parse_device(d).map_err(|e| anyhow::anyhow!("devices = {spec:?}: {e}")))
        .collect::<Result<_>>()?;
    if devices.is_empty() {
        bail!("devices is empty: expected cpu, cpu:N or cuda:0,cuda:1,...");
    }
    Ok(devices)
}

impl Workers {
    /// One worker on an already opened model (no KL reference).
    pub fn single(lm: LanguageModel) -> Self {
        Self { replicas: vec![Replica { lm, reference: None }], collectives: Vec::new() }
    }

    /// Opens one replica of `model` (a model directory or `tiny`) per device; with
    /// `reference`, also a frozen copy of the starting weights per device for the KL term.
    pub fn open(
        model: &str,
        devices: &[Device],
        dtype: DType,
        trainable: TrainableFn,
        reference: bool,
    ) -> Result<Self> {
        Self::open_with(model, devices, &LoadOptions::new(dtype, Device::Cpu).trainable(trainable), reference)
    }

    /// As `open`, with every load option (LoRA adapters, trainable set) but the device from
    /// `base`. Replicas are put in training mode (LoRA dropout); a fresh adapter is seeded,
    /// so every replica starts identical. The KL reference is the base model without
    /// adapters, which is what the policy starts as (B = 0).
    pub fn open_with(model: &str, devices: &[Device], base: &LoadOptions, reference: bool) -> Result<Self> {
        let mut replicas = Vec::with_capacity(devices.len());
        for device in devices {
            let opts = LoadOptions { device: device.clone(), ..base.clone() };
            let lm = LanguageModel::open(model, &opts)?;
            lm.model.set_training(true);
            let reference = if reference {
                let frozen_opts = LoadOptions::new(base.dtype, device.clone()).trainable(frozen());
                Some(LanguageModel::open(model, &frozen_opts)?.model)
            } else {
                None
            };
            replicas.push(Replica { lm, reference });
        }
        let collectives = if devices.len() > 1 {
            collective::group_for(devices, collective::DEFAULT_TIMEOUT)?
        } else {
            Vec::new()
        };
        Ok(Self { replicas, collectives })
    }

    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// The first replica: the one checkpoints are written from and read into.
    pub fn primary(&self) -> &LanguageModel {
        &self.replicas[0].lm
    }

    /// The worker that handles group `g` of a step (round robin).
    pub fn owner(&self, g: usize) -> usize {
        g % self.len()
    }

    /// Copies the primary's trainable weights into every other replica.
    pub fn broadcast(&self) -> Result<()> {
        let primary = self.primary().model.trainable();
        for replica in &self.replicas[1..] {
            let theirs = replica.lm.model.trainable();
            if theirs.len() != primary.len() {
                bail!("replicas disagree on the trainable parameters");
            }
            for ((name, src), (other, dst)) in primary.iter().zip(theirs) {
                debug_assert_eq!(name, other);
                dst.set(&src.as_tensor().to_device(dst.device())?)?;
            }
        }
        Ok(())
    }
}

impl From<LanguageModel> for Workers {
    fn from(lm: LanguageModel) -> Self {
        Self::single(lm)
    }
}
