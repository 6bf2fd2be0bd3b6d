//! Study folders for the annotation and human-evaluation tests.

use std::path::{Path, PathBuf};

use polaris::annotate::input::pair_generations;
use polaris::annotate::{Session, Study, Verdict};
use polaris::generate::file::read_generations;

pub const SYSTEM_A: &str = "SYSTEM-ALPHA-7B";
pub const SYSTEM_B: &str = "SYSTEM-BETA-3B";

/// One generation record as `generate` plus the matching fields would write it.
pub fn record(uid: &str, system: &str, prompt: &str, story: &str) -> String {
    serde_json::json!({"prompt_uid": uid, "prompt": prompt, "system": system, "story": story, "thinking": null})
        .to_string()
}

pub fn prompt(i: usize) -> String {
    format!("Write a story about lighthouse number {i}. The story should be {} words long.", 100 * (i + 1))
}

/// `n` prompts answered by one system, one JSONL file in `dir`.
pub fn write_system(dir: &Path, file: &str, system: &str, n: usize) -> PathBuf {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let story = format!("Story {i} by a system. ").repeat(5 + i) + "The end.";
            record(&format!("p{i:02}"), system, &prompt(i), &story)
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// A study of `n` prompts in `dir/study`, made through the library as `annotate` does.
pub fn make_study(dir: &Path, n: usize) -> PathBuf {
    let a = write_system(dir, "a.jsonl", SYSTEM_A, n);
    let b = write_system(dir, "b.jsonl", SYSTEM_B, n);
    let pairing =
        pair_generations(&a, &read_generations(&a).unwrap(), &b, &read_generations(&b).unwrap()).unwrap();
    assert!(pairing.unmatched.is_empty());
    let study_dir = dir.join("study");
    Study::open_or_create(
        &study_dir,
        Study::new(pairing.items, vec!["a.jsonl".into(), "b.jsonl".into()]).unwrap(),
    )
    .unwrap();
    study_dir
}

/// A study of four prompts ("A lighthouse story, number i."): system LONG's stories are
/// `long` then " i", SHORT's "A short one, i."; one annotator ("ann") answers item i with
/// `wants[i]`, "LONG", "SHORT" or "tie". For the tests of agreement with people.
pub fn long_short_study(dir: &Path, long: &str, wants: [&str; 4]) -> PathBuf {
    let gens = |file: &str, system: &str, story: &dyn Fn(usize) -> String| {
        let lines: Vec<String> = (0..4)
            .map(|i| record(&format!("p{i}"), system, &format!("A lighthouse story, number {i}."), &story(i)))
            .collect();
        let path = dir.join(file);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    };
    let a = gens("a.jsonl", "LONG", &|i| format!("{long} {i}"));
    let b = gens("b.jsonl", "SHORT", &|i| format!("A short one, {i}."));
    let pairing =
        pair_generations(&a, &read_generations(&a).unwrap(), &b, &read_generations(&b).unwrap()).unwrap();
    let study_dir = dir.join("study");
    Study::open_or_create(&study_dir, Study::new(pairing.items, vec![]).unwrap()).unwrap();
    let mut session = Session::open(&study_dir, "ann", Some(7)).unwrap();
    while let Some((p, item)) = session.current().map(|(p, i)| (p.clone(), i.clone())) {
        let verdict = match wants[item.prompt_uid[1..].parse::<usize>().unwrap()] {
            "tie" => Verdict::Tie,
            w if p.left == w => Verdict::Left,
            _ => Verdict::Right,
        };
        session.judge(verdict, None).unwrap();
    }
    study_dir
}
