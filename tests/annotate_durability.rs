//! A kill at any moment loses nothing acknowledged. A child process (this test binary
//! again) drives the real screen and store through a scripted session, printing `ack N`
//! after key N returns, which is when the screen has moved on. The parent SIGKILLs it
//! while it handles the next key, resumes from the file, and checks the resumed state is
//! the acknowledged one (or one key later, if that key's record reached the file before
//! the kill), then finishes the script and compares with an uninterrupted run.
//!
//! A kill ends the process, not the machine: this proves the write discipline (whole
//! lines, append only, resume from the file), not that the disk keeps fsynced data
//! through a power cut, which no test here can show.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::study::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use polaris::annotate::blinding::Presentation;
use polaris::annotate::screen::{handle_key, AnnotateScreen};
use polaris::annotate::{Judged, Ledger, Session};

const CHILD_STUDY: &str = "POLARIS_TEST_ANNOTATE_CHILD_STUDY";
const TEST_NAME: &str = "kill_at_any_moment_loses_nothing_acknowledged";
const ITEMS: usize = 8;
const SEED: u64 = 9;
const ANNOTATOR: &str = "alice";

/// Verdicts, skips, undos and a comment typed in the editor (`\x1b` is Esc).
fn script() -> Vec<KeyEvent> {
    "12cgood pacing\x1b=suu1s2=1u2cdull\x1b1=s12=12=q"
        .chars()
        .map(|c| match c {
            '\x1b' => KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
            c => KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE),
        })
        .collect()
}

/// What a resumed session must reproduce: standing judgments, the item on screen, skips.
type Summary = (Vec<Judged>, Option<Presentation>, Vec<u32>);

fn summary(l: &Ledger) -> Summary {
    (l.judged().to_vec(), l.current().cloned(), l.order.iter().map(|p| l.skips(&p.prompt_uid)).collect())
}

fn open(dir: &Path) -> AnnotateScreen {
    AnnotateScreen::new(Session::open(dir, ANNOTATOR, Some(SEED)).unwrap())
}

/// The state after each prefix of the script, from an uninterrupted in-process run.
fn expected(tmp: &Path) -> Vec<Summary> {
    let mut screen = open(&make_study(tmp, ITEMS));
    let mut states = vec![summary(&screen.session.ledger)];
    for key in script() {
        handle_key(&mut screen, key);
        states.push(summary(&screen.session.ledger));
    }
    states
}

/// The child: one key per line on stdin, `ack N` once key N is handled.
fn child(dir: &str) {
    let mut screen = open(Path::new(dir));
    let mut go = std::io::stdin().lock().lines();
    let mut out = std::io::stdout().lock();
    for (i, key) in script().into_iter().enumerate() {
        if go.next().is_none() {
            return;
        }
        handle_key(&mut screen, key);
        writeln!(out, "ack {}", i + 1).unwrap();
        out.flush().unwrap();
    }
    // Wait to be killed.
    while go.next().is_some() {}
}

fn ack(line: &str) -> Option<usize> {
    line.split("ack ").nth(1)?.trim().parse().ok()
}

#[test]
fn kill_at_any_moment_loses_nothing_acknowledged() {
    if let Ok(dir) = std::env::var(CHILD_STUDY) {
        return child(&dir);
    }
    let tmp = tempfile::tempdir().unwrap();
    let expected = expected(&tmp.path().join("reference"));
    let keys = script();
    assert_eq!(expected.last().unwrap().0.len(), ITEMS, "the script judges every item");
    for kill_after in 0..keys.len() {
        let round = tmp.path().join(format!("round-{kill_after}"));
        let dir = make_study(&round, ITEMS);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_STUDY, &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = 0;
        while acked < kill_after {
            writeln!(stdin, "go").unwrap();
            acked = lines.by_ref().map_while(Result::ok).find_map(|l| ack(&l)).expect("the child acks");
        }
        // Let the next key start, then kill at some point while it is handled; the wait
        // varies the moment, it asserts nothing about time.
        writeln!(stdin, "go").unwrap();
        std::thread::sleep(std::time::Duration::from_micros((kill_after as u64 % 5) * 150));
        child.kill().unwrap();
        child.wait().unwrap();
        acked = lines.map_while(Result::ok).filter_map(|l| ack(&l)).fold(acked, usize::max);

        let mut screen = open(&dir);
        let resumed = summary(&screen.session.ledger);
        let at = if resumed == expected[acked] {
            acked
        } else if acked < keys.len() && resumed == expected[acked + 1] {
            acked + 1
        } else {
            panic!(
                "killed after ack {acked}: resumed state {resumed:?}\nis neither {:?}\nnor the next",
                expected[acked]
            );
        };
        // Keys since the last saved change (an unsaved comment is retyped), then the rest.
        let restart = (1..=at).rev().find(|&i| expected[i] != expected[i - 1]).unwrap_or(0);
        for key in &keys[restart..] {
            handle_key(&mut screen, *key);
        }
        assert_eq!(summary(&screen.session.ledger), *expected.last().unwrap(), "round {kill_after}");
    }
}
