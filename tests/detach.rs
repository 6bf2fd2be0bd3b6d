//! Detached runs with the real binary: `train --detach` returns while the run goes on in a
//! session of its own that outlives its launcher; `stop` ends it with a checkpoint; kill -9
//! of its trainer reads as crashed (signal 9) in exit.json and `runs --json`; the registry
//! finds runs with any `--out` and forgets deleted ones; a foreground run writes exit.json.
//! Runs are tiny (the built-in model, 12 new tokens, groups of 3); waits are for events in
//! the run's files, with generous deadlines only so a broken build fails instead of hanging.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use polaris::run::exit::{self, ExitKind};
use polaris::run::{process, EventKind};

const BIN: &str = env!("CARGO_BIN_EXE_polaris-tui");

/// Where a test keeps its registry and model cache.
struct Home {
    state: tempfile::TempDir,
    cache: tempfile::TempDir,
    runs: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        let t = || tempfile::tempdir().unwrap();
        Self { state: t(), cache: t(), runs: t() }
    }

    fn polaris(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("POLARIS_STATE_DIR", self.state.path())
            .env("POLARIS_CACHE_DIR", self.cache.path())
            .env("RUST_BACKTRACE", "0");
        c
    }

    /// `polaris-tui train` with the tiny settings, then `args`.
    fn train(&self, args: &[&str]) -> Command {
        let mut c = self.polaris();
        c.arg("train").args(tiny()).args(args);
        c
    }

    fn runs_json(&self) -> Vec<serde_json::Value> {
        let o = self.polaris().args(["runs", "--json"]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap().as_array().unwrap().clone()
    }
}

/// The tiny settings and the demo data.
fn tiny() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = common::tiny_cli::TINY.iter().map(Into::into).collect();
    args.extend(["--data".into(), common::tiny_cli::demo_data().into()]);
    args
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Steps logged so far (a log being written is read as far as it is whole).
fn steps(run: &Path) -> usize {
    polaris::run::log::read(&run.join("events.jsonl"))
        .map_or(0, |l| l.events.iter().filter(|e| matches!(e.kind, EventKind::Step(_))).count())
}

/// Waits until `done` holds (polling); panics naming `what` after five minutes.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills a detached run's trainer when the test ends, passed or not, so a failing test
/// leaves no run training in the background.
struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(Some(pid)) = process::read_pid(&self.0) {
            if process::check_ours(pid).is_ok() {
                let _ = process::signal(pid, libc::SIGKILL);
            }
        }
    }
}

fn trainer_pid(run: &Path) -> u32 {
    process::read_pid(run).unwrap().expect("daemon.pid")
}

/// Field `n` (1-based, as in proc(5)) of /proc/PID/stat.
fn proc_stat(pid: u32, n: usize) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // the command name (field 2) is in parentheses and may hold spaces
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(n - 3).unwrap().parse().unwrap()
}

fn entry<'a>(runs: &'a [serde_json::Value], dir: &Path) -> &'a serde_json::Value {
    let want = dir.canonicalize().unwrap();
    runs.iter()
        .find(|r| Path::new(r["path"].as_str().unwrap()) == want)
        .unwrap_or_else(|| panic!("{} not in runs --json: {runs:?}", want.display()))
}

#[test]
fn a_detached_run_outlives_its_launchers_session_and_stops_with_a_checkpoint() {
    let home = Home::new();
    let run = home.runs.path().join("detached");
    let _reaper = Reaper(run.clone());
    // the launcher: a shell in its own process group (a terminal's job), which starts the
    // run and then lingers like a login shell
    let mut launcher = Command::new("sh");
    launcher
        .args(["-c", "\"$@\"; exec sleep 600", "sh"])
        .arg(BIN)
        .arg("train")
        .args(tiny())
        .args(["--steps", "200", "--out", run.to_str().unwrap(), "--detach"])
        .env("POLARIS_STATE_DIR", home.state.path())
        .env("POLARIS_CACHE_DIR", home.cache.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let launcher = launcher.spawn().unwrap();
    let group = launcher.id() as i32;
    wait_for("the detached run's first event", || {
        run.join("events.jsonl").is_file() && run.join("daemon.pid").is_file()
    });
    let pid = trainer_pid(&run);
    // its own session, not the launcher's
    assert_ne!(proc_stat(pid, 6), group as i64, "the trainer is in the launcher's session");
    assert_ne!(proc_stat(pid, 5), group as i64, "the trainer is in the launcher's process group");

    // the terminal closes: its whole job gets SIGHUP, then is killed outright
    std::thread::sleep(Duration::from_millis(500)); // let `train --detach` print and return
    unsafe {
        libc::kill(-group, libc::SIGHUP);
        libc::kill(-group, libc::SIGKILL);
    }
    let out = launcher.wait_with_output().unwrap();
    let said = text(&out);
    let dir = run.canonicalize().unwrap();
    assert!(said.contains(&format!("polaris-tui attach {}", dir.display())), "{said}");
    assert!(said.contains(&format!("polaris-tui stop {}", dir.display())), "{said}");

    // the run goes on: steps keep coming from the same trainer
    let before = steps(&run);
    wait_for("a step after the launcher's session ended", || steps(&run) > before);
    assert!(polaris::pid::alive(pid) && trainer_pid(&run) == pid);
    let listed = home.runs_json();
    assert_eq!(entry(&listed, &run)["status"], "running");
    // a second trainer on a live run's directory is refused
    let o = home.train(&["--out", run.to_str().unwrap(), "--resume", "auto", "--detach"]).output().unwrap();
    assert!(
        !o.status.success() && text(&o).contains(&format!("being trained by process {pid}")),
        "{}",
        text(&o)
    );

    let o = home.polaris().args(["stop", run.to_str().unwrap(), "--timeout", "300"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("stopped at step"), "{}", text(&o));
    let ended = exit::read(&run).unwrap().expect("exit.json");
    assert_eq!((ended.status, ended.pid), (ExitKind::Stopped, pid));
    let last = ended.last_step.expect("a step was logged");
    let saved = polaris::train::checkpoint::latest(&run).expect("a checkpoint");
    assert!(saved.ends_with(format!("step-{last:06}")), "{} for step {last}", saved.display());
    wait_for("the trainer's process to end", || !polaris::pid::alive(pid));
    assert_eq!(entry(&home.runs_json(), &run)["status"], "stopped");

    // a run that is not live is a clear error naming its status
    let o = home.polaris().args(["stop", run.to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("nothing to stop: the run is stopped"), "{}", text(&o));
}

#[test]
fn kill_9_of_a_detached_trainer_reads_as_crashed_with_signal_9() {
    let home = Home::new();
    let run = home.runs.path().join("killed");
    let _reaper = Reaper(run.clone());
    let o = home.train(&["--steps", "200", "--out", run.to_str().unwrap(), "--detach"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let pid = trainer_pid(&run);
    wait_for("a step", || steps(&run) >= 1);
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for("exit.json from the supervisor", || {
        exit::read(&run).ok().flatten().is_some_and(|e| e.pid == pid)
    });
    let e = exit::read(&run).unwrap().unwrap();
    assert_eq!((e.status, e.signal, e.code), (ExitKind::Crashed, Some(9), None));
    let listed = home.runs_json();
    let r = entry(&listed, &run);
    assert_eq!(r["status"], "crashed");
    assert_eq!(r["exit"]["signal"], 9);
    assert!(r["steps"].as_u64().unwrap() >= 1);
    let s = polaris::run::status::status(&run).unwrap();
    assert!(s.describe().starts_with("crashed (killed by signal 9) at step"), "{}", s.describe());
    // and `stop` refuses it, naming why
    let o = home.polaris().args(["stop", run.to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("crashed (killed by signal 9)"), "{}", text(&o));
}

#[test]
fn the_registry_finds_runs_with_any_out_and_forgets_deleted_ones() {
    let home = Home::new();
    let elsewhere = tempfile::tempdir().unwrap();
    // one run by an absolute --out, one by a path relative to another working directory
    let a: PathBuf = home.runs.path().join("a");
    let o = home.train(&["--steps", "1", "--out", a.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o =
        home.train(&["--steps", "1", "--out", "nested/b"]).current_dir(elsewhere.path()).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let b = elsewhere.path().join("nested/b");

    // a foreground run that finishes says so in exit.json
    for run in [&a, &b] {
        let e = exit::read(run).unwrap().expect("exit.json");
        assert_eq!((e.status, e.last_step), (ExitKind::Finished, Some(1)), "{}", run.display());
    }
    let listed = home.runs_json();
    assert_eq!(listed.len(), 2, "{listed:?}");
    // most recent first
    assert_eq!(Path::new(listed[0]["path"].as_str().unwrap()), b.canonicalize().unwrap());
    assert_eq!(entry(&listed, &a)["status"], "finished");
    assert_eq!(entry(&listed, &a)["steps"], 1);

    std::fs::remove_dir_all(&a).unwrap();
    let listed = home.runs_json();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(std::fs::read_dir(home.state.path().join("runs")).unwrap().count(), 1, "the entry was pruned");

    // a detached run that fails at once is reported, with its log's tail, not left behind
    let c = home.runs.path().join("c");
    let missing = home.runs.path().join("no-such-model");
    let o = home
        .train(&["--out", c.to_str().unwrap(), "--model", missing.to_str().unwrap(), "--detach"])
        .output()
        .unwrap();
    let said = text(&o);
    assert!(!o.status.success(), "{said}");
    assert!(said.contains("the run ended at once") && said.contains("no-such-model"), "{said}");
    assert_eq!(exit::read(&c).unwrap().unwrap().status, ExitKind::Failed);
}
