//! Turning one row of logits into a token: penalties, temperature, top-k, top-p, min-p,
//! then a draw from the row's own seeded RNG.

mod filter;
mod greedy;
mod penalty;

pub use filter::filtered_distribution;
use greedy::split_rows;
pub use greedy::{argmax, argmax_rows};
pub use penalty::{apply_penalties, penalises, Seen};

use anyhow::{bail, Result};
use candle_core::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::decode_pool::Disjoint;

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

/// One row's draw: its random stream and the tokens its penalties look at.
pub struct Draw<'a> {
    pub rng: &'a mut ChaCha8Rng,
    pub context: &'a Seen,
    pub generated: &'a Seen,
}

/// The token each row of logits [B, V] draws (`sample`, after `apply_penalties`), for the
/// rows with a `Draw`; a row without one gets None and its stream is not drawn from. The
/// rows are spread across the decode pool's threads: a group's draws are per-row work on
/// every step (training's settings, a 32000 vocabulary: 16 µs a row, `benches/sampling.rs`),
/// and each reads only its own logits, stream and seen tokens, so a row draws the same
/// token whichever thread takes it.
pub fn sample_rows(
    logits: &Tensor,
    params: &SamplingParams,
    draws: &mut [Option<Draw>],
) -> Result<Vec<Option<u32>>> {
    let penalise = penalises(params);
    let mut ids = vec![None; draws.len()];
    let (out, rows) = (Disjoint::new(&mut ids), Disjoint::new(draws));
    split_rows(logits, draws.len(), |k, l| {
        // SAFETY: row k alone reads and writes draws[k] and ids[k]
        let (draw, id) = unsafe { (&mut *rows.get().add(k), &mut *out.get().add(k)) };
        let Some(d) = draw else { return };
        *id = Some(if penalise {
            PENALISED.with_borrow_mut(|p| {
                p.clear();
                p.extend_from_slice(l);
                apply_penalties(p, params, d.context, d.generated);
                sample(p, params, d.rng)
            })
        } else {
            sample(l, params, d.rng)
        });
    })?;
    Ok(ids)
}

thread_local! {
    /// A row's logits with the penalties applied (the step's logits are read in place),
    /// one vocabulary per thread that draws, kept between steps.
    static PENALISED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
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

#[cfg(test)]
pub(super) mod tests {
    use rand::SeedableRng;

    use super::*;

    /// Temperature 1 and no filter: each test sets what it tries.
    pub fn params() -> SamplingParams {
        SamplingParams { temperature: 1.0, top_p: 1.0, top_k: 0, min_p: 0.0, ..SamplingParams::default() }
    }

    /// logits = ln(p) for a known distribution
    pub fn logits(p: &[f32]) -> Vec<f32> {
        p.iter().map(|x| x.ln()).collect()
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
    fn rows_drawn_in_parallel_draw_what_each_row_draws_alone() {
        // 7 rows of 3000 logits with training's settings (penalties, top-k, top-p): each row
        // gets the token `sample` draws after `apply_penalties` from its own stream, over
        // several steps (so the streams must advance alike), and a row without a draw gets
        // none and leaves its stream where it was
        use rand::Rng;
        let (b, vocab) = (7, 3000);
        let p = SamplingParams::training();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let seen: Vec<Seen> = (0..b)
            .map(|_| {
                let mut s = Seen::new(vocab);
                (0..200).for_each(|_| s.insert(rng.random_range(0..vocab as u32)));
                s
            })
            .collect();
        let mut streams: Vec<ChaCha8Rng> = (0..b as u64).map(ChaCha8Rng::seed_from_u64).collect();
        let mut alone = streams.clone();
        for step in 0..4 {
            let data: Vec<f32> = (0..b * vocab).map(|_| rng.random_range(-4.0..4.0f32)).collect();
            let logits = Tensor::from_vec(data.clone(), (b, vocab), &candle_core::Device::Cpu).unwrap();
            let skipped = step % b;
            let mut draws: Vec<Option<Draw>> = streams
                .iter_mut()
                .zip(&seen)
                .enumerate()
                .map(|(k, (rng, s))| (k != skipped).then_some(Draw { rng, context: s, generated: s }))
                .collect();
            let got = sample_rows(&logits, &p, &mut draws).unwrap();
            for k in 0..b {
                let want = (k != skipped).then(|| {
                    let mut l = data[k * vocab..(k + 1) * vocab].to_vec();
                    apply_penalties(&mut l, &p, &seen[k], &seen[k]);
                    sample(&l, &p, &mut alone[k])
                });
                assert_eq!(got[k], want, "step {step} row {k}");
            }
        }
        // the streams advanced alike (the skipped rows' not at all)
        for (s, a) in streams.iter_mut().zip(&mut alone) {
            assert_eq!(s.random::<u64>(), a.random::<u64>());
        }
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
