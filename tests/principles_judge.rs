//! Principles in judging (issue 21, item 1): a judge model reads them in its instructions,
//! every judgement record carries their hash, the cache never crosses their versions, and
//! the offline judge ignores them and says so once; pairwise judging (`eval elo`) too. Also a judge's agreement with the human
//! verdicts of a study (`eval::human::agreement`), which `principles refine --against` and
//! the source comparison use.

#[path = "common/judge_server.rs"]
mod judge_server;
#[allow(dead_code)]
#[path = "common/study.rs"]
mod study;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use judge_server::*;
use polaris::eval::elo::store::pairwise_prompt_id;
use polaris::eval::human::agreement::{agreement, judge_agreement, judged_pairs};
use polaris::eval::stats::winrate::Preference;
use polaris::reward::pairwise::PairwisePrompt;
use polaris::reward::principles::{for_judge, Principles};
use polaris::reward::Rubric;
use serde_json::Value;

const RULES: &str = r#"
[[principle]]
name = "no stylistic overloading"
rule = "One image at a time."
violation = "Three metaphors stacked in one sentence."

[[principle]]
name = "local consistency"
rule = "Facts hold from one paragraph to the next."
violation = "The keeper's name changes without cause."
"#;

fn polaris() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_polaris-tui"));
    c.env("RUST_BACKTRACE", "0").env_remove("OPENAI_BASE_URL").env("OPENAI_API_KEY", KEY);
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_stories(dir: &Path) -> String {
    let rec = |uid: &str, story: String| {
        serde_json::json!({"uid": uid, "prompt": "A story about a lighthouse. The story should be 300 words long.", "story": story}).to_string()
    };
    let path = dir.join("stories.jsonl");
    std::fs::write(&path, format!("{}\n{}\n", rec("a", story()), rec("b", format!("{} The end.", story()))))
        .unwrap();
    path.display().to_string()
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The system message of a chat-completions request body.
fn system_of(body: &Value) -> String {
    body["messages"][0]["content"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_judge_model_reads_the_principles_and_records_carry_their_hash() {
    let answer = valid_answer(&Rubric::builtin().unwrap());
    let (base, server) = serve_blocking(move |_, _| Reply::ok(openai_body(&answer)));
    let dir = tempfile::tempdir().unwrap();
    let input = write_stories(dir.path());
    let rules = dir.path().join("principles.toml");
    std::fs::write(&rules, RULES).unwrap();
    let hash = Principles::load(&rules).unwrap().hash();
    let cache = dir.path().join("cache");
    let judge = |out: &str, principles: Option<&Path>| {
        let mut c = polaris();
        c.args(["judge", "--judge", "openai:judge-model", "--base-url", &base, "--input", &input])
            .args(["--cache-dir", cache.to_str().unwrap(), "--out"])
            .arg(dir.path().join(out));
        if let Some(p) = principles {
            c.arg("--principles").arg(p);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        records(&dir.path().join(out))
    };

    // without principles: no hash, and the judge reads no rules
    let plain = judge("plain.jsonl", None);
    assert_eq!(server.hits(), 2);
    assert!(plain
        .iter()
        .all(|r| r.get("principles").is_none() && r["breakdown"].get("principles").is_none()));
    assert!(!system_of(&server.body(0)).contains("no stylistic overloading"));

    // with them: the rules are in the instructions the judge receives, the records say which
    // version, and the judgements cached without them are not reused
    let with = judge("with.jsonl", Some(&rules));
    assert_eq!(server.hits(), 4, "a judgement cached without the principles was reused with them");
    let system = system_of(&server.body(2));
    assert!(system.contains("PRINCIPLES"), "{system}");
    assert!(system.contains("1. no stylistic overloading: One image at a time."), "{system}");
    assert!(system.contains("Violated when: The keeper's name changes without cause."), "{system}");
    for r in &with {
        assert_eq!(r["principles"], hash.as_str(), "{r}");
        assert_eq!(r["breakdown"]["principles"], hash.as_str());
    }

    // the same version again: the cache answers
    judge("again.jsonl", Some(&rules));
    assert_eq!(server.hits(), 4);
    // another version (one word of a rule): judged anew, with the new hash
    let edited = dir.path().join("edited.toml");
    std::fs::write(&edited, RULES.replace("One image", "One picture")).unwrap();
    let new = judge("edited.jsonl", Some(&edited));
    assert_eq!(server.hits(), 6, "a judgement cached with another principles version was reused");
    let new_hash = Principles::load(&edited).unwrap().hash();
    assert_ne!(new_hash, hash);
    assert!(new.iter().all(|r| r["principles"] == new_hash.as_str()));
}

#[test]
fn the_offline_judge_ignores_principles_and_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_stories(dir.path());
    let rules = dir.path().join("principles.toml");
    std::fs::write(&rules, RULES).unwrap();
    let out = dir.path().join("out.jsonl");
    let o = polaris()
        .args(["judge", "--input", &input, "--principles", rules.to_str().unwrap(), "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert_eq!(e.matches("the offline judge ignores the principles").count(), 1, "{e}");
    assert!(records(&out).iter().all(|r| r.get("principles").is_none()));

    // a principles file that breaks the cap is refused with the file named, before judging
    let many: String = (0..11)
        .map(|i| format!("[[principle]]\nname = \"r{i}\"\nrule = \"x\"\nviolation = \"y\"\n"))
        .collect();
    std::fs::write(&rules, many).unwrap();
    let o = polaris()
        .args(["judge", "--input", &input, "--principles", rules.to_str().unwrap(), "--out"])
        .arg(dir.path().join("no.jsonl"))
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("principles.toml") && e.contains("at most 10"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn a_training_run_judges_with_the_principles_and_its_rollouts_carry_the_hash() {
    let answer = valid_answer(&Rubric::builtin().unwrap());
    let (base, server) = serve_blocking(move |_, _| Reply::ok(openai_body(&answer)));
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("principles.toml");
    std::fs::write(&rules, RULES).unwrap();
    let hash = Principles::load(&rules).unwrap().hash();
    let out = dir.path().join("run");
    let o = polaris()
        .args(["train", "--judge", "openai:judge-model", "--steps", "1", "--group-size", "3"])
        .args(["--data", concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/prompts.jsonl")])
        .args(["--principles", rules.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--set", &format!("judge.base_url={base}"), "--set", "judge.retries=0"])
        .args(["--set", "run.prompts_per_step=1", "--set", "step.sampling.max_new_tokens=12"])
        .args(["--set", "step.thinking=false"])
        .env("POLARIS_CACHE_DIR", dir.path())
        .env("POLARIS_STATE_DIR", dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(server.hits() >= 1);
    assert!(system_of(&server.body(0)).contains("2. local consistency"));
    let rows = records(&out.join("rollouts.jsonl"));
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r["breakdown"]["principles"], hash.as_str(), "{r}");
    }
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("principles = "), "{config}");
}

#[tokio::test]
async fn a_judge_agrees_with_the_human_verdicts_as_counted_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let study_dir = study::long_short_study(dir.path(), &story(), ["LONG", "LONG", "SHORT", "tie"]);
    let (systems, pairs) = judged_pairs(&study_dir).unwrap();
    assert_eq!(systems, ["LONG".to_string(), "SHORT".to_string()]);
    assert_eq!(pairs.len(), 4);
    let human: Vec<Preference> = pairs.iter().map(|p| p.verdicts[0]).collect();
    assert_eq!(human, [Preference::AWins, Preference::AWins, Preference::BWins, Preference::Tie]);

    // the judge (on loopback) scores a long story high and a short one low, so it prefers A
    // throughout: agreement 2 of 4, 2 of 3 without the tie; the last story fails for good
    let rubric = Rubric::builtin().unwrap();
    let (high, low) = (answer_at(&rubric, true), answer_at(&rubric, false));
    let (base, server) = serve(move |_, body| {
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        match () {
            _ if user.contains("number 3") && user.contains("A short one") => Reply::status(500, "down"),
            _ if user.contains("A short one") => Reply::ok(openai_body(&low)),
            _ => Reply::ok(openai_body(&high)),
        }
    })
    .await;
    let mut settings = settings(&base, "AGREEMENT_TEST_KEY");
    settings.retries = 0;
    let principles = Principles::from_toml_str(RULES, "rules").unwrap();
    let (rubric, _) =
        for_judge(&polaris::reward::JudgeSpec::OpenAi("judge-model".into()), rubric, Some(&principles));
    let client = Arc::new(
        polaris::reward::JudgeClient::new(
            polaris::reward::JudgeSpec::OpenAi("judge-model".into()),
            rubric,
            settings,
        )
        .unwrap(),
    );
    let a = judge_agreement(&client, &pairs).await;
    assert!(server.hits() >= 8);
    assert_eq!(a.source, format!("openai:judge-model@{}", principles.hash()));
    assert_eq!((a.items, a.unscored, a.compared), (4, 1, 3));
    assert_eq!(a.raw, Some(2.0 / 3.0));
    assert_eq!((a.decisive, a.raw_without_ties), (3, Some(2.0 / 3.0)));
    // another source's preferences go through the same comparison
    let other = agreement("rm:x", &pairs, &[Some(Preference::AWins); 4]);
    assert_eq!((other.compared, other.raw), (4, Some(0.5)));
}

#[test]
fn pairwise_judging_reads_the_principles_and_its_records_carry_the_hash() {
    // every criterion and the overall verdict to the story shown first, decisively
    let keys: Vec<String> =
        PairwisePrompt::builtin().unwrap().criteria.iter().map(|c| c.key.clone()).collect();
    let (base, server) = serve_blocking(move |_, _| {
        let mut a = serde_json::Map::new();
        for k in &keys {
            a.insert(format!("{k}_winner"), "1".into());
            a.insert(format!("{k}_reason"), "r".into());
        }
        a.insert("overall_winner".into(), "1".into());
        a.insert("margin".into(), 2.into());
        a.insert("overall_reason".into(), "r".into());
        Reply::ok(openai_body(&Value::Object(a).to_string()))
    });
    let dir = tempfile::tempdir().unwrap();
    let mut gens = Vec::new();
    for system in ["one", "two"] {
        let lines: Vec<String> = (0..2)
            .map(|i| {
                serde_json::json!({"uid": format!("p{i}"), "prompt": "A lighthouse story.", "system": system,
                    "story": format!("{} ({system})", story())})
                .to_string()
            })
            .collect();
        let path = dir.path().join(format!("{system}.jsonl"));
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        gens.push(path.display().to_string());
    }
    let rules = dir.path().join("principles.toml");
    std::fs::write(&rules, RULES).unwrap();
    let out = dir.path().join("elo");
    let o = polaris()
        .args(["eval", "elo", "--judge", "openai:judge-model", "--base-url", &base, "--resamples", "1000"])
        .args(["--principles", rules.to_str().unwrap(), "--out", out.to_str().unwrap(), "--gens"])
        .args(&gens)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(server.hits(), 4, "two pairs, both orders");
    assert!(system_of(&server.body(0)).contains("1. no stylistic overloading: One image at a time."));
    let hash = Principles::from_toml_str(RULES, "r").unwrap().hash();
    let judged = records(&out.join("judgements.jsonl"));
    assert_eq!(judged.len(), 2);
    assert!(judged.iter().all(|r| r["principles"] == hash.as_str()), "{judged:?}");
    // the prompt id moves with the principles: the same folder without them is refused
    let plain = PairwisePrompt::builtin().unwrap();
    let with = plain.clone().with_principles(&Principles::from_toml_str(RULES, "r").unwrap());
    assert_ne!(pairwise_prompt_id(&with), pairwise_prompt_id(&plain));
    let o = polaris()
        .args(["eval", "elo", "--judge", "openai:judge-model", "--base-url", &base, "--resamples", "1000"])
        .args(["--out", out.to_str().unwrap(), "--gens"])
        .args(&gens)
        .output()
        .unwrap();
    assert!(!o.status.success() && !stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert_eq!(server.hits(), 4);
}
