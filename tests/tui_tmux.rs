//! End to end: the real binary in a tmux pane (`.ci/run` installs tmux) opens a run directory,
//! every tab is selected by its key and read back with capture-pane, the window is resized to
//! 80x24 and back, and `q` gives the terminal back (the pane leaves the alternate screen and
//! the shell sees exit status 0). Waits poll the pane for text (up to 20 s each: a loaded
//! machine is slow to start a process); nothing here asserts on time.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "e2e"])
    }
    /// Polls the pane until it shows `text`; the screen it last saw when it never does.
    fn wait_for(&self, text: &str) -> Result<String, String> {
        self.wait_for_secs(text, 20)
    }
    fn wait_for_secs(&self, text: &str, secs: u64) -> Result<String, String> {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return Ok(s);
            }
            if start.elapsed() > Duration::from_secs(secs) {
                return Err(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    fn expect(&self, text: &str) -> String {
        self.wait_for(text).unwrap_or_else(|s| panic!("the pane never showed {text:?}; it shows:\n{s}"))
    }
    fn keys(&self, keys: &str) {
        self.cmd(&["send-keys", "-t", "e2e", keys]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // our own server only (its own socket)
        let _ = Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").output();
    }
}

#[test]
fn the_binary_opens_a_run_switches_every_tab_and_restores_the_terminal() {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()),
        "tmux is missing: install it (apt-get install tmux); .ci/run does"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::run_fixture::write_run(tmp.path());
    let bin = env!("CARGO_BIN_EXE_polaris-tui");
    let tmux = Tmux { socket: format!("polaris-e2e-{}", std::process::id()) };
    let shell_cmd = format!("{} open {}; echo EXIT=$?; sleep 600", quote(Path::new(bin)), quote(&dir));
    tmux.cmd(&["new-session", "-d", "-s", "e2e", "-x", "120", "-y", "32", &shell_cmd]);

    tmux.expect("1 Dashboard");
    tmux.expect("Reward · steps 1–40");
    let tabs = [
        ("2", "Composite score"),
        ("3", "HUMAN REFERENCE"),
        ("5", "Settings ↑↓ +-"),
        ("6", "polaris-tui annotate"),
        ("7", "No evaluations of this run yet"),
        ("1", "Reward · steps"),
    ];
    for (key, shows) in tabs {
        tmux.keys(key);
        tmux.expect(shows);
        if key == "3" {
            // GPUs: the devices where NVML is, else the host
            tmux.keys("4");
            if tmux.wait_for("CPU · ").is_err() {
                tmux.expect("GPU 0 · ");
            }
        }
    }
    tmux.keys("Tab");
    tmux.expect("Composite score");
    tmux.keys("?");
    tmux.expect("Keys (Esc closes)");
    tmux.keys("Escape");
    // small and back: the views redraw at the new size
    tmux.cmd(&["resize-window", "-t", "e2e", "-x", "80", "-y", "24"]);
    let small = tmux.expect("Composite score");
    assert!(small.lines().all(|l| l.chars().count() <= 80), "{small}");
    tmux.cmd(&["resize-window", "-t", "e2e", "-x", "160", "-y", "45"]);
    tmux.keys("1");
    tmux.expect("Reward · steps");

    tmux.keys("q");
    let after = tmux.expect("EXIT=0");
    assert!(!after.contains("1 Dashboard"), "the TUI's screen is gone after quitting:\n{after}");
    let alternate = tmux.cmd(&["display-message", "-p", "-t", "e2e", "#{alternate_on}"]);
    assert_eq!(alternate.trim(), "0", "the pane left the alternate screen");
}

/// The Annotate tab in the real binary: a verdict is on disk once the screen moves on, Tab
/// still switches tabs, `q` leaves the study and a second `q` quits.
#[test]
fn the_annotate_tab_saves_a_verdict_and_q_leaves_before_it_quits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::run_fixture::write_run(tmp.path());
    let bin = env!("CARGO_BIN_EXE_polaris-tui");
    let tmux = Tmux { socket: format!("polaris-e2e-annot-{}", std::process::id()) };
    let shell_cmd =
        format!("{} open {} --annotator e2e; echo EXIT=$?; sleep 600", quote(Path::new(bin)), quote(&dir));
    tmux.cmd(&["new-session", "-d", "-s", "e2e", "-x", "120", "-y", "32", &shell_cmd]);
    tmux.expect("1 Dashboard");
    tmux.keys("6");
    tmux.expect("Does the policy beat");
    tmux.keys("Enter");
    tmux.expect("0 / 3 judged");
    tmux.keys("1");
    tmux.expect("1 / 3 judged");
    let file = dir.join("annotate/policy-vs-human/judgments-e2e.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains("\"kind\":\"judgment\"")).count(), 1, "{text}");
    // Annotate's next tab is Eval (this run has no evaluations)
    tmux.keys("Tab");
    tmux.expect("No evaluations of this run yet");
    tmux.keys("BTab");
    tmux.expect("1 / 3 judged");
    tmux.keys("q");
    tmux.expect("Does the policy beat");
    tmux.keys("q");
    tmux.expect("EXIT=0");
}

#[test]
fn the_bare_command_opens_the_demo_run_in_the_tui_and_quitting_checkpoints_it() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_polaris-tui");
    let tmux = Tmux { socket: format!("polaris-demo-{}", std::process::id()) };
    let shell_cmd = format!(
        "cd {0} && POLARIS_CACHE_DIR={1} POLARIS_STATE_DIR={1} {2}; echo EXIT=$?; sleep 600",
        quote(work.path()),
        quote(cache.path()),
        quote(Path::new(bin))
    );
    tmux.cmd(&["new-session", "-d", "-s", "e2e", "-x", "120", "-y", "32", &shell_cmd]);
    tmux.expect("1 Dashboard");
    // the demo begins with its supervised warm start (the tiny model is built first)
    if let Err(s) = tmux.wait_for_secs("warm start", 120) {
        panic!("the demo never showed its warm start:\n{s}");
    }
    for key in ["2", "3", "4", "5", "6", "7", "1"] {
        tmux.keys(key);
    }
    tmux.expect("1 Dashboard");
    // past the warm start (a warm start cut by quitting is not kept: the run starts over)
    let runs: Vec<_> = std::fs::read_dir(work.path().join("runs")).unwrap().flatten().collect();
    assert_eq!(runs.len(), 1, "one demo run directory");
    let run = runs[0].path();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !polaris::run::log::read(&run.join("events.jsonl"))
        .is_ok_and(|l| l.events.iter().any(|e| matches!(e.kind, polaris::run::EventKind::Step(_))))
    {
        assert!(std::time::Instant::now() < deadline, "the demo never took a GRPO step");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    tmux.keys("q");
    // quitting ends the run between steps, with a checkpoint
    if let Err(s) = tmux.wait_for_secs("EXIT=0", 180) {
        panic!("the demo did not end cleanly:\n{s}");
    }
    assert!(run.join("events.jsonl").exists() && run.join("config.toml").exists());
    assert!(polaris::train::checkpoint::latest(&run).is_some(), "the demo run was checkpointed on quit");
}

#[test]
fn d_hands_the_demo_run_to_a_detached_daemon_that_goes_on_without_the_terminal() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_polaris-tui");
    let tmux = Tmux { socket: format!("polaris-demo-d-{}", std::process::id()) };
    let shell_cmd = format!(
        "cd {0} && POLARIS_CACHE_DIR={1} POLARIS_STATE_DIR={1} {2}; echo EXIT=$?; sleep 600",
        quote(work.path()),
        quote(cache.path()),
        quote(Path::new(bin))
    );
    tmux.cmd(&["new-session", "-d", "-s", "e2e", "-x", "120", "-y", "32", &shell_cmd]);
    if let Err(s) = tmux.wait_for_secs("warm start", 120) {
        panic!("the demo never showed its warm start:\n{s}");
    }
    tmux.keys("d");
    if let Err(s) = tmux.wait_for_secs("EXIT=0", 180) {
        panic!("the demo did not hand its run on:\n{s}");
    }
    let screen = tmux.expect("in the background");
    assert!(screen.contains("polaris-tui attach"), "{screen}");
    let runs: Vec<_> = std::fs::read_dir(work.path().join("runs")).unwrap().flatten().collect();
    let run = runs[0].path();
    // the TUI's process is gone; the daemon in daemon.pid trains on, in a session of its own
    let pid: u32 = std::fs::read_to_string(run.join("daemon.pid")).unwrap().trim().parse().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the daemon {pid} is not running");
    let stop = Command::new(bin)
        .args(["stop", run.to_str().unwrap()])
        .env("POLARIS_STATE_DIR", cache.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&stop.stdout).to_string() + &String::from_utf8_lossy(&stop.stderr);
    assert!(stop.status.success(), "{said}");
    assert!(said.contains("stopped"), "{said}");
    // the daemon's own ending is the directory's: stopped by the stop above, not the demo's
    let exit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("exit.json")).unwrap()).unwrap();
    assert_eq!((exit["status"].as_str(), exit["pid"].as_u64()), (Some("stopped"), Some(pid as u64)));
}

#[test]
fn opening_a_directory_that_is_no_run_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_polaris-tui")).arg("open").arg(tmp.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a run directory (no events.jsonl)"), "{err}");
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}
