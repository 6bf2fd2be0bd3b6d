//! Temperature and the filters (top-k, top-p, min-p): the candidates a draw chooses among.
//!
//! A vocabulary is tens of thousands of logits and a group samples one row per sequence
//! every step, so no step sorts the vocabulary: top-k is one pass that keeps the k best
//! seen so far, and without top-k, top-p and min-p first drop the tokens that cannot
//! survive them (their probability is below a bound), then sort the rest.

use std::cmp::Ordering;

use super::SamplingParams;

/// k up to which `top_k` keeps its candidates in a sorted list (an insertion costs k moves);
/// beyond, a selection over every candidate is cheaper.
const SORTED_K: usize = 256;

/// The candidate tokens after temperature and the filters: (token, probability), sorted by
/// probability descending, probabilities renormalised to sum 1.
pub fn filtered_distribution(logits: &[f32], params: &SamplingParams) -> Vec<(u32, f32)> {
    let t = params.temperature.max(1e-6);
    let mut cand =
        if params.top_k > 0 { top_k_softmax(logits, t, params.top_k) } else { likely(logits, t, params) };
    if cand.is_empty() {
        return vec![(0, 1.0)];
    }
    nucleus(&mut cand, params);
    cand
}

/// Top-p then min-p over candidates sorted by probability, then renormalised to sum 1.
fn nucleus(cand: &mut Vec<(u32, f32)>, params: &SamplingParams) {
    if params.top_p < 1.0 {
        let mut cum = 0f32;
        let mut keep = cand.len();
        for (i, c) in cand.iter().enumerate() {
            cum += c.1;
            if cum >= params.top_p {
                keep = i + 1;
                break;
            }
        }
        cand.truncate(keep);
    }
    if params.min_p > 0.0 {
        let floor = params.min_p * cand[0].1;
        cand.retain(|c| c.1 >= floor);
    }
    let total: f32 = cand.iter().map(|c| c.1).sum();
    for c in cand.iter_mut() {
        c.1 /= total;
    }
}

/// Candidate order: larger scaled logit first, then the lower id (a total order: ids differ).
fn by_logit(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The k first candidates in `by_logit` order (finite logits, scaled by 1/t), with their
/// softmax over those k, summed in that order.
fn top_k_softmax(logits: &[f32], t: f32, k: usize) -> Vec<(u32, f32)> {
    let mut cand = top_k(logits, t, k);
    softmax_in_order(&mut cand);
    cand
}

/// Scaled logits, largest first, to their softmax, summed in that order.
fn softmax_in_order(cand: &mut [(u32, f32)]) {
    let Some(&(_, max)) = cand.first() else { return };
    let mut sum = 0f32;
    for c in cand.iter_mut() {
        c.1 = (c.1 - max).exp();
        sum += c.1;
    }
    for c in cand.iter_mut() {
        c.1 /= sum;
    }
}

/// The k first of (id, logit / t) over the finite logits, in `by_logit` order.
fn top_k(logits: &[f32], t: f32, k: usize) -> Vec<(u32, f32)> {
    if k > SORTED_K {
        let mut cand = scaled(logits, t);
        if k < cand.len() {
            cand.select_nth_unstable_by(k - 1, by_logit);
            cand.truncate(k);
        }
        cand.sort_unstable_by(by_logit);
        return cand;
    }
    // best: sorted by `by_logit`, at most k long
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    let offer = |best: &mut Vec<(u32, f32)>, i: usize, l: f32| {
        if !l.is_finite() {
            return;
        }
        let c = (i as u32, l / t);
        if best.len() == k && by_logit(&c, &best[k - 1]) != Ordering::Less {
            return;
        }
        let at = best.partition_point(|b| by_logit(b, &c) == Ordering::Less);
        best.insert(at, c);
        best.truncate(k);
    };
    let mut i = 0;
    while i < logits.len() && best.len() < k {
        offer(&mut best, i, logits[i]);
        i += 1;
    }
    if best.len() < k {
        return best;
    }
    // Full: a logit enters only above the k-th (a later id loses a tie), so a block of 16
    // whose scaled values are all at or below it (NaN compares false) is passed over with
    // one vectorised test.
    const LANES: usize = 16;
    let blocks = logits[i..].chunks_exact(LANES);
    let tail = blocks.remainder();
    for block in blocks {
        let floor = best[k - 1].1;
        if block.iter().fold(false, |hit, &l| hit | (l / t > floor)) {
            for (j, &l) in block.iter().enumerate() {
                offer(&mut best, i + j, l);
            }
        }
        i += LANES;
    }
    for (j, &l) in tail.iter().enumerate() {
        offer(&mut best, i + j, l);
    }
    best
}

/// (id, logit / t) for every finite logit, in id order.
fn scaled(logits: &[f32], t: f32) -> Vec<(u32, f32)> {
    logits.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(i, &l)| (i as u32, l / t)).collect()
}

/// Without top-k: every candidate that top-p and min-p could keep, with its probability
/// under the softmax over all candidates, sorted by `by_logit`.
///
/// Top-p keeps the shortest prefix whose mass reaches p. Tokens below (1 - p) / (n - 1)
/// hold less than 1 - p together, so the prefix ends before them (llama2.c's argument);
/// min-p drops tokens below min_p x the largest probability. Tokens under the larger bound
/// are dropped before the sort.
fn likely(logits: &[f32], t: f32, params: &SamplingParams) -> Vec<(u32, f32)> {
    let (mut n, mut max) = (0usize, f32::NEG_INFINITY);
    for &l in logits.iter().filter(|l| l.is_finite()) {
        n += 1;
        max = max.max(l / t);
    }
    if n == 0 {
        return vec![];
    }
    let sum: f32 = logits.iter().filter(|l| l.is_finite()).map(|&l| (l / t - max).exp()).sum();
    let mut bound = 0f32;
    if params.top_p < 1.0 && n > 1 {
        bound = (1.0 - params.top_p) / (n - 1) as f32;
    }
    if params.min_p > 0.0 {
        bound = bound.max(params.min_p / sum);
    }
    // in logit units, loosened by 1e-3 so rounding cannot drop a token the bound keeps
    // (the filters after this decide on the probabilities themselves)
    let floor = if bound > 0.0 { max + (bound * sum).ln() - 1e-3 } else { f32::NEG_INFINITY };
    let mut cand: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|&(_, &l)| l.is_finite() && l / t >= floor)
        .map(|(i, &l)| (i as u32, l / t))
        .collect();
    cand.sort_unstable_by(by_logit);
    for c in cand.iter_mut() {
        c.1 = (c.1 - max).exp() / sum;
    }
    cand
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::tests::{logits, params};
    use super::*;

    fn probs(d: &[(u32, f32)]) -> Vec<(u32, f32)> {
        d.iter().map(|&(i, p)| (i, (p * 1e4).round() / 1e4)).collect()
    }

    /// The candidates as they were first found: every one scaled, selected, sorted and
    /// softmaxed in sorted order (then the same top-p, min-p and renormalisation).
    fn reference(logits: &[f32], params: &SamplingParams) -> Vec<(u32, f32)> {
        let t = params.temperature.max(1e-6);
        let mut cand = scaled(logits, t);
        if cand.is_empty() {
            return vec![(0, 1.0)];
        }
        if params.top_k > 0 && params.top_k < cand.len() {
            cand.select_nth_unstable_by(params.top_k - 1, by_logit);
            cand.truncate(params.top_k);
        }
        cand.sort_unstable_by(by_logit);
        softmax_in_order(&mut cand);
        nucleus(&mut cand, params);
        cand
    }

    /// Vocabulary-sized rows: Gaussian logits at a few scales (flat to peaked), some
    /// repeated values (ties), masked (-inf) and NaN entries.
    fn rows() -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut rows = vec![];
        for (len, scale) in
            [(32000, 1.0f32), (32000, 4.0), (32000, 12.0), (151_936, 3.0), (37, 2.0), (5, 1.0)]
        {
            let mut l: Vec<f32> = (0..len)
                .map(|_| {
                    let g: f32 = (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>();
                    (g * scale * 10.0).round() / 10.0
                })
                .collect();
            l[len / 3] = f32::NEG_INFINITY;
            l[len / 2] = f32::NAN;
            rows.push(l);
        }
        rows.push(vec![f32::NEG_INFINITY; 40]);
        rows
    }

    #[test]
    fn top_k_equals_the_full_selection_bit_for_bit() {
        // the training and default settings sample with top-k: the one-pass selection must
        // give exactly what sorting every candidate gives (same set, order, probabilities)
        for l in rows() {
            for k in [1, 2, 20, 64, 300] {
                for (t, top_p, min_p) in
                    [(1.0, 1.0, 0.0), (1.0, 0.95, 0.0), (0.6, 0.95, 0.05), (0.0, 0.8, 0.0)]
                {
                    let p = SamplingParams { temperature: t, top_k: k, top_p, min_p, ..params() };
                    assert_eq!(
                        filtered_distribution(&l, &p),
                        reference(&l, &p),
                        "len {} k {k} t {t}",
                        l.len()
                    );
                }
            }
        }
    }

    #[test]
    fn without_top_k_the_bounds_keep_what_sorting_everything_keeps() {
        // The same tokens in the same order, probabilities equal to f32 rounding of the
        // softmax's sum (summed in id order here, in probability order in the reference):
        // a running sum of n terms is off by at most (n - 1) x 2^-24 of itself, for each of
        // the two, so n x 2^-23 relative (n: the row's candidates). Top-p's cut can move where the cumulative mass meets p
        // within the rounding of the f32 running sums: each addition rounds by at most
        // 2^-24 of a sum at most 1, so the tokens on one side of the cut and not the other
        // hold at most n x 2^-24 (n tokens kept).
        // (a row with nothing finite falls back to token 0: `nothing_finite_falls_back_to_token_zero`)
        for l in rows().into_iter().filter(|l| l.iter().any(|x| x.is_finite())) {
            for (t, top_p, min_p) in [
                (1.0, 0.95, 0.0),
                (0.8, 0.95, 0.0),
                (1.0, 0.5, 0.0),
                (1.0, 1.0, 0.1),
                (0.7, 0.9, 0.02),
                (1.0, 1.0, 0.0),
            ] {
                let p = SamplingParams { temperature: t, top_p, min_p, ..params() };
                let (got, want) = (reweighed(&l, &p), reweighed_reference(&l, &p));
                let sum_rounding = l.iter().filter(|x| x.is_finite()).count() as f32 * f32::EPSILON;
                let case = format!("len {} t {t} top_p {top_p} min_p {min_p}", l.len());
                let (short, long) = if got.len() < want.len() { (&got, &want) } else { (&want, &got) };
                let moved: f32 = long[short.len()..].iter().map(|c| c.1).sum();
                let bound = long.len() as f32 * f32::EPSILON / 2.0;
                assert!(moved <= bound, "{case}: {} against {} tokens, {moved} moved", got.len(), want.len());
                for (a, b) in got.iter().zip(&want) {
                    assert_eq!(a.0, b.0, "{case}");
                    assert!((a.1 - b.1).abs() <= sum_rounding * b.1, "{case}: {a:?} vs {b:?}");
                }
            }
        }
    }

    /// The filtered tokens with their probabilities before the final renormalisation
    /// (which a one-token difference at the cut would shift for every token).
    fn reweighed(l: &[f32], p: &SamplingParams) -> Vec<(u32, f32)> {
        unnormalise(filtered_distribution(l, p), &likely(l, p.temperature.max(1e-6), p))
    }

    fn reweighed_reference(l: &[f32], p: &SamplingParams) -> Vec<(u32, f32)> {
        let all = reference(l, &SamplingParams { top_p: 1.0, min_p: 0.0, ..p.clone() });
        unnormalise(reference(l, p), &all)
    }

    /// Each kept token's probability among all candidates, looked up in `all`.
    fn unnormalise(kept: Vec<(u32, f32)>, all: &[(u32, f32)]) -> Vec<(u32, f32)> {
        let all: std::collections::HashMap<u32, f32> = all.iter().copied().collect();
        kept.into_iter().map(|(id, _)| (id, all[&id])).collect()
    }

    #[test]
    fn no_filter_is_the_softmax() {
        let d = filtered_distribution(&logits(&[0.1, 0.2, 0.3, 0.4]), &params());
        assert_eq!(probs(&d), vec![(3, 0.4), (2, 0.3), (1, 0.2), (0, 0.1)]);
    }

    #[test]
    fn top_k_keeps_the_k_largest_and_renormalises() {
        let d =
            filtered_distribution(&logits(&[0.1, 0.2, 0.3, 0.4]), &SamplingParams { top_k: 2, ..params() });
        // 0.4 / 0.7, 0.3 / 0.7
        assert_eq!(probs(&d), vec![(3, 0.5714), (2, 0.4286)]);
    }

    #[test]
    fn top_p_keeps_the_smallest_prefix_reaching_p() {
        // cumulative 0.4, 0.7, 0.9: top_p 0.65 keeps two, 0.7 keeps two, 0.71 keeps three
        let l = logits(&[0.1, 0.2, 0.3, 0.4]);
        assert_eq!(filtered_distribution(&l, &SamplingParams { top_p: 0.65, ..params() }).len(), 2);
        assert_eq!(filtered_distribution(&l, &SamplingParams { top_p: 0.71, ..params() }).len(), 3);
        assert_eq!(filtered_distribution(&l, &SamplingParams { top_p: 0.1, ..params() }).len(), 1);
    }

    #[test]
    fn min_p_drops_tokens_below_a_fraction_of_the_top() {
        // top 0.4: min_p 0.45 keeps p >= 0.18 -> {0.4, 0.3, 0.2}, renormalised by 0.9
        let l = logits(&[0.1, 0.2, 0.3, 0.4]);
        let d = filtered_distribution(&l, &SamplingParams { min_p: 0.45, ..params() });
        assert_eq!(probs(&d), vec![(3, 0.4444), (2, 0.3333), (1, 0.2222)]);
        // min_p 0.6 keeps p >= 0.24 -> {0.4, 0.3}
        assert_eq!(filtered_distribution(&l, &SamplingParams { min_p: 0.6, ..params() }).len(), 2);
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        // p ∝ p_i^(1/T): T = 0.5 squares the probabilities: 0.16, 0.09 / 0.25
        let l = logits(&[0.6, 0.4]);
        let sharp = filtered_distribution(&l, &SamplingParams { temperature: 0.5, ..params() });
        assert_eq!(probs(&sharp), vec![(0, 0.6923), (1, 0.3077)]);
        let flat = filtered_distribution(&l, &SamplingParams { temperature: 100.0, ..params() });
        assert!((flat[0].1 - 0.5).abs() < 0.01);
    }

    #[test]
    fn nothing_finite_falls_back_to_token_zero() {
        let l = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY];
        for k in [0, 2] {
            assert_eq!(
                filtered_distribution(&l, &SamplingParams { top_k: k, top_p: 0.9, ..params() }),
                vec![(0, 1.0)]
            );
        }
    }
}
