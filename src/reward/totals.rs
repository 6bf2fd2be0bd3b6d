//! Which totals a judgement's overall score is read from (`judge.totals`):
//! - `parts` (the project's default): the answer is validated against the schema and the
//!   totals are recomputed from the dimension scores (answer.rs);
//! - `reported` (the release's reading, RECIPE.md): the judge's own positive_total and
//!   negative_total, bonus_total / penalty_total (else bonus_score / penalty_score), with the
//!   bonus floor and penalty cap, clamped to the rubric's range ([-159, 108] for POLARIS);
//!   the answer is not validated. Values are read as Python reads them (a number, a boolean,
//!   or for the catch-alls also a numeric string; anything false-y is 0).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answer::{extract_json, judge_from_json, AnswerError, DimensionScore, Judgement};
use super::rubric::{CatchAll, Rubric};
use crate::text::python::strip;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TotalsReading {
    /// Recomputed from the validated dimension scores.
    #[default]
    Parts,
    /// The judge's reported totals, unvalidated, as the release reads them.
    Reported,
}

/// What the reported reading read and applied, in the judge's points (fractions kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedTotals {
    pub positive_total: f64,
    pub negative_total: f64,
    pub bonus_total: f64,
    pub penalty_total: f64,
    /// After the bonus floor and the penalty cap.
    pub bonus_applied: f64,
    pub penalty_applied: f64,
    /// positive − negative + bonus_applied − penalty_applied, before the clamp.
    pub unclamped: f64,
    /// Clamped to [−(negative max + penalty max), positive max + bonus max].
    pub overall: f64,
}

/// Finds the JSON in a reply and reads it the chosen way.
pub fn parse_reply(
    rubric: &Rubric,
    reply: &str,
    reading: TotalsReading,
) -> Result<(Judgement, Value), AnswerError> {
    let answer = extract_json(reply).ok_or(AnswerError::NotJson)?;
    Ok((read_answer(rubric, &answer, reading)?, answer))
}

pub fn read_answer(
    rubric: &Rubric,
    answer: &Value,
    reading: TotalsReading,
) -> Result<Judgement, AnswerError> {
    match reading {
        TotalsReading::Parts => judge_from_json(rubric, answer),
        TotalsReading::Reported => read_reported(rubric, answer),
    }
}

/// Python's `isinstance(v, (int, float))`: numbers and booleans.
fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(*b as u8 as f64),
        _ => None,
    }
}

/// Python's `float(v or 0)`.
fn float_or_zero(field: &str, v: Option<&Value>) -> Result<f64, AnswerError> {
    let bad = |v: &Value| AnswerError::Schema(format!("{field} must be a number, got {v}"));
    match v {
        None | Some(Value::Null) => Ok(0.0),
        Some(Value::Bool(b)) => Ok(*b as u8 as f64),
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| bad(v.expect("some"))),
        Some(Value::Array(a)) if a.is_empty() => Ok(0.0),
        Some(Value::Object(o)) if o.is_empty() => Ok(0.0),
        Some(Value::String(s)) if s.is_empty() => Ok(0.0),
        Some(Value::String(s)) => python_float(s).ok_or_else(|| bad(v.expect("some"))),
        Some(other) => Err(bad(other)),
    }
}

/// Python's `float(str)`: surrounding whitespace, single underscores between digits, and
/// inf / nan spellings allowed.
fn python_float(s: &str) -> Option<f64> {
    let s = strip(s);
    let b = s.as_bytes();
    let underscores_ok = b.iter().enumerate().all(|(i, &c)| {
        c != b'_' || (i > 0 && i + 1 < b.len() && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit())
    });
    if !underscores_ok {
        return None;
    }
    s.replace('_', "").parse().ok()
}

/// The catch-all's total (`bonus_total`, else `bonus_score`, else 0).
fn catch_all_total(src: &Value, key: &str) -> Result<f64, AnswerError> {
    let total = format!("{key}_total");
    match src.get(&total) {
        Some(v) => float_or_zero(&total, Some(v)),
        None => float_or_zero(&format!("{key}_score"), src.get(format!("{key}_score"))),
    }
}

/// Python's `max(lo, min(hi, x))`: a NaN falls to `hi`, as Python's min keeps its first
/// argument when the comparison fails.
fn python_clamp(x: f64, lo: f64, hi: f64) -> f64 {
    let m = if x < hi { x } else { hi };
    if m > lo {
        m
    } else {
        lo
    }
}

pub fn read_reported(rubric: &Rubric, answer: &Value) -> Result<Judgement, AnswerError> {
    // the release reads a nested `global_evaluation` object when the judge wraps its totals
    let src = answer.get("global_evaluation").filter(|g| g.is_object()).unwrap_or(answer);
    let total = |field: &str| -> Result<f64, AnswerError> {
        number(src.get(field))
            .ok_or_else(|| AnswerError::Missing(format!("{field} (a number; judge.totals = \"reported\")")))
    };
    let (positive, negative) = (total("positive_total")?, total("negative_total")?);
    let bonus = catch_all_total(src, rubric.bonus.as_ref().map_or("bonus", |c| &c.key))?;
    let penalty = catch_all_total(src, rubric.penalty.as_ref().map_or("penalty", |c| &c.key))?;
    let c = &rubric.composite;
    let bonus_applied = if c.bonus_zero_when_negative_exceeds_half_positive && negative > positive / 2.0 {
        0.0
    } else {
        bonus
    };
    let penalty_applied = match c.penalty_cap {
        Some(cap)
            if positive > negative * c.penalty_cap_when_positive_exceeds_negative_times
                && penalty > cap as f64 =>
        {
            cap as f64
        }
        _ => penalty,
    };
    let unclamped = positive - negative + bonus_applied - penalty_applied;
    let max = |c: &Option<CatchAll>| c.as_ref().map_or(0, |c| c.max);
    let lo = -(rubric.negative_max() + max(&rubric.penalty)) as f64;
    let hi = (rubric.positive_max() + max(&rubric.bonus)) as f64;
    let overall = python_clamp(unclamped, lo, hi);
    // the dimension scores that are there, for display; none is required
    let dimensions = rubric
        .dimensions
        .iter()
        .filter_map(|d| {
            Some(DimensionScore {
                key: d.key.clone(),
                sign: d.sign,
                score: number(src.get(d.score_field()))?.round() as i64,
                max: d.max,
                justification: src
                    .get(d.justification_field())
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
            })
        })
        .collect();
    let evidence = |c: &Option<CatchAll>| -> Vec<String> {
        c.as_ref()
            .and_then(|c| src.get(c.evidence_field()))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    Ok(Judgement {
        dimensions,
        positive_total: positive.round() as i64,
        negative_total: negative.round() as i64,
        bonus: bonus.round() as i64,
        penalty: penalty.round() as i64,
        bonus_applied: bonus_applied.round() as i64,
        penalty_applied: penalty_applied.round() as i64,
        bonus_evidence: evidence(&rubric.bonus),
        penalty_evidence: evidence(&rubric.penalty),
        overall: overall.round() as i64,
        reported_overall: src.get("overall_score").and_then(Value::as_i64),
        story_quality: overall / c.divisor,
        totals: TotalsReading::Reported,
        reported: Some(ReportedTotals {
            positive_total: positive,
            negative_total: negative,
            bonus_total: bonus,
            penalty_total: penalty,
            bonus_applied,
            penalty_applied,
            unclamped,
            overall,
        }),
    })
}
