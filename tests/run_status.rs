//! A run's status from its directory (`run::status`): the event log, the liveness of the
//! process in daemon.pid, and exit.json; the TUI's status bar saying it; the registry's order.

mod common;

use std::path::Path;

use polaris::run::event::Level;
use polaris::run::exit::{self, Exit, ExitKind};
use polaris::run::status::{status, Phase};
use polaris::run::{process, EventKind, EventLog};
use polaris::tui::{ui, Action, App, DirLink};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// A log with a start and `steps` steps, then `more`.
fn write_log(dir: &Path, steps: usize, more: Vec<EventKind>) {
    let mut log = EventLog::open(&dir.join("events.jsonl")).unwrap();
    log.append(EventKind::Started { config: serde_json::json!({}), resumed_from_step: None }).unwrap();
    for step in 1..=steps {
        log.append(EventKind::Step(Box::new(common::run_fixture::step_stats(step)))).unwrap();
    }
    for kind in more {
        log.append(kind).unwrap();
    }
}

/// The pid of a process that has ended (and been reaped).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn a_live_process_is_running_or_paused_as_its_log_says() {
    let tmp = tempfile::tempdir().unwrap();
    let me = std::process::id();
    process::write_pid(tmp.path(), me).unwrap();
    write_log(tmp.path(), 3, vec![EventKind::Paused { step: 3 }]);
    let s = status(tmp.path()).unwrap();
    assert_eq!((s.status, s.steps, s.pid), (Phase::Paused, 3, Some(me)));
    let want = common::run_fixture::step_stats(3).policy_reward_mean;
    assert_eq!(s.last_reward, Some(want), "the newest step's reward, as logged (no arithmetic)");

    let mut log = EventLog::open(&tmp.path().join("events.jsonl")).unwrap();
    log.append(EventKind::Resumed { step: 3 }).unwrap();
    log.append(EventKind::Message { level: Level::Info, text: "x".into() }).unwrap();
    assert_eq!(status(tmp.path()).unwrap().status, Phase::Running);

    // an exit.json left by an earlier process in the same directory is not this one's
    exit::write(tmp.path(), &Exit::new(ExitKind::Finished, dead_pid(), Some(1), String::new())).unwrap();
    assert_eq!(status(tmp.path()).unwrap().status, Phase::Running);
}

#[test]
fn an_exit_json_says_how_the_process_ended() {
    let tmp = tempfile::tempdir().unwrap();
    let pid = dead_pid();
    process::write_pid(tmp.path(), pid).unwrap();
    write_log(tmp.path(), 2, vec![EventKind::Finished { step: 2, reason: "finished".into() }]);
    exit::write(tmp.path(), &Exit::new(ExitKind::Finished, pid, Some(2), String::new())).unwrap();
    let s = status(tmp.path()).unwrap();
    assert_eq!(s.status, Phase::Finished);
    assert_eq!(s.describe(), "finished at step 2");

    // kill -9 seen by the supervisor
    let tmp = tempfile::tempdir().unwrap();
    process::write_pid(tmp.path(), pid).unwrap();
    write_log(tmp.path(), 12, vec![]);
    let killed = Exit { signal: Some(9), ..Exit::new(ExitKind::Crashed, pid, Some(12), String::new()) };
    exit::write(tmp.path(), &killed).unwrap();
    let s = status(tmp.path()).unwrap();
    assert_eq!(s.status, Phase::Crashed);
    assert_eq!(s.describe(), "crashed (killed by signal 9) at step 12");
    assert_eq!(exit::read(tmp.path()).unwrap(), Some(killed), "exit.json reads back as written");

    // an error of the trainer's own
    let failed = Exit { code: Some(1), ..Exit::new(ExitKind::Failed, pid, Some(12), "no such model".into()) };
    exit::write(tmp.path(), &failed).unwrap();
    assert_eq!(status(tmp.path()).unwrap().describe(), "failed (exit code 1): no such model at step 12");
}

#[test]
fn a_dead_process_without_a_clean_ending_is_crashed() {
    let tmp = tempfile::tempdir().unwrap();
    process::write_pid(tmp.path(), dead_pid()).unwrap();
    write_log(tmp.path(), 5, vec![EventKind::Paused { step: 5 }]);
    let s = status(tmp.path()).unwrap();
    assert_eq!((s.status, s.steps), (Phase::Crashed, 5));
    assert_eq!(s.describe(), "crashed (the process is gone without an exit status) at step 5");

    // an ending the log recorded stands even without exit.json (it died after logging it)
    let mut log = EventLog::open(&tmp.path().join("events.jsonl")).unwrap();
    log.append(EventKind::Finished { step: 5, reason: "interrupted".into() }).unwrap();
    assert_eq!(status(tmp.path()).unwrap().status, Phase::Stopped);

    // no daemon.pid: a directory from before runs recorded their process
    let old = tempfile::tempdir().unwrap();
    write_log(old.path(), 1, vec![]);
    assert_eq!(status(old.path()).unwrap().status, Phase::Unknown);
}

#[test]
fn bad_status_files_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("daemon.pid"), "twelve\n").unwrap();
    let e = format!("{:#}", status(tmp.path()).unwrap_err());
    assert!(e.contains("daemon.pid") && e.contains("not a process id"), "{e}");
    std::fs::write(tmp.path().join("daemon.pid"), "1\n").unwrap();
    std::fs::write(tmp.path().join("exit.json"), "{\"status\": \"exploded\"}").unwrap();
    let e = format!("{:#}", status(tmp.path()).unwrap_err());
    assert!(e.contains("exit.json") && e.contains("not an exit status"), "{e}");
}

/// The bottom line of the TUI on `dir`, 80 columns wide.
fn status_line(dir: &Path) -> String {
    let mut app =
        App::new(dir, Box::new(DirLink::new(dir, None)), vec![polaris::tui::theme::Theme::mono()], 0);
    app.update(Action::Tick);
    let mut term = Terminal::new(TestBackend::new(80, 24)).unwrap();
    term.draw(|f| ui::draw(f, &app.state)).unwrap();
    let buf = term.backend().buffer();
    (0..80).map(|x| buf[(x, 23)].symbol()).collect::<String>()
}

#[test]
fn the_tui_status_bar_says_how_a_dead_run_ended() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::run_fixture::write_run(tmp.path());
    // a log without daemon.pid is shown as the log says
    assert!(status_line(&dir).contains("PAUSED step 40"), "{}", status_line(&dir));

    let pid = dead_pid();
    process::write_pid(&dir, pid).unwrap();
    assert!(status_line(&dir).contains("crashed (the process is gone"), "{}", status_line(&dir));
    let killed = Exit { signal: Some(9), ..Exit::new(ExitKind::Crashed, pid, Some(40), String::new()) };
    exit::write(&dir, &killed).unwrap();
    let line = status_line(&dir);
    assert!(line.contains("✖ crashed (killed by signal 9) at step 40"), "{line}");

    // alive: the log's own state again
    process::write_pid(&dir, std::process::id()).unwrap();
    assert!(status_line(&dir).contains("PAUSED step 40"), "{}", status_line(&dir));
}

#[test]
fn the_registry_lists_runs_newest_first_and_finds_the_newest_live_one() {
    // the only test in this file that reads the registry, so setting the variable here is safe
    let state = tempfile::tempdir().unwrap();
    std::env::set_var("POLARIS_STATE_DIR", state.path());
    let runs = tempfile::tempdir().unwrap();
    let (live, ended) = (runs.path().join("live"), runs.path().join("ended"));
    for (dir, pid) in [(&live, std::process::id()), (&ended, dead_pid())] {
        std::fs::create_dir_all(dir).unwrap();
        process::write_pid(dir, pid).unwrap();
        polaris::run::registry::register(dir).unwrap();
    }
    write_log(&live, 1, vec![]);
    // the ended run logged last, so it lists first
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_log(&ended, 2, vec![EventKind::Finished { step: 2, reason: "finished".into() }]);
    polaris::run::registry::register(&ended).unwrap(); // registering again is harmless
    let (listed, problems) = polaris::run::registry::list().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let paths: Vec<_> = listed.iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, vec![ended.canonicalize().unwrap(), live.canonicalize().unwrap()]);
    assert_eq!(polaris::run::most_recent_live(), Some(live.canonicalize().unwrap()));

    exit::write(&live, &Exit::new(ExitKind::Stopped, std::process::id(), Some(1), String::new())).unwrap();
    assert_eq!(polaris::run::most_recent_live(), None, "no run is live once it has ended");
}
