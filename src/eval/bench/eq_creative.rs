//! EQ-Bench Creative Writing v3 (the release's `eq_bench_creative`): 22 criteria scored
//! 0-20 in a plain-text answer; the 9 negative ones inverted (20 - raw). The rubric score is
//! the plain mean of the criteria rated (rounded to 4 places), the EQ-Bench Creative score
//! that mean x 5 on 0-100 (rounded to 2); a criterion the judge left out is left out.

use serde_json::{json, Map, Value};

use super::eq_scores::{analysis, key, match_dim, parse_scores};
use super::{py_round, Item, Scored, Templates};
use crate::reward::judge::http::Request;

pub const POSITIVE: [&str; 13] = [
    "Adherence to Instructions",
    "Believable Character Actions",
    "Nuanced Characters",
    "Consistent Voice/Tone of Writing",
    "Imagery and Descriptive Quality",
    "Elegant Prose",
    "Emotionally Engaging",
    "Emotionally Complex",
    "Coherent",
    "Well-earned Lightness or Darkness",
    "Sentences Flow Naturally",
    "Overall Reader Engagement",
    "Overall Impression",
];
pub const NEGATIVE: [&str; 9] = [
    "Meandering",
    "Weak Dialogue",
    "Tell-Don't-Show",
    "Unsurprising or Uncreative",
    "Amateurish",
    "Purple Prose",
    "Overwrought",
    "Incongruent Ending Positivity",
    "Unearned Transformations",
];
/// Name characters compared when a criterion is matched by prefix.
const PREFIX: usize = 10;
pub const SCORE: &str = "eqbench_creative_score";
pub const RUBRIC: &str = "rubric_score";

pub fn criteria() -> impl Iterator<Item = &'static str> {
    POSITIVE.into_iter().chain(NEGATIVE)
}

pub fn request(item: &Item, t: &Templates) -> Request {
    let all: Vec<&str> = criteria().collect();
    let user = t
        .eq_creative
        .replace("{writing_prompt}", &item.prompt)
        .replace("{test_model_response}", &item.story)
        .replace("{creative_writing_criteria}", &all.join("\n"))
        .replace("{lower_is_better_criteria}", &NEGATIVE.join("\n"));
    Request { system: None, user, schema_name: "eq_bench_creative".into(), schema: Value::Null, repair: None }
}

pub fn score(answer: Option<&str>) -> Scored {
    let text = answer.unwrap_or("");
    let parsed = parse_scores(text);
    let mut record = Map::new();
    record.insert("analysis".into(), json!(analysis(text)));
    let mut dims = Vec::new();
    for c in criteria() {
        let raw = match_dim(c, &parsed, PREFIX);
        let adjusted = raw.map(|r| if NEGATIVE.contains(&c) { 20.0 - r } else { r });
        record.insert(format!("raw_{}", key(c)), json!(raw));
        record.insert(format!("score_{}", key(c)), json!(adjusted));
        dims.push((c.to_string(), adjusted));
    }
    let rated: Vec<f64> = dims.iter().filter_map(|(_, v)| *v).collect();
    let rubric = (!rated.is_empty()).then(|| py_round(rated.iter().sum::<f64>() / rated.len() as f64, 4));
    let creative = rubric.map(|r| py_round(r * 5.0, 2));
    record.insert(RUBRIC.into(), json!(rubric));
    record.insert(SCORE.into(), json!(creative));
    record.insert("num_criteria_rated".into(), json!(rated.len()));
    Scored { record, values: vec![(SCORE.into(), creative), (RUBRIC.into(), rubric)], dims, bucket: None }
}
