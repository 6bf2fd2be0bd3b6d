//! What `Model` asks of an architecture (`llama.rs`, `qwen3_5.rs`): the training forward in
//! pieces, and the cached forward of generation over the architecture's own cache.

use std::any::Any;

use anyhow::{anyhow, Result};
use candle_core::Tensor;

use super::config::ModelConfig;
use super::deltanet::DeltaForm;
use super::layers::kernels::Kernels;
use super::layers::TrainContext;

/// A causal language model's decoder stack. Ids and hidden states are laid out as the
/// methods of `Model` that call these say.
pub(super) trait Decoder: Send + Sync {
    fn config(&self) -> &ModelConfig;

    /// Packed ids [N] -> embeddings [1, N, D].
    fn embed(&self, ids: &Tensor) -> Result<Tensor>;

    /// The context shared by every layer of a packed stream whose rows end at `cu_seqlens`.
    fn train_context(&self, cu_seqlens: &[usize]) -> Result<TrainContext>;

    /// Layer i over a packed stream x: [1, N, D], differentiable.
    fn layer(&self, ctx: &TrainContext, i: usize, x: &Tensor) -> Result<Tensor>;

    fn num_layers(&self) -> usize;

    /// The final norm of hidden states [.., D], differentiable.
    fn final_norm(&self, x: &Tensor) -> Result<Tensor>;

    /// Output projection [V, D] (the embedding when tied).
    fn lm_head(&self) -> &Tensor;

    /// A fresh cache for rows left-padded by `pad[r]` positions.
    fn new_cache(&self, pad: Vec<usize>) -> Cache;

    /// ids [B, T] after what the cache holds -> last-position logits [B, V] (f32).
    fn forward_cached(&self, ids: &Tensor, cache: &mut Cache, kernels: Kernels) -> Result<Tensor>;

    /// How much of the weights the host decode step put on 2 MiB pages (`huge_pages`):
    /// none before its first step, nor for an architecture without one.
    fn huge_pages(&self) -> Option<super::huge_pages::Backing> {
        None
    }

    /// Which form of the gated delta rule multi-position forwards use; only hybrid models
    /// have one.
    fn set_delta_form(&mut self, _form: DeltaForm) {}
}

/// Generation state of a batch, as the model's architecture keeps it.
pub struct Cache(Box<dyn CacheState>);

/// What every architecture's cache answers.
pub(super) trait CacheState: Any + Send {
    /// Positions filled so far.
    fn len(&self) -> usize;
    /// Keeps only the given rows, in the given order.
    fn retain_rows(&mut self, rows: &[usize]) -> Result<()>;
    /// Makes room for `positions` in all, where the cache can (a generation's longest).
    fn reserve(&mut self, _positions: usize) {}
}

impl Cache {
    pub(super) fn new(state: impl CacheState) -> Self {
        Self(Box::new(state))
    }

    /// The architecture's own cache; an error for another architecture's.
    pub(super) fn state<T: CacheState>(&mut self) -> Result<&mut T> {
        let any: &mut dyn Any = self.0.as_mut();
        any.downcast_mut::<T>().ok_or_else(|| anyhow!("the cache belongs to another architecture"))
    }

    /// Positions filled so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the given rows, in the given order.
    pub fn retain_rows(&mut self, rows: &[usize]) -> Result<()> {
        self.0.retain_rows(rows)
    }

    /// Makes room for `positions` in all, where the architecture's cache can: a generation
    /// that knows its longest asks once, after the prefill, so the cache grows no further.
    pub fn reserve(&mut self, positions: usize) {
        self.0.reserve(positions)
    }
}
