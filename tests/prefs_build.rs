//! `prefs build`: pairs from an annotate study (ties give none), from `eval elo` judgements
//! (both orders agreeing), and from a run's groups (reference vs low rows, top vs bottom by a
//! margin), deduplicated and split, with a summary table; bad lines named FILE:LINE.

mod common;

use std::path::Path;

use common::study::{make_study, prompt, record, SYSTEM_A, SYSTEM_B};
use common::tiny_cli::{polaris, text};
use polaris::annotate::input::pair_generations;
use polaris::annotate::Study;
use polaris::annotate::{Session, Verdict};
use polaris::generate::file::read_generations;
use polaris::prefs::build::{annotate, run};
use polaris::prefs::{read_pairs, Split};

fn row(step: usize, group: usize, reference: bool, story: &str, reward: f64) -> String {
    serde_json::json!({
        "step": step, "kind": "train", "prompt": format!("Write about lamp {group}."),
        "rollout": {"group": group, "is_reference": reference, "story": story},
        "reward": reward,
    })
    .to_string()
}

/// Group 0: reference 1.5, policy rows 1.4, 0.2, -0.5; group 1: policy rows 0.30 and 0.35 only.
fn write_rollouts(run: &Path, extra: &str) {
    std::fs::create_dir_all(run).unwrap();
    let lines = [
        row(1, 0, false, "close to the human", 1.4),
        row(1, 0, false, "middling", 0.2),
        row(1, 0, false, "poor", -0.5),
        row(1, 0, true, "the human story", 1.5),
        row(1, 1, false, "near", 0.30),
        row(1, 1, false, "nearer", 0.35),
    ];
    std::fs::write(run.join("rollouts.jsonl"), lines.join("\n") + "\n" + extra).unwrap();
}

#[test]
fn a_run_gives_reference_and_top_bottom_pairs_by_margin() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    write_rollouts(&run_dir, "");
    let pairs = run::pairs(&run_dir, 0.5).unwrap();
    let got: Vec<(&str, &str)> = pairs.iter().map(|p| (p.chosen.as_str(), p.rejected.as_str())).collect();
    // reference 1.5 beats 0.2 and -0.5 by >= 0.5, not 1.4; top 1.4 vs bottom -0.5; group 1's
    // spread 0.05 is under the margin
    assert_eq!(
        got,
        [("the human story", "middling"), ("the human story", "poor"), ("close to the human", "poor")]
    );
    assert!(pairs.iter().all(|p| p.source == "run" && p.uid == pairs[0].uid));
    assert_eq!(run::pairs(&run_dir, 0.0).unwrap().len(), 3 + 1 + 1, "margin 0: every lower row, both groups");
    assert!(run::pairs(&run_dir, 10.0).unwrap().is_empty());

    // a bad line in the middle is named; a torn last line (a live run) is skipped
    write_rollouts(&run_dir, "{\"step\": 1, \"kind\": \"train\"}\n{\"step\": 2, \"pro");
    let err = format!("{:#}", run::pairs(&run_dir, 0.5).unwrap_err());
    assert!(err.contains("rollouts.jsonl:7: not a rollout row"), "{err}");
    assert!(!err.contains("rollouts.jsonl:8"), "{err}");
}

#[test]
fn a_real_run_fixture_parses() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = common::run_fixture::write_run(tmp.path());
    let pairs = run::pairs(&run_dir, 0.0).unwrap();
    assert!(!pairs.is_empty());
    assert!(pairs.iter().all(|p| p.chosen != p.rejected));
}

#[test]
fn a_study_gives_one_pair_per_verdict_with_a_winner() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_study(tmp.path(), 4);
    let mut s = Session::open(&dir, "alice", Some(1)).unwrap();
    let mut expected = Vec::new();
    for verdict in [Verdict::Left, Verdict::Right, Verdict::Tie, Verdict::Left] {
        let (shown, item) = s.current().unwrap();
        let winner = match verdict {
            Verdict::Left => Some(shown.left.clone()),
            Verdict::Right => Some(shown.right.clone()),
            Verdict::Tie => None,
        };
        if let Some(w) = winner {
            expected.push((item.prompt_uid.clone(), item.story(&w).unwrap().text.clone()));
        }
        s.judge(verdict, None).unwrap();
    }
    let (pairs, ties) = annotate::pairs(&dir).unwrap();
    assert_eq!((pairs.len(), ties), (3, 1));
    let got: Vec<(String, String)> = pairs.iter().map(|p| (p.uid.clone(), p.chosen.clone())).collect();
    assert_eq!(got, expected);
}

/// `n` prompts answered by `system`: A writes varied sentences, B one sentence over and over
/// (which the offline pairwise judge marks down for repetition).
fn write_gens(dir: &Path, system: &str, n: usize) -> std::path::PathBuf {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let story = if system == SYSTEM_A {
                format!("The keeper of lighthouse {i} climbed the wet stairs. Salt wind hit the glass. She trimmed the wick, and a ship turned from the rocks before dawn.")
            } else {
                format!("Lighthouse {i} was there. ").repeat(12)
            };
            record(&format!("p{i:02}"), system, &prompt(i), &story)
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{system}.jsonl"));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The CLI over all three sources: elo judged offline, a study, a run; the table counts by
/// source and split; a second copy of the same run counts as duplicates.
#[test]
fn the_command_merges_sources_and_prints_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let a = write_gens(home, SYSTEM_A, 6);
    let b = write_gens(home, SYSTEM_B, 6);
    let elo = home.join("elo");
    let o = polaris(home)
        .args(["eval", "elo", "--judge", "offline", "--out", elo.to_str().unwrap(), "--gens"])
        .args([&a, &b])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let pairing =
        pair_generations(&a, &read_generations(&a).unwrap(), &b, &read_generations(&b).unwrap()).unwrap();
    let study = home.join("study");
    let items: Vec<_> = pairing.items.into_iter().take(3).collect();
    Study::open_or_create(&study, Study::new(items, vec![]).unwrap()).unwrap();
    let mut s = Session::open(&study, "bob", Some(2)).unwrap();
    // bob prefers A's stories, as the offline Elo judge does: agreeing sources, no conflicts
    for _ in 0..3 {
        let left_is_a = s.current().unwrap().0.left == SYSTEM_A;
        s.judge(if left_is_a { Verdict::Left } else { Verdict::Right }, None).unwrap();
    }
    let run_dir = home.join("run");
    write_rollouts(&run_dir, "");
    let out = home.join("pairs.jsonl");
    let o = polaris(home)
        .args(["prefs", "build", "--out", out.to_str().unwrap(), "--heldout", "0.3"])
        .args(["--study", study.to_str().unwrap(), "--elo", elo.to_str().unwrap(), "--gens"])
        .args([&a, &b])
        .args(["--run", run_dir.to_str().unwrap(), "--run", run_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let pairs = read_pairs(&out).unwrap();
    let count = |src: &str| pairs.iter().filter(|p| p.source == src).count();
    assert_eq!(count("annotate"), 3, "{table}");
    assert_eq!(count("run"), 3, "{table}");
    assert!(count("elo") > 0, "{table}");
    assert!(pairs.iter().filter(|p| p.source == "elo").all(|p| p.weight > 0.0 && p.weight <= 1.0));
    let run_line = table.lines().find(|l| l.starts_with("run ")).unwrap();
    let cols: Vec<&str> = run_line.split_whitespace().collect();
    assert_eq!(cols[3..5], ["3", "3"], "3 pairs kept, 3 duplicates (the second --run): {table}");
    for p in &pairs {
        assert_eq!(p.split, polaris::prefs::Pair::split_for(&p.uid, 0.3));
    }
    assert!(pairs.iter().any(|p| p.split == Split::Heldout) || pairs.len() < 5, "{table}");

    // --elo without the generation files it judged
    let o = polaris(home)
        .args(["prefs", "build", "--out", out.to_str().unwrap(), "--elo", elo.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success() && text(&o).contains("--gens"), "{}", text(&o));
    // no source at all
    let o = polaris(home).args(["prefs", "build", "--out", out.to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("at least one source"), "{}", text(&o));
}
