//! WritingBench (the release's `writingbench`, after X-PLUG/WritingBench): each prompt has a
//! checklist of criteria (the prompt set's `checklist`: `name`, `criteria_description` and
//! score anchors `1-2` ... `9-10`); the judge scores one criterion per call, answering JSON
//! `{"score": 1-10, "reason": ...}`. A story's score is the mean of its criteria's valid
//! scores; a score outside 1..=10 (or missing, or an answer that is not JSON) is no score.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Map, Value};

use super::{Family, Item, Scored, Templates};
use crate::reward::judge::http::Request;
use crate::text::python::strip;

pub const SCORE: &str = "writingbench_score";
const SYSTEM: &str = "You are an expert evaluator with extensive experience in evaluating response of given query. \
Output ONLY a JSON object with keys \"score\" (integer 1-10) and \"reason\" (string with specific justification). No extra text.";
const ANCHORS: [&str; 5] = ["1-2", "3-4", "5-6", "7-8", "9-10"];

static FENCED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)```(?:json)?\s*(\{.*?\})\s*```").expect("valid regex"));

/// A criterion's name (as the release reads it: `criterion["name"]`).
pub fn criterion_name(c: &Value) -> String {
    match c.get("name") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The criterion block the judge prompt's `{criteria_block}` takes.
pub fn criteria_block(c: &Value) -> String {
    let mut block = format!("Criterion: {}\n", criterion_name(c));
    block.push_str(&format!(
        "  Description: {}\n",
        c.get("criteria_description").map(text_of).unwrap_or_default()
    ));
    for a in ANCHORS {
        if let Some(v) = c.get(a) {
            block.push_str(&format!("  Score {a}: {}\n", text_of(v)));
        }
    }
    block
}

pub fn schema() -> Value {
    json!({"type": "object", "properties": {"score": {"type": "integer"}, "reason": {"type": "string"}},
           "required": ["score", "reason"], "additionalProperties": false})
}

/// One request per criterion of the item's checklist.
pub fn requests(item: &Item, t: &Templates, _family: &Family) -> Vec<Request> {
    // the release asks both OpenAI (a strict json_schema) and Vertex for this schema
    let schema = schema();
    item.checklist
        .iter()
        .map(|c| Request {
            system: Some(SYSTEM.into()),
            user: t
                .writingbench
                .replace("{prompt}", &item.prompt)
                .replace("{response}", &item.story)
                .replace("{criteria_block}", &criteria_block(c)),
            schema_name: "writingbench_criterion_score".into(),
            schema: schema.clone(),
            repair: None,
        })
        .collect()
}

/// The release's reading of one answer: (score 1..=10 or None, reason).
pub fn read(answer: Option<&str>) -> (Option<i64>, String) {
    let Some(text) = answer else { return (None, String::new()) };
    let mut txt = strip(text).to_string();
    if txt.contains("```") {
        if let Some(c) = FENCED.captures(&txt) {
            txt = c[1].to_string();
        }
    }
    let parsed: Map<String, Value> = if txt.starts_with('{') {
        serde_json::from_str::<Value>(&txt).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default()
    } else {
        Map::new()
    };
    // Python: isinstance(score, (int, float)) holds for booleans too (True == 1)
    let number = match parsed.get("score") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::Bool(b)) => Some(*b as i64 as f64),
        _ => None,
    };
    let score = number.filter(|s| (1.0..=10.0).contains(s)).map(|s| s.trunc() as i64);
    let reason = parsed.get("reason").map(text_of).unwrap_or_default();
    (score, reason)
}

pub fn score(item: &Item, answers: &[Option<&str>]) -> Scored {
    let mut criteria = Vec::new();
    let mut dims = Vec::new();
    for (i, c) in item.checklist.iter().enumerate() {
        let (score, reason) = read(answers.get(i).copied().flatten());
        let name = criterion_name(c);
        criteria
            .push(json!({"criterion_index": i, "criterion_name": name, "score": score, "reason": reason}));
        // the release's per-criterion statistics leave out criteria without a name
        if !name.is_empty() {
            dims.push((name, score.map(|s| s as f64)));
        }
    }
    let valid: Vec<f64> = criteria.iter().filter_map(|c| c["score"].as_i64()).map(|s| s as f64).collect();
    let story = (!valid.is_empty()).then(|| valid.iter().sum::<f64>() / valid.len() as f64);
    let mut record = Map::new();
    record.insert("criteria".into(), Value::Array(criteria));
    record.insert("num_criteria".into(), json!(item.checklist.len()));
    record.insert(SCORE.into(), json!(story));
    Scored { record, values: vec![(SCORE.into(), story)], dims, bucket: None }
}
