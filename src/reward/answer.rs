//! Turning a judge's reply into a Judgement: find the JSON (bare, fenced, or inside prose),
//! validate it against the rubric's schema, read the scores, and recompute the overall score
//! from the parts with the composite rules instead of trusting the judge's arithmetic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::extract::extract_json;
use super::rubric::{Rubric, Sign};
use super::totals::{ReportedTotals, TotalsReading};

/// Why an answer was not usable; the text goes back to the judge in the repair request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerError {
    #[error("the reply holds no JSON object")]
    NotJson,
    #[error("the JSON does not match the schema: {0}")]
    Schema(String),
    #[error("field {0} is missing")]
    Missing(String),
    #[error("field {field} = {value} is outside 0..={max}")]
    OutOfRange { field: String, value: i64, max: i64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionScore {
    pub key: String,
    pub sign: Sign,
    pub score: i64,
    pub max: i64,
    pub justification: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub dimensions: Vec<DimensionScore>,
    pub positive_total: i64,
    pub negative_total: i64,
    /// As the judge reported them.
    pub bonus: i64,
    pub penalty: i64,
    /// After the composite rules (bonus floor, penalty cap).
    pub bonus_applied: i64,
    pub penalty_applied: i64,
    pub bonus_evidence: Vec<String>,
    pub penalty_evidence: Vec<String>,
    /// positive - negative + bonus_applied - penalty_applied
    pub overall: i64,
    /// The judge's own overall_score, when it gave one.
    pub reported_overall: Option<i64>,
    /// overall / divisor
    pub story_quality: f64,
    /// Which totals the overall came from (`judge.totals`); absent in older logs: parts.
    #[serde(default)]
    pub totals: TotalsReading,
    /// With `reported`: the judge's totals as read, fractions kept (the fields above are
    /// rounded to whole points; story_quality is exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<ReportedTotals>,
}

/// Validates a reply against the rubric and scores it.
pub fn parse_answer(rubric: &Rubric, reply: &str) -> Result<(Judgement, Value), AnswerError> {
    let answer = extract_json(reply).ok_or(AnswerError::NotJson)?;
    let judgement = judge_from_json(rubric, &answer)?;
    Ok((judgement, answer))
}

pub fn judge_from_json(rubric: &Rubric, answer: &Value) -> Result<Judgement, AnswerError> {
    // scores first, so range errors name the field plainly
    let int = |field: &str, max: i64| -> Result<i64, AnswerError> {
        let v = answer.get(field).ok_or_else(|| AnswerError::Missing(field.to_string()))?;
        let n = v.as_i64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64));
        let n = n.ok_or_else(|| AnswerError::Schema(format!("{field} must be an integer, got {v}")))?;
        if !(0..=max).contains(&n) {
            return Err(AnswerError::OutOfRange { field: field.to_string(), value: n, max });
        }
        Ok(n)
    };
    let mut dimensions = Vec::with_capacity(rubric.dimensions.len());
    for d in &rubric.dimensions {
        let score = int(&d.score_field(), d.max)?;
        let justification =
            answer.get(d.justification_field()).and_then(Value::as_str).unwrap_or_default().to_string();
        dimensions.push(DimensionScore {
            key: d.key.clone(),
            sign: d.sign,
            score,
            max: d.max,
            justification,
        });
    }
    let bonus = rubric.bonus.as_ref().map(|c| int(&c.score_field(), c.max)).transpose()?.unwrap_or(0);
    let penalty = rubric.penalty.as_ref().map(|c| int(&c.score_field(), c.max)).transpose()?.unwrap_or(0);
    let validator =
        jsonschema::validator_for(&rubric.schema).map_err(|e| AnswerError::Schema(e.to_string()))?;
    let errors: Vec<String> =
        validator.iter_errors(answer).take(3).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    if !errors.is_empty() {
        return Err(AnswerError::Schema(errors.join("; ")));
    }
    let evidence = |c: &Option<super::rubric::CatchAll>| -> Vec<String> {
        c.as_ref()
            .and_then(|c| answer.get(c.evidence_field()))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let positive_total: i64 = dimensions.iter().filter(|d| d.sign == Sign::Positive).map(|d| d.score).sum();
    let negative_total: i64 = dimensions.iter().filter(|d| d.sign == Sign::Negative).map(|d| d.score).sum();
    let c = &rubric.composite;
    let bonus_applied =
        if c.bonus_zero_when_negative_exceeds_half_positive && 2 * negative_total > positive_total {
            0
        } else {
            bonus
        };
    let penalty_applied = match c.penalty_cap {
        Some(cap)
            if positive_total as f64
                > negative_total as f64 * c.penalty_cap_when_positive_exceeds_negative_times =>
        {
            penalty.min(cap)
        }
        _ => penalty,
    };
    let overall = positive_total - negative_total + bonus_applied - penalty_applied;
    Ok(Judgement {
        dimensions,
        positive_total,
        negative_total,
        bonus,
        penalty,
        bonus_applied,
        penalty_applied,
        bonus_evidence: evidence(&rubric.bonus),
        penalty_evidence: evidence(&rubric.penalty),
        overall,
        reported_overall: answer.get("overall_score").and_then(Value::as_i64),
        story_quality: overall as f64 / c.divisor,
        totals: TotalsReading::Parts,
        reported: None,
    })
}
