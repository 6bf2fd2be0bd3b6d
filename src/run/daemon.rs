//! Detached runs: `polaris-tui train --detach` starts a supervisor in a session of its own
//! (no controlling terminal, SIGHUP ignored, stdin from /dev/null, stdout and stderr to
//! `RUN_DIR/daemon.log`), so closing the terminal or the ssh connection does not end the
//! run. The supervisor runs the trainer (`polaris-tui train ... --daemon`) as its child,
//! records its pid in `daemon.pid`, waits for it, and completes `exit.json` however it
//! ended: the exit code, or the signal that killed it (kill -9 included, which the trainer
//! cannot report itself).

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::claim::Claim;
use super::dir::RunDir;
use super::exit::{self, Exit, ExitKind};
use super::status::Summary;
use super::{log, process};

/// How long `detach` waits for the run's first event before it returns anyway (a large
/// model can take longer to load; the run goes on regardless).
pub const FIRST_EVENT_WAIT: Duration = Duration::from_secs(60);

/// What `detach` saw.
#[derive(Debug)]
pub struct Detached {
    /// The run directory, canonical.
    pub dir: PathBuf,
    /// The trainer's pid.
    pub pid: u32,
    /// Whether the run had logged an event by the time `detach` returned.
    pub logging: bool,
}

/// Starts `polaris-tui train TRAIN_ARGS --daemon` under a supervisor in a new session,
/// writing to `run_dir`, and returns once it has logged its first event (or after
/// `FIRST_EVENT_WAIT` with it still starting). A trainer or supervisor that dies at once is
/// an error carrying its exit status and the tail of `daemon.log`.
pub fn detach(run_dir: &Path, train_args: &[OsString]) -> Result<Detached> {
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("cannot create the run directory {}", run_dir.display()))?;
    let dir = run_dir.canonicalize()?;
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(RunDir::at(&dir).daemon_log())
        .with_context(|| format!("cannot open {}", RunDir::at(&dir).daemon_log().display()))?;
    let (seen, stale_pid) = (last_seq(&dir), process::read_pid(&dir).ok().flatten());
    let stale_exit = exit::read(&dir).ok().flatten();
    let exe = std::env::current_exe().context("cannot find this program to start the run with")?;
    let mut cmd = Command::new(exe);
    cmd.arg("supervise").arg("--dir").arg(&dir).arg("--").arg("train").args(train_args).arg("--daemon");
    cmd.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
    // SAFETY: setsid and signal are async-signal-safe, as pre_exec requires
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // inherited through exec by the supervisor and its trainer
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut supervisor = cmd.spawn().context("cannot start the run's supervisor")?;
    let deadline = Instant::now() + FIRST_EVENT_WAIT;
    loop {
        if let Some(status) = supervisor.try_wait()? {
            bail!(
                "the run ended at once ({}); {}:\n{}",
                // an exit.json from before this start is another process's ending
                exit::read(&dir)
                    .ok()
                    .flatten()
                    .filter(|e| Some(e) != stale_exit.as_ref())
                    .map_or_else(|| format!("supervisor {status}"), |e| e.describe()),
                RunDir::at(&dir).daemon_log().display(),
                tail(&RunDir::at(&dir).daemon_log(), 20)
            );
        }
        // a resumed run's directory has the previous trainer's pid until the supervisor writes
        let pid = process::read_pid(&dir).ok().flatten().filter(|p| Some(*p) != stale_pid);
        if let Some(pid) = pid.filter(|_| last_seq(&dir) > seen) {
            return Ok(Detached { dir, pid, logging: true });
        }
        if Instant::now() >= deadline {
            if let Some(pid) = pid {
                return Ok(Detached { dir, pid, logging: false });
            }
            bail!(
                "the run's supervisor (pid {}) has not started its trainer after {} s; see {}",
                supervisor.id(),
                FIRST_EVENT_WAIT.as_secs(),
                RunDir::at(&dir).daemon_log().display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The supervisor: runs `command` (this program's arguments) as its child, records the
/// child's pid in `daemon.pid`, passes SIGTERM / SIGINT on to it, and when it ends makes
/// sure `exit.json` says how. Returns the child's exit code (128 + signal when killed).
pub fn supervise(run_dir: &Path, command: &[OsString]) -> Result<i32> {
    // claimed before anything is written: a second start on this directory ends here, having
    // touched neither daemon.pid nor exit.json; the trainer holds the same claim
    let claim = Claim::acquire(run_dir)?;
    let exe = std::env::current_exe().context("cannot find this program to run the trainer with")?;
    let mut cmd = Command::new(exe);
    cmd.args(command).stdin(Stdio::null());
    claim.pass_to(&mut cmd);
    let mut child = cmd.spawn().context("cannot start the trainer")?;
    let pid = child.id();
    process::write_pid(run_dir, pid)?;
    eprintln!("supervisor {}: trainer started, pid {pid}", std::process::id());
    let oom_kills = crate::plan::available::oom_kills();
    let asked = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, asked.clone())?;
    }
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if asked.swap(false, Ordering::Relaxed) {
            let _ = process::signal(pid, libc::SIGTERM);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let ending = match exit::read(run_dir) {
        // the trainer said how it ended: add what only its parent knows
        Ok(Some(mut e)) if e.pid == pid => {
            e.code = status.code();
            e.signal = status.signal();
            e
        }
        _ => {
            let last_step =
                log::read(&RunDir::at(run_dir).events()).ok().and_then(|l| Summary::of(&l.events).last_step);
            // out of memory, when the work record and the signal say so; else a signal says
            // it all (`crashed (killed by signal 9)`)
            let (kind, message) =
                match (status.signal(), out_of_memory(run_dir, pid, status.signal(), oom_kills)) {
                    (_, Some(message)) => (ExitKind::Failed, message),
                    (Some(_), None) => (ExitKind::Crashed, String::new()),
                    (None, None) => (
                        ExitKind::Crashed,
                        "the trainer ended without saying why; see daemon.log".to_string(),
                    ),
                };
            if kind == ExitKind::Failed {
                // the event log says it too (the trainer could not)
                if let Ok(mut events) = log::EventLog::open(&RunDir::at(run_dir).events()) {
                    let _ = events.append(super::event::EventKind::Message {
                        level: super::event::Level::Error,
                        text: message.clone(),
                    });
                }
            }
            Exit { code: status.code(), signal: status.signal(), ..Exit::new(kind, pid, last_step, message) }
        }
    };
    exit::write(run_dir, &ending)?;
    eprintln!("supervisor {}: the trainer (pid {pid}) ended: {}", std::process::id(), ending.describe());
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Why a trainer that died by `signal` without writing exit.json ran out of memory, from its
/// work record: SIGABRT is how Rust ends on a failed allocation (when the trainer's own
/// failure record could not be written); SIGKILL is the OOM killer's only when the cgroup's
/// count of OOM kills grew (a plain kill -9 stays a crash).
fn out_of_memory(
    run_dir: &Path,
    pid: u32,
    signal: Option<i32>,
    oom_kills_before: Option<u64>,
) -> Option<String> {
    let record = super::work::read(run_dir).filter(|r| r.pid == pid)?;
    let cause = match signal? {
        libc::SIGABRT => "the trainer aborted (SIGABRT: a failed allocation, see daemon.log)",
        libc::SIGKILL
            if crate::plan::available::oom_kills() > oom_kills_before && oom_kills_before.is_some() =>
        {
            "the kernel's OOM killer ended the trainer (SIGKILL)"
        }
        _ => return None,
    };
    Some(record.message(cause))
}

/// The newest event's seq (0: none).
fn last_seq(dir: &Path) -> u64 {
    log::read(&RunDir::at(dir).events()).ok().and_then(|l| l.events.last().map(|e| e.seq)).unwrap_or(0)
}

/// The last `n` lines of a text file (empty when unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
