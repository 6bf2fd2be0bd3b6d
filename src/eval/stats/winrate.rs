//! Win rate with ties as half, and its bootstrap confidence interval over prompts.

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The fewest bootstrap resamples a report may use.
pub const MIN_RESAMPLES: usize = 1000;

/// One comparison from system A's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    AWins,
    BWins,
    Tie,
}

impl Preference {
    /// A's score: 1 for a win, 1/2 for a tie, 0 for a loss.
    pub fn score(self) -> f64 {
        match self {
            Preference::AWins => 1.0,
            Preference::BWins => 0.0,
            Preference::Tie => 0.5,
        }
    }
}

/// Mean score over all comparisons; None if there are none.
pub fn win_rate(prefs: &[Preference]) -> Option<f64> {
    (!prefs.is_empty()).then(|| prefs.iter().map(|p| p.score()).sum::<f64>() / prefs.len() as f64)
}

/// A percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The 95% percentile-bootstrap interval of the win rate, resampling prompts: each
/// resample draws `by_prompt.len()` prompts with replacement and pools all their
/// comparisons (every annotator's), so comparisons of one prompt move together.
/// `by_prompt[i]` holds prompt i's comparisons; the same `seed` gives the same interval.
pub fn bootstrap_ci(by_prompt: &[Vec<Preference>], resamples: usize, seed: u64) -> Result<Interval> {
    if resamples < MIN_RESAMPLES {
        bail!("{resamples} bootstrap resamples: use at least {MIN_RESAMPLES}");
    }
    // Per prompt: (sum of scores, number of comparisons).
    let sums: Vec<(f64, usize)> = by_prompt
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| (p.iter().map(|x| x.score()).sum(), p.len()))
        .collect();
    if sums.is_empty() {
        bail!("no comparisons to resample");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rates: Vec<f64> = (0..resamples)
        .map(|_| {
            let (mut score, mut count) = (0.0, 0usize);
            for _ in 0..sums.len() {
                let (s, n) = sums[rng.random_range(0..sums.len())];
                score += s;
                count += n;
            }
            score / count as f64
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    Ok(Interval { low: percentile(&rates, 2.5), high: percentile(&rates, 97.5) })
}

/// The q-th percentile (0..=100) of sorted values, interpolating linearly between the
/// two nearest ranks (NumPy's default, "linear").
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of nothing");
    let rank = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}
