//! One name for a prompt's id, `uid`, in every JSONL the project reads or writes, with
//! `prompt_uid` (the name older files use) read as the same field: a real `generate --json`
//! record of the tiny model feeds `judge`, `annotate` and `eval` as it is, and files written
//! with the older name still read.

mod common;

use std::path::{Path, PathBuf};

use common::study::make_study;
use common::tiny_cli::{polaris, text};
use polaris::annotate::{Session, Study, Verdict};
use polaris::eval::human::report::HumanReport;
use polaris::eval::report::{EloReport, LengthReport};
use polaris::eval::summary;
use serde_json::Value;
use sha2::Digest;

const PROMPTS: [&str; 2] = ["Write about a lighthouse.", "Write about a fox."];

/// `polaris-tui ARGS` under `home`, which must succeed; its stdout and stderr.
fn ok(home: &Path, args: &[&str]) -> String {
    let out = polaris(home).args(args).output().unwrap();
    let all = text(&out);
    assert!(out.status.success(), "polaris-tui {}:\n{all}", args.join(" "));
    all
}

/// One system's generation file in `home`: a `generate --json` line per prompt, as a user
/// collects them (`>>`), nothing edited.
fn generate(home: &Path, file: &str, seed: &str, system: Option<&str>) -> PathBuf {
    let mut lines = String::new();
    for prompt in PROMPTS {
        let mut args = vec!["generate", "--model", "tiny", "--prompt", prompt, "--words", "60"];
        args.extend(["--thinking", "off", "--max-new-tokens", "24", "--seed", seed, "--json"]);
        if let Some(s) = system {
            args.extend(["--system", s]);
        }
        let out = polaris(home).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        lines.push_str(&String::from_utf8(out.stdout).unwrap());
    }
    let path = home.join(file);
    std::fs::write(&path, lines).unwrap();
    path
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_generate_json_record_feeds_judge_annotate_and_eval_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let a = generate(home, "a.jsonl", "1", None);
    let b = generate(home, "b.jsonl", "2", Some("tiny-b"));

    // the record: the prompt as written (what judge, annotate and eval compare), the
    // templated one beside it, a uid from the prompt's text, the model's name as system
    let (ra, rb) = (records(&a), records(&b));
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let written = format!("{prompt} The story should be 60 words long.");
        assert_eq!(ra[i]["prompt"], written.as_str());
        assert!(ra[i]["chat_prompt"].as_str().unwrap().contains(&written), "{}", ra[i]["chat_prompt"]);
        assert_eq!((ra[i]["system"].as_str(), rb[i]["system"].as_str()), (Some("tiny"), Some("tiny-b")));
        assert_eq!(ra[i]["uid"], rb[i]["uid"], "the same prompt gets the same uid in both files");
        let digest = sha2::Sha256::digest(written.as_bytes());
        let sixteen: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            ra[i]["uid"],
            sixteen.as_str(),
            "the README's default: SHA-256 of the prompt, 16 hex digits"
        );
        assert!(ra[i].get("prompt_uid").is_none(), "writers use `uid` only");
    }
    assert_ne!(ra[0]["uid"], ra[1]["uid"]);
    let uids: Vec<&str> = ra.iter().map(|r| r["uid"].as_str().unwrap()).collect();

    let judged = home.join("judged.jsonl");
    ok(home, &["judge", "--input", arg(&a), "--out", arg(&judged)]);
    let scored = records(&judged);
    assert_eq!(scored.iter().map(|r| r["uid"].as_str().unwrap()).collect::<Vec<_>>(), uids);

    let study = home.join("study");
    ok(
        home,
        &["annotate", "--a", arg(&a), "--b", arg(&b), "--annotator", "alice"]
            .into_iter()
            .chain(["--out", arg(&study), "--prepare"])
            .collect::<Vec<_>>(),
    );
    let items = Study::load(&study).unwrap().items;
    assert_eq!(items.iter().map(|i| i.prompt_uid.as_str()).collect::<Vec<_>>(), uids);

    let elo = home.join("elo");
    ok(home, &["eval", "elo", "--gens", arg(&a), arg(&b), "--judge", "offline", "--out", arg(&elo)]);
    let r: EloReport = summary::read(&elo.join("elo.json")).unwrap();
    assert_eq!((r.ratings.len(), r.prompts), (2, 2));
    // the Elo judgements an older build wrote (`prompt_uid`) are the same pairs: none is
    // judged again
    let elo_judgements = elo.join("judgements.jsonl");
    let written = std::fs::read_to_string(&elo_judgements).unwrap();
    assert!(written.contains("\"uid\":") && !written.contains("\"prompt_uid\":"), "writers use `uid` only");
    std::fs::write(&elo_judgements, written.replace("\"uid\":", "\"prompt_uid\":")).unwrap();
    let again =
        ok(home, &["eval", "elo", "--gens", arg(&a), arg(&b), "--judge", "offline", "--out", arg(&elo)]);
    assert!(again.contains("judged 0 pairs now"), "{again}");

    let length = home.join("length");
    let eval_length = [
        "eval",
        "length",
        "--gens",
        arg(&a),
        arg(&b),
        "--judge",
        "offline",
        "--buckets",
        "0-100",
        "--out",
        arg(&length),
    ];
    ok(home, &eval_length);
    let r: LengthReport = summary::read(&length.join("length.json")).unwrap();
    assert_eq!(r.rows.iter().map(|row| row.judged).collect::<Vec<_>>(), [2, 2]);

    // judgements the older build wrote (`prompt_uid`) are the same judgements: nothing is
    // judged again
    let judgements = length.join("judgements.jsonl");
    let old = std::fs::read_to_string(&judgements).unwrap();
    assert!(old.contains("\"uid\":") && !old.contains("\"prompt_uid\":"), "writers use `uid` only");
    std::fs::write(&judgements, old.replace("\"uid\":", "\"prompt_uid\":")).unwrap();
    let again = ok(home, &eval_length);
    assert!(again.contains("judged 0"), "{again}");
    let r: LengthReport = summary::read(&length.join("length.json")).unwrap();
    assert_eq!(r.rows.iter().map(|row| row.judged).collect::<Vec<_>>(), [2, 2]);
}

#[test]
fn files_that_say_prompt_uid_still_read() {
    let tmp = tempfile::tempdir().unwrap();
    // generation files with `prompt_uid` (common::study writes the older name)
    let dir = make_study(tmp.path(), 3);
    let mut s = Session::open(&dir, "alice", Some(1)).unwrap();
    s.judge(Verdict::Left, None).unwrap();
    s.skip().unwrap();
    let judgments = s.judgments_path().to_path_buf();
    drop(s);

    // a study and a judgments file as the older build wrote them
    for path in [Study::manifest_path(&dir), judgments.clone()] {
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(new.contains("\"uid\"") && !new.contains("\"prompt_uid\""), "{}: {new}", path.display());
        std::fs::write(&path, new.replace("\"uid\"", "\"prompt_uid\"")).unwrap();
    }
    let s = Session::open(&dir, "alice", Some(1)).unwrap();
    assert_eq!((s.ledger.done(), s.ledger.total()), (1, 3));
    drop(s);
    let report = HumanReport::from_study(&dir, 1000, 0).unwrap();
    assert_eq!(report.annotators.iter().map(|a| (a.judged, a.total)).collect::<Vec<_>>(), [(1, 3)]);
    assert_eq!(report.win_rates.iter().map(|w| (w.judgments, w.a_wins + w.b_wins)).max(), Some((1, 1)));

    // judge --input: a record naming its prompt `prompt_uid`, and one naming it twice apart
    let input = tmp.path().join("stories.jsonl");
    let prompt = "Write a story about a lighthouse. The story should be 100 words long.";
    let line = |uid: &str| {
        serde_json::json!({uid: "p0", "prompt": prompt, "story": "The lamp burned all night."}).to_string()
            + "\n"
    };
    std::fs::write(&input, line("prompt_uid")).unwrap();
    let out = tmp.path().join("judged.jsonl");
    ok(tmp.path(), &["judge", "--input", arg(&input), "--out", arg(&out)]);
    assert_eq!(records(&out)[0]["prompt_uid"], "p0", "the input record is kept as it was");

    let both = serde_json::json!({"uid": "p0", "prompt_uid": "p1", "prompt": prompt, "story": "x"});
    std::fs::write(&input, both.to_string() + "\n").unwrap();
    let o = polaris(tmp.path()).args(["judge", "--input", arg(&input)]).output().unwrap();
    let e = text(&o);
    assert!(!o.status.success() && e.contains("stories.jsonl:1") && e.contains("disagree"), "{e}");
}
