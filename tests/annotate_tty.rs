//! The real `polaris-tui annotate` under a pseudo-terminal (util-linux `script`): keys
//! become saved judgments, a SIGKILL loses nothing acknowledged, the session resumes
//! where it stopped, `q` restores the terminal, and no system name is ever printed.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::study::*;
use polaris::annotate::store::read_lines;
use polaris::annotate::{Record, Session, Verdict};

/// Only against a hang: a step that never happens fails the test instead of blocking it.
const HANG_GUARD: Duration = Duration::from_secs(120);

struct Tty {
    child: Child,
    keys: ChildStdin,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl Tty {
    fn start(study: &Path) -> Self {
        let command = format!(
            "stty rows 30 cols 100; exec {} annotate --annotator alice --out {}",
            env!("CARGO_BIN_EXE_polaris-tui"),
            study.display()
        );
        let mut child = Command::new("script")
            .args(["-qfec", &command, "/dev/null"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("this test needs `script` (util-linux) to give the binary a terminal");
        let keys = child.stdin.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let screen = Arc::new(Mutex::new(Vec::new()));
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self { child, keys, screen }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    fn press(&mut self, key: &str) {
        self.keys.write_all(key.as_bytes()).unwrap();
        self.keys.flush().unwrap();
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < HANG_GUARD, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn judgments(study: &Path) -> Vec<Verdict> {
    let path = study.join("judgments-alice.jsonl");
    let lines = if path.exists() { read_lines(&path).unwrap() } else { vec![] };
    lines
        .into_iter()
        .filter_map(|l| match l.record {
            Record::Judgment { verdict, .. } => Some(verdict),
            _ => None,
        })
        .collect()
}

#[test]
fn the_binary_saves_each_key_survives_a_kill_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let study = make_study(tmp.path(), 3);

    let mut tty = Tty::start(&study);
    wait_for("the first screen", || tty.output().contains("0 / 3 judged"));
    tty.press("1");
    wait_for("the first judgment on disk", || judgments(&study).len() == 1);
    tty.press("=");
    wait_for("the second judgment on disk", || judgments(&study).len() == 2);
    // SIGKILL the annotator (the process `script` runs), mid-session.
    let pid = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", tty.child.id())).unwrap();
    let pid = pid.split_whitespace().next().expect("script runs the binary").to_string();
    assert!(Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    tty.child.wait().unwrap();
    let first = tty.output();

    let mut tty = Tty::start(&study);
    wait_for("the resumed screen", || tty.output().contains("2 / 3 judged"));
    tty.press("2");
    wait_for("the third judgment on disk", || judgments(&study).len() == 3);
    tty.press("q");
    let status = tty.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let second = tty.output();
    assert!(second.contains("\x1b[?1049l"), "q leaves the alternate screen");
    let saved_in = format!("3 of 3 judged, saved in {}", study.join("judgments-alice.jsonl").display());
    assert!(second.trim_end().ends_with(&saved_in), "the summary after the restored terminal");

    assert_eq!(judgments(&study), [Verdict::Left, Verdict::Tie, Verdict::Right]);
    assert_eq!(Session::open(&study, "alice", None).unwrap().ledger.done(), 3);
    for name in [SYSTEM_A, SYSTEM_B] {
        assert!(!first.contains(name) && !second.contains(name), "`{name}` was printed");
    }
}
