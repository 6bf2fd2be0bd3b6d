//! `eval agree`: reward sources against the human verdicts of a small synthetic study with
//! known verdicts, through the command, a loopback judge playing the source.

#[path = "common/judge_server.rs"]
mod judge_server;
#[allow(dead_code)]
#[path = "common/study.rs"]
mod study;

use std::process::{Command, Output};

use judge_server::*;
use polaris::prefs::{Pair, Split};
use polaris::reward::principles::Principles;
use polaris::reward::Rubric;
use serde_json::Value;

const RULES: &str = r#"
[[principle]]
name = "local consistency"
rule = "Facts hold from one paragraph to the next."
violation = "The keeper's name changes without cause."
"#;

fn polaris<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .args(args)
        .env("POLARIS_TEST_KEY_AGREE", KEY)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn sources_are_compared_with_the_human_verdicts_as_counted_by_hand() {
    // the judge scores the long story high and the short one low, except on item 2, where it
    // prefers the short one: it agrees with the annotator on 3 of the 4 items
    let rubric = Rubric::builtin().unwrap();
    let (high, low) = (answer_at(&rubric, true), answer_at(&rubric, false));
    let (base, server) = serve_blocking(move |_, body| {
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        let short = user.contains("A short one");
        let good = if user.contains("number 2") { short } else { !short };
        Reply::ok(openai_body(if good { &high } else { &low }))
    });
    let tmp = tempfile::tempdir().unwrap();
    let study_dir = study::long_short_study(tmp.path(), &story(), ["LONG", "LONG", "SHORT", "SHORT"])
        .display()
        .to_string();
    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let config = tmp.path().join("judge.toml");
    std::fs::write(
        &config,
        "[judge]\nretries = 0\n[judge.prices.\"judge-model\"]\ninput_per_million = 0.4\noutput_per_million = 1.6\n",
    )
    .unwrap();
    let out = tmp.path().join("agree");
    let with_rules = format!("openai:judge-model@{}", rules.display());
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "eval",
            "agree",
            "--study",
            &study_dir,
            "--source",
            "openai:judge-model",
            "--source",
            &with_rules,
            "--source",
            "offline",
            "--out",
            &out.display().to_string(),
            "--config",
            &config.display().to_string(),
            "--base-url",
            &base,
            "--api-key-env",
            "POLARIS_TEST_KEY_AGREE",
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = polaris(&args(&["--all"]));
    assert!(run.status.success(), "{}", stderr(&run));
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("agree.json")).unwrap()).unwrap();
    assert_eq!((report["judged"].as_u64(), report["items"].as_u64()), (Some(4), Some(4)));
    let sources = report["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3);
    let judge = &sources[0];
    assert_eq!(judge["source"], "openai:judge-model");
    assert_eq!((judge["compared"].as_u64(), judge["unscored"].as_u64()), (Some(4), Some(0)));
    // raw 3/4. Kappa by hand: human A 2/4, B 2/4; judge A 3/4, B 1/4; p_e = 1/2 x 3/4 +
    // 1/2 x 1/4 = 1/2; kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2 (float rounding only: 1e-12)
    assert!((judge["raw"].as_f64().unwrap() - 0.75).abs() < 1e-12, "{judge}");
    assert!((judge["cohens_kappa"].as_f64().unwrap() - 0.5).abs() < 1e-12, "{judge}");
    let (low, high) =
        (judge["raw_ci95"]["low"].as_f64().unwrap(), judge["raw_ci95"]["high"].as_f64().unwrap());
    assert!((0.0..=0.75).contains(&low) && (0.75..=1.0).contains(&high) && low < high, "{judge}");
    // 8 stories, each answered with 1000 prompt and 200 completion tokens at $0.4 / $1.6 per
    // million: $0.00576 (a sum of 8 equal terms: 1e-12)
    assert!((judge["cost"].as_f64().unwrap() - 8.0 * 0.00072).abs() < 1e-12, "{judge}");

    // the judge reading principles: labelled by their hash, and the rules are in its requests
    let hash = Principles::from_toml_str(RULES, "r").unwrap().hash();
    assert_eq!(sources[1]["source"], with_rules.as_str());
    assert_eq!(sources[1]["label"], format!("openai:judge-model@{hash}"));
    let bodies: Vec<Value> = server.requests.lock().unwrap().iter().map(|(_, b)| b.clone()).collect();
    let read_rules = bodies
        .iter()
        .filter(|b| b["messages"][0]["content"].as_str().unwrap_or_default().contains("local consistency"))
        .count();
    assert_eq!((bodies.len(), read_rules), (16, 8));
    assert_eq!((sources[2]["source"].as_str(), sources[2]["cost"].as_f64()), (Some("offline"), Some(0.0)));

    let table = String::from_utf8_lossy(&run.stdout);
    assert!(table.lines().any(|l| l.starts_with("openai:judge-model ") && l.contains("0.750")), "{table}");
    let md = std::fs::read_to_string(out.join("agree.md")).unwrap();
    assert!(md.contains("| `openai:judge-model` | 4/4 | 4 | 0.750 |"), "{md}");

    // a re-run asks nothing (the judge's replies are cached in the output folder)
    let again = polaris(&args(&["--all"]));
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(server.hits(), 16);

    // by default only the items `prefs build --heldout 0.5` would hold out are scored
    let held = (0..4).filter(|i| Pair::split_for(&format!("p{i}"), 0.5) == Split::Heldout).count();
    let heldout = polaris(&args(&["--heldout", "0.5"]));
    if held == 0 {
        assert!(stderr(&heldout).contains("none of its 4 judged items is held out"), "{}", stderr(&heldout));
    } else {
        assert!(heldout.status.success(), "{}", stderr(&heldout));
        let r: Value = serde_json::from_slice(&std::fs::read(out.join("agree.json")).unwrap()).unwrap();
        assert_eq!(r["items"].as_u64(), Some(held as u64));
        assert_eq!(r["selection"], serde_json::json!({"items": "heldout", "share": 0.5}));
    }

    // a source that is not one is refused before anything is asked
    let bad = polaris(&["eval", "agree", "--study", &study_dir, "--source", "gpt-4", "--all", "--out", "x"]);
    assert!(!bad.status.success() && stderr(&bad).contains("--source \"gpt-4\""), "{}", stderr(&bad));
}
