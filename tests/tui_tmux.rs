//! End to end: the real binary in a tmux pane (`.ci/run` installs tmux) opens a run directory,
//! every tab is selected by its key and read back with capture-pane, the window is resized to
//! 80x24 and back, and `q` gives the terminal back (the pane leaves the alternate screen and
//! the shell sees exit status 0). Waits poll the pane for text (up to 20 s each: a loaded
//! machine is slow to start a process); nothing here asserts on time.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::tmux::Tmux;

/// The one session each test starts on its own server.
const E2E: &str = "e2e";
/// Seconds a pane may take to show a text (a loaded machine is slow to start a process).
const WAIT: u64 = 20;

#[test]
fn the_binary_opens_a_run_switches_every_tab_and_restores_the_terminal() {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()),
        "tmux is missing: install it (apt-get install tmux); .ci/run does"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::run_fixture::write_run(tmp.path());
    let bin = env!("CARGO_BIN_EXE_polaris-tui");
    let tmux = Tmux::new("e2e");
    let shell_cmd = format!("{} open {}; echo EXIT=$?; sleep 600", quote(Path::new(bin)), quote(&dir));
    tmux.start(E2E, (120, 32), &shell_cmd);

    tmux.expect(E2E, "1 Dashboard", WAIT);
    tmux.expect(E2E, "Reward · steps 1–40", WAIT);
    let tabs = [
        ("2", "Composite score"),
        ("3", "HUMAN REFERENCE"),
        ("5", "Settings ↑↓ +-"),
        ("6", "polaris-tui annotate"),
        ("7", "No evaluations of this run yet"),
        ("1", "Reward · steps"),
    ];
    for (key, shows) in tabs {
        tmux.keys(E2E, key);
        tmux.expect(E2E, shows, WAIT);
        if key == "3" {
            // GPUs: the devices where NVML is, else the host
            tmux.keys(E2E, "4");
            if tmux.wait_for(E2E, "CPU · ", WAIT).is_err() {
                tmux.expect(E2E, "GPU 0 · ", WAIT);
            }
        }
    }
    tmux.keys(E2E, "Tab");
    tmux.expect(E2E, "Composite score", WAIT);
    tmux.keys(E2E, "?");
    tmux.expect(E2E, "Keys (Esc closes)", WAIT);
    tmux.keys(E2E, "Escape");
    // small and back: the views redraw at the new size
    tmux.cmd(&["resize-window", "-t", E2E, "-x", "80", "-y", "24"]);
    let small = tmux.expect(E2E, "Composite score", WAIT);
    assert!(small.lines().all(|l| l.chars().count() <= 80), "{small}");
    tmux.cmd(&["resize-window", "-t", E2E, "-x", "160", "-y", "45"]);
    tmux.keys(E2E, "1");
    tmux.expect(E2E, "Reward · steps", WAIT);

    tmux.keys(E2E, "q");
    let after = tmux.expect(E2E, "EXIT=0", WAIT);
    assert!(!after.contains("1 Dashboard"), "the TUI's screen is gone after quitting:\n{after}");
    let alternate = tmux.cmd(&["display-message", "-p", "-t", E2E, "#{alternate_on}"]);
    assert_eq!(alternate.trim(), "0", "the pane left the alternate screen");
}

/// The Annotate tab in the real binary: a verdict is on disk once the screen moves on, Tab
/// still switches tabs, `q` leaves the study and a second `q` quits.
#[test]
fn the_annotate_tab_saves_a_verdict_and_q_leaves_before_it_quits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::run_fixture::write_run(tmp.path());
    let bin = env!("CARGO_BIN_EXE_polaris-tui");
    let tmux = Tmux::new("e2e-annot");
    let shell_cmd =
        format!("{} open {} --annotator e2e; echo EXIT=$?; sleep 600", quote(Path::new(bin)), quote(&dir));
    tmux.start(E2E, (120, 32), &shell_cmd);
    tmux.expect(E2E, "1 Dashboard", WAIT);
    tmux.keys(E2E, "6");
    tmux.expect(E2E, "Does the policy beat", WAIT);
    tmux.keys(E2E, "Enter");
    tmux.expect(E2E, "0 / 3 judged", WAIT);
    tmux.keys(E2E, "1");
    tmux.expect(E2E, "1 / 3 judged", WAIT);
    let file = dir.join("annotate/policy-vs-human/judgments-e2e.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains("\"kind\":\"judgment\"")).count(), 1, "{text}");
    // Annotate's next tab is Eval (this run has no evaluations)
    tmux.keys(E2E, "Tab");
    tmux.expect(E2E, "No evaluations of this run yet", WAIT);
    tmux.keys(E2E, "BTab");
    tmux.expect(E2E, "1 / 3 judged", WAIT);
    tmux.keys(E2E, "q");
    tmux.expect(E2E, "Does the policy beat", WAIT);
    tmux.keys(E2E, "q");
    tmux.expect(E2E, "EXIT=0", WAIT);
}

#[test]
fn the_bare_command_opens_the_demo_run_in_the_tui_and_quitting_checkpoints_it() {
    let work = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_polaris-tui");
    let tmux = Tmux::new("demo");
    let shell_cmd = format!(
        "cd {0} && POLARIS_CACHE_DIR={1} POLARIS_STATE_DIR={1} {2}; echo EXIT=$?; sleep 600",
        quote(work.path()),
        quote(cache.path()),
        quote(Path::new(bin))
    );
    tmux.start(E2E, (120, 32), &shell_cmd);
    tmux.expect(E2E, "1 Dashboard", WAIT);
    // the demo begins with its supervised warm start (the tiny model is built first)
    if let Err(s) = tmux.wait_for(E2E, "warm start", 120) {
        panic!("the demo never showed its warm start:\n{s}");
    }
    for key in ["2", "3", "4", "5", "6", "7", "1"] {
        tmux.keys(E2E, key);
    }
    tmux.expect(E2E, "1 Dashboard", WAIT);
    // past the warm start (a warm start cut by quitting is not kept: the run starts over)
    let runs: Vec<_> = std::fs::read_dir(work.path().join("runs")).unwrap().flatten().collect();
    assert_eq!(runs.len(), 1, "one demo run directory");
    let run = runs[0].path();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !polaris::run::log::read(&run.join("events.jsonl"))
        .is_ok_and(|l| l.events.iter().any(|e| matches!(e.kind, polaris::run::EventKind::Step(_))))
    {
        assert!(Instant::now() < deadline, "the demo never took a GRPO step");
        std::thread::sleep(Duration::from_millis(200));
    }
    tmux.keys(E2E, "q");
    // quitting ends the run between steps, with a checkpoint
    if let Err(s) = tmux.wait_for(E2E, "EXIT=0", 180) {
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
    let tmux = Tmux::new("demo-d");
    let shell_cmd = format!(
        "cd {0} && POLARIS_CACHE_DIR={1} POLARIS_STATE_DIR={1} {2}; echo EXIT=$?; sleep 600",
        quote(work.path()),
        quote(cache.path()),
        quote(Path::new(bin))
    );
    tmux.start(E2E, (120, 32), &shell_cmd);
    if let Err(s) = tmux.wait_for(E2E, "warm start", 120) {
        panic!("the demo never showed its warm start:\n{s}");
    }
    tmux.keys(E2E, "d");
    if let Err(s) = tmux.wait_for(E2E, "EXIT=0", 180) {
        panic!("the demo did not hand its run on:\n{s}");
    }
    let screen = tmux.expect(E2E, "in the background", WAIT);
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
