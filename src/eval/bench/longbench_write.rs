//! LongBench-Write (the release's `longbench_write`, after THUDM/LongWriter): six dimensions
//! scored 1-5 in a JSON answer. Quality S_q is the mean over the dimensions scored of
//! (score - 1) x 25 (0-100). Length S_l compares the story's words y with the requested
//! x (the prompt set's `target_length`): 100 x max(0, 1 - (y/x - 1)/3) when over,
//! 100 x max(0, 1 - (x/y - 1)/2) when not; no S_l when either is 0 or missing. The combined
//! S = S_q x S_l / 100, rounded to 2 places. A score outside 1..=5 is no score.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Map, Value};

use super::{Family, Item, Scored, Templates};
use crate::generate::count_words;
use crate::reward::judge::http::Request;
use crate::text::python::strip;

/// (dimension, the answer keys it is read from in order)
pub const DIMENSIONS: [(&str, &[&str]); 6] = [
    ("Relevance", &["Relevance"]),
    ("Accuracy", &["Accuracy"]),
    ("Coherence", &["Coherence"]),
    ("Clarity", &["Clarity"]),
    ("Breadth and Depth", &["Breadth_and_Depth", "Breadth and Depth"]),
    ("Reading Experience", &["Reading_Experience", "Reading Experience"]),
];
pub const S: &str = "combined_score";
pub const S_Q: &str = "quality_score_sq";
pub const S_L: &str = "length_score_sl";
pub const RAW: &str = "longbench_write_score";
const SYSTEM: &str = "You are an expert text quality evaluator. Score each dimension strictly 1-5. Output ONLY a JSON object. No extra text.";

static FENCED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)```(?:json)?\s*(\{.*?\})\s*```").expect("valid regex"));

pub fn schema() -> Value {
    let dim = json!({"type": "integer", "minimum": 1, "maximum": 5});
    json!({"type": "object",
        "properties": {"Analysis": {"type": "string"}, "Relevance": dim, "Accuracy": dim, "Coherence": dim,
                       "Clarity": dim, "Breadth_and_Depth": dim, "Reading_Experience": dim},
        "required": ["Analysis", "Relevance", "Accuracy", "Coherence", "Clarity", "Breadth_and_Depth", "Reading_Experience"],
        "additionalProperties": false})
}

pub fn request(item: &Item, t: &Templates, family: &Family) -> Request {
    let user = t.longbench_write.replace("{prompt}", &item.prompt).replace("{response}", &item.story);
    // the release gives Vertex a response schema and OpenAI none (the prompt asks for JSON)
    let schema = match family {
        Family::Gemini(_) => schema(),
        Family::OpenAi(_) => Value::Null,
    };
    Request {
        system: Some(SYSTEM.into()),
        user,
        schema_name: "longbench_write_evaluation".into(),
        schema,
        repair: None,
    }
}

/// LongWriter's length score of `words` against `target` (both > 0), 0-100.
pub fn length_score(target: f64, words: f64) -> Option<f64> {
    if target <= 0.0 || words <= 0.0 || !target.is_finite() {
        return None;
    }
    let (x, y) = (target, words);
    Some(if y > x {
        100.0 * (1.0 - (y / x - 1.0) / 3.0).max(0.0)
    } else {
        100.0 * (1.0 - (x / y - 1.0) / 2.0).max(0.0)
    })
}

/// The answer's JSON object as the release reads it: a fenced block's object if there is
/// one, else the whole (stripped) text; anything that is not an object reads as empty.
fn parsed(answer: Option<&str>) -> Map<String, Value> {
    let Some(text) = answer else { return Map::new() };
    let mut txt = strip(text).to_string();
    if txt.contains("```") {
        if let Some(c) = FENCED.captures(&txt) {
            txt = c[1].to_string();
        }
    }
    serde_json::from_str::<Value>(&txt).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default()
}

pub fn score(item: &Item, answer: Option<&str>) -> Scored {
    let p = parsed(answer);
    let mut dims = Vec::new();
    for (dim, keys) in DIMENSIONS {
        let value = keys.iter().find_map(|k| {
            // Python's isinstance(v, (int, float)) holds for booleans too
            let v = match p.get(*k) {
                Some(Value::Number(n)) => n.as_f64(),
                Some(Value::Bool(b)) => Some(*b as i64 as f64),
                _ => None,
            }?;
            (1.0..=5.0).contains(&v).then_some(v)
        });
        dims.push((dim.to_string(), value));
    }
    let valid: Vec<f64> = dims.iter().filter_map(|(_, v)| *v).collect();
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let sq_per_dim: Vec<f64> = valid.iter().map(|s| (s - 1.0) * 25.0).collect();
    let sq = mean(&sq_per_dim);
    let words = count_words(&item.story) as f64;
    let sl = item.target_length.and_then(|t| length_score(t, words));
    let combined = match (sq, sl) {
        (Some(q), Some(l)) => Some(super::py_round(q * (l / 100.0), 2)),
        _ => None,
    };
    let mut record = Map::new();
    record.insert("analysis".into(), json!(p.get("Analysis").cloned().unwrap_or(json!(""))));
    record.insert(
        "dim_scores".into(),
        Value::Object(dims.iter().filter_map(|(d, v)| v.map(|v| (d.clone(), json!(v)))).collect()),
    );
    record.insert(S_Q.into(), json!(sq));
    record.insert(S_L.into(), json!(sl));
    record.insert(S.into(), json!(combined));
    record.insert("word_count".into(), json!(words));
    record.insert("target_length".into(), json!(item.target_length));
    record.insert(RAW.into(), json!(mean(&valid)));
    record.insert("num_dims_scored".into(), json!(valid.len()));
    Scored {
        record,
        values: vec![(S.into(), combined), (S_Q.into(), sq), (S_L.into(), sl), (RAW.into(), mean(&valid))],
        dims,
        bucket: None,
    }
}
