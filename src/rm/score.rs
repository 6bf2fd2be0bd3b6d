//! An RM score in the reward stack. A Bradley-Terry score r is a logit with no fixed origin
//! (adding a constant to every score leaves every pair's probability unchanged), so it is
//! read against the model's `center`, the mean score of ordinary stories (manifest):
//!   Story Quality = σ(r − center),
//! the probability, under the model's own Bradley-Terry reading, that the story beats an
//! ordinary one. It lands in 0..1, the span of a judge's Story Quality over its positive
//! dimensions (overall / divisor, divisor 100 for the POLARIS rubric), and it takes the
//! judge's place in the composite unchanged: reward = clip(w_sq·SQ − w_rep·rep − ...). The
//! judgement's `overall` is SQ · divisor rounded, as a judge's would be.

use serde_json::{json, Value};

use crate::reward::answer::Judgement;
use crate::reward::rubric::Rubric;

/// Story Quality of a score: σ(r − center).
pub fn story_quality(score: f64, center: f64) -> f64 {
    1.0 / (1.0 + (center - score).exp())
}

/// A judgement from a score, for the records that a judge's would fill: no dimensions, the
/// overall on the rubric's scale.
pub fn judgement(rubric: &Rubric, score: f64, center: f64) -> Judgement {
    let sq = story_quality(score, center);
    let overall = (sq * rubric.composite.divisor).round() as i64;
    Judgement {
        dimensions: Vec::new(),
        positive_total: overall,
        negative_total: 0,
        bonus: 0,
        penalty: 0,
        bonus_applied: 0,
        penalty_applied: 0,
        bonus_evidence: Vec::new(),
        penalty_evidence: Vec::new(),
        overall,
        reported_overall: None,
        story_quality: sq,
        totals: Default::default(),
        reported: None,
    }
}

/// What a judgement record keeps as the "answer" of an RM: the raw score and the centre.
pub fn answer(score: f64, center: f64) -> Value {
    json!({"rm_score": score, "rm_center": center, "story_quality": story_quality(score, center)})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// σ(0) = 1/2 at the centre; σ(ln 3) = 3/4 one ln-3 logit above it (exact to 1e-12).
    #[test]
    fn centre_maps_to_half() {
        assert!((story_quality(2.0, 2.0) - 0.5).abs() < 1e-12);
        assert!((story_quality(2.0 + 3f64.ln(), 2.0) - 0.75).abs() < 1e-12);
        let rubric = Rubric::load("builtin").unwrap();
        let j = judgement(&rubric, 2.0 + 3f64.ln(), 2.0);
        assert_eq!(j.overall, (0.75 * rubric.composite.divisor).round() as i64);
    }
}
