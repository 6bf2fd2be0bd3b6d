//! What to attach while a model is built: an adapter's config, and where its A and B come
//! from (a seeded initialisation, or a saved PEFT adapter).

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use super::config::LoraConfig;
use super::peft::{read_config, AdapterWeights};

/// An adapter to attach: its shape, and where its A and B come from.
#[derive(Clone)]
pub struct LoraSpec {
    pub config: LoraConfig,
    pub init: LoraInit,
}

#[derive(Clone)]
pub enum LoraInit {
    /// PEFT's initialisation (A kaiming-uniform, B zero) from a seed, which also seeds dropout.
    Fresh { seed: u64 },
    /// A saved adapter's tensors.
    Saved(Arc<AdapterWeights>),
}

impl LoraSpec {
    /// A saved PEFT adapter directory, for `LoadOptions::lora`.
    pub fn open(dir: &Path) -> Result<Self> {
        let config = read_config(dir)?;
        let weights = AdapterWeights::read(dir)?;
        Ok(Self { config, init: LoraInit::Saved(Arc::new(weights)) })
    }
}
