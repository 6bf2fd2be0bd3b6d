//! The per-step signals a researcher watches beside the reward, from a step's scored policy
//! rows: the composite's components, each rubric dimension's mean score, the judge's latency
//! and the share of stories inside the recipe's length band. The step event carries them
//! (`StepStats`); logs written before them load with them absent.

use crate::eval::stats::winrate::percentile;
use crate::reward::breakdown::Breakdown;
use crate::run::stats::{ComponentMeans, DimensionMean};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::answer::{DimensionScore, Judgement};
    use crate::reward::breakdown::{Candidate, Weights};
    use crate::reward::rubric::Sign;

    /// A 1000-word request (band [650, 1600]) answered with `words` words, judged with
    /// `scores` on two dimensions in `seconds`.
    fn row(words: usize, scores: Option<[i64; 2]>, seconds: Option<f64>) -> Breakdown {
        let c = Candidate {
            prompt: "Write a story. The story should be 1000 words long.".into(),
            story: "word ".repeat(words),
            response: None,
            reference: None,
        };
        let mut b = Breakdown::rules(&c, Weights::training());
        b.judge_seconds = seconds;
        b.judgement = scores.map(|[voice, beats]| {
            let dim = |key: &str, sign, score, max| DimensionScore {
                key: key.into(),
                sign,
                score,
                max,
                justification: String::new(),
            };
            Judgement {
                dimensions: vec![
                    dim("voice", Sign::Positive, voice, 4),
                    dim("beats", Sign::Negative, beats, 3),
                ],
                positive_total: voice,
                negative_total: beats,
                bonus: 0,
                penalty: 0,
                bonus_applied: 0,
                penalty_applied: 0,
                bonus_evidence: vec![],
                penalty_evidence: vec![],
                overall: voice - beats,
                reported_overall: None,
                story_quality: 0.0,
                totals: Default::default(),
                reported: None,
            }
        });
        b.story_quality = scores.map_or(0.0, |[v, _]| v as f64 / 4.0);
        b
    }

    #[test]
    fn a_steps_rows_give_their_means_shares_and_latency_percentiles() {
        let rows = [
            row(600, Some([4, 1]), Some(1.0)),
            row(1000, Some([2, 3]), Some(3.0)),
            row(1700, None, None), // judgement failed: no dimensions, no latency
            row(900, Some([3, 2]), Some(2.0)),
        ];
        let s = RowSignals::of(&rows);
        let dims: Vec<(&str, f64, i64)> =
            s.dimensions.iter().map(|d| (d.key.as_str(), d.mean, d.max)).collect();
        assert_eq!(dims, [("voice", 3.0, 4), ("beats", 2.0, 3)], "means over the three judged rows");
        // 600 is under 650, 1700 over 1600: two of four inside
        assert_eq!(s.length_in_band, Some(0.5));
        // NumPy's linear percentile of [1, 2, 3]: p50 = 2, p95 = 2 + 0.9 · 1 = 2.9 (tolerance: rounding)
        assert_eq!(s.judge_latency_p50, Some(2.0));
        assert!((s.judge_latency_p95.unwrap() - 2.9).abs() < 1e-12);
        let c = s.components.unwrap();
        assert!((c.story_quality - (1.0 + 0.5 + 0.0 + 0.75) / 4.0).abs() < 1e-12);
        let mean_length = rows.iter().map(|b| b.length_penalty).sum::<f64>() / 4.0;
        assert!(mean_length > 0.0 && (c.length - mean_length).abs() < 1e-12);
        assert_eq!(RowSignals::of(&[]), RowSignals::default(), "no rows: nothing");
    }
}
