//! Disqualification gates (`[reward.disqualify]`, the fork's story_quality_dq_*; off in the
//! released run): a judged story whose coherence score reaches 7, whose nonsense score
//! reaches 8, or that has under 40% of the requested words gets the lowest overall score the
//! rubric allows (−159 for POLARIS's: SQ −1.59). The other components stay as they are; the
//! human reference is exempt by default.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::breakdown::{Breakdown, Candidate};
use super::rubric::Rubric;
use crate::generate::length::requested_words;

/// Each gate's dimension by rubric: POLARIS's prompt + schema pair, then the built-in rubric.
const COHERENCE: [&str; 2] = [
    "negative_coherence_continuity_internal_consistency_pov_confusion",
    "negative_broken_logic_and_continuity",
];
const NONSENSE: [&str; 2] =
    ["negative_overwrought_nonsensical_language", "negative_purple_or_senseless_prose"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisqualifyGates {
    pub enabled: bool,
    /// The coherence dimension's key (N2); empty: the rubric's own (POLARIS's
    /// negative_coherence_continuity_internal_consistency_pov_confusion, or the built-in
    /// negative_broken_logic_and_continuity).
    pub coherence_dimension: String,
    /// Disqualified at this score or above.
    pub coherence_at_least: f64,
    /// The nonsense dimension's key (N10); empty: the rubric's own.
    pub nonsense_dimension: String,
    pub nonsense_at_least: f64,
    /// Disqualified under this fraction of the requested words (whitespace-separated words,
    /// as the release counts them); 0 turns the gate off.
    pub words_under_fraction: f64,
    /// The human reference skips the gates.
    pub exempt_reference: bool,
}

impl Default for DisqualifyGates {
    fn default() -> Self {
        Self {
            enabled: false,
            coherence_dimension: String::new(),
            coherence_at_least: 7.0,
            nonsense_dimension: String::new(),
            nonsense_at_least: 8.0,
            words_under_fraction: 0.4,
            exempt_reference: true,
        }
    }
}

/// Which gates a story failed, and the overall score it had before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disqualified {
    pub gates: Vec<Gate>,
    pub overall_before: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    Coherence,
    Nonsense,
    Words,
}

/// The gates checked against a rubric: dimension keys found, the floor computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Gates {
    pub settings: DisqualifyGates,
    pub coherence: String,
    pub nonsense: String,
    /// The lowest overall score: −(negative maxima + penalty maximum).
    pub floor: i64,
    pub divisor: f64,
}

impl DisqualifyGates {
    /// None when off; an error naming the key when a dimension is not the rubric's.
    pub fn resolve(&self, rubric: &Rubric) -> Result<Option<Gates>> {
        if !self.enabled {
            return Ok(None);
        }
        let find = |key: &str, set: &str, known: [&str; 2]| -> Result<String> {
            let has = |k: &str| rubric.dimensions.iter().any(|d| d.key == k);
            if !key.is_empty() {
                if has(key) {
                    return Ok(key.to_string());
                }
            } else if let Some(k) = known.iter().find(|k| has(k)) {
                return Ok(k.to_string());
            }
            let negatives: Vec<&str> = rubric
                .dimensions
                .iter()
                .filter(|d| d.key.starts_with("negative"))
                .map(|d| d.key.as_str())
                .collect();
            let shown = if key.is_empty() { "(the rubric's own)".to_string() } else { format!("{key:?}") };
            bail!(
                "reward.disqualify.{set} = {shown} is not a dimension of rubric {:?}; set it to one of: {}",
                rubric.name,
                negatives.join(", ")
            )
        };
        Ok(Some(Gates {
            settings: self.clone(),
            coherence: find(&self.coherence_dimension, "coherence_dimension", COHERENCE)?,
            nonsense: find(&self.nonsense_dimension, "nonsense_dimension", NONSENSE)?,
            floor: -(rubric.negative_max() + rubric.penalty.as_ref().map_or(0, |p| p.max)),
            divisor: rubric.composite.divisor,
        }))
    }
}

impl Gates {
    /// The gates `b` (judged from `c`) fails; none for a failed judgement or an exempt
    /// reference.
    pub fn check(&self, b: &Breakdown, c: &Candidate) -> Vec<Gate> {
        let s = &self.settings;
        let Some(j) = &b.judgement else { return vec![] };
        if s.exempt_reference && c.response.is_some_and(|r| r.is_reference) {
            return vec![];
        }
        let score = |key: &str| j.dimensions.iter().find(|d| d.key == key).map(|d| d.score as f64);
        let mut gates = Vec::new();
        if score(&self.coherence).is_some_and(|v| v >= s.coherence_at_least) {
            gates.push(Gate::Coherence);
        }
        if score(&self.nonsense).is_some_and(|v| v >= s.nonsense_at_least) {
            gates.push(Gate::Nonsense);
        }
        let requested = requested_words(&c.prompt).filter(|&n| n > 0);
        if let (true, Some(n)) = (s.words_under_fraction > 0.0, requested) {
            if (c.story.split_whitespace().count() as f64) < s.words_under_fraction * n as f64 {
                gates.push(Gate::Words);
            }
        }
        gates
    }

    /// Floors the Story Quality of every story that fails a gate; before the batch-mean
    /// fallback, so a disqualified story counts in the mean with its floored score.
    pub fn apply(&self, batch: &mut [Breakdown], candidates: &[Candidate]) {
        for (b, c) in batch.iter_mut().zip(candidates) {
            let gates = self.check(b, c);
            let Some(j) = b.judgement.as_mut().filter(|_| !gates.is_empty()) else { continue };
            b.disqualified = Some(Disqualified { gates, overall_before: j.overall });
            j.overall = self.floor;
            j.story_quality = self.floor as f64 / self.divisor;
            b.overall = Some(self.floor);
            b.story_quality = j.story_quality;
        }
    }
}
