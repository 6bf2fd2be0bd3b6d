//! Sessions and the judgment store: append-only, resumable, locked, blinded, and read
//! back by the report.

mod common;

use std::io::Write;

use common::study::*;
use polaris::annotate::store::read_lines;
use polaris::annotate::{Record, Session, Study, Verdict};
use polaris::eval::human::report::HumanReport;

fn bytes(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn judgments_are_appended_never_rewritten_and_resume_where_left() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_study(tmp.path(), 6);
    let mut s = Session::open(&dir, "alice", Some(42)).unwrap();
    let path = s.judgments_path().to_path_buf();
    let mut before = bytes(&path);
    let first = s.current().unwrap().0.prompt_uid.clone();
    let mut step = |s: &mut Session, what: &str| {
        match what {
            "left" => s.judge(Verdict::Left, Some("vivid".into())).unwrap(),
            "tie" => s.judge(Verdict::Tie, None).unwrap(),
            "skip" => s.skip().unwrap(),
            "undo" => assert!(s.undo().unwrap()),
            _ => unreachable!(),
        }
        let after = bytes(&path);
        assert!(after.len() > before.len() && after.starts_with(&before), "{what} must only append");
        before = after;
    };
    step(&mut s, "left");
    let second = s.current().unwrap().0.prompt_uid.clone();
    assert_ne!(first, second);
    step(&mut s, "skip");
    let third = s.current().unwrap().0.prompt_uid.clone();
    step(&mut s, "tie");
    step(&mut s, "undo");
    assert_eq!(s.current().unwrap().0.prompt_uid, third, "undo brings the item back");
    assert_eq!(s.ledger.done(), 1);
    let lines = read_lines(&path).unwrap();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| match &l.record {
            Record::Blinding { .. } => "blinding",
            Record::Judgment { .. } => "judgment",
            Record::Skip { .. } => "skip",
            Record::Undo { .. } => "undo",
            Record::SealedTornLine { .. } => "sealed",
        })
        .collect();
    assert_eq!(kinds, ["blinding", "judgment", "skip", "judgment", "undo"]);
    let Record::Judgment { comment, prompt_uid, .. } = &lines[1].record else { panic!() };
    assert_eq!((comment.as_deref(), prompt_uid.as_str()), (Some("vivid"), first.as_str()));

    let order = s.ledger.order.clone();
    drop(s);
    let s = Session::open(&dir, "alice", None).unwrap();
    assert_eq!(s.ledger.order, order, "the recorded blinding, not a new draw");
    assert_eq!(s.ledger.seed, 42);
    assert_eq!(s.ledger.done(), 1);
    assert_eq!(s.current().unwrap().0.prompt_uid, third, "resumes on the undone item");
    assert_eq!(s.ledger.skips(&second), 1);
    drop(s);
    let err = Session::open(&dir, "alice", Some(7)).err().unwrap().to_string();
    assert!(err.contains("seed 42") && err.contains("drop --seed"), "{err}");
}

#[test]
fn a_skipped_item_comes_back_after_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_study(tmp.path(), 3);
    let mut s = Session::open(&dir, "bob", None).unwrap();
    let skipped = s.current().unwrap().0.prompt_uid.clone();
    s.skip().unwrap();
    s.judge(Verdict::Left, None).unwrap();
    s.judge(Verdict::Right, None).unwrap();
    assert_eq!(s.current().unwrap().0.prompt_uid, skipped);
    s.judge(Verdict::Tie, None).unwrap();
    assert!(s.current().is_none());
    assert_eq!((s.ledger.done(), s.ledger.total()), (3, 3));
    assert!(s.judge(Verdict::Tie, None).is_err(), "nothing left to judge");
}

#[test]
fn blinding_is_seeded_per_annotator_and_balances_sides() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_study(tmp.path(), 40);
    let alice = Session::open(&dir, "alice", None).unwrap().ledger.order;
    let bob = Session::open(&dir, "bob", None).unwrap().ledger.order;
    assert_ne!(alice, bob, "each annotator their own order");
    let uids = |o: &[polaris::annotate::blinding::Presentation]| -> Vec<String> {
        let mut v: Vec<String> = o.iter().map(|p| p.prompt_uid.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(uids(&alice), uids(&bob), "the same items");
    let study = Study::load(&dir).unwrap();
    assert_ne!(
        alice.iter().map(|p| &p.prompt_uid).collect::<Vec<_>>(),
        study.items.iter().map(|i| &i.prompt_uid).collect::<Vec<_>>(),
        "shuffled"
    );
    // 40 fair coins: P(fewer than 8 on one side) is about 1e-4 for a fixed seed, and the
    // seed is fixed, so this cannot flake; it catches a constant side.
    let a_left = alice.iter().filter(|p| p.left == SYSTEM_A).count();
    assert!((8..=32).contains(&a_left), "A on the left {a_left} of 40 times");
    let again =
        polaris::annotate::blinding::draw(&study.items, polaris::annotate::blinding::seed_for("alice"));
    assert_eq!(again, alice, "reproducible from the recorded seed");
}

#[test]
fn a_second_session_of_the_same_annotator_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_study(tmp.path(), 2);
    let _open = Session::open(&dir, "alice", None).unwrap();
    let err = Session::open(&dir, "alice", None).err().unwrap().to_string();
    assert!(err.contains("another annotate session"), "{err}");
    assert!(Session::open(&dir, "bob", None).is_ok(), "other annotators share the folder");
}

#[test]
fn a_torn_last_line_is_sealed_and_skipped_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_study(tmp.path(), 4);
    let mut s = Session::open(&dir, "alice", None).unwrap();
    s.judge(Verdict::Left, None).unwrap();
    let path = s.judgments_path().to_path_buf();
    let next = s.current().unwrap().0.clone();
    drop(s);
    // A crash in the middle of a write: a whole record but no newline (never acknowledged).
    let torn = serde_json::to_string(&Record::judgment(&next, Verdict::Right, None)).unwrap();
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(torn.as_bytes()).unwrap();
    assert_eq!(read_lines(&path).unwrap().len(), 2, "a reader leaves the torn tail out");

    let mut s = Session::open(&dir, "alice", None).unwrap();
    assert_eq!(s.ledger.done(), 1, "the torn judgment was never acknowledged");
    assert_eq!(s.current().unwrap().0, &next);
    s.judge(Verdict::Tie, None).unwrap();
    drop(s);
    let s = Session::open(&dir, "alice", None).unwrap();
    assert_eq!(s.ledger.done(), 2);
    assert_eq!(s.ledger.judged()[1].verdict, Verdict::Tie);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("{torn}\n")), "the torn bytes stay where they were");
    assert!(text.contains("sealed_torn_line"));
}

#[test]
fn a_damaged_line_is_an_error_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_study(tmp.path(), 3);
    let mut s = Session::open(&dir, "alice", None).unwrap();
    s.judge(Verdict::Left, None).unwrap();
    let path = s.judgments_path().to_path_buf();
    drop(s);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.insert_str(text.find('\n').unwrap() + 1, "{\"kind\": \"judgement\"}\n");
    std::fs::write(&path, text).unwrap();
    let err = format!("{:#}", Session::open(&dir, "alice", None).err().unwrap());
    assert!(err.contains(&format!("{}:2:", path.display())), "{err}");
}

/// Judges every item as `verdicts` says, in system terms (A, B or tie).
fn judge_all(dir: &std::path::Path, annotator: &str, verdicts: &[(&str, &str)]) {
    let mut s = Session::open(dir, annotator, None).unwrap();
    while let Some((p, _)) = s.current() {
        let want = verdicts.iter().find(|(uid, _)| *uid == p.prompt_uid).expect("a verdict for every item").1;
        let verdict = match want {
            "tie" => Verdict::Tie,
            "A" if p.left == SYSTEM_A => Verdict::Left,
            "B" if p.left == SYSTEM_B => Verdict::Left,
            _ => Verdict::Right,
        };
        s.judge(verdict, None).unwrap();
    }
}

#[test]
fn the_report_unblinds_and_matches_hand_computed_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = make_study(tmp.path(), 4);
    // alice: A, A, B, tie -> (1 + 1 + 0 + 0.5) / 4 = 0.625
    judge_all(&dir, "alice", &[("p00", "A"), ("p01", "A"), ("p02", "B"), ("p03", "tie")]);
    // bob: A, B, B, A -> 2 / 4 = 0.5
    judge_all(&dir, "bob", &[("p00", "A"), ("p01", "B"), ("p02", "B"), ("p03", "A")]);
    let r = HumanReport::from_study(&dir, 1000, 0).unwrap();
    assert_eq!((r.system_a.as_str(), r.system_b.as_str()), (SYSTEM_A, SYSTEM_B));
    let rows: Vec<(&str, usize, usize, usize, usize, f64)> = r
        .win_rates
        .iter()
        .map(|w| (w.scope.as_str(), w.judgments, w.a_wins, w.b_wins, w.ties, w.win_rate))
        .collect();
    // Pooled: 4 wins, 3 losses, 1 tie of 8 -> 4.5 / 8 = 0.5625.
    assert_eq!(
        rows,
        [("all", 8, 4, 3, 1, 0.5625), ("alice", 4, 2, 1, 1, 0.625), ("bob", 4, 2, 2, 0, 0.5)],
        "exact: sums of halves"
    );
    assert_eq!(r.win_rates[0].prompts, 4);
    let a = &r.agreement[0];
    assert_eq!(a.annotators, ["alice".to_string(), "bob".to_string()]);
    // Agree on p00 and p02 of 4; without ties (p03 dropped) 2 of 3.
    assert_eq!((a.shared, a.raw_with_ties, a.shared_without_ties), (4, Some(0.5), 3));
    assert!((a.raw_without_ties.unwrap() - 2.0 / 3.0).abs() < 1e-12);
    // Labels alice A,A,B,T and bob A,B,B,A: p_o = 1/2; margins alice A 2/4, B 1/4, T 1/4,
    // bob A 2/4, B 2/4, so p_e = 1/4 + 1/8 = 3/8 and kappa = (1/2 - 3/8) / (5/8) = 0.2.
    assert!((a.cohens_kappa.unwrap() - 0.2).abs() < 1e-12);
    let again = HumanReport::from_study(&dir, 1000, 0).unwrap();
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        serde_json::to_string(&again).unwrap(),
        "a report is reproducible"
    );
}
