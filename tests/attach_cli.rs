//! Real processes: a `polaris-tui train` trainer (the tiny model, the offline judge) serves
//! its control socket; `polaris-tui attach` viewers run in tmux panes (`.ci/run` installs
//! tmux) and library clients beside them. One trainer for the whole story, to spare the
//! CPU: viewers come and go, one detaches, one is killed with SIGKILL, the run goes on, a
//! late viewer replays exactly what it missed, a wrong protocol version is refused on both
//! sides, and a Stop from the lease holder ends the run. Waits poll (up to five minutes: a
//! loaded machine); nothing asserts on time.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use polaris::run::remote::{is_live, Client, ClientMsg, ConnectError, Incoming, ServerMsg, Who};
use polaris::run::{Control, Event, EventKind, RunDir, PROTOCOL_VERSION};

mod common;

use common::attach::{collect, until};
use common::tmux::Tmux;

/// Seconds a wait may take before the test fails (a loaded machine; no timing is asserted).
const WAIT: u64 = 300;

const BIN: &str = env!("CARGO_BIN_EXE_polaris-tui");

fn trainer(out: &Path, cache: &Path, stderr: &Path) -> Child {
    Command::new(BIN)
        .arg("train")
        .args(["--group-size", "3", "--set", "run.prompts_per_step=1", "--set"])
        .args(["step.sampling.max_new_tokens=12", "--set", "step.thinking=false"])
        .args(["--data", concat!(env!("CARGO_MANIFEST_DIR"), "/assets/demo/prompts.jsonl")])
        .args(["--out", out.to_str().unwrap(), "--steps", "500"])
        .env("POLARIS_CACHE_DIR", cache)
        .env("POLARIS_STATE_DIR", cache) // the run registry, kept out of the real home
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

fn logged(out: &Path) -> Vec<Event> {
    // tolerant: the trainer may be writing a line
    polaris::run::log::read(&out.join("events.jsonl")).map_or(vec![], |l| l.events)
}

/// Polls until `ok`, checking the trainer is still running.
fn wait(what: &str, child: &mut Child, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: never happened");
        assert!(child.try_wait().unwrap().is_none(), "{what}: the trainer ended first");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_step(e: &Event) -> bool {
    matches!(e.kind, EventKind::Step(_))
}

#[test]
fn a_trainer_outlives_its_viewers_and_late_viewers_replay_what_they_missed() {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()),
        "tmux is missing: install it (apt-get install tmux); .ci/run does"
    );
    let cache = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let stderr = tmp.path().join("trainer.stderr");
    let mut child = trainer(&out, cache.path(), &stderr);
    wait("the socket answers and step 1 is logged", &mut child, || {
        is_live(&out) && logged(&out).iter().any(is_step)
    });
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(RunDir::at(&out).socket()).unwrap().mode() & 0o777, 0o600);

    // a viewer from the first event to the end
    let whole = collect(Client::connect(&out, 0).unwrap());

    // a viewer of another protocol version is refused, and the trainer says so too
    let hello = ClientMsg::Hello { protocol: PROTOCOL_VERSION + 7, last_seq: 0, who: Who::me() };
    match Client::connect_with(&out, &hello) {
        Err(ConnectError::Refused(text)) => {
            assert!(text.contains(&format!("version {}", PROTOCOL_VERSION + 7)), "{text}")
        }
        other => panic!("not refused: {:?}", other.map(|_| ())),
    }

    let tmux = Tmux::new("attach");
    let attach = format!("{BIN} attach {}", out.display());
    // viewer 1 takes control, pauses the run, and detaches
    tmux.start("v1", (200, 40), &format!("{attach}; echo EXIT=$?; sleep 600"));
    tmux.expect("v1", "read only · C takes control", WAIT);
    tmux.keys("v1", "C");
    tmux.expect("v1", "you control", WAIT);
    tmux.keys("v1", "p");
    wait("the pause reaches the trainer", &mut child, || {
        logged(&out).iter().any(|e| matches!(e.kind, EventKind::Paused { .. }))
    });
    tmux.expect("v1", "PAUSED", WAIT);
    tmux.keys("v1", "d");
    tmux.expect("v1", "the run goes on", WAIT);
    tmux.expect("v1", "EXIT=0", WAIT);

    // viewer 2 (its leaving released the lease), attached with no RUN_DIR (the registry's most
    // recent live run), takes control and is killed with SIGKILL
    tmux.start("v2", (200, 40), &format!("POLARIS_STATE_DIR={} {BIN} attach", cache.path().display()));
    tmux.expect("v2", "read only · C takes control", WAIT);
    tmux.keys("v2", "C");
    tmux.expect("v2", "you control", WAIT);
    let pid = tmux.cmd(&["display-message", "-p", "-t", "v2", "#{pane_pid}"]).trim().to_string();
    let killed = Command::new("kill").args(["-9", &pid]).status().unwrap();
    assert!(killed.success());

    // the trainer goes on; a new viewer that has everything up to seq k gets the rest, and
    // gets the lease the killed viewer held
    assert!(child.try_wait().unwrap().is_none(), "the trainer died with its viewer");
    let k = logged(&out).last().unwrap().seq;
    let mut late = Client::connect(&out, k).unwrap();
    let mut asked = 0;
    loop {
        // the killed viewer's lease goes when the server sees its socket close
        late.request_lease(false).unwrap();
        asked += 1;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut granted = false;
        while Instant::now() < deadline && !granted {
            match late.recv_timeout(Duration::from_millis(100)) {
                Some(Incoming::Msg(ServerMsg::Lease { yours: true, .. })) => granted = true,
                Some(Incoming::Closed(why)) => panic!("closed: {why}"),
                _ => {}
            }
        }
        if granted {
            break;
        }
        assert!(asked < 60, "the killed viewer's lease was never released");
    }
    late.control(Control::Resume).unwrap();
    until(&late, WAIT, |m| matches!(m, ServerMsg::Accepted { control: Control::Resume }));
    let resumed_at = |log: &[Event]| log.iter().position(|e| matches!(e.kind, EventKind::Resumed { .. }));
    wait("a step after the resume", &mut child, || {
        let log = logged(&out);
        resumed_at(&log).is_some_and(|i| log[i..].iter().any(is_step))
    });
    late.control(Control::Stop).unwrap();
    let late_events = collect(late);
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(&stderr).unwrap();
    assert!(status.success(), "{err}");

    let log = logged(&out);
    assert!(matches!(&log.last().unwrap().kind, EventKind::Finished { reason, .. } if reason == "stopped"));
    assert_eq!(whole.join().unwrap(), log, "the first viewer's events are not the log's");
    let missed: Vec<Event> = log.iter().filter(|e| e.seq > k).cloned().collect();
    assert_eq!(late_events.join().unwrap(), missed, "the late viewer did not get exactly what it missed");
    assert!(err.contains("protocol mismatch") && err.contains(&format!("version {}", PROTOCOL_VERSION + 7)));
    assert!(!RunDir::at(&out).socket().exists(), "the socket outlived the run");

    // attaching to the ended run says it is not live (and would open it read only)
    let o = Command::new(BIN).args(["attach", out.to_str().unwrap()]).stdin(Stdio::null()).output().unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("the run is not live") && said.contains("read only"), "{said}");
    // and with no RUN_DIR there is no live run left to choose
    let o = Command::new(BIN)
        .arg("attach")
        .env("POLARIS_STATE_DIR", cache.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && said.contains("no live run to attach to"), "{said}");
}
