//! Never a bare abort (issue 14, item 6): a real allocation failure in a trainer (provoked
//! through a test-only variable that makes it request 64 TiB at the start of a step's
//! training pass) ends the run as `failed`, with the step, the micro-batch's row lengths and
//! the plan's figures, in exit.json, the event log and stderr / daemon.log, foreground and
//! detached; `--resume auto` with a changed setting then continues from the last checkpoint.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use polaris::run::exit::{self, ExitKind};
use polaris::run::work::TEST_ALLOCATION_ENV;

const BIN: &str = env!("CARGO_BIN_EXE_polaris-tui");

fn train(state: &Path, out: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.env("POLARIS_STATE_DIR", state).env("RUST_BACKTRACE", "0").env_remove(TEST_ALLOCATION_ENV);
    c.args(["train", "--model", "tiny", "--judge", "offline", "--steps", "3", "--group-size", "2"])
        .args(["--set", "run.prompts_per_step=1", "--set", "run.checkpoint_every=1"])
        .args(["--set", "step.sampling.max_new_tokens=12", "--set", "step.sampling.thinking_budget=4"])
        .arg("--out")
        .arg(out)
        .args(args);
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// What every report of the failure says: where, with what, the plan, what to do.
fn assert_reported(message: &str) {
    for needle in [
        "out of memory at step 2 while training",
        "an allocation of 70368744177664 bytes failed",
        "worker 0's micro-batch: 2 rows of",
        "The memory plan: predicted peak",
        "available on cpu (host)",
        "To use less memory: --set ",
        "--resume auto",
    ] {
        assert!(message.contains(needle), "{needle:?} missing from: {message}");
    }
}

fn error_events(run: &Path) -> Vec<String> {
    common::logged_messages(run)
        .into_iter()
        .filter_map(|(level, text)| (level == polaris::run::event::Level::Error).then_some(text))
        .collect()
}

#[test]
fn an_allocation_failure_in_a_foreground_run_fails_it_with_where_and_what_to_change_then_resume_continues() {
    let (state, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run = dir.path().join("run");
    let o = train(state.path(), &run, &[]).env(TEST_ALLOCATION_ENV, "2").output().unwrap();
    // Rust still aborts (SIGABRT) once the record is written
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(libc::SIGABRT), "{}", text(&o));
    assert!(text(&o).contains("polaris-tui: out of memory at step 2"), "{}", text(&o));
    let e = exit::read(&run).unwrap().expect("exit.json");
    assert_eq!((e.status, e.last_step), (ExitKind::Failed, Some(1)));
    assert_reported(&e.message);
    let errors = error_events(&run);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_reported(&errors[0]);
    let status = polaris::run::status::status(&run).unwrap();
    assert!(status.describe().starts_with("failed: out of memory at step 2"), "{}", status.describe());

    // the advice taken: a changed setting, and the run continues from step 1's checkpoint
    let o = Command::new(BIN)
        .env("POLARIS_STATE_DIR", state.path())
        .env_remove(TEST_ALLOCATION_ENV)
        .args(["train", "--config"])
        .arg(run.join("config.toml"))
        .args([
            "--resume",
            "auto",
            "--set",
            "step.micro_batch_tokens=4096",
            "--set",
            "step.checkpoint_layers=true",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let events = polaris::run::log::read(&run.join("events.jsonl")).unwrap().events;
    let resumed = events.iter().rev().find_map(|e| match &e.kind {
        polaris::run::EventKind::Started { resumed_from_step, config } => {
            Some((*resumed_from_step, config.clone()))
        }
        _ => None,
    });
    let (from, config) = resumed.unwrap();
    assert_eq!(from, Some(1));
    assert_eq!(config["step"]["micro_batch_tokens"], 4096);
    assert_eq!(config["step"]["checkpoint_layers"], true);
    let e = exit::read(&run).unwrap().unwrap();
    assert_eq!((e.status, e.last_step), (ExitKind::Finished, Some(3)));
    assert!(!run.join("work.json").exists(), "a run that ended cleanly keeps no work record");
}

#[test]
fn an_allocation_failure_in_a_detached_run_fails_it_in_exit_json_events_and_daemon_log() {
    let (state, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run = dir.path().join("run");
    let o = train(state.path(), &run, &["--detach"]).env(TEST_ALLOCATION_ENV, "2").output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(120);
    let e = loop {
        if let Some(e) = exit::read(&run).unwrap().filter(|e| e.signal.is_some()) {
            break e;
        }
        assert!(Instant::now() < deadline, "no exit.json from the supervisor");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!((e.status, e.signal), (ExitKind::Failed, Some(libc::SIGABRT)));
    assert_reported(&e.message);
    assert_eq!(error_events(&run).len(), 1);
    // the supervisor writes exit.json, then its line in daemon.log
    let log = loop {
        let log = std::fs::read_to_string(run.join("daemon.log")).unwrap();
        if log.contains("ended:") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(log.contains("ended: failed (killed by signal 6): out of memory at step 2"), "{log}");
    assert_reported(&log);
    let status = polaris::run::status::status(&run).unwrap();
    assert!(
        status.describe().starts_with("failed (killed by signal 6): out of memory"),
        "{}",
        status.describe()
    );
}
