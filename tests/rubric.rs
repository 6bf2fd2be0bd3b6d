//! Rubrics: the builtin TOML, the POLARIS prompt + schema used as given, answer parsing and
//! the composite rules, and the errors a bad rubric gives.

mod common;

use common::*;
use polaris::reward::answer::{extract_json, judge_from_json, parse_answer, AnswerError};
use polaris::reward::rubric::{LengthSentenceRule, Rubric, Sign};
use polaris::reward::totals::{read_answer, TotalsReading};
use polaris::reward::{JudgeClient, JudgeSettings, JudgeSpec};
use polaris::train::config::TrainConfig;
use serde_json::{json, Value};

fn polaris_rubric() -> Rubric {
    let dir = shared().join("data/polaris");
    Rubric::from_prompt_and_schema(
        &dir.join("story_quality_seq.txt"),
        &dir.join("story_quality_seq.schema.json"),
    )
    .unwrap()
}

/// A POLARIS-format answer with the given dimension scores, catch-alls and reported overall.
fn polaris_answer(r: &Rubric, pos: &[i64], neg: &[i64], bonus: i64, penalty: i64) -> Value {
    let mut a = serde_json::Map::new();
    let (mut p, mut n) = (pos.iter(), neg.iter());
    for d in &r.dimensions {
        let s = if d.sign == Sign::Positive { *p.next().unwrap() } else { *n.next().unwrap() };
        a.insert(d.justification_field(), json!(format!("quote for {}", d.key)));
        a.insert(d.score_field(), json!(s));
    }
    let (pt, nt): (i64, i64) = (pos.iter().sum(), neg.iter().sum());
    for (k, v) in [
        ("bonus_target_excellence", json!("x")),
        ("bonus_evidence", json!(["a moment"])),
        ("bonus_almost_captured_by", json!("P4")),
        ("bonus_why_not_captured", json!("x")),
        ("bonus_score", json!(bonus)),
        ("penalty_target_deficiency", json!("x")),
        ("penalty_evidence", json!([])),
        ("penalty_almost_captured_by", json!("none")),
        ("penalty_why_not_captured", json!("n/a")),
        ("penalty_score", json!(penalty)),
        ("positive_total", json!(pt)),
        ("negative_total", json!(nt)),
        ("bonus_total", json!(bonus)),
        ("penalty_total", json!(penalty)),
        ("overall_justification", json!("x")),
        ("overall_score", json!(pt - nt + bonus - penalty)),
        ("overall_label", json!("good")),
    ] {
        a.insert(k.into(), v);
    }
    Value::Object(a)
}

#[test]
fn the_polaris_pair_loads_with_maxima_from_its_schema() {
    let r = polaris_rubric();
    let pos: Vec<i64> = r.dimensions.iter().filter(|d| d.sign == Sign::Positive).map(|d| d.max).collect();
    let neg: Vec<i64> = r.dimensions.iter().filter(|d| d.sign == Sign::Negative).map(|d| d.max).collect();
    assert_eq!(pos, vec![15, 20, 15, 15, 20, 15]);
    assert_eq!(neg, vec![15, 20, 15, 15, 15, 20, 15, 8, 8, 20]);
    assert_eq!((r.positive_max(), r.negative_max()), (100, 151));
    assert_eq!((r.bonus.as_ref().unwrap().max, r.penalty.as_ref().unwrap().max), (8, 8));
    assert_eq!(r.schema_name, "story_quality_seq");
    assert_eq!(r.delivery.length_sentence, LengthSentenceRule::Release);
}

#[test]
fn the_polaris_pair_is_sent_as_the_release_sends_it() {
    let file = std::fs::read_to_string(shared().join("data/polaris/story_quality_seq.txt")).unwrap();
    let client = JudgeClient::new(JudgeSpec::Offline, polaris_rubric(), JudgeSettings::default()).unwrap();
    let req = client.request(
        "Write about a keeper. Premise: she said \u{201c}Go.\u{201d} The story should be 900 words long.",
        "The lamp went out.",
    );
    // system: the prompt file as it is (trimmed), its placeholders left literal
    let system = req.system.unwrap();
    assert_eq!(system, file.trim());
    assert!(system.contains("{prompt}") && system.contains("{story_text}"));
    // user: the release's template; the prompt cut at the mark before its length request
    // (the release's rule drops the closing quotation mark with it)
    assert_eq!(
        req.user,
        "STORY PROMPT:\nWrite about a keeper. Premise: she said \u{201c}Go.\n\nSTORY:\nThe lamp went out.\n"
    );
    assert_eq!(req.schema_name, "story_quality_seq");
}

#[test]
fn the_projects_rubric_strips_the_whole_length_sentence() {
    // why not the release's rule here: a premise ending in a quotation keeps its closing
    // mark, and a length sentence that opens the prompt is removed rather than sent
    let r = Rubric::builtin().unwrap();
    assert_eq!(r.delivery.length_sentence, LengthSentenceRule::Sentence);
    let quoted = "Premise: she said \u{201c}Go.\u{201d} The story should be 900 words long.";
    assert_eq!(r.judge_prompt(quoted), "Premise: she said \u{201c}Go.\u{201d}");
    assert_eq!(r.judge_prompt("Make it 500 Words Long. Set it at sea."), "Set it at sea.");
    assert_eq!(
        polaris_rubric().judge_prompt("Make it 500 Words Long. Set it at sea."),
        "Make it 500 Words Long. Set it at sea."
    );
}

/// `polaris_answer` whose reported totals are set apart from its parts.
fn reported(r: &Rubric, pos: f64, neg: f64, bonus: Value, penalty: Value) -> Value {
    let mut a = polaris_answer(r, &[10, 15, 10, 10, 15, 10], &[2, 3, 1, 0, 2, 4, 1, 1, 0, 2], 4, 5);
    a["positive_total"] = json!(pos);
    a["negative_total"] = json!(neg);
    a["bonus_total"] = bonus;
    a["penalty_total"] = penalty;
    a["overall_score"] = json!(99);
    a
}

#[test]
fn reported_totals_are_read_as_the_release_reads_them() {
    let r = polaris_rubric();
    // parts 70 / 16 (overall 55); reported 72 / 10, bonus 4 (10 <= 36), penalty 5 capped to 3
    // (72 > 15): 72 - 10 + 4 - 3 = 63
    let a = reported(&r, 72.0, 10.0, json!(4), json!(5));
    assert_eq!(read_answer(&r, &a, TotalsReading::Parts).unwrap().overall, 55);
    let j = read_answer(&r, &a, TotalsReading::Reported).unwrap();
    assert_eq!((j.overall, j.totals), (63, TotalsReading::Reported));
    assert!((j.story_quality - 0.63).abs() < 1e-12, "{}", j.story_quality);
    let t = j.reported.as_ref().unwrap();
    assert_eq!((t.bonus_applied, t.penalty_applied, t.unclamped), (4.0, 3.0, 63.0));
    // the bonus floor: 50 > 70 / 2, so the bonus counts 0; no cap (70 < 75): 70 - 50 - 5 = 15
    assert_eq!(
        read_answer(&r, &reported(&r, 70.0, 50.0, json!(4), json!(5)), TotalsReading::Reported)
            .unwrap()
            .overall,
        15
    );
    // clamped to [-159, 108]
    let high =
        read_answer(&r, &reported(&r, 200.0, 0.0, json!(8), json!(0)), TotalsReading::Reported).unwrap();
    assert_eq!((high.overall, high.reported.unwrap().unclamped), (108, 208.0));
    assert!((high.story_quality - 1.08).abs() < 1e-12);
    let low =
        read_answer(&r, &reported(&r, 0.0, 300.0, json!(0), json!(8)), TotalsReading::Reported).unwrap();
    assert_eq!(low.overall, -159);
    // fractions are kept in Story Quality: 70.5 - 10 + 4 - 3 = 61.5
    let j = read_answer(&r, &reported(&r, 70.5, 10.0, json!(4), json!(5)), TotalsReading::Reported).unwrap();
    assert!((j.story_quality - 0.615).abs() < 1e-12);
    // bonus_total / penalty_total as Python reads them: a numeric string, null as 0, and
    // bonus_score / penalty_score when the totals are absent
    let j = read_answer(&r, &reported(&r, 72.0, 10.0, json!(" 4 "), Value::Null), TotalsReading::Reported)
        .unwrap();
    assert_eq!(j.overall, 66);
    let mut a = reported(&r, 72.0, 10.0, json!(0), json!(0));
    a.as_object_mut().unwrap().remove("bonus_total");
    a.as_object_mut().unwrap().remove("penalty_total");
    assert_eq!(read_answer(&r, &a, TotalsReading::Reported).unwrap().overall, 72 - 10 + 4 - 3);
    // no schema validation: an out-of-range score and an unknown label still read
    let mut a = reported(&r, 72.0, 10.0, json!(4), json!(5));
    a["positive_narrative_arc_pacing_score"] = json!(21);
    a["overall_label"] = json!("superb");
    assert!(read_answer(&r, &a, TotalsReading::Parts).is_err());
    assert_eq!(read_answer(&r, &a, TotalsReading::Reported).unwrap().overall, 63);
    // a nested global_evaluation is where the release looks first
    let nested = json!({"global_evaluation": {"positive_total": 50, "negative_total": 5, "bonus_score": 2, "penalty_score": 0}});
    assert_eq!(read_answer(&r, &nested, TotalsReading::Reported).unwrap().overall, 47);
    // without a reported total there is nothing to read: a failure (the batch mean stands in)
    let mut a = reported(&r, 72.0, 10.0, json!(4), json!(5));
    a.as_object_mut().unwrap().remove("negative_total");
    let e = read_answer(&r, &a, TotalsReading::Reported).unwrap_err();
    assert!(matches!(&e, AnswerError::Missing(f) if f.starts_with("negative_total")), "{e}");
    let e = read_answer(&r, &reported(&r, 72.0, 10.0, json!("many"), json!(0)), TotalsReading::Reported)
        .unwrap_err();
    assert!(e.to_string().contains("bonus_total"), "{e}");
}

#[tokio::test]
async fn every_judgement_records_its_totals_reading() {
    let story = "The keeper climbed the stairs at dusk and found the letter under the lamp. ".repeat(30);
    for reading in [TotalsReading::Parts, TotalsReading::Reported] {
        let settings = JudgeSettings { totals: reading, ..JudgeSettings::default() };
        let client = JudgeClient::new(JudgeSpec::Offline, polaris_rubric(), settings).unwrap();
        let j = client.judge("A keeper. The story should be 500 words long.", &story).await.outcome.unwrap();
        assert_eq!(j.totals, reading);
        let recorded = serde_json::to_value(&j).unwrap();
        let name = if reading == TotalsReading::Parts { "parts" } else { "reported" };
        assert_eq!(recorded["totals"], json!(name));
    }
    // the setting is `judge.totals` in a run's configuration
    let cfg = TrainConfig::parse("", "t.toml", &["judge.totals=\"reported\"".into()]).unwrap();
    assert_eq!(cfg.judge.totals, TotalsReading::Reported);
    let e = TrainConfig::parse("[judge]\ntotals = \"both\"\n", "t.toml", &[]).unwrap_err().to_string();
    assert!(e.contains("t.toml") && e.contains("both") && e.contains("reported"), "{e}");
}

#[test]
fn a_valid_polaris_answer_gives_the_recomputed_overall() {
    let r = polaris_rubric();
    // positive 70, negative 16: bonus counts (16 <= 35); 70 > 1.5 x 16, so penalty 5 is capped to 3
    let a = polaris_answer(&r, &[10, 15, 10, 10, 15, 10], &[2, 3, 1, 0, 2, 4, 1, 1, 0, 2], 4, 5);
    let j = judge_from_json(&r, &a).unwrap();
    assert_eq!((j.positive_total, j.negative_total), (70, 16));
    assert_eq!((j.bonus_applied, j.penalty_applied), (4, 3));
    assert_eq!(j.overall, 55);
    assert_eq!(j.reported_overall, Some(53)); // the judge's own arithmetic is not trusted
    assert!((j.story_quality - 0.55).abs() < 1e-12);
    assert_eq!(j.bonus_evidence, vec!["a moment".to_string()]);
    // positive 20, negative 30: bonus zeroed (30 > 10); penalty uncapped (20 < 45)
    let a = polaris_answer(&r, &[5, 5, 2, 3, 3, 2], &[5, 5, 5, 5, 5, 5, 0, 0, 0, 0], 5, 6);
    let j = judge_from_json(&r, &a).unwrap();
    assert_eq!((j.bonus_applied, j.penalty_applied, j.overall), (0, 6, -16));
}

#[test]
fn answers_in_fences_and_prose_parse_and_bad_ones_say_why() {
    let r = polaris_rubric();
    let good = polaris_answer(&r, &[1, 1, 1, 1, 1, 1], &[0; 10], 0, 0);
    let fenced = format!("Here you go:\n```json\n{}\n```", serde_json::to_string_pretty(&good).unwrap());
    assert_eq!(parse_answer(&r, &fenced).unwrap().0.overall, 6);
    let prose = format!("My verdict {} -- thanks {{not json}}", good);
    assert_eq!(parse_answer(&r, &prose).unwrap().0.overall, 6);
    assert_eq!(extract_json("no json at all"), None);
    assert_eq!(parse_answer(&r, "I cannot judge this.").unwrap_err(), AnswerError::NotJson);

    let mut high = good.clone();
    high["positive_narrative_arc_pacing_score"] = json!(21);
    assert_eq!(
        judge_from_json(&r, &high).unwrap_err(),
        AnswerError::OutOfRange { field: "positive_narrative_arc_pacing_score".into(), value: 21, max: 20 }
    );
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("negative_mechanical_formatting_errors_score");
    assert_eq!(
        judge_from_json(&r, &missing).unwrap_err(),
        AnswerError::Missing("negative_mechanical_formatting_errors_score".into())
    );
    let mut extra = good.clone();
    extra["overall_label"] = json!("superb");
    assert!(matches!(judge_from_json(&r, &extra).unwrap_err(), AnswerError::Schema(_)));
}

#[test]
fn the_builtin_rubric_and_its_generated_schema() {
    let r = Rubric::builtin().unwrap();
    assert_eq!(r.dimensions.len(), 16);
    assert_eq!((r.positive_max(), r.negative_max()), (100, 151));
    let (system, user) = r.messages("P", "S");
    let system = system.unwrap();
    for d in &r.dimensions {
        assert!(system.contains(&d.key) && !d.title.is_empty());
    }
    assert!(user.contains("P") && user.contains("S"));
    // the offline judge's answer validates against the generated schema
    let story =
        std::fs::read_to_string(shared().join("models/stories260K-hf/golden_greedy_text.txt")).unwrap();
    let a =
        polaris::reward::judge::offline::answer(&r, "A girl named Lily finds a ball in the park.", &story);
    let j = judge_from_json(&r, &a).unwrap();
    assert_eq!(j.dimensions.len(), 16);
    for d in &j.dimensions {
        assert!(d.justification.starts_with("Measured, not read:"), "{}", d.justification);
    }
    // different rubrics never share cache keys
    assert_ne!(r.id, polaris_rubric().id);
}

#[test]
fn bad_rubrics_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let e = Rubric::from_toml_str("name = ", "mine.toml", None).unwrap_err().to_string();
    assert!(e.contains("mine.toml") && e.contains("does not parse"), "{e}");
    let base = r#"
name = "mine"
instructions = "Judge."
user_template = "{prompt} {story}"
schema = "answer.json"
[[dimension]]
key = "positive_plot"
sign = "positive"
max = 10
[[dimension]]
key = "negative_typos"
sign = "negative"
max = 5
"#;
    std::fs::write(
        dir.path().join("answer.json"),
        r#"{"type": "object", "properties": {"positive_plot_score": {"type": "integer", "maximum": 10}}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("mine.toml"), base).unwrap();
    let e = format!("{:#}", Rubric::from_toml_file(&dir.path().join("mine.toml")).unwrap_err());
    assert!(e.contains("lacks the score fields the rubric names: negative_typos_score"), "{e}");
    let e = Rubric::from_toml_str(&base.replace("{story}", ""), "t.toml", Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("user_template must contain {story}"), "{e}");
    let e = Rubric::from_toml_str(&base.replace("max = 5", "max = 0"), "t.toml", Some(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("negative_typos") && e.contains("max must be positive"), "{e}");
    // an external schema with no positive dimensions
    std::fs::write(dir.path().join("p.txt"), "Judge {prompt} {story}").unwrap();
    std::fs::write(
        dir.path().join("s.json"),
        r#"{"type": "object", "properties": {"negative_x_score": {"type": "integer", "maximum": 3}}}"#,
    )
    .unwrap();
    let e = Rubric::from_prompt_and_schema(&dir.path().join("p.txt"), &dir.path().join("s.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("s.json") && e.contains("no positive_*_score fields"), "{e}");
}
