//! The per-step signals a researcher watches beside the reward, from a step's scored policy
//! rows: the composite's components, each rubric dimension's mean score, the judge's latency
//! and the share of stories inside the recipe's length band. The step event carries them
//! (`StepStats`); logs written before them load with them absent.

use serde::{Deserialize, Serialize};

use crate::eval::winrate::percentile;
use crate::reward::breakdown::Breakdown;

/// Means over a step's policy rows of the composite's terms, unweighted (RECIPE.md):
/// composite = w_sq·SQ − w_rep·repetition − w_len·length − w_blank·blank + overlong.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComponentMeans {
    /// Normalised Story Quality (the batch mean stands in for a failed judgement).
    pub story_quality: f64,
    /// Self-repetition penalty, 0..1.
    pub repetition: f64,
    /// Length penalty, 0..1 (0 inside the band).
    pub length: f64,
    /// Blank penalty, 0 or 1.
    pub blank: f64,
    /// DAPO's overlong penalty, ≤ 0.
    pub overlong: f64,
}

/// One rubric dimension's mean score over the policy rows the judge scored, in the rubric's
/// points (0..=max).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionMean {
    pub key: String,
    pub mean: f64,
    pub max: i64,
}

/// What `StepStats` gains from a step's policy rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowSignals {
    pub components: Option<ComponentMeans>,
    pub dimensions: Vec<DimensionMean>,
    /// Seconds per judge call that reached the judge (cache hits left out): median, 95th.
    pub judge_latency_p50: Option<f64>,
    pub judge_latency_p95: Option<f64>,
    /// Share of rows whose words fall inside the band around their length target.
    pub length_in_band: Option<f64>,
}

impl RowSignals {
    pub fn of<'a>(policy: impl IntoIterator<Item = &'a Breakdown>) -> Self {
        let rows: Vec<&Breakdown> = policy.into_iter().collect();
        if rows.is_empty() {
            return Self::default();
        }
        let n = rows.len() as f64;
        let mean = |f: fn(&Breakdown) -> f64| rows.iter().map(|b| f(b)).sum::<f64>() / n;
        let components = ComponentMeans {
            story_quality: mean(|b| b.story_quality),
            repetition: mean(|b| b.self_repetition),
            length: mean(|b| b.length_penalty),
            blank: mean(|b| b.blank_penalty),
            overlong: mean(|b| b.overlong_penalty),
        };
        Self {
            components: Some(components),
            dimensions: dimension_means(&rows),
            judge_latency_p50: latency(&rows, 50.0),
            judge_latency_p95: latency(&rows, 95.0),
            length_in_band: in_band_share(&rows),
        }
    }
}

/// Per dimension key, in the order the first judgement lists them; a key a later judgement
/// adds goes after them. Rows without a judgement (failed, not judged) take no part.
fn dimension_means(rows: &[&Breakdown]) -> Vec<DimensionMean> {
    // (key, sum, count, max)
    let mut acc: Vec<(String, f64, usize, i64)> = Vec::new();
    for j in rows.iter().filter_map(|b| b.judgement.as_ref()) {
        for d in &j.dimensions {
            match acc.iter_mut().find(|a| a.0 == d.key) {
                Some(a) => {
                    a.1 += d.score as f64;
                    a.2 += 1;
                    a.3 = a.3.max(d.max);
                }
                None => acc.push((d.key.clone(), d.score as f64, 1, d.max)),
            }
        }
    }
    acc.into_iter().map(|(key, sum, n, max)| DimensionMean { key, mean: sum / n as f64, max }).collect()
}

fn latency(rows: &[&Breakdown], q: f64) -> Option<f64> {
    let mut secs: Vec<f64> = rows.iter().filter_map(|b| b.judge_seconds).filter(|s| s.is_finite()).collect();
    if secs.is_empty() {
        return None;
    }
    secs.sort_by(f64::total_cmp);
    Some(percentile(&secs, q))
}

/// Rows with a length target (older logs may lack it) whose words lie in its band.
fn in_band_share(rows: &[&Breakdown]) -> Option<f64> {
    let fits: Vec<bool> = rows
        .iter()
        .filter_map(|b| {
            let (lo, hi) = b.length_target?.band();
            let w = b.words as f64;
            Some(w >= lo && w <= hi)
        })
        .collect();
    (!fits.is_empty()).then(|| fits.iter().filter(|&&f| f).count() as f64 / fits.len() as f64)
}
