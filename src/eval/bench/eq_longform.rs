//! EQ-Bench Longform (the release's `eq_bench_longform`): 12 dimensions scored 0-20 in a
//! plain-text answer. Negative dimensions are inverted (20 - raw); "Forced Poetry or
//! Metaphor" is inverted, then raised: ((20 - raw) / 20)^1.7 x 20, and weighs 5 where every
//! other dimension weighs 1 (adjusted scores rounded to 4 places). The item's score is the
//! weighted mean of the dimensions rated, on 0-100 (rounded to 2 places); a dimension the
//! judge left out is left out of the mean.

use serde_json::{json, Map, Value};

use super::eq_scores::{analysis, key, match_dim, parse_scores};
use super::{py_round, Item, Scored, Templates};
use crate::reward::judge::http::Request;

pub const POSITIVE: [&str; 6] = [
    "Nuanced Characters",
    "Emotionally Engaging",
    "Compelling Plot",
    "Coherent",
    "Well-earned Lightness or Darkness",
    "Faithful to Writing Prompt",
];
pub const NEGATIVE: [&str; 6] = [
    "Weak Dialogue",
    "Tell-Don't-Show",
    "Unsurprising or Uncreative",
    "Amateurish",
    "Purple Prose",
    "Forced Poetry or Metaphor",
];
pub const FORCED_POETRY: &str = "Forced Poetry or Metaphor";
const EXPONENT: f64 = 1.7;
/// Name characters compared when a dimension is matched by prefix.
const PREFIX: usize = 12;
pub const SCORE: &str = "weighted_score";

pub fn dims() -> impl Iterator<Item = &'static str> {
    POSITIVE.into_iter().chain(NEGATIVE)
}

pub fn weight(dim: &str) -> f64 {
    if dim == FORCED_POETRY {
        5.0
    } else {
        1.0
    }
}

pub fn request(item: &Item, t: &Templates) -> Request {
    let list: Vec<String> = dims()
        .map(|d| {
            let sign = if NEGATIVE.contains(&d) { "[NEGATIVE]" } else { "[POSITIVE]" };
            // Python prints the float weights as 1.0 and 5.0
            format!("  {sign} {d} (weight: {:.1}×)", weight(d))
        })
        .collect();
    let user = t
        .eq_longform
        .replace("{writing_prompt}", &item.prompt)
        .replace("{story_text}", &item.story)
        .replace("{dimensions_list}", &list.join("\n"));
    Request { system: None, user, schema_name: "eq_bench_longform".into(), schema: Value::Null, repair: None }
}

/// A raw 0-20 score as the release adjusts it (higher always better).
pub fn adjust(dim: &str, raw: f64) -> f64 {
    if dim == FORCED_POETRY {
        ((20.0 - raw) / 20.0).powf(EXPONENT) * 20.0
    } else if NEGATIVE.contains(&dim) {
        20.0 - raw
    } else {
        raw
    }
}

pub fn score(answer: Option<&str>) -> Scored {
    let text = answer.unwrap_or("");
    let parsed = parse_scores(text);
    let mut record = Map::new();
    record.insert("analysis".into(), json!(analysis(text)));
    let mut dims_out = Vec::new();
    let (mut sum, mut weights) = (0.0, 0.0);
    for d in dims() {
        let raw = match_dim(d, &parsed, PREFIX);
        let adjusted = raw.map(|r| py_round(adjust(d, r), 4));
        record.insert(format!("raw_{}", key(d)), json!(raw));
        record.insert(format!("score_{}", key(d)), json!(adjusted));
        if let Some(a) = adjusted {
            sum += a * weight(d);
            weights += weight(d);
        }
        dims_out.push((d.to_string(), adjusted));
    }
    let rated = dims_out.iter().filter(|(_, v)| v.is_some()).count();
    let weighted = (rated > 0).then(|| py_round(sum / weights / 20.0 * 100.0, 2));
    record.insert(SCORE.into(), json!(weighted));
    record.insert("num_dims_rated".into(), json!(rated));
    Scored { record, values: vec![(SCORE.into(), weighted)], dims: dims_out, bucket: None }
}
