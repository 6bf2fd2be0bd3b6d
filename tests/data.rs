//! Training datasets: validation messages, round trips, building from the shared story
//! collection, the split, and the `data` commands.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::shared;
use polaris::generate::length::{count_words, requested_words};
use polaris::train::data::{self, Example, LengthBucket, SkipReason};

fn pd_stories() -> PathBuf {
    shared().join("data/stories/pd_stories.jsonl")
}

fn demo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo").join(name)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn err_text(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

fn example(uid: &str, words: usize, story: Option<&str>) -> Example {
    Example {
        uid: uid.into(),
        prompt: polaris::generate::story_prompt("Write a story about a lamp.", words),
        target_word_count: words,
        story: story.map(Into::into),
        reasoning: None,
    }
}

#[test]
fn every_bad_record_is_named_by_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"uid": "a", "prompt": "Write a story. The story should be 500 words long.", "target_word_count": 500}"#;
    let lines = [
        good,                                                                                                // 1
        "{not json",                                                                         // 2
        "[1, 2]",                                                                            // 3
        r#"{"prompt": "It should be 500 words long.", "target_word_count": 500}"#,           // 4
        r#"{"uid": 7, "prompt": "It should be 500 words long.", "target_word_count": 500}"#, // 5
        r#"{"uid": "e", "prompt": "   ", "target_word_count": 500}"#,                        // 6
        r#"{"uid": "f", "prompt": "It should be 500 words long.", "target_word_count": 0}"#, // 7
        r#"{"uid": "g", "prompt": "It should be 500 words long.", "target_word_count": "500"}"#, // 8
        r#"{"uid": "h", "prompt": "It should be 500 words long.", "target_word_count": -5}"#, // 9
        r#"{"uid": "i", "prompt": "It should be 500 words long.", "target_word_count": 12.5}"#, // 10
        r#"{"uid": "a", "prompt": "It should be 500 words long.", "target_word_count": 500}"#, // 11
        r#"{"uid": "k", "prompt": "It should be 900 words long.", "target_word_count": 500}"#, // 12
        r#"{"uid": "l", "prompt": "Write a story.", "target_word_count": 500}"#,             // 13
        r#"{"uid": "m", "prompt": "It should be 500 words long.", "target_word_count": 500, "story": " "}"#, // 14
        r#"{"uid": "n", "prompt": "It should be 500 words long.", "target_word_count": 500, "story": 3}"#, // 15
        r#"{"uid": "o", "prompt": "It should be 500 words long.", "target_word_count": 500, "reasoning": []}"#, // 16
        "",                                                          // 17 (blank: skipped)
        r#"{"uid": "q", "target_word_count": 500}"#,                 // 18
        r#"{"uid": "r", "prompt": "It should be 500 words long."}"#, // 19
    ];
    let path = write(dir.path(), "bad.jsonl", &lines.join("\n"));
    let msg = err_text(data::load(&path));
    let f = path.display().to_string();
    let expect = [
        (2, "is not JSON"),
        (3, "is an array where a JSON object was expected"),
        (4, "field uid is missing"),
        (5, "field uid must be a string, found a number"),
        (6, "field prompt is empty"),
        (7, "field target_word_count is 0"),
        (8, "field target_word_count must be a number, found the string \"500\""),
        (9, "field target_word_count is negative"),
        (10, "field target_word_count must be a whole number of words, found 12.5"),
        (11, "field uid \"a\" is already used on line 1"),
        (12, "field prompt asks for 900 words"),
        (13, "field prompt does not say how long"),
        (14, "field story is empty"),
        (15, "field story must be a string, found a number"),
        (16, "field reasoning must be a string, found an array"),
        (18, "field prompt is missing"),
        (19, "field target_word_count is missing"),
    ];
    for (line, what) in expect {
        let want = format!("{f}:{line}: {what}");
        assert!(msg.contains(&want), "missing {want:?} in:\n{msg}");
    }
    assert!(!msg.contains(&format!("{f}:1:")), "the good line is reported:\n{msg}");
    assert!(!msg.contains(&format!("{f}:17:")), "the blank line is reported:\n{msg}");
    assert!(msg.starts_with(&format!("{f}: 17 of 18 records are bad")), "{msg}");
    // listed in file order
    let numbers: Vec<usize> = msg
        .lines()
        .skip(1)
        .take_while(|l| !l.contains("more problems"))
        .map(|l| l.trim().strip_prefix(&format!("{f}:")).unwrap().split(':').next().unwrap().parse().unwrap())
        .collect();
    assert!(numbers.is_sorted(), "{numbers:?}");
}

#[test]
fn past_twenty_problems_the_rest_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..25).map(|i| format!("{{\"uid\": \"u{i}\"}}\n")).collect();
    let path = write(dir.path(), "many.jsonl", &text);
    let msg = err_text(data::load(&path));
    // each record lacks prompt and target_word_count: 50 problems, 20 listed
    assert_eq!(msg.lines().filter(|l| l.contains(": field ")).count(), 20, "{msg}");
    assert!(msg.contains("... and 30 more problems"), "{msg}");
    assert!(msg.contains("25 of 25 records are bad (50 problems)"), "{msg}");
}

#[test]
fn an_empty_dataset_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("empty.jsonl", ""), ("blank.jsonl", "\n  \n\n")] {
        let path = write(dir.path(), name, text);
        let msg = err_text(data::load(&path));
        assert!(msg.contains("no records"), "{msg}");
    }
    let missing = err_text(data::load(&dir.path().join("absent.jsonl")));
    assert!(missing.contains("cannot read"), "{missing}");
}

#[test]
fn a_good_dataset_round_trips_and_extra_fields_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut examples =
        vec![example("a", 300, Some("Once there was a lamp.\n\nIt shone.")), example("b", 1500, None)];
    examples[0].reasoning = Some("Plan: a lamp, then light.".into());
    let path = dir.path().join("sub/train.jsonl");
    data::write_jsonl(&path, &examples).unwrap();
    assert_eq!(data::load(&path).unwrap(), examples);
    // nothing else left beside it (the temp file was renamed into place)
    let names: Vec<_> =
        std::fs::read_dir(dir.path().join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("train.jsonl")]);
    // absent options stay absent in the file
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.lines().nth(1).unwrap().contains("\"story\""), "{text}");

    let extra = write(
        dir.path(),
        "extra.jsonl",
        "\u{feff}{\"uid\": \"x\", \"prompt\": \"A tale. The story should be 200 words long.\", \"target_word_count\": 200, \"title\": \"T\", \"words\": 210, \"story\": null}\r\n",
    );
    assert_eq!(
        data::load(&extra).unwrap(),
        vec![Example {
            uid: "x".into(),
            prompt: "A tale. The story should be 200 words long.".into(),
            target_word_count: 200,
            story: None,
            reasoning: None,
        }]
    );
}

#[test]
fn the_demo_dataset_loads() {
    let examples = data::load(&demo("prompts.jsonl")).unwrap();
    assert_eq!(examples.len(), 44);
    assert_eq!(examples.iter().filter(|e| e.story.is_some()).count(), 32);
}

/// The demo prompts were made by the same rule (README in assets/demo), independently.
#[test]
fn building_the_demo_stories_reproduces_the_demo_prompts() {
    let (train, val) = data::build(&demo("stories.jsonl"), 0.0, 0).unwrap();
    assert!(val.is_empty());
    let expected: Vec<Example> =
        data::load(&demo("prompts.jsonl")).unwrap().into_iter().filter(|e| e.story.is_some()).collect();
    assert_eq!(train, expected);
}

/// Stories up to `--max-words` (4000 by default) are kept whole; longer ones are trimmed at a
/// paragraph end, and every prompt asks for the length kept.
#[test]
fn the_shared_collection_builds_every_story_with_its_own_length() {
    let originals: BTreeMap<String, String> = std::fs::read_to_string(pd_stories())
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_string(), v["text"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(originals.len(), 349);
    let built = data::build_detailed(&pd_stories(), 0.05, 0).unwrap();
    let short: HashSet<&str> = originals
        .iter()
        .filter(|(_, t)| count_words(t) < data::MIN_STORY_WORDS)
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(built.skipped.iter().map(|s| s.uid.as_str()).collect::<HashSet<_>>(), short);
    assert!(built.skipped.iter().all(|s| s.reason == SkipReason::TooShort));
    let all: Vec<&Example> = built.train.iter().chain(&built.val).collect();
    assert_eq!(all.len(), 349 - short.len());
    let over: HashSet<&str> = originals
        .iter()
        .filter(|(_, t)| count_words(t) > data::MAX_STORY_WORDS)
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(built.trimmed.iter().map(|t| t.uid.as_str()).collect::<HashSet<_>>(), over);
    assert!(over.len() > 200, "{}", over.len());
    for e in all {
        let original = &originals[&e.uid];
        let story = e.story.as_deref().unwrap();
        let words = count_words(story);
        assert!((data::MIN_STORY_WORDS..=data::MAX_STORY_WORDS).contains(&words), "{}: {words} words", e.uid);
        if over.contains(e.uid.as_str()) {
            // cut at a paragraph end: the normalised original goes on with a new paragraph
            let whole = data::normalise_text(original);
            let rest = whole.strip_prefix(story).unwrap_or_else(|| panic!("{}: not a prefix", e.uid));
            assert!(rest.starts_with("\n\n"), "{}: not cut at a paragraph end", e.uid);
            assert!(words > data::MAX_STORY_WORDS / 2, "{}: only {words} words kept", e.uid);
        } else {
            assert_eq!(words, count_words(original), "{}: words changed by normalising", e.uid);
        }
        assert_eq!(requested_words(&e.prompt), Some(e.target_word_count), "{}", e.prompt);
        assert_eq!(e.target_word_count, data::target_words(words));
        assert!(e.target_word_count.abs_diff(words) <= 25, "{}", e.uid);
        assert!(e.prompt.starts_with("Write a story titled \""), "{}", e.prompt);
        assert!(e.prompt.contains("\". Premise: "), "{}", e.prompt);
        // paragraphs on one line each, blank-line separated, whitespace collapsed
        for paragraph in story.split("\n\n") {
            assert!(!paragraph.is_empty() && !paragraph.contains('\n'), "{}: {paragraph:?}", e.uid);
            assert_eq!(paragraph, paragraph.split_whitespace().collect::<Vec<_>>().join(" "), "{}", e.uid);
        }
    }
    // the collection's `words` field counts whitespace-separated tokens (2015 here); targets use `\w+` runs (2046)
    let bell = built.train.iter().chain(&built.val).find(|e| e.uid == "anderson/bell").unwrap();
    assert_eq!(bell.story.as_deref().unwrap().split("\n\n").count(), 19);
    assert_eq!(
        bell.prompt,
        "Write a story titled \"The Bell\". Premise: People said \u{201c}The Evening Bell is sounding, \
         the sun is setting.\u{201d} The story should be 2050 words long."
    );
}

#[test]
fn the_split_is_deterministic_stratified_and_disjoint() {
    let (train, val) = data::build(&pd_stories(), 0.05, 0).unwrap();
    let (train2, val2) = data::build(&pd_stories(), 0.05, 0).unwrap();
    assert_eq!((&train, &val), (&train2, &val2), "same inputs and seed, different split");
    let (_, val_seed1) = data::build(&pd_stories(), 0.05, 1).unwrap();
    let uids = |v: &[Example]| v.iter().map(|e| e.uid.clone()).collect::<HashSet<_>>();
    assert_ne!(uids(&val), uids(&val_seed1), "the seed does not change the split");

    for fraction in [0.05, 0.2] {
        let (train, val) = data::build(&pd_stories(), fraction, 3).unwrap();
        let n = train.len() + val.len();
        let share = val.len() as f64 / n as f64;
        assert!((share - fraction).abs() <= 0.05, "validation share {share} for {fraction}");
        assert!(uids(&train).is_disjoint(&uids(&val)));
        assert_eq!(uids(&train).len() + uids(&val).len(), n);
        for b in LengthBucket::ALL {
            let in_bucket =
                |v: &[Example]| v.iter().filter(|e| LengthBucket::of(e.target_word_count) == b).count();
            let (t, v) = (in_bucket(&train), in_bucket(&val));
            let exact = (t + v) as f64 * fraction;
            assert!(
                (v as f64 - exact).abs() < 1.0,
                "bucket {b}: {v} of {} held out, {exact} expected",
                t + v
            );
        }
    }
}

#[test]
fn the_split_key_is_fixed_across_machines() {
    // SHA-256 is fixed by its standard; these values pin the split order
    assert_eq!(data::split_key("anderson/bell", 0), data::split_key("anderson/bell", 0));
    assert_ne!(data::split_key("anderson/bell", 0), data::split_key("anderson/bell", 1));
    let digest = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"polaris-split\0");
        h.update(0u64.to_le_bytes());
        h.update(b"anderson/bell");
        h.finalize()
    };
    assert_eq!(data::split_key("anderson/bell", 0), u64::from_be_bytes(digest[..8].try_into().unwrap()));
}

#[test]
fn a_directory_of_txt_and_jsonl_files_builds() {
    let dir = tempfile::tempdir().unwrap();
    // hard-wrapped at ~50 columns with indentation, paragraphs separated by blank lines
    let sentence =
        "The keeper of the old lighthouse climbed the stairs again and looked out over the grey sea. ";
    let long: String = sentence.repeat(12);
    let wrapped: String = textwrap(&long, 50).iter().map(|l| format!("    {l}\n")).collect();
    let story = format!("{wrapped}\n    \n{wrapped}");
    write(dir.path(), "the_lamp_keeper.txt", &story);
    write(dir.path(), "tiny_tale.txt", "Too short to use.");
    write(dir.path(), "notes.md", "not a story");
    write(dir.path(), ".hidden.txt", "ignored");
    let record = serde_json::json!({"title": "Salt", "premise": "A cook runs out of salt", "reasoning": "Think.", "text": long});
    write(dir.path(), "more.jsonl", &format!("{record}\n"));

    let built = data::build_detailed(dir.path(), 0.0, 0).unwrap();
    assert!(built.val.is_empty());
    assert_eq!(built.skipped.len(), 1);
    assert_eq!((built.skipped[0].uid.as_str(), built.skipped[0].reason), ("tiny_tale", SkipReason::TooShort));
    // files in name order: more.jsonl, the_lamp_keeper.txt
    let [salt, lamp] = &built.train[..] else { panic!("{:?}", built.train) };
    assert_eq!(salt.uid, "more:1");
    assert_eq!(salt.reasoning.as_deref(), Some("Think."));
    assert_eq!(
        salt.prompt,
        "Write a story titled \"Salt\". Premise: A cook runs out of salt. The story should be 200 words long."
    );
    assert_eq!(lamp.uid, "the_lamp_keeper");
    assert!(lamp
        .prompt
        .starts_with("Write a story titled \"The Lamp Keeper\". Premise: The keeper of the old lighthouse"));
    assert_eq!(lamp.story.as_deref().unwrap(), format!("{}\n\n{}", long.trim(), long.trim()));
    assert_eq!(lamp.target_word_count, data::target_words(count_words(&story)));

    let txt_only = tempfile::tempdir().unwrap();
    write(txt_only.path(), "a.txt", &long);
    let (train, _) = data::build(txt_only.path(), 0.0, 0).unwrap();
    assert_eq!(train.len(), 1);
}

/// Greedy wrapping at `width` columns.
fn textwrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for w in text.split_whitespace() {
        let line = lines.last_mut().unwrap();
        if !line.is_empty() && line.len() + 1 + w.len() > width {
            lines.push(w.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(w);
        }
    }
    lines
}

#[test]
fn bad_story_records_are_named_by_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"id": "a", "title": "A", "text": "Some words."}"#,
        r#"{"id": "b", "text": "Some words."}"#,
        r#"{"id": "c", "title": "C"}"#,
        r#"{"id": "a", "title": "A again", "story": "Other words."}"#,
        r#"{"id": ["d"], "title": "D", "text": "x", "premise": 4}"#,
    ];
    let path = write(dir.path(), "stories.jsonl", &lines.join("\n"));
    let msg = err_text(data::build(&path, 0.05, 0));
    let f = path.display().to_string();
    for want in [
        format!("{f}:2: field title is missing"),
        format!("{f}:3: field story is missing"),
        format!("{f}:4: field id \"a\" is also used at {f}:1"),
        format!("{f}:5: field id must be a string or a number, found an array"),
        format!("{f}:5: field premise must be a string, found a number"),
    ] {
        assert!(msg.contains(&want), "missing {want:?} in:\n{msg}");
    }
    let bad_fraction = err_text(data::build(&pd_stories(), 1.0, 0));
    assert!(bad_fraction.contains("validation fraction"), "{bad_fraction}");
    let empty_dir = tempfile::tempdir().unwrap();
    assert!(err_text(data::build(empty_dir.path(), 0.05, 0)).contains("no .jsonl or .txt files"));
}

fn polaris(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polaris-tui")).args(args).env("RUST_BACKTRACE", "0").output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn cli_builds_and_checks_a_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("train.jsonl");
    let stories = pd_stories();
    let report = stdout(&polaris(&[
        "data",
        "build",
        "--stories",
        stories.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    let trimmed = data::build_detailed(&stories, 0.05, 0).unwrap().trimmed.len();
    let whole = 349 - trimmed;
    for want in [
        format!("349 stories: {whole} kept whole, {trimmed} trimmed to at most 4000 words, 0 skipped"),
        format!("trimmed {trimmed} (over 4000 words, cut at a paragraph end)"),
        "4000-7999".into(),
        ">=8000".into(),
        "total".into(),
    ] {
        assert!(report.contains(&want), "missing {want:?} in:\n{report}");
    }
    let val = dir.path().join("val.jsonl");
    let (train, held_out) = (data::load(&out).unwrap(), data::load(&val).unwrap());
    assert_eq!(train.len() + held_out.len(), 349);
    assert_eq!((train, held_out), data::build(&stories, 0.05, 0).unwrap());
    let total = report.lines().find(|l| l.starts_with("total")).unwrap();
    assert_eq!(total.split_whitespace().collect::<Vec<_>>(), ["total", "332", "17"]);

    let check = stdout(&polaris(&["data", "check", out.to_str().unwrap()]));
    assert!(check.contains("332 records, 332 with a reference story, 0 without"), "{check}");
    assert!(check.contains("target words: min"), "{check}");

    for sub in ["build", "check"] {
        let help = stdout(&polaris(&["data", sub, "--help"]));
        assert!(help.contains("Usage: polaris-tui data"), "{help}");
    }
    let help = stdout(&polaris(&["data", "build", "--help"]));
    for flag in ["--val-fraction", "--max-words", "--min-words"] {
        assert!(help.contains(flag), "{help}");
    }
}

#[test]
fn cli_check_of_a_bad_file_fails_with_file_line_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.jsonl",
        "{\"uid\": \"a\", \"prompt\": \"It should be 300 words long.\", \"target_word_count\": 200}\n{oops\n",
    );
    let out = polaris(&["data", "check", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let f = path.display();
    assert!(stderr.contains(&format!("{f}:1: field prompt asks for 300 words")), "{stderr}");
    assert!(stderr.contains(&format!("{f}:2: is not JSON")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let build = polaris(&["data", "build", "--stories", path.to_str().unwrap(), "--out", "x.jsonl"]);
    assert!(!build.status.success());
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(stderr.contains(&format!("{f}:1: field title is missing")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn cli_check_of_an_endless_line_stops_at_the_line_cap_and_says_why() {
    // /dev/zero: no line break ever; without a cap the reading never ends
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_polaris-tui"))
        .args(["data", "check", "/dev/zero"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("data check /dev/zero still reading after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("/dev/zero:1: the line is longer than 16 MiB"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // a directory is named as one
    let dir = tempfile::tempdir().unwrap();
    let out = polaris(&["data", "check", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("is a directory"), "{stderr}");
    // a long line under the cap is a record like any other
    let long = format!(
        "{{\"uid\": \"a\", \"prompt\": \"It should be 300 words long.\", \"target_word_count\": 300, \"story\": \"{}\"}}\n",
        "word ".repeat(400_000)
    );
    let path = write(dir.path(), "long.jsonl", &long);
    assert!(stdout(&polaris(&["data", "check", path.to_str().unwrap()])).contains("1 records"));
}

/// A collection with one story for each thing `data build` does with a story, under
/// `--min-words 40 --max-words 120`: (id, text, premise).
fn limits_collection(dir: &Path) -> PathBuf {
    let sentence = "The fox ran over the hill to the red barn."; // 10 words
    let sentences = |n: usize| vec![sentence; n].join(" ");
    let no_stop = "and the fox ran on ".repeat(40); // 200 words, no sentence end
    let stories: Vec<(&str, String, &str)> = vec![
        ("whole", format!("{}\n\n{}", sentences(4), sentences(4)), "A fox."),
        ("paragraphs", vec![sentences(5); 4].join("\n\n"), "A fox."),
        ("one_paragraph", sentences(20), "A fox."),
        ("short", sentences(3), "A fox."),
        ("short_once_trimmed", format!("{}\n\n{}", sentences(3), no_stop.trim()), "A fox."),
        ("no_cut", no_stop.trim().to_string(), "A fox."),
        ("asks_a_length", sentences(6), "A tale 500 words long."),
    ];
    let text: String = stories
        .iter()
        .map(|(id, text, premise)| {
            format!("{}\n", serde_json::json!({"id": id, "title": "Fox", "premise": premise, "text": text}))
        })
        .collect();
    write(dir, "limits.jsonl", &text)
}

#[test]
fn long_stories_are_trimmed_and_short_ones_skipped_each_for_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = limits_collection(dir.path());
    let opts = data::BuildOptions { val_fraction: 0.0, seed: 0, min_words: 40, max_words: 120 };
    let built = data::build_with(&path, &opts).unwrap();
    let uids: Vec<&str> = built.train.iter().map(|e| e.uid.as_str()).collect();
    assert_eq!(uids, ["whole", "paragraphs", "one_paragraph"]);
    let story = |uid: &str| built.train.iter().find(|e| e.uid == uid).unwrap();
    let sentence = "The fox ran over the hill to the red barn.";
    assert_eq!(story("whole").target_word_count, 100);
    // whole paragraphs while they fit: 2 of 50 words
    let p = story("paragraphs");
    assert_eq!(p.story.as_deref().unwrap(), [[sentence; 5].join(" "), [sentence; 5].join(" ")].join("\n\n"));
    assert_eq!((p.target_word_count, requested_words(&p.prompt)), (100, Some(100)));
    // one paragraph of 200 words: cut after its 12th sentence
    let s = story("one_paragraph");
    assert_eq!(s.story.as_deref().unwrap(), [sentence; 12].join(" "));
    assert_eq!((s.target_word_count, requested_words(&s.prompt)), (100, Some(100)));
    let trims: Vec<(&str, usize, usize, data::Cut)> =
        built.trimmed.iter().map(|t| (t.uid.as_str(), t.words, t.kept_words, t.cut)).collect();
    assert_eq!(
        trims,
        [("paragraphs", 200, 100, data::Cut::Paragraph), ("one_paragraph", 200, 120, data::Cut::Sentence)]
    );
    let skips: Vec<(&str, SkipReason)> = built.skipped.iter().map(|s| (s.uid.as_str(), s.reason)).collect();
    assert_eq!(
        skips,
        [
            ("short", SkipReason::TooShort),
            ("short_once_trimmed", SkipReason::TooShortTrimmed),
            ("no_cut", SkipReason::NoCutWithin),
            ("asks_a_length", SkipReason::LengthInInstruction),
        ]
    );
    for e in &built.train {
        let words = count_words(e.story.as_deref().unwrap());
        assert!((40..=120).contains(&words), "{}: {words}", e.uid);
    }
    let flipped = data::BuildOptions { min_words: 200, max_words: 100, ..opts };
    assert!(err_text(data::build_with(&path, &flipped)).contains("--min-words 200 is over --max-words 100"));
}

#[test]
fn cli_build_says_how_many_it_kept_trimmed_and_skipped_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = limits_collection(dir.path());
    let out = dir.path().join("train.jsonl");
    let report = stdout(&polaris(&[
        "data",
        "build",
        "--stories",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--val-fraction",
        "0",
        "--min-words",
        "40",
        "--max-words",
        "120",
    ]));
    for want in [
        "7 stories: 1 kept whole, 2 trimmed to at most 120 words, 4 skipped",
        "trimmed 1 (over 120 words, cut at a paragraph end)",
        "trimmed 1 (over 120 words, cut at a sentence end inside a long paragraph)",
        "skipped 1 (under 40 words, --min-words): ",
        "skipped 1 (over 120 words, and under 40 once trimmed at a paragraph or sentence end): ",
        "skipped 1 (over 120 words with no paragraph or sentence end within 120): ",
        "skipped 1 (title or premise says \"N words long\"",
    ] {
        assert!(report.contains(want), "missing {want:?} in:\n{report}");
    }
    assert!(
        report.contains(&format!("{}:4", path.display())),
        "the short story's line is not named:\n{report}"
    );
    assert_eq!(data::load(&out).unwrap().len(), 3);
}

#[test]
fn cli_check_with_a_model_warns_about_references_over_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let long = "The fox ran over the hill to the red barn. ".repeat(30);
    let records = [
        serde_json::json!({"uid": "short", "prompt": "Write a story. The story should be 100 words long.", "target_word_count": 100, "story": "The fox ran."}),
        serde_json::json!({"uid": "none", "prompt": "Write a story. The story should be 100 words long.", "target_word_count": 100}),
        serde_json::json!({"uid": "long", "prompt": "Write a story. The story should be 300 words long.", "target_word_count": 300, "story": long.trim()}),
    ];
    let text: String = records.iter().map(|r| format!("{r}\n\n")).collect(); // line 5 is the long one
    let path = write(dir.path(), "set.jsonl", &text);
    let f = path.display().to_string();
    let report = stdout(&polaris(&["data", "check", &f, "--model", "tiny", "--max-new-tokens", "64"]));
    let warnings: Vec<&str> = report.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{report}");
    assert!(warnings[0].starts_with(&format!("warning: {f}:5: the reference of long is ")), "{report}");
    assert!(warnings[0].contains("over the response budget of 64; training cuts"), "{report}");
    assert!(report.contains("response budget 64 tokens (tiny's tokenizer, thinking on): 1 of 2 references are over it; the longest is "), "{report}");
    assert!(report.contains(&format!("({f}:5, long)")), "{report}");
    assert!(report.contains("training cuts each of them to 64 tokens with no end token"), "{report}");

    // the budget and thinking mode of a run config; by default 8192 tokens, which all fit
    let cfg = write(
        dir.path(),
        "run.toml",
        "[model]\npath = \"tiny\"\n[step]\nthinking = false\n[step.sampling]\nmax_new_tokens = 64\n",
    );
    let from_config = stdout(&polaris(&["data", "check", &f, "--config", cfg.to_str().unwrap()]));
    assert!(
        from_config.contains("response budget 64 tokens (tiny's tokenizer, thinking off): 1 of 2"),
        "{from_config}"
    );
    let fits = stdout(&polaris(&["data", "check", &f, "--model", "tiny"]));
    assert!(fits.contains("response budget 8192 tokens (tiny's tokenizer, thinking on): 0 of 2"), "{fits}");
    assert!(!fits.contains("warning:"), "{fits}");

    let no_model = polaris(&["data", "check", &f, "--model", dir.path().join("nowhere").to_str().unwrap()]);
    assert!(!no_model.status.success());
    assert!(String::from_utf8_lossy(&no_model.stderr).contains("no such model directory"));
}
