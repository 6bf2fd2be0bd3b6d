//! Where every trainable parameter sits in the one flat vector that ZeRO-1 shards.
//!
//! Parameters are laid end to end in the model's trainable order (P elements in all); the
//! vector is padded with zeros to world_size · shard_len elements, shard_len = ⌈P / world⌉,
//! because NCCL's reduce-scatter and all-gather move equal chunks. Rank r owns elements
//! [r · shard_len, (r+1) · shard_len): the last rank's shard holds fewer real elements when
//! P is not divisible by the world size (its padding stays zero and is never written back).

use std::ops::Range;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Shape, Tensor, Var};

/// One parameter's place in the flat vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub name: String,
    pub shape: Shape,
    /// First element in the flat vector.
    pub offset: usize,
    /// Elements (the shape's product).
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShardLayout {
    pub segments: Vec<Segment>,
    /// P: real elements, padding excluded.
    pub total: usize,
    pub world_size: usize,
    /// ⌈P / world_size⌉ elements per rank.
    pub shard_len: usize,
}

impl ShardLayout {
    /// The layout of `params` (name, shape) over `world_size` ranks.
    pub fn new<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a Shape)>,
        world_size: usize,
    ) -> Result<Self> {
        if world_size == 0 {
            bail!("ZeRO needs at least one rank");
        }
        let mut segments = Vec::new();
        let mut offset = 0;
        for (name, shape) in params {
            let len = shape.elem_count();
            segments.push(Segment { name: name.to_string(), shape: shape.clone(), offset, len });
            offset += len;
        }
        if offset == 0 {
            bail!("ZeRO over no trainable elements");
        }
        Ok(Self { segments, total: offset, world_size, shard_len: offset.div_ceil(world_size) })
    }

    /// The layout of a model's trainable variables.
    pub fn of_vars(params: &[(String, Var)], world_size: usize) -> Result<Self> {
        Self::new(params.iter().map(|(n, v)| (n.as_str(), v.shape())), world_size)
    }

    /// world_size · shard_len: the flat vector with its padding.
    pub fn padded_len(&self) -> usize {
        self.world_size * self.shard_len
    }

    /// Rank `rank`'s elements of the padded vector, padding included.
    pub fn shard(&self, rank: usize) -> Range<usize> {
        rank * self.shard_len..(rank + 1) * self.shard_len
    }

    /// Rank `rank`'s real elements (a shorter, possibly empty, range on the last ranks).
    pub fn owned(&self, rank: usize) -> Range<usize> {
        let r = self.shard(rank);
        r.start.min(self.total)..r.end.min(self.total)
    }

    /// (segment index, range within rank `rank`'s shard) for each parameter the shard
    /// overlaps, in order.
    pub fn pieces(&self, rank: usize) -> Vec<(usize, Range<usize>)> {
        let shard = self.shard(rank);
        self.segments
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let start = s.offset.max(shard.start);
                let end = (s.offset + s.len).min(shard.end);
                (start < end).then(|| (i, start - shard.start..end - shard.start))
            })
            .collect()
    }

    /// The padded flat vector (padded_len elements, `dtype`, on `device`) of the tensors
    /// `tensor_of(name)` gives; a parameter it has none for (no gradient) and the padding are
    /// zeros. A tensor of the wrong size is an error naming it.
    pub fn flatten<F>(&self, tensor_of: F, dtype: DType, device: &Device) -> Result<Tensor>
    where
        F: Fn(&str) -> Option<Tensor>,
    {
        let mut parts = Vec::with_capacity(self.segments.len() + 1);
        for s in &self.segments {
            match tensor_of(&s.name) {
                Some(t) => {
                    if t.elem_count() != s.len {
                        bail!(
                            "{}: {} elements where the layout has {} ({:?})",
                            s.name,
                            t.elem_count(),
                            s.len,
                            s.shape
                        );
                    }
                    parts.push(t.flatten_all()?.to_dtype(dtype)?.to_device(device)?);
                }
                None => parts.push(Tensor::zeros(s.len, dtype, device)?),
            }
        }
        let padding = self.padded_len() - self.total;
        if padding > 0 {
            parts.push(Tensor::zeros(padding, dtype, device)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Splits a flat vector (at least P elements; the padding is ignored) back into named
    /// tensors of the parameters' shapes.
    pub fn unflatten(&self, flat: &Tensor) -> Result<Vec<(String, Tensor)>> {
        if flat.elem_count() < self.total {
            bail!("a flat vector of {} elements for a layout of {}", flat.elem_count(), self.total);
        }
        let flat = flat.flatten_all()?;
        self.segments
            .iter()
            .map(|s| Ok((s.name.clone(), flat.narrow(0, s.offset, s.len)?.reshape(s.shape.clone())?)))
            .collect()
    }
}
