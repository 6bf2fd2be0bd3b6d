//! Prompt + response rows packed for a training pass: one stream of tokens with row
//! boundaries (no padding), where each response sits in it, and how a worker's rows are
//! split into micro-batches by a token budget.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};

/// A micro-batch's rows laid one after another. Row r's inputs are its prompt + response
/// tokens but the last, its targets the tokens that follow; it occupies stream positions
/// cu_seqlens[r]..cu_seqlens[r+1], where positions restart and attention stops.
pub struct Packed {
    /// [N] token ids
    pub inputs: Tensor,
    /// [N] the token that follows each input in its row
    pub targets: Tensor,
    /// [R + 1] row boundaries, from 0 to N
    pub cu_seqlens: Vec<usize>,
    /// Per row (start, len) in the stream: the response's target positions.
    pub spans: Vec<(usize, usize)>,
}

impl Packed {
    /// Positions in the stream (N).
    pub fn len(&self) -> usize {
        *self.cu_seqlens.last().unwrap_or(&0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each row's length in the stream.
    pub fn row_lengths(&self) -> Vec<usize> {
        self.cu_seqlens.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// Positions a (prompt, response) row takes in a packed stream.
pub fn row_tokens(prompt: usize, response: usize) -> usize {
    (prompt + response).saturating_sub(1)
}

/// Packs (prompt ids, response ids) rows into one stream.
pub fn pack(rows: &[(&[u32], &[u32])], device: &Device) -> Result<Packed> {
    if rows.iter().any(|(p, _)| p.is_empty()) {
        bail!("a training row has an empty prompt (a response needs a token to follow)");
    }
    if rows.iter().all(|(p, r)| row_tokens(p.len(), r.len()) == 0) {
        bail!("a training micro-batch has no token to predict");
    }
    let n: usize = rows.iter().map(|(p, r)| row_tokens(p.len(), r.len())).sum();
    let (mut inputs, mut targets) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut cu_seqlens, mut spans) = (vec![0], Vec::with_capacity(rows.len()));
    for (p, r) in rows {
        let len = row_tokens(p.len(), r.len());
        if len == 0 {
            bail!("a training row holds a one-token prompt and no response: nothing to predict");
        }
        let start = inputs.len();
        let seq = || p.iter().chain(r.iter()).copied();
        inputs.extend(seq().take(len));
        targets.extend(seq().skip(1));
        // the response's first token is predicted from the prompt's last
        spans.push((start + p.len() - 1, r.len()));
        cu_seqlens.push(inputs.len());
    }
    Ok(Packed {
        inputs: Tensor::from_vec(inputs, n, device)?,
        targets: Tensor::from_vec(targets, n, device)?,
        cu_seqlens,
        spans,
    })
}

/// The response span of each row of a packed [N] tensor, as f64.
pub fn response_rows(x: &Tensor, spans: &[(usize, usize)]) -> Result<Vec<Vec<f64>>> {
    let all: Vec<f64> = x.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
    Ok(spans.iter().map(|&(s, n)| all[s..s + n].to_vec()).collect())
}

/// Per-row response coefficients laid out over the [N] stream positions (zeros elsewhere).
pub fn spread(
    coefficients: &[Vec<f64>],
    spans: &[(usize, usize)],
    n: usize,
    device: &Device,
) -> Result<Tensor> {
    let mut out = vec![0f64; n];
    for (&(s, _), c) in spans.iter().zip(coefficients) {
        out[s..s + c.len()].copy_from_slice(c);
    }
    Ok(Tensor::from_vec(out, n, device)?)
}

/// Splits rows of the given stream lengths into micro-batches of at most `max_tokens` tokens
/// and `max_rows` rows (0: no limit on either); a row longer than the budget is a
/// micro-batch of its own. First-fit decreasing: the longest rows are placed first, each in
/// the first micro-batch with room. Returns row indices, each micro-batch in row order.
pub fn micro_batches(lengths: &[usize], max_tokens: usize, max_rows: usize) -> Vec<Vec<usize>> {
    let tokens = if max_tokens == 0 { usize::MAX } else { max_tokens };
    let rows = if max_rows == 0 { usize::MAX } else { max_rows };
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i])); // stable: ties keep row order
    let mut bins: Vec<(usize, Vec<usize>)> = Vec::new(); // (tokens used, rows)
    for i in order {
        let fits = |(used, members): &(usize, Vec<usize>)| {
            members.len() < rows && used.saturating_add(lengths[i]) <= tokens
        };
        match bins.iter_mut().find(|b| fits(b)) {
            Some(bin) => {
                bin.0 += lengths[i];
                bin.1.push(i);
            }
            None => bins.push((lengths[i], vec![i])),
        }
    }
    bins.into_iter()
        .map(|(_, mut members)| {
            members.sort_unstable();
            members
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_laid_end_to_end_with_their_response_spans() {
        let rows: Vec<(&[u32], &[u32])> = vec![(&[1, 2], &[3, 4, 5]), (&[6], &[7]), (&[8, 9, 10], &[])];
        let p = pack(&rows, &Device::Cpu).unwrap();
        // row 0: inputs 1 2 3 4 -> targets 2 3 4 5; row 1: 6 -> 7; row 2: 8 9 -> 9 10
        assert_eq!(p.inputs.to_vec1::<u32>().unwrap(), [1, 2, 3, 4, 6, 8, 9]);
        assert_eq!(p.targets.to_vec1::<u32>().unwrap(), [2, 3, 4, 5, 7, 9, 10]);
        assert_eq!(p.cu_seqlens, [0, 4, 5, 7]);
        assert_eq!(p.spans, [(1, 3), (4, 1), (7, 0)]);
        let lp = Tensor::new(&[0f32, 1., 2., 3., 4., 5., 6.], &Device::Cpu).unwrap();
        assert_eq!(response_rows(&lp, &p.spans).unwrap(), vec![vec![1., 2., 3.], vec![4.], vec![]]);
        let c = spread(&[vec![1., 2., 3.], vec![4.], vec![]], &p.spans, 7, &Device::Cpu).unwrap();
        assert_eq!(c.to_vec1::<f64>().unwrap(), [0., 1., 2., 3., 4., 0., 0.]);
    }

    #[test]
    fn a_row_with_nothing_to_predict_is_refused() {
        let rows: Vec<(&[u32], &[u32])> = vec![(&[1], &[])];
        assert!(pack(&rows, &Device::Cpu).is_err());
        let rows: Vec<(&[u32], &[u32])> = vec![(&[], &[1, 2])];
        assert!(pack(&rows, &Device::Cpu).is_err());
    }

    #[test]
    fn micro_batches_fill_a_token_budget_first_fit_decreasing() {
        // 9000 alone (over budget), 7000 + 1000, 4000 + 3000 + 500 (the 500 fits nowhere earlier)
        let lengths = [1000, 9000, 4000, 7000, 3000, 500];
        assert_eq!(micro_batches(&lengths, 8192, 0), vec![vec![1], vec![0, 3], vec![2, 4, 5]]);
        // a row limit splits further
        assert_eq!(micro_batches(&lengths, 8192, 2), vec![vec![1], vec![0, 3], vec![2, 4], vec![5]]);
        // no limits: one micro-batch in row order
        assert_eq!(micro_batches(&lengths, 0, 0), vec![vec![0, 1, 2, 3, 4, 5]]);
        // every row lands exactly once whatever the budget
        for budget in [1, 600, 5000, 20000] {
            let mut all: Vec<usize> = micro_batches(&lengths, budget, 3).concat();
            all.sort_unstable();
            assert_eq!(all, [0, 1, 2, 3, 4, 5]);
        }
    }
}
