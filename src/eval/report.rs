//! The summaries `eval length` and `eval elo` write (`length.json`, `elo.json`) and everything
//! else reads: the Markdown reports, the plots and the TUI's Eval view. One type per file so
//! the writers and the readers cannot drift apart; `v` is bumped on any change an older
//! reader would misread.

use serde::{Deserialize, Serialize};

use super::stats::winrate::Interval;

/// Format version of both summaries.
pub const REPORT_VERSION: u32 = 1;
/// File names inside an evaluation's output directory.
pub const LENGTH_JSON: &str = "length.json";
pub const ELO_JSON: &str = "elo.json";

/// A requested-length bucket, in words: `lo <= words < hi`, except that the last bucket of
/// a list also holds `hi` itself (so `8000-12000` holds a 12000-word request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// As the user wrote it, e.g. `1000-4000`.
    pub label: String,
    pub lo: usize,
    pub hi: usize,
}

/// `eval length`: Story Quality and length ratio per model and requested-length bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthReport {
    pub v: u32,
    /// The judge's label (`JudgeSpec::label`), e.g. `openai:gpt-5.4` or `offline`.
    pub judge: String,
    /// Stories generated per prompt and model.
    pub samples: usize,
    /// Confidence level of every interval (0.95).
    pub confidence: f64,
    /// Bootstrap resamples behind every interval (resampling prompts).
    pub resamples: usize,
    pub buckets: Vec<Bucket>,
    /// Model labels in the order given on the command line.
    pub models: Vec<String>,
    /// One row per (model, bucket), models outer, buckets in order.
    pub rows: Vec<LengthRow>,
    /// Prompts whose requested length fell in no bucket (counted, never silently dropped).
    pub prompts_outside_buckets: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthRow {
    pub model: String,
    /// The bucket's label.
    pub bucket: String,
    pub prompts: usize,
    /// Stories generated (prompts x samples when complete).
    pub stories: usize,
    /// Stories the judge scored; `stories - judged` failed and are left out of the SQ mean.
    pub judged: usize,
    /// Mean Story Quality (SQ = overall / 100, RECIPE.md), None when nothing was judged.
    pub sq_mean: Option<f64>,
    pub sq_ci: Option<Interval>,
    /// Mean of generated / requested words (1.0 = exact).
    pub length_ratio_mean: Option<f64>,
    pub length_ratio_ci: Option<Interval>,
    /// Shares of stories below / above the recipe's length tolerance band around the target
    /// (the band inside which `length_pen` is 0).
    pub under_share: Option<f64>,
    pub over_share: Option<f64>,
}

/// `eval elo`: a Bradley-Terry fit of dual-position pairwise judgements, on an Elo scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EloReport {
    pub v: u32,
    pub judge: String,
    /// The system whose rating is fixed at `anchor_rating`.
    pub anchor: String,
    pub anchor_rating: f64,
    pub confidence: f64,
    pub resamples: usize,
    /// Prompts with at least one judged pair.
    pub prompts: usize,
    /// Best first.
    pub ratings: Vec<EloRating>,
    /// Head-to-head counts of the combined (both-order) verdicts.
    pub pairs: Vec<HeadToHead>,
    pub position: PositionBias,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EloRating {
    pub system: String,
    /// Elo points: 400 log10 of the Bradley-Terry strength, shifted so the anchor sits at
    /// `anchor_rating`.
    pub rating: f64,
    /// Bootstrap interval over prompts.
    pub ci: Interval,
    pub wins: usize,
    pub losses: usize,
    pub ties: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadToHead {
    pub a: String,
    pub b: String,
    pub a_wins: usize,
    pub b_wins: usize,
    pub ties: usize,
}

/// How the judge treats positions, over every single-order judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionBias {
    /// Single-order judgements (two per judged pair).
    pub judgements: usize,
    pub first_wins: usize,
    pub second_wins: usize,
    pub ties: usize,
    /// first_wins / (first_wins + second_wins); 0.5 means no position preference.
    pub first_win_rate: Option<f64>,
    pub first_win_rate_ci: Option<Interval>,
    /// Pairs whose two orders picked different stories (the bias the dual position cancels).
    pub inconsistent_pairs: usize,
    pub pairs: usize,
}
