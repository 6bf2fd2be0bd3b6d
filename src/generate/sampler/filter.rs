//! Temperature and the filters (top-k, top-p, min-p): the candidates a draw chooses among.
//!
//! A vocabulary is tens of thousands of logits and a group samples one row per sequence
//! every step, so no step sorts the vocabulary: top-k is one pass that keeps the k best
//! seen so far, and without top-k, top-p and min-p first drop the tokens that cannot
//! survive them (their probability is below a bound), then sort the rest.

use std::cmp::Ordering;

use super::SamplingParams;
use crate::model::flash_attention::cpu::Real;

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
    // one vectorised test; the scan stops at a block that holds one.
    let body = i + (logits.len() - i) / LANES * LANES;
    while let Some(at) = first_block_above(&logits[i..body], t, best[k - 1].1) {
        let start = i + at;
        for (j, &l) in logits[start..start + LANES].iter().enumerate() {
            offer(&mut best, start + j, l);
        }
        i = start + LANES;
    }
    for (j, &l) in logits[body..].iter().enumerate() {
        offer(&mut best, body + j, l);
    }
    best
}

/// Logits per block of `top_k`'s scan.
const LANES: usize = 16;

/// Where the first block of `LANES` (`logits` holds whole blocks) with a value above
/// `floor` once scaled (l / t > floor) starts. The scan of nearly every logit of a row;
/// compiled for AVX-512 or AVX2 where the CPU has them (the crate's baseline is SSE2), so a
/// block is one or two divisions and compares.
fn first_block_above(logits: &[f32], t: f32, floor: f32) -> Option<usize> {
    #[inline(always)]
    fn scan(logits: &[f32], t: f32, floor: f32) -> Option<usize> {
        logits
            .chunks_exact(LANES)
            .position(|b| b.iter().fold(false, |hit, &l| hit | (l / t > floor)))
            .map(|b| b * LANES)
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(logits: &[f32], t: f32, floor: f32) -> Option<usize> {
            scan(logits, t, floor)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(logits: &[f32], t: f32, floor: f32) -> Option<usize> {
            scan(logits, t, floor)
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F
            return unsafe { avx512(logits, t, floor) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2
            return unsafe { avx2(logits, t, floor) };
        }
    }
    scan(logits, t, floor)
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
///
/// A flat row (an untrained model's, or a high temperature) keeps most of its vocabulary
/// past those bounds, so the softmax's exponentials are the vectorised ones of the
/// attention kernels and the sort is a radix sort: 32000 flat logits took 1.1 ms with libm's
/// exp and a comparison sort, 0.55 ms so (`benches/sampling.rs`).
fn likely(logits: &[f32], t: f32, params: &SamplingParams) -> Vec<(u32, f32)> {
    // scaled logits; one that is not finite (masked, NaN, or past f32 once scaled) is no
    // candidate and holds no mass
    let scaled: Vec<f32> =
        logits.iter().map(|&l| Some(l / t).filter(|s| s.is_finite()).unwrap_or(f32::NEG_INFINITY)).collect();
    let n = scaled.iter().filter(|s| s.is_finite()).count();
    if n == 0 {
        return vec![];
    }
    let max = <f32 as Real>::max_of(&scaled);
    // e[i] = exp(scaled[i] - max): 0 for the non-candidates
    let mut e = scaled.clone();
    let sum = <f32 as Real>::exp_shifted(&mut e, max);
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
    let mut cand: Vec<(u32, f32)> = scaled
        .iter()
        .enumerate()
        .filter(|&(_, &s)| s.is_finite() && s >= floor)
        .map(|(i, &s)| (i as u32, s))
        .collect();
    // stable, so equal logits stay in id order: `by_logit`'s order
    radsort::sort_by_key(&mut cand, |c| descending(c.1));
    for c in cand.iter_mut() {
        c.1 = e[c.0 as usize] / sum;
    }
    cand
}

/// A key whose ascending order is `f32::total_cmp`'s descending order.
fn descending(x: f32) -> u32 {
    let bits = x.to_bits();
    // total order as unsigned: negatives reversed below the positives
    let ascending = if bits >> 31 == 1 { !bits } else { bits | 1 << 31 };
    !ascending
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
    fn the_radix_key_orders_as_by_logit() {
        // ascending keys = descending total order: infinities, zeros of both signs,
        // subnormals, and equal values (then id order, which the stable sort keeps)
        let xs = [
            f32::INFINITY,
            3.5,
            1.0,
            f32::MIN_POSITIVE,
            1e-40,
            0.0,
            -0.0,
            -1e-40,
            -1.0,
            -3.5,
            f32::MIN,
            f32::NEG_INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(descending(w[0]) < descending(w[1]), "{} before {}", w[0], w[1]);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut cand: Vec<(u32, f32)> =
            (0..5000).map(|i| (i, (rng.random_range(-300..300) as f32) / 7.0)).collect();
        let mut want = cand.clone();
        want.sort_by(by_logit);
        radsort::sort_by_key(&mut cand, |c| descending(c.1));
        assert_eq!(cand, want);
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
