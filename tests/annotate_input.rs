//! Generation files and the `annotate` / `report human` commands: bad and mismatched
//! inputs give errors naming file, line and field; nothing panics.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::study::*;
use polaris::annotate::input::pair_generations;
use polaris::annotate::{Session, Verdict};
use polaris::generate::file::read_generations;

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn polaris(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polaris-tui")).args(args).env("RUST_BACKTRACE", "0").output().unwrap()
}

fn failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected a failure; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn every_bad_record_is_named_with_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        "bad.jsonl",
        &[
            record("p0", "sys", "Write.", "Fine."),
            r#"{"prompt": "Write.", "system": "sys", "story": "x"}"#.into(),
            r#"{"prompt_uid": "p2", "prompt": "Write.", "system": "sys", "story": 7}"#.into(),
            "{not json".into(),
            r#"{"prompt_uid": "p4", "prompt": "Write.", "system": "sys", "story": "x", "thinking": 1}"#.into(),
            r#"{"prompt_uid": "p5", "prompt": "Write.", "system": "sys", "story": "x", "requested_words": -3}"#.into(),
            r#"["an", "array"]"#.into(),
        ],
    );
    let err = read_generations(&path).unwrap_err().to_string();
    let p = path.display();
    for expected in [
        format!("{p}:2: missing field `uid`"),
        format!("{p}:3: field `story` must be a string, found a number"),
        format!("{p}:4: is not JSON"),
        format!("{p}:5: field thinking must be a string, found a number"),
        format!("{p}:6: field `requested_words`"),
        format!("{p}:7: is an array where a JSON object was expected"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("6 of 7 records are bad"), "{err}");
    assert!(!err.contains(&format!("{p}:1:")), "line 1 is fine: {err}");
}

#[test]
fn generate_records_with_a_uid_and_system_are_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    // The fields `generate --json` writes, plus the two that match and name it.
    let line = serde_json::json!({
        "prompt_uid": 17, "system": "base", "prompt_token_ids": [1, 2], "token_ids": [3],
        "thinking": "plan", "story": "Once upon a time, the end.", "words": 6, "length_ratio": 0.06,
        "tokens_per_second": 10.0, "prompt": "A tale. The story should be 100 words long.",
        "requested_words": null, "finish": "eos", "thinking_tokens": 1, "forced_think_close": false
    });
    let path = write(tmp.path(), "gen.jsonl", &[line.to_string()]);
    let g = &read_generations(&path).unwrap()[0];
    assert_eq!(
        (g.prompt_uid.as_str(), g.system.as_str(), g.thinking.as_deref()),
        ("17", "base", Some("plan"))
    );
    assert_eq!(g.requested_words, Some(100), "read from the prompt when the field is null");
}

#[test]
fn duplicates_mixed_systems_and_mismatches_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dup = write(
        d,
        "dup.jsonl",
        &[record("p0", "a", "W", "x"), record("p1", "a", "W", "x"), record("p0", "a", "W", "y")],
    );
    let b = write(d, "b.jsonl", &[record("p0", "b", "W", "x"), record("p1", "b", "W", "x")]);
    let err = pair_generations(&dup, &read_generations(&dup).unwrap(), &b, &read_generations(&b).unwrap())
        .unwrap_err();
    let err = err.to_string();
    assert!(err.contains("uid `p0` appears 2 times") && err.contains("dup.jsonl:3"), "{err}");

    let mixed = write(d, "mixed.jsonl", &[record("p0", "a", "W", "x"), record("p1", "z", "W", "x")]);
    let err =
        pair_generations(&mixed, &read_generations(&mixed).unwrap(), &b, &read_generations(&b).unwrap())
            .unwrap_err()
            .to_string();
    assert!(err.contains("mixes systems") && err.contains("mixed.jsonl:2: field `system` is `z`"), "{err}");

    let err = pair_generations(&b, &read_generations(&b).unwrap(), &b, &read_generations(&b).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("both hold system `b`"), "{err}");

    let other =
        write(d, "other.jsonl", &[record("p0", "a", "W", "x"), record("p1", "a", "Another prompt", "x")]);
    let err =
        pair_generations(&other, &read_generations(&other).unwrap(), &b, &read_generations(&b).unwrap())
            .unwrap_err()
            .to_string();
    assert!(err.contains("uid `p1`") && err.contains("other.jsonl:2") && err.contains("b.jsonl:2"), "{err}");
}

#[test]
fn the_cli_lists_unmatched_uids_and_goes_on_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = write_system(d, "a.jsonl", SYSTEM_A, 4);
    let b = write_system(d, "b.jsonl", SYSTEM_B, 3);
    let study = d.join("study");
    let (a, b, s) = (a.to_str().unwrap(), b.to_str().unwrap(), study.to_str().unwrap());
    let base = ["annotate", "--a", a, "--b", b, "--annotator", "alice", "--out", s, "--prepare"];
    let err = failure(&polaris(&base));
    assert!(err.contains("uid `p03` only in") && err.contains("--skip-unmatched"), "{err}");
    assert!(!study.exists(), "nothing written on error");

    let out = polaris(&[&base[..], &["--skip-unmatched"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(study.join("study.json").exists() && study.join("judgments-alice.jsonl").exists());

    // The same folder from other inputs is refused; without inputs it is reused.
    let c = write_system(d, "c.jsonl", "SYSTEM-GAMMA", 3);
    let err = failure(&polaris(&[
        "annotate",
        "--a",
        a,
        "--b",
        c.to_str().unwrap(),
        "--annotator",
        "bob",
        "--out",
        s,
        "--skip-unmatched",
        "--prepare",
    ]));
    assert!(err.contains("already holds a study"), "{err}");
    let out = polaris(&["annotate", "--annotator", "bob", "--out", s, "--prepare"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let err = failure(&polaris(&["annotate", "--annotator", "../x", "--out", s, "--prepare"]));
    assert!(err.contains("--annotator `../x`"), "{err}");
    let err = failure(&polaris(&["annotate", "--annotator", "carol", "--out", s]));
    assert!(err.contains("interactive terminal"), "{err}");
    let empty = d.join("empty");
    let err = failure(&polaris(&["annotate", "--annotator", "bob", "--out", empty.to_str().unwrap()]));
    assert!(err.contains("no study yet"), "{err}");
}

#[test]
fn report_human_prints_a_table_json_and_markdown() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_study(tmp.path(), 5);
    let s = dir.to_str().unwrap();
    let err = failure(&polaris(&["report", "human", s]));
    assert!(err.contains("no judgments"), "{err}");
    for (annotator, verdict) in [("alice", Verdict::Left), ("bob", Verdict::Tie)] {
        let mut session = Session::open(&dir, annotator, None).unwrap();
        while session.current().is_some() {
            session.judge(verdict, None).unwrap();
        }
    }
    let out = polaris(&["report", "human", s, "--format", "json", "--resamples", "1000", "--seed", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["resamples"], 1000);
    assert_eq!(json["win_rates"][2]["scope"], "bob");
    assert_eq!(json["win_rates"][2]["win_rate"], 0.5, "all ties");
    assert_eq!(json["agreement"][0]["shared"], 5);
    let again = polaris(&["report", "human", s, "--format", "json", "--resamples", "1000", "--seed", "3"]);
    assert_eq!(out.stdout, again.stdout, "reproducible");

    let table = String::from_utf8(polaris(&["report", "human", s]).stdout).unwrap();
    assert!(
        table.contains("all annotators") && table.contains("95% CI") && table.contains("alice vs bob"),
        "{table}"
    );
    let md = String::from_utf8(polaris(&["report", "human", s, "--format", "markdown"]).stdout).unwrap();
    assert!(md.contains("| all annotators | 10 | 5 |") && md.contains("Cohen's kappa"), "{md}");
    let err = failure(&polaris(&["report", "human", s, "--resamples", "500"]));
    assert!(err.contains("500"), "{err}");
}

/// Three systems through the CLI: `--gen` thrice makes a study per pair, each blinded as a
/// two-system one, and `report human` reports all three pairs.
#[test]
fn three_systems_make_a_study_per_pair_and_the_report_lists_every_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let files: Vec<PathBuf> = [("a.jsonl", SYSTEM_A), ("b.jsonl", SYSTEM_B), ("c.jsonl", "SYSTEM-GAMMA")]
        .iter()
        .map(|(file, system)| write_system(d, file, system, 4))
        .collect();
    let out = d.join("study");
    let one = failure(&polaris(&[
        "annotate",
        "--annotator",
        "alice",
        "--out",
        out.to_str().unwrap(),
        "--gen",
        files[0].to_str().unwrap(),
    ]));
    assert!(one.contains("at least two generation files"), "{one}");
    let mut args: Vec<&str> =
        vec!["annotate", "--annotator", "alice", "--out", out.to_str().unwrap(), "--prepare"];
    for f in &files {
        args.extend(["--gen", f.to_str().unwrap()]);
    }
    let made = polaris(&args);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let pairs = polaris::annotate::pairs::pair_studies(&out).unwrap();
    assert_eq!(pairs.len(), 3);
    for dir in &pairs {
        let mut session = Session::open(dir, "alice", None).unwrap();
        assert_eq!(session.ledger.done(), 0, "--prepare wrote the blinding only");
        while session.current().is_some() {
            session.judge(Verdict::Left, None).unwrap();
        }
    }
    // a second run with the folder alone finds the pairs again
    let again = polaris(&["annotate", "--annotator", "bob", "--out", out.to_str().unwrap(), "--prepare"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(out.join(format!("{SYSTEM_A}-vs-SYSTEM-GAMMA/judgments-bob.jsonl")).is_file());

    let s = out.to_str().unwrap();
    let report = polaris(&["report", "human", s, "--format", "json", "--resamples", "1000"]);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let json: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let systems: Vec<(String, String)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["system_a"].as_str().unwrap().into(), r["system_b"].as_str().unwrap().into()))
        .collect();
    let expected = [(SYSTEM_A, SYSTEM_B), (SYSTEM_A, "SYSTEM-GAMMA"), (SYSTEM_B, "SYSTEM-GAMMA")];
    assert_eq!(systems, expected.map(|(a, b)| (a.to_string(), b.to_string())));
    for r in json.as_array().unwrap() {
        assert_eq!(r["win_rates"][0]["judgments"], 4, "alice judged every prompt of every pair");
    }
    let table = String::from_utf8(polaris(&["report", "human", s]).stdout).unwrap();
    for (a, b) in expected {
        assert!(table.contains(&format!("A = {a}   B = {b}")), "{table}");
    }
}
