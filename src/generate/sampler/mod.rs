//! Turning one row of logits into a token: penalties, temperature, top-k, top-p, min-p,
//! then a draw from the row's own seeded RNG.

use anyhow::{bail, Result};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Sampling settings. Defaults follow the POLARIS model card (RECIPE.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 means greedy decoding.
    pub temperature: f32,
    /// Nucleus: smallest set of tokens whose probability reaches top_p (1 = off).
    pub top_p: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Drop tokens less likely than min_p x the most likely one (0 = off).
    pub min_p: f32,
    /// Divide positive / multiply negative logits of tokens already in the context (1 = off).
    pub repetition_penalty: f32,
    /// Subtract from the logits of tokens already generated (0 = off).
    pub presence_penalty: f32,
    /// Generated tokens at most, thinking included.
    pub max_new_tokens: usize,
    /// Thinking tokens at most; past it `</think>` is forced (None = no budget). Written as 0
    /// when None, so a configuration can say "no budget" (an absent key is the default's).
    #[serde(with = "zero_is_none")]
    pub thinking_budget: Option<usize>,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.6,
            top_p: 0.95,
            top_k: 20,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            max_new_tokens: 8192,
            thinking_budget: Some(3072),
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// The settings POLARIS trains with: temperature 1.0, top_p 0.95, top_k 20,
    /// repetition penalty 1.10, 8192 response tokens, thinking capped at 3072.
    pub fn training() -> Self {
        Self { temperature: 1.0, repetition_penalty: 1.10, ..Self::default() }
    }

    /// The settings POLARIS validates with: temperature 0.8, top_p 0.95, no top_k,
    /// repetition penalty 1.10, the training budgets.
    pub fn validation() -> Self {
        Self { temperature: 0.8, top_k: 0, ..Self::training() }
    }

    pub fn validate(&self) -> Result<()> {
        if self.temperature.is_nan() || self.temperature < 0.0 || !self.temperature.is_finite() {
            bail!("temperature must be 0 (greedy) or positive, got {}", self.temperature);
        }
        if !(0.0..=1.0).contains(&self.top_p) || self.top_p == 0.0 {
            bail!("top_p must be in (0, 1], got {}", self.top_p);
        }
        if !(0.0..1.0).contains(&self.min_p) {
            bail!("min_p must be in [0, 1), got {}", self.min_p);
        }
        if self.repetition_penalty.is_nan() || self.repetition_penalty <= 0.0 {
            bail!("repetition_penalty must be positive (1 = off), got {}", self.repetition_penalty);
        }
        if !(-2.0..=2.0).contains(&self.presence_penalty) {
            bail!("presence_penalty must be in [-2, 2], got {}", self.presence_penalty);
        }
        if self.repetition_penalty != 1.0 && self.presence_penalty != 0.0 {
            bail!(
                "repetition_penalty ({}) and presence_penalty ({}) are both set: the POLARIS model card \
                 advises one or the other, never both; set --repetition-penalty 1 or --presence-penalty 0",
                self.repetition_penalty,
                self.presence_penalty
            );
        }
        if self.max_new_tokens == 0 {
            bail!("max_new_tokens must be at least 1");
        }
        Ok(())
    }
}

/// `thinking_budget`: None is written 0; 0 and null read as None.
mod zero_is_none {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<usize>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.unwrap_or(0) as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        Ok(Option::<usize>::deserialize(d)?.filter(|&n| n > 0))
    }
}

/// Applies the penalties in place. `context` is every token the row has seen (prompt and
/// generated, for the repetition penalty); `generated` only what it produced.
pub fn apply_penalties(
    logits: &mut [f32],
    params: &SamplingParams,
    context_seen: &[bool],
    generated_seen: &[bool],
) {
    if params.repetition_penalty != 1.0 {
        let p = params.repetition_penalty;
        for (l, _) in logits.iter_mut().zip(context_seen).filter(|(_, &s)| s) {
            *l = if *l > 0.0 { *l / p } else { *l * p };
        }
    }
    if params.presence_penalty != 0.0 {
        for (l, _) in logits.iter_mut().zip(generated_seen).filter(|(_, &s)| s) {
            *l -= params.presence_penalty;
        }
    }
}

/// The candidate tokens after temperature and the filters: (token, probability), sorted by
/// probability descending, probabilities renormalised to sum 1.
pub fn filtered_distribution(logits: &[f32], params: &SamplingParams) -> Vec<(u32, f32)> {
    let t = params.temperature.max(1e-6);
    let mut cand: Vec<(u32, f32)> =
        logits.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(i, &l)| (i as u32, l / t)).collect();
    if cand.is_empty() {
        return vec![(0, 1.0)];
    }
    let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if params.top_k > 0 && params.top_k < cand.len() {
        cand.select_nth_unstable_by(params.top_k - 1, by_logit);
        cand.truncate(params.top_k);
    }
    cand.sort_unstable_by(by_logit);
    // softmax over the survivors
    let max = cand[0].1;
    let mut sum = 0f32;
    for c in cand.iter_mut() {
        c.1 = (c.1 - max).exp();
        sum += c.1;
    }
    for c in cand.iter_mut() {
        c.1 /= sum;
    }
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
    cand
}

/// Greedy when temperature is 0 (lowest id among equal maxima), else a draw.
pub fn sample(logits: &[f32], params: &SamplingParams, rng: &mut ChaCha8Rng) -> u32 {
    if params.temperature == 0.0 {
        return argmax(logits);
    }
    let dist = filtered_distribution(logits, params);
    let u: f32 = rng.random();
    let mut cum = 0f32;
    for &(id, p) in &dist {
        cum += p;
        if u < cum {
            return id;
        }
    }
    dist.last().map_or(0, |d| d.0)
}

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

/// `argmax` of each row of logits [B, V] (f32 on the CPU, read in place).
pub fn argmax_rows(logits: &candle_core::Tensor) -> Result<Vec<u32>> {
    let (_, vocab) = logits.dims2()?;
    let logits = logits.contiguous()?;
    let (storage, layout) = logits.storage_and_layout();
    let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(data)) = &*storage else {
        bail!("greedy choice: logits that are not f32 on the CPU");
    };
    let Some((from, to)) = layout.contiguous_offsets() else {
        bail!("greedy choice: logits that are not contiguous");
    };
    Ok(data[from..to].chunks_exact(vocab.max(1)).map(argmax).collect())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

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

    fn params() -> SamplingParams {
        SamplingParams { temperature: 1.0, top_p: 1.0, top_k: 0, min_p: 0.0, ..SamplingParams::default() }
    }

    /// logits = ln(p) for a known distribution
    fn logits(p: &[f32]) -> Vec<f32> {
        p.iter().map(|x| x.ln()).collect()
    }

    fn probs(d: &[(u32, f32)]) -> Vec<(u32, f32)> {
        d.iter().map(|&(i, p)| (i, (p * 1e4).round() / 1e4)).collect()
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
    fn greedy_takes_the_argmax_and_ignores_the_rng() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let p = SamplingParams { temperature: 0.0, ..params() };
        for _ in 0..10 {
            assert_eq!(sample(&[0.0, 3.0, 2.9, -1.0], &p, &mut rng), 1);
        }
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
        let mut l = vec![2.0, -2.0, 2.0, -2.0];
        let p = SamplingParams { repetition_penalty: 2.0, ..params() };
        apply_penalties(&mut l, &p, &[true, true, false, false], &[false; 4]);
        assert_eq!(l, vec![1.0, -4.0, 2.0, -2.0]);
    }

    #[test]
    fn presence_penalty_subtracts_once_per_generated_token() {
        let mut l = vec![2.0, -2.0, 2.0];
        let p = SamplingParams { presence_penalty: 0.5, ..params() };
        // context-only tokens are not penalised by presence
        apply_penalties(&mut l, &p, &[true, true, true], &[true, false, true]);
        assert_eq!(l, vec![1.5, -2.0, 1.5]);
    }

    #[test]
    fn validation_names_the_setting() {
        let bad = [
            (SamplingParams { temperature: -1.0, ..params() }, "temperature"),
            (SamplingParams { top_p: 0.0, ..params() }, "top_p"),
            (SamplingParams { min_p: 1.0, ..params() }, "min_p"),
            (SamplingParams { repetition_penalty: 0.0, ..params() }, "repetition_penalty"),
            (SamplingParams { presence_penalty: 3.0, ..params() }, "presence_penalty"),
            (SamplingParams { repetition_penalty: 1.1, presence_penalty: 0.5, ..params() }, "never both"),
            (SamplingParams { max_new_tokens: 0, ..params() }, "max_new_tokens"),
        ];
        for (p, word) in bad {
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(word), "{e}");
        }
        SamplingParams::default().validate().unwrap();
        SamplingParams::training().validate().unwrap();
    }

    #[test]
    fn draws_follow_the_filtered_distribution() {
        // 20,000 draws from {0.5, 0.3, 0.2}: each frequency within 0.015 (≈ 4.5 standard
        // errors, sqrt(0.25/20000) = 0.0035) of its probability; seeded, so not flaky.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let l = logits(&[0.5, 0.3, 0.2]);
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            counts[sample(&l, &params(), &mut rng) as usize] += 1;
        }
        for (c, p) in counts.iter().zip([0.5, 0.3, 0.2]) {
            assert!((*c as f64 / 20_000.0 - p).abs() < 0.015, "{counts:?}");
        }
    }
}
