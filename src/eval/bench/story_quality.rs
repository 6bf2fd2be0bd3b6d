//! Story Quality (the release's `story_quality`, the training rubric judged by another
//! model): a JSON answer under `story_quality_seq`'s schema. Every integer field of the schema
//! is a score; with `override_overall_from_totals` (the release's config sets it) the overall
//! is positive_total - negative_total + bonus_total, capped at 100 (not below: it can be
//! negative; the penalty is not subtracted). Aggregates add a length score (1 inside a
//! tolerance of max(50, 10%) around the prompt's `N words long`, falling linearly outside)
//! and per requested-length bucket (`1k` ... `8k`, `>8k`) statistics.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Map, Value};

use super::{Family, Item, Scored, Templates};
use crate::generate::length::{cut_before_length_sentence, requested_count};
use crate::reward::judge::http::Request;
use crate::text::python::{strip, WORD};

pub const OVERALL: &str = "overall_score";
pub const LENGTH: &str = "length_score";
/// Bucket labels in order.
pub const BUCKETS: [&str; 9] = ["1k", "2k", "3k", "4k", "5k", "6k", "7k", "8k", ">8k"];

static FENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\s*```(?:json)?\s*|\s*```\s*$").expect("valid regex"));
static WORDS: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!("{WORD}+")).expect("valid regex"));
static ENTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|amp|lt|gt|quot|apos|nbsp);").expect("valid regex")
});
/// Gemini models the release gives a response schema (base names; dated variants match).
const GEMINI_STRUCTURED: [&str; 7] = [
    "gemini-3-pro",
    "gemini-3-flash",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-2.0-flash-lite",
];

/// The schema's fields, in its `required` order (else its properties' order).
pub struct Fields {
    pub scores: Vec<String>,
    pub justifications: Vec<String>,
    pub label: Option<String>,
}

pub fn fields(schema: &Value) -> Fields {
    let inner = schema.get("schema").unwrap_or(&Value::Null);
    let props = inner.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    let order: Vec<String> = match inner.get("required").and_then(Value::as_array) {
        Some(r) => r.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        None => props.keys().cloned().collect(),
    };
    let mut f = Fields { scores: vec![], justifications: vec![], label: None };
    for k in order {
        let spec = props.get(&k).unwrap_or(&Value::Null);
        match spec.get("type").and_then(Value::as_str) {
            Some("integer") => f.scores.push(k),
            Some("string") => {
                if k.ends_with("_justification") || k == "overall_justification" {
                    f.justifications.push(k.clone());
                }
                if k == "overall_label"
                    || (k.ends_with("label") && spec.get("enum").is_some_and(Value::is_array))
                {
                    f.label = Some(k);
                }
            }
            _ => {}
        }
    }
    f
}

/// Whether the release asks this judge for the schema natively (else the schema is written
/// into the system message and no response format is asked for).
pub fn native_schema(family: &Family) -> bool {
    match family {
        Family::OpenAi(m) => m.starts_with("gpt-4") || m.starts_with("gpt-5") || m.starts_with('o'),
        Family::Gemini(m) => {
            let m = m.trim().to_lowercase();
            GEMINI_STRUCTURED.iter().any(|b| m.starts_with(b))
        }
    }
}

pub fn request(item: &Item, t: &Templates, family: &Family) -> Request {
    let prompt = cut_before_length_sentence(&item.prompt);
    let user = format!("STORY PROMPT:\n{prompt}\n\nSTORY:\n{}\n", item.story);
    let schema = &t.story_quality_schema;
    let name = schema.get("name").and_then(Value::as_str).unwrap_or("story_quality_seq").to_string();
    let inner = schema.get("schema").cloned().unwrap_or(Value::Null);
    if native_schema(family) {
        return Request {
            system: Some(t.story_quality_system.clone()),
            user,
            schema_name: name,
            schema: inner,
            repair: None,
        };
    }
    let rule = "=".repeat(50);
    let system = format!(
        "{}\n\n{rule}\nFORMAL JSON SCHEMA FOR OUTPUT\n{rule}\nThe model MUST return a single JSON object that conforms to this schema:\n{}\nReturn ONLY that JSON object and nothing else.\n",
        t.story_quality_system,
        serde_json::to_string_pretty(&inner).unwrap_or_default()
    );
    Request { system: Some(system), user, schema_name: name, schema: Value::Null, repair: None }
}

/// Python's `int(v)` for a JSON value: numbers truncate, numeric strings parse, booleans are
/// 0 / 1; anything else (or a non-finite number) is None.
fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.trunc() as i64))
        }
        Value::Bool(b) => Some(*b as i64),
        Value::String(s) => {
            let t = strip(s);
            let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
            (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
        }
        _ => None,
    }
}

/// The answer's JSON object, as the release reads it (code fences stripped; the text must
/// open with `{` and close with `}`).
fn parsed(answer: Option<&str>) -> Option<Map<String, Value>> {
    let txt = FENCE.replace_all(strip(answer?), "");
    let txt = strip(&txt);
    if !(txt.starts_with('{') && txt.ends_with('}')) {
        return None;
    }
    serde_json::from_str::<Value>(txt).ok()?.as_object().cloned()
}

/// Python's `html.unescape` for the references stories hold in practice: numeric ones and
/// `&amp; &lt; &gt; &quot; &apos; &nbsp;` (other named references are left as written).
fn unescape(s: &str) -> std::borrow::Cow<'_, str> {
    ENTITY.replace_all(s, |c: &regex::Captures| {
        let e = &c[1];
        let code = if let Some(hex) = e.strip_prefix("#x").or_else(|| e.strip_prefix("#X")) {
            u32::from_str_radix(hex, 16).ok()
        } else if let Some(dec) = e.strip_prefix('#') {
            dec.parse().ok()
        } else {
            None
        };
        match (e, code) {
            (_, Some(c)) => char::from_u32(c).unwrap_or('\u{FFFD}').to_string(),
            ("amp", _) => "&".into(),
            ("lt", _) => "<".into(),
            ("gt", _) => ">".into(),
            ("quot", _) => "\"".into(),
            ("apos", _) => "'".into(),
            _ => "\u{a0}".into(),
        }
    })
}

/// The prompt's requested words (its first `N words long`), when positive.
pub fn target_words(prompt: &str) -> Option<i64> {
    requested_count(prompt).filter(|&w| w > 0.0 && w < i64::MAX as f64).map(|w| w as i64)
}

/// The release's length score in [0, 1] of `story` against the prompt's request.
pub fn length_score(prompt: &str, story: &str) -> Option<f64> {
    let target = target_words(prompt)?;
    let wc = WORDS.find_iter(&unescape(story)).count() as f64;
    let t = target as f64;
    let tol = 50f64.max((0.1 * t).trunc());
    let pen = if (wc - t).abs() <= tol {
        0.0
    } else if wc < t - tol {
        (1.0 - wc / (t - tol).max(1.0)).min(1.0)
    } else {
        (wc / (t + tol).max(1.0) - 1.0).min(1.0)
    };
    Some((1.0 - pen).clamp(0.0, 1.0))
}

pub fn bucket(target: i64) -> &'static str {
    let k = ((target.max(1) + 999) / 1000) as usize; // 1..=1000 -> 1, 1001..=2000 -> 2, ...
    BUCKETS[k.clamp(1, 9) - 1]
}

pub fn score(item: &Item, answer: Option<&str>, schema: &Value, override_overall: bool) -> Scored {
    let f = fields(schema);
    let mut rec = Map::new();
    match parsed(answer) {
        Some(p) => {
            for k in &f.scores {
                rec.insert(k.clone(), json!(p.get(k).and_then(int_of)));
            }
            let label = f.label.as_deref().unwrap_or("overall_label");
            rec.insert("overall_label".into(), p.get(label).cloned().unwrap_or(Value::Null));
            for k in &f.justifications {
                let v = match p.get(k) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                };
                rec.insert(k.clone(), json!(v));
            }
            // override_overall_from_totals (set by the release's config)
            let int = |k: &str| rec.get(k).and_then(Value::as_i64);
            // a missing bonus counts 0 (the release's default; it cannot add a null)
            let totals = (int("positive_total"), int("negative_total"), int("bonus_total").unwrap_or(0));
            if let (Some(pos), Some(neg), bonus) = totals {
                let derived = pos - neg + bonus;
                if override_overall {
                    if let Some(model) = rec.get(OVERALL).cloned() {
                        rec.insert("overall_score_model".into(), model);
                    }
                    rec.insert(OVERALL.into(), json!(derived.min(100)));
                    rec.insert(
                        "overall_score_source".into(),
                        json!("derived_from_positive_minus_negative_clamped_None_100"),
                    );
                }
                rec.insert("derived_overall_unclipped".into(), json!(derived));
                rec.insert("derived_overall_clipped".into(), json!(derived.clamp(0, 100)));
            } else if override_overall {
                rec.insert("overall_score_source".into(), json!("model_or_missing"));
            }
        }
        None => {
            for k in &f.scores {
                rec.insert(k.clone(), Value::Null);
            }
            rec.insert("overall_label".into(), Value::Null);
            for k in &f.justifications {
                rec.insert(k.clone(), json!(""));
            }
        }
    }
    if let Some(ov) = rec.get(OVERALL).and_then(Value::as_i64) {
        rec.insert("overall_score_in_range_0_100".into(), json!((0..=100).contains(&ov)));
    }
    let length = length_score(&item.prompt, &item.story);
    rec.insert(LENGTH.into(), json!(length));
    let dims: Vec<(String, Option<f64>)> =
        f.scores.iter().map(|k| (k.clone(), rec.get(k).and_then(Value::as_i64).map(|v| v as f64))).collect();
    let overall = rec.get(OVERALL).and_then(Value::as_i64).map(|v| v as f64);
    Scored {
        record: rec,
        values: vec![(OVERALL.into(), overall), (LENGTH.into(), length)],
        dims,
        bucket: target_words(&item.prompt).map(|t| bucket(t).to_string()),
    }
}
