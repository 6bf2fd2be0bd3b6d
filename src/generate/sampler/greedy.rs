//! Greedy choice, and reading a step's logits in place, row by row.

use anyhow::{bail, Result};
use candle_core::{CpuStorage, Device, Storage, Tensor};

use crate::model::decode_pool::{self, Disjoint};

/// The first index of the largest value, NaNs passed over (index 0 when logits[0] is NaN,
/// as a scan that keeps the first strict maximum gives). Two passes that vectorise, the
/// largest value then its first place, where the scan was one compare-and-branch per
/// element: per-row work on a group's decode path, a vocabulary long.
pub fn argmax(logits: &[f32]) -> u32 {
    const LANES: usize = 16;
    if logits.first().is_none_or(|l| l.is_nan()) {
        return 0;
    }
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = logits.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = lanes.iter().chain(tail).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    let block = logits.chunks(LANES).position(|c| c.iter().fold(false, |hit, &x| hit | (x == max)));
    let first = block.and_then(|b| {
        let start = b * LANES;
        logits[start..].iter().position(|&x| x == max).map(|i| start + i)
    });
    // no value above -inf (all -inf or NaN past index 0): the scan stays at 0
    first.unwrap_or(0) as u32
}

/// `argmax` of each row of logits [B, V], the rows spread across the decode pool.
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    let mut ids = vec![0; logits.dim(0)?];
    let out = Disjoint::new(&mut ids);
    // SAFETY: row k alone writes ids[k]
    split_rows(logits, ids.len(), |k, row| unsafe { *out.get().add(k) = argmax(row) })?;
    Ok(ids)
}

/// Calls `f(k, row)` for each row k of logits [B, V] (f32; `rows` is B), the rows spread
/// across the decode pool's threads.
pub(super) fn split_rows(logits: &Tensor, rows: usize, f: impl Fn(usize, &[f32]) + Sync) -> Result<()> {
    let (b, vocab) = logits.dims2()?;
    if b != rows {
        bail!("sampling: {rows} rows for logits of {b}");
    }
    with_rows(logits, |data| decode_pool::split(b, |k| f(k, &data[k * vocab..(k + 1) * vocab])))
}

/// Runs `f` on the elements of logits [B, V] (f32), read in place on the CPU (a GPU step's
/// logits are copied over once): a step's sampling reads the vocabulary without a
/// `Vec<Vec<f32>>` of it per step.
fn with_rows<R>(logits: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let logits = logits.to_device(&Device::Cpu)?.contiguous()?;
    let (storage, layout) = logits.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(data)) = &*storage else {
        bail!("sampling: logits of {:?}, not f32", logits.dtype());
    };
    let Some((from, to)) = layout.contiguous_offsets() else {
        bail!("sampling: logits that are not contiguous");
    };
    Ok(f(&data[from..to]))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// The scan `argmax` replaced: keep the first strict maximum.
    fn scan(logits: &[f32]) -> u32 {
        let mut best = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        best as u32
    }

    #[test]
    fn argmax_rows_in_parallel_is_each_rows_argmax() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (b, vocab) = (7, 5000);
        let data: Vec<f32> = (0..b * vocab).map(|_| rng.random_range(0..50) as f32).collect();
        let want: Vec<u32> = data.chunks_exact(vocab).map(scan).collect();
        let logits = Tensor::from_vec(data, (b, vocab), &Device::Cpu).unwrap();
        assert_eq!(argmax_rows(&logits).unwrap(), want);
    }

    #[test]
    fn argmax_is_the_scan_with_ties_nans_and_infinities() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for len in [1usize, 2, 15, 16, 17, 33, 1000, 32000] {
            for case in 0..6 {
                // few distinct values, so maxima tie
                let mut l: Vec<f32> = (0..len).map(|_| rng.random_range(0..5) as f32).collect();
                match case {
                    1 => l[len / 2] = f32::NAN,
                    2 => l[0] = f32::NAN,
                    3 => l.iter_mut().for_each(|x| *x = f32::NEG_INFINITY),
                    4 => l
                        .iter_mut()
                        .enumerate()
                        .for_each(|(i, x)| *x = if i % 3 == 0 { f32::NAN } else { f32::NEG_INFINITY }),
                    5 => l[len - 1] = f32::INFINITY,
                    _ => {}
                }
                assert_eq!(argmax(&l), scan(&l), "len {len} case {case}: {l:?}");
            }
        }
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn rows_are_read_in_order() {
        let l = Tensor::new(&[[0f32, 5.0, 1.0], [7.0, 2.0, 7.0]], &Device::Cpu).unwrap();
        assert_eq!(argmax_rows(&l).unwrap(), vec![1, 0]);
        // a transposed view is made contiguous first
        assert_eq!(argmax_rows(&l.t().unwrap()).unwrap(), vec![1, 0, 1]);
    }
}
