//! Status that does not lie: two starts on one run directory train once, and the refused one
//! writes nothing there; a daemon.pid whose pid now belongs to another live process reads as
//! not running, and `stop` will not signal that process.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::tiny_cli::{polaris, text, train};
use polaris::run::exit::{self, ExitKind};
use polaris::run::process::{self, Identity};
use polaris::run::status::{status, Phase};
use polaris::run::{EventKind, EventLog, RunDir};

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills a child still running when the test ends, passed or not.
struct Reap(Vec<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn two_simultaneous_starts_on_one_out_train_once_and_the_refused_one_writes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    // the tiny model built into the cache first, so both starts find it
    let warm = runs.path().join("warm");
    let o = train(home.path(), &["--steps", "1", "--out", warm.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));

    let run = runs.path().join("shared");
    let start = || {
        train(home.path(), &["--steps", "500", "--out", run.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut both = Reap(vec![start(), start()]);
    // one of them is refused at once; the other trains
    let mut refused = None;
    wait_for("one start to be refused", || {
        refused = both.0.iter_mut().position(|c| c.try_wait().unwrap().is_some());
        refused.is_some()
    });
    let loser = both.0.remove(refused.unwrap());
    let loser_pid = loser.id();
    let o = loser.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{said}");
    let winner = both.0[0].id();
    assert!(both.0[0].try_wait().unwrap().is_none(), "the other start trains on");
    // the refused start left no trace in the directory
    assert_eq!(exit::read(&run).unwrap(), None, "the refused start wrote no exit.json: {said}");
    assert_ne!(process::read_pid(&run).unwrap(), Some(loser_pid), "the refused start wrote no daemon.pid");
    assert!(said.contains("is being trained by process") || said.contains("is being claimed"), "{said}");

    wait_for("a step of the run that won", || common::logged_steps(&run).len() >= 2);
    assert_eq!(process::read_pid(&run).unwrap(), Some(winner), "daemon.pid is the trainer's");
    assert_eq!(exit::read(&run).unwrap(), None, "no exit.json while the run trains");
    let st = status(&run).unwrap();
    assert_eq!((st.status, st.pid), (Phase::Running, Some(winner)));
    assert_ne!(winner, loser_pid);

    // and it ends as its own: stopped, by its own pid (the child reaped here as it ends, or
    // `stop` would wait on a zombie)
    let stop = polaris(home.path()).args(["stop", run.to_str().unwrap()]).spawn().unwrap();
    let ended = both.0.remove(0).wait().unwrap();
    let o = stop.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(ended.code(), Some(0), "a stopped foreground run exits 0");
    let e = exit::read(&run).unwrap().unwrap();
    assert_eq!((e.status, e.pid), (ExitKind::Stopped, winner));
}

/// A run directory whose trainer died without a word at step 3 (kill -9, no supervisor).
fn crashed_run(dir: &Path) {
    let mut log = EventLog::open(&dir.join("events.jsonl")).unwrap();
    log.append(EventKind::Started { config: serde_json::json!({}), resumed_from_step: None }).unwrap();
    for step in 1..=3 {
        log.append(EventKind::Step(Box::new(common::run_fixture::step_stats(step)))).unwrap();
    }
}

#[test]
fn a_daemon_pid_reused_by_a_live_unrelated_process_is_not_running_and_is_not_signalled() {
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // the unrelated process: `sleep`, under a name that even looks like ours
    let fake = tmp.path().join("polaris-tui");
    std::fs::copy("/bin/sleep", &fake).unwrap();
    let plain = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let lookalike = std::process::Command::new(&fake).arg("60").spawn().unwrap();
    let (plain_pid, lookalike_pid) = (plain.id(), lookalike.id());
    let mut reap = Reap(vec![plain, lookalike]);

    // the trainer recorded pid P with its start time; P now belongs to the lookalike, which
    // started later
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    crashed_run(&run);
    let now = Identity::of(lookalike_pid).unwrap();
    let recorded = Identity { start_ticks: now.start_ticks - 1, ..now };
    std::fs::write(RunDir::at(&run).trainer_identity(), serde_json::to_string(&recorded).unwrap()).unwrap();
    std::fs::write(RunDir::at(&run).pid(), format!("{lookalike_pid}\n")).unwrap();
    let st = status(&run).unwrap();
    assert_eq!(st.status, Phase::Crashed, "{}", st.describe());
    let o = polaris(home.path()).args(["stop", run.to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("nothing to stop: the run is crashed"), "{}", text(&o));
    // the same when it asks the process itself (a run that still reads as live by its log)
    assert!(process::check_trainer(&run, lookalike_pid).unwrap_err().contains("pid was reused"));

    // a daemon.pid from before identities were recorded: a live non-polaris process is not it
    let old = tmp.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    crashed_run(&old);
    std::fs::write(RunDir::at(&old).pid(), format!("{plain_pid}\n")).unwrap();
    assert_eq!(status(&old).unwrap().status, Phase::Crashed);
    let o = polaris(home.path()).args(["stop", old.to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));

    std::thread::sleep(Duration::from_millis(200));
    assert!(reap.0.iter_mut().all(|c| c.try_wait().unwrap().is_none()), "neither process was signalled");
    assert_eq!(process::check_ours(lookalike_pid), Ok(()), "the lookalike passes a check by name alone");
}
