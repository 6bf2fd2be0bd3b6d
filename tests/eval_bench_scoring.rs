//! The benchmarks' scoring on hand-made judge answers, against values worked out by hand from
//! the release's rules (eval/tasks/*.py), and the release's configs loading as they are.
//! Tolerance: 1e-9 on values the release rounds (they are compared after the same rounding);
//! the bootstrap CIs are only checked to hold the mean.

use std::path::Path;

use polaris::eval::bench::aggregate::{self, Inputs};
use polaris::eval::bench::config::ReleaseConfig;
use polaris::eval::bench::{score, Item, Scored, Task, Templates};
use polaris::reward::judge::http::Usage;
use polaris::reward::judge::JudgeSettings;
use polaris::reward::JudgeSpec;
use serde_json::{json, Value};

fn item(prompt: &str, story: &str) -> Item {
    Item {
        system: "sys".into(),
        prompt_uid: "p1".into(),
        sample: 0,
        prompt: prompt.into(),
        story: story.into(),
        target_length: None,
        checklist: vec![],
    }
}

fn value(s: &Scored, name: &str) -> Option<f64> {
    s.values.iter().find(|(n, _)| n == name).and_then(|(_, v)| *v)
}

fn dim(s: &Scored, name: &str) -> Option<f64> {
    s.dims.iter().find(|(n, _)| n == name).and_then(|(_, v)| *v)
}

fn close(a: Option<f64>, b: f64) {
    let a = a.unwrap_or_else(|| panic!("no value, expected {b}"));
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

fn words(n: usize) -> String {
    vec!["word"; n].join(" ")
}

const LONGFORM_POS: [&str; 6] = [
    "Nuanced Characters",
    "Emotionally Engaging",
    "Compelling Plot",
    "Coherent",
    "Well-earned Lightness or Darkness",
    "Faithful to Writing Prompt",
];

#[test]
fn eq_bench_longform_inverts_negatives_and_weighs_forced_poetry() {
    let t = Templates::builtin();
    let mut answer = String::from("[Analysis]\nA careful story.\n\n[Scores]\n");
    for d in LONGFORM_POS {
        answer.push_str(&format!("{d}: 10\n"));
    }
    for d in ["Weak Dialogue", "Tell-Don't-Show", "Unsurprising or Uncreative", "Amateurish", "Purple Prose"]
    {
        answer.push_str(&format!("{d}: [5]\n"));
    }
    answer.push_str("Forced Poetry or Metaphor: 10\n---\n");
    let s = score(Task::EqBenchLongform, &item("Write.", "A story."), &[Some(&answer)], &t);
    // forced poetry: inverted 10 -> 10, then (10/20)^1.7 x 20 = 6.15572..., rounded to 4 places
    let fp = 6.1557;
    close(dim(&s, "Forced Poetry or Metaphor"), fp);
    close(dim(&s, "Purple Prose"), 15.0);
    // weighted: (6 x 10 + 5 x 15 + 5 x 6.1557) / 16 / 20 x 100 = 51.8058... -> 51.81
    close(value(&s, "weighted_score"), 51.81);
    assert_eq!(s.record["analysis"], json!("A careful story."));

    // a dimension the judge left out is left out of the weights: (6 x 10 + 5 x 15) / 11
    let missing = answer.replace("Forced Poetry or Metaphor: 10\n", "");
    let s = score(Task::EqBenchLongform, &item("Write.", "A story."), &[Some(&missing)], &t);
    assert_eq!(dim(&s, "Forced Poetry or Metaphor"), None);
    close(value(&s, "weighted_score"), 61.36);
    assert_eq!(s.record["num_dims_rated"], json!(11));

    // nothing readable: no score at all (not 0)
    let s = score(Task::EqBenchLongform, &item("Write.", "A story."), &[Some("I cannot rate this.")], &t);
    assert_eq!(value(&s, "weighted_score"), None);
}

#[test]
fn eq_bench_creative_is_the_mean_of_rated_criteria_times_five() {
    let t = Templates::builtin();
    let negatives = polaris::eval::bench::eq_creative::NEGATIVE;
    let mut answer = String::from("[Scores]\n");
    for c in polaris::eval::bench::eq_creative::POSITIVE {
        answer.push_str(&format!("{c}: 16\n"));
    }
    for c in negatives {
        answer.push_str(&format!("{c}: 4\n"));
    }
    let s = score(Task::EqBenchCreative, &item("Write.", "A story."), &[Some(&answer)], &t);
    // every criterion 16 after inversion: rubric 16, score 80
    close(value(&s, "rubric_score"), 16.0);
    close(value(&s, "eqbench_creative_score"), 80.0);
    // out-of-range scores are clamped to 20; a missing criterion is left out
    let odd = answer.replace("Elegant Prose: 16", "Elegant Prose: 35").replace("Meandering: 4\n", "");
    let s = score(Task::EqBenchCreative, &item("Write.", "A story."), &[Some(&odd)], &t);
    // (12 x 16 + 20 + 8 x 16) / 21 = 16.190476... -> 16.1905; x 5 = 80.9525 -> 80.95
    close(value(&s, "rubric_score"), 16.1905);
    close(value(&s, "eqbench_creative_score"), 80.95);
    assert_eq!(s.record["num_criteria_rated"], json!(21));
    assert_eq!(dim(&s, "Meandering"), None);
}

fn criterion(name: &str) -> Value {
    json!({"name": name, "criteria_description": format!("How well it does {name}."), "1-2": "poor", "9-10": "superb"})
}

#[test]
fn writingbench_is_the_mean_of_valid_criterion_scores() {
    let t = Templates::builtin();
    let mut it = item("Write a memo.", "The memo.");
    it.checklist = vec![criterion("Clarity"), criterion("Tone"), criterion("Format")];
    let family = polaris::eval::bench::Family::OpenAi("gpt-5.4".into());
    let reqs = polaris::eval::bench::requests(Task::WritingBench, &it, &t, &family);
    assert_eq!(reqs.len(), 3, "one request per criterion");
    assert!(reqs[1].user.contains(
        "Criterion: Tone\n  Description: How well it does Tone.\n  Score 1-2: poor\n  Score 9-10: superb\n"
    ));
    assert!(reqs[0].user.contains("WRITING TASK:\nWrite a memo.\n\nRESPONSE:\nThe memo."));
    let answers = [
        Some(r#"{"score": 8, "reason": "clear"}"#),
        Some("```json\n{\"score\": 6, \"reason\": \"flat\"}\n```"),
        // outside 1..=10: no score
        Some(r#"{"score": 11, "reason": "?"}"#),
    ];
    let s = score(Task::WritingBench, &it, &answers, &t);
    close(value(&s, "writingbench_score"), 7.0);
    close(dim(&s, "Tone"), 6.0);
    assert_eq!(dim(&s, "Format"), None);
    // a float score is truncated as Python's int() does
    let s = score(Task::WritingBench, &it, &[Some(r#"{"score": 7.9}"#), None, None], &t);
    close(value(&s, "writingbench_score"), 7.0);
    // no criteria answered: no score
    let s = score(Task::WritingBench, &it, &[None, None, None], &t);
    assert_eq!(value(&s, "writingbench_score"), None);
}

#[test]
fn longbench_write_combines_quality_and_length() {
    let t = Templates::builtin();
    let all4 = r#"{"Analysis": "ok", "Relevance": 4, "Accuracy": 4, "Coherence": 4, "Clarity": 4, "Breadth_and_Depth": 4, "Reading_Experience": 4}"#;
    let with = |words_n: usize, target: Option<f64>| {
        let mut it = item("Write 1000 words about rain.", &words(words_n));
        it.target_length = target;
        score(Task::LongbenchWrite, &it, &[Some(all4)], &t)
    };
    // S_q = (4 - 1) x 25 = 75; exact length: S_l 100, S 75
    let s = with(1000, Some(1000.0));
    close(value(&s, "quality_score_sq"), 75.0);
    close(value(&s, "length_score_sl"), 100.0);
    close(value(&s, "combined_score"), 75.0);
    // over-long: y/x - 1 = 1.5, S_l = 100 x (1 - 1.5/3) = 50, S = 37.5
    let s = with(2500, Some(1000.0));
    close(value(&s, "length_score_sl"), 50.0);
    close(value(&s, "combined_score"), 37.5);
    // far over-long: 1 - 4/3 < 0, S_l = 0, S = 0
    let s = with(5000, Some(1000.0));
    close(value(&s, "length_score_sl"), 0.0);
    close(value(&s, "combined_score"), 0.0);
    // short: x/y - 1 = 1, S_l = 100 x (1 - 1/2) = 50
    let s = with(500, Some(1000.0));
    close(value(&s, "length_score_sl"), 50.0);
    // a target of 0 or none: no S_l and no S, S_q still there
    for target in [Some(0.0), None] {
        let s = with(1000, target);
        assert_eq!(value(&s, "length_score_sl"), None);
        assert_eq!(value(&s, "combined_score"), None);
        close(value(&s, "quality_score_sq"), 75.0);
    }
    // missing and out-of-range dimensions are left out: (5-1, 3-1, 1-1) x 25 -> mean 50
    let partial = r#"```json
{"Relevance": 5, "Accuracy": 3, "Coherence": 1, "Clarity": 6, "Breadth and Depth": "4"}
```"#;
    let mut it = item("Write.", &words(300));
    it.target_length = Some(300.0);
    let s = score(Task::LongbenchWrite, &it, &[Some(partial)], &t);
    close(value(&s, "quality_score_sq"), 50.0);
    close(value(&s, "longbench_write_score"), 3.0);
    assert_eq!(s.record["num_dims_scored"], json!(3));
    close(value(&s, "combined_score"), 50.0);
}

fn sq_answer(pos: i64, neg: i64, bonus: Option<i64>, model_overall: i64) -> String {
    let mut v = json!({
        "positive_prompt_fulfillment_premise_integration_justification": "Uses the premise.",
        "positive_prompt_fulfillment_premise_integration_score": 12,
        "positive_total": pos, "negative_total": neg, "penalty_total": 2,
        "overall_score": model_overall, "overall_label": "good", "overall_justification": "Solid."
    });
    if let Some(b) = bonus {
        v["bonus_total"] = json!(b);
    }
    format!("```json\n{v}\n```")
}

#[test]
fn story_quality_derives_the_overall_from_the_totals() {
    let t = Templates::builtin();
    let prompt = "A keeper finds a letter. The story should be 1000 words long.";
    let it = item(prompt, &words(1000));
    // overall = positive - negative + bonus (the penalty is not subtracted), the model's kept aside
    let s = score(Task::StoryQuality, &it, &[Some(&sq_answer(70, 20, Some(3), 51))], &t);
    close(value(&s, "overall_score"), 53.0);
    assert_eq!(s.record["overall_score_model"], json!(51));
    assert_eq!(s.record["positive_prompt_fulfillment_premise_integration_score"], json!(12));
    assert_eq!(
        s.record["positive_prompt_fulfillment_premise_integration_justification"],
        json!("Uses the premise.")
    );
    // capped at 100 above, not clamped below
    let s = score(Task::StoryQuality, &it, &[Some(&sq_answer(100, 0, Some(8), 100))], &t);
    close(value(&s, "overall_score"), 100.0);
    let s = score(Task::StoryQuality, &it, &[Some(&sq_answer(10, 50, None, 0))], &t);
    close(value(&s, "overall_score"), -40.0);
    assert_eq!(s.record["derived_overall_clipped"], json!(0));
    // a missing total: the judge's own overall stands
    let no_neg = sq_answer(70, 20, Some(3), 51).replace("\"negative_total\":20,", "");
    let s = score(Task::StoryQuality, &it, &[Some(&no_neg)], &t);
    close(value(&s, "overall_score"), 51.0);
    // a dimension missing from the answer is None, not 0
    assert_eq!(dim(&s, "negative_drift_bloat_structural_breakdown_score"), None);
    // without override_overall_from_totals the judge's overall is kept
    let mut keep = t.clone();
    keep.story_quality_override = false;
    let s = score(Task::StoryQuality, &it, &[Some(&sq_answer(70, 20, Some(3), 51))], &keep);
    close(value(&s, "overall_score"), 51.0);
    // length score: exact 1.0; 1200 words against 1000 (tolerance 100): 1 - (1200/1100 - 1)
    close(value(&s, "length_score"), 1.0);
    assert_eq!(s.bucket.as_deref(), Some("1k"));
    let long = score(Task::StoryQuality, &item(prompt, &words(1200)), &[None], &t);
    close(value(&long, "length_score"), 1.0 - (1200.0 / 1100.0 - 1.0));
    assert_eq!(value(&long, "overall_score"), None);
    // not JSON: no scores
    let s = score(Task::StoryQuality, &it, &[Some("The story is good.")], &t);
    assert_eq!(value(&s, "overall_score"), None);
}

#[test]
fn story_quality_request_is_the_releases() {
    let t = Templates::builtin();
    let it = item("A keeper finds a letter. The story should be 1000 words long.", "Once.");
    let native = polaris::eval::bench::requests(
        Task::StoryQuality,
        &it,
        &t,
        &polaris::eval::bench::Family::OpenAi("gpt-5.4".into()),
    );
    // the length sentence is cut off; the schema goes natively
    assert_eq!(native[0].user, "STORY PROMPT:\nA keeper finds a letter.\n\nSTORY:\nOnce.\n");
    assert_eq!(native[0].schema_name, "story_quality_seq");
    assert!(native[0].schema.get("properties").is_some());
    // a Gemini model outside the release's structured-output list: the schema in the prompt
    let inline = polaris::eval::bench::requests(
        Task::StoryQuality,
        &it,
        &t,
        &polaris::eval::bench::Family::Gemini("gemini-3.1-pro".into()),
    );
    assert!(inline[0].schema.is_null());
    assert!(inline[0].system.as_deref().unwrap().contains("FORMAL JSON SCHEMA FOR OUTPUT"));
}

#[test]
fn aggregates_are_the_releases_with_cis_over_prompts() {
    let t = Templates::builtin();
    let answer = |v: i64| {
        let mut a = String::from("[Scores]\n");
        for c in polaris::eval::bench::eq_creative::POSITIVE {
            a.push_str(&format!("{c}: {v}\n"));
        }
        a
    };
    // system A: prompts p0..p3 scored 10, 12, 14, 16 (x5 = 50..80); system B: one story failed
    let mut items = vec![];
    let mut scored = vec![];
    for (i, v) in [10, 12, 14, 16].into_iter().enumerate() {
        for sys in ["A", "B"] {
            let mut it = item("Write.", "Story.");
            it.system = sys.into();
            it.prompt_uid = format!("p{i}");
            let a = answer(v);
            let ans = if sys == "B" && i == 3 { None } else { Some(a.as_str()) };
            scored.push(score(Task::EqBenchCreative, &it, &[ans], &t));
            items.push(it);
        }
    }
    let failed: Vec<bool> = items.iter().map(|it| it.system == "B" && it.prompt_uid == "p3").collect();
    let usage = vec![Usage::default(); items.len()];
    let systems = vec!["A".to_string(), "B".to_string()];
    let r = aggregate::systems(&Inputs {
        task: Task::EqBenchCreative,
        systems: &systems,
        items: &items,
        scored: &scored,
        failed: &failed,
        usage: &usage,
        resamples: 2000,
        seed: 7,
    })
    .unwrap();
    let a = r[0].value("eqbench_creative_score").unwrap();
    close(a.mean, 65.0);
    close(a.median, 65.0);
    // numpy's population std of 50, 60, 70, 80
    close(a.std, 125f64.sqrt());
    let ci = a.ci.unwrap();
    assert!(ci.low < 65.0 && 65.0 < ci.high && ci.low >= 50.0 && ci.high <= 80.0, "{ci:?}");
    assert_eq!((r[1].stories, r[1].scored, r[1].failed), (4, 3, 1));
    close(r[1].value("eqbench_creative_score").unwrap().mean, 60.0);
    // the same seed gives the same interval
    let again = aggregate::systems(&Inputs {
        task: Task::EqBenchCreative,
        systems: &systems,
        items: &items,
        scored: &scored,
        failed: &failed,
        usage: &usage,
        resamples: 2000,
        seed: 7,
    })
    .unwrap();
    assert_eq!(again, r);
    // WritingBench and LongBench-Write print statistics.stdev (the sample std)
    let m = aggregate::metric("x", &[("a".into(), 1.0), ("b".into(), 3.0)], true, 1000, 0).unwrap();
    close(m.std, 2f64.sqrt());
    let m = aggregate::metric("x", &[("a".into(), 1.0)], true, 1000, 0).unwrap();
    close(m.std, 0.0);
}

fn shared(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/polaris/eval").join(name)
}

#[test]
fn the_release_configs_load_as_they_are() {
    let cases = [
        ("storyquality_gpt.json", Task::StoryQuality, JudgeSpec::OpenAi("gpt-5.4".into())),
        ("eqbench_longform_gpt.json", Task::EqBenchLongform, JudgeSpec::OpenAi("gpt-5.4".into())),
        ("eqbench_creative_gpt.json", Task::EqBenchCreative, JudgeSpec::OpenAi("gpt-5.4".into())),
        ("writingbench_d4_gemini.json", Task::WritingBench, JudgeSpec::Gemini("gemini-3.1-pro".into())),
        ("longbench_write_gemini.json", Task::LongbenchWrite, JudgeSpec::Gemini("gemini-3.1-pro".into())),
    ];
    for (file, task, judge) in cases {
        let c = ReleaseConfig::read(&shared(file)).unwrap_or_else(|e| panic!("{file}: {e:#}"));
        assert_eq!((c.task, &c.judge), (task, &judge), "{file}");
        assert_eq!(c.temperature, Some(0.2), "{file}");
        assert_eq!(c.seed, Some(42), "{file}");
        let mut s = JudgeSettings::default();
        c.apply(&mut s);
        s.validate().unwrap();
        assert_eq!(s.seed, Some(42));
        if let JudgeSpec::Gemini(_) = judge {
            assert_eq!((c.top_p, c.max_tokens), (Some(0.9), Some(65536)), "{file}");
            assert_eq!(s.thinking_level.as_deref(), Some("MEDIUM"), "{file}");
            assert!(c.notes.iter().any(|n| n.contains("Gemini API")), "{file}: {:?}", c.notes);
        }
    }
    let sq = ReleaseConfig::read(&shared("storyquality_gpt.json")).unwrap();
    assert!(sq.override_overall);
    assert_eq!(sq.fields.default_system.as_deref(), Some("polaris-9b"));
    // the release's `configs/schemas/...` paths resolve beside the shared copy of the configs
    assert_eq!(sq.json_schema.as_deref(), Some(shared("schemas/story_quality_seq.json").as_path()));
    assert_eq!(sq.system_message.as_deref(), Some(shared("prompts/story_quality_seq.txt").as_path()));
    let wb = ReleaseConfig::read(&shared("writingbench_d4_gemini.json")).unwrap();
    assert_eq!((wb.fields.id.as_deref(), wb.prompts_id_field.as_str()), (Some("id"), "id"));
    // the placeholders name no file here
    assert_eq!((wb.input.as_ref(), wb.prompts.as_ref()), (None, None));
    // the Elo config is `eval elo`'s
    let e = ReleaseConfig::read(&shared("elo_pairwise_gemini.json")).unwrap_err().to_string();
    assert!(e.contains("eval elo"), "{e}");
    // and the embedded copies are the shared files, byte for byte
    let t = Templates::builtin();
    assert_eq!(
        t.eq_creative,
        std::fs::read_to_string(shared("prompts/eq_bench_creative_judge.txt")).unwrap()
    );
    assert_eq!(
        t.story_quality_system,
        std::fs::read_to_string(shared("prompts/story_quality_seq.txt")).unwrap()
    );
}

#[test]
fn a_bad_config_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.json");
    std::fs::write(&p, r#"{"task": "eq_bench_creative", "engine": {"provider": "anthropic", "model": "x"}}"#)
        .unwrap();
    let e = ReleaseConfig::read(&p).unwrap_err().to_string();
    assert!(e.contains("c.json") && e.contains("engine.provider"), "{e}");
    std::fs::write(&p, r#"{"task": "eq_bench_creative", "engine": {"provider": "openai", "model": "x", "sampling": {"temperature": "hot"}}}"#).unwrap();
    let e = ReleaseConfig::read(&p).unwrap_err().to_string();
    assert!(e.contains("engine.sampling.temperature"), "{e}");
}
