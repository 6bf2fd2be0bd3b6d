//! `eval length`'s statistics: requested-length buckets, and per (model, bucket) the mean
//! Story Quality and length ratio with bootstrap intervals over prompts, and the shares of
//! stories under and over the recipe's length tolerance band. Pure: records in, report out.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::eval::report::{Bucket, LengthReport, LengthRow, REPORT_VERSION};
use crate::eval::stats::winrate::{percentile, Interval, MIN_RESAMPLES};
use crate::reward::rules::length_band;

/// Confidence level of every interval.
pub const CONFIDENCE: f64 = 0.95;

/// Parses `LO-HI,LO-HI,...` (words). Buckets must be in increasing order and may not
/// overlap; gaps are allowed (a prompt in a gap is outside every bucket).
pub fn parse_buckets(spec: &str) -> Result<Vec<Bucket>> {
    let mut buckets: Vec<Bucket> = Vec::new();
    for (i, part) in spec.split(',').enumerate() {
        let label = part.trim();
        let n = i + 1;
        let parsed = label
            .split_once('-')
            .and_then(|(lo, hi)| Some((lo.trim().parse::<usize>().ok()?, hi.trim().parse::<usize>().ok()?)));
        let Some((lo, hi)) = parsed else {
            bail!(
                "--buckets {spec:?}: bucket {n} ({label:?}) is not LO-HI in words; write e.g. \
                 1000-4000,4000-8000,8000-12000"
            );
        };
        if lo >= hi {
            bail!("--buckets {spec:?}: bucket {n} ({label}) has LO >= HI; the low end must be below the high end");
        }
        if let Some(prev) = buckets.last() {
            if lo < prev.hi {
                bail!(
                    "--buckets {spec:?}: bucket {n} ({label}) {} bucket {} ({}); list the buckets in \
                     increasing order without overlap (4000-8000 may follow 1000-4000)",
                    if lo < prev.lo { "comes before" } else { "overlaps" },
                    n - 1,
                    prev.label
                );
            }
        }
        buckets.push(Bucket { label: label.to_string(), lo, hi });
    }
    Ok(buckets)
}

/// The bucket holding a request for `words` words: `lo <= words < hi`, and the last
/// bucket also holds its `hi`.
pub fn bucket_of(buckets: &[Bucket], words: usize) -> Option<usize> {
    let last = buckets.len().checked_sub(1)?;
    buckets
        .iter()
        .enumerate()
        .position(|(i, b)| (b.lo..b.hi).contains(&words) || (i == last && words == b.hi))
}

/// One story as the statistics see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredStory {
    pub model: String,
    pub prompt_uid: String,
    pub requested_words: usize,
    /// Words of the story (thinking excluded).
    pub words: usize,
    /// Story Quality, None when the judgement failed or is missing.
    pub sq: Option<f64>,
}

/// Where a story falls against the recipe's tolerance band around its requested length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthFit {
    Under,
    Within,
    Over,
}

pub fn length_fit(words: usize, requested_words: usize) -> LengthFit {
    let (lo, hi) = length_band(requested_words);
    let w = words as f64;
    if w < lo {
        LengthFit::Under
    } else if w > hi {
        LengthFit::Over
    } else {
        LengthFit::Within
    }
}

/// Settings of the summary that are not in the records.
#[derive(Debug, Clone)]
pub struct SummaryOptions {
    pub judge: String,
    pub samples: usize,
    pub resamples: usize,
    /// Bootstrap seed; row r uses `seed + r`, so the same seed gives the same intervals.
    pub seed: u64,
}

/// The length report over `stories`, rows for every (model, bucket) in the given orders.
/// Stories whose request falls in no bucket must already be left out (the caller counts
/// their prompts in `prompts_outside_buckets`).
pub fn summarise(
    stories: &[ScoredStory],
    models: &[String],
    buckets: &[Bucket],
    prompts_outside_buckets: usize,
    opts: &SummaryOptions,
) -> Result<LengthReport> {
    let mut rows = Vec::with_capacity(models.len() * buckets.len());
    for model in models {
        for (b, bucket) in buckets.iter().enumerate() {
            let seed = opts.seed.wrapping_add(rows.len() as u64);
            let mine: Vec<&ScoredStory> = stories
                .iter()
                .filter(|s| &s.model == model && bucket_of(buckets, s.requested_words) == Some(b))
                .collect();
            rows.push(row(model, bucket, &mine, opts.resamples, seed)?);
        }
    }
    Ok(LengthReport {
        v: REPORT_VERSION,
        judge: opts.judge.clone(),
        samples: opts.samples,
        confidence: CONFIDENCE,
        resamples: opts.resamples,
        buckets: buckets.to_vec(),
        models: models.to_vec(),
        rows,
        prompts_outside_buckets,
    })
}

fn row(
    model: &str,
    bucket: &Bucket,
    stories: &[&ScoredStory],
    resamples: usize,
    seed: u64,
) -> Result<LengthRow> {
    // per prompt, in uid order: its judged SQs and its length ratios
    let mut by_prompt: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for s in stories {
        let entry = by_prompt.entry(&s.prompt_uid).or_default();
        entry.0.extend(s.sq);
        entry.1.push(s.words as f64 / s.requested_words.max(1) as f64);
    }
    let sq: Vec<Vec<f64>> = by_prompt.values().map(|v| v.0.clone()).collect();
    let ratio: Vec<Vec<f64>> = by_prompt.values().map(|v| v.1.clone()).collect();
    let n = stories.len();
    let share = |fit: LengthFit| {
        (n > 0).then(|| {
            stories.iter().filter(|s| length_fit(s.words, s.requested_words) == fit).count() as f64 / n as f64
        })
    };
    Ok(LengthRow {
        model: model.to_string(),
        bucket: bucket.label.clone(),
        prompts: by_prompt.len(),
        stories: n,
        judged: sq.iter().map(Vec::len).sum(),
        sq_mean: pooled_mean(&sq),
        sq_ci: bootstrap_mean_ci(&sq, resamples, seed)?,
        length_ratio_mean: pooled_mean(&ratio),
        length_ratio_ci: bootstrap_mean_ci(&ratio, resamples, seed ^ 0x5eed)?,
        under_share: share(LengthFit::Under),
        over_share: share(LengthFit::Over),
    })
}

/// The mean of every value of every prompt; None when there are none.
pub fn pooled_mean(by_prompt: &[Vec<f64>]) -> Option<f64> {
    let n: usize = by_prompt.iter().map(Vec::len).sum();
    (n > 0).then(|| by_prompt.iter().flatten().sum::<f64>() / n as f64)
}

/// The 95% percentile-bootstrap interval of the pooled mean, resampling prompts: each
/// resample draws as many prompts as have values, with replacement, and pools all their
/// values (a prompt's samples move together). None when no prompt has a value; the same
/// seed gives the same interval.
pub fn bootstrap_mean_ci(by_prompt: &[Vec<f64>], resamples: usize, seed: u64) -> Result<Option<Interval>> {
    if resamples < MIN_RESAMPLES {
        bail!("{resamples} bootstrap resamples: use at least {MIN_RESAMPLES}");
    }
    // per prompt: (sum, count)
    let sums: Vec<(f64, usize)> =
        by_prompt.iter().filter(|p| !p.is_empty()).map(|p| (p.iter().sum(), p.len())).collect();
    if sums.is_empty() {
        return Ok(None);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            let (mut total, mut count) = (0.0, 0usize);
            for _ in 0..sums.len() {
                let (s, n) = sums[rng.random_range(0..sums.len())];
                total += s;
                count += n;
            }
            total / count as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0 * 100.0;
    Ok(Some(Interval { low: percentile(&means, tail), high: percentile(&means, 100.0 - tail) }))
}
