//! `daemon.pid`: the process that trains a run (the detached trainer, a foreground `train`,
//! or the demo's TUI process), written by the run itself when it starts and by a detached
//! run's supervisor as soon as it spawns the trainer. Beside it, `trainer.json` records what
//! tells that process from a later one given the same pid: its start time and the boot it
//! started in (from /proc). Liveness is asked of the kernel, and a live process counts as the
//! trainer only when it is that same process, so a reused pid reads as gone and is never
//! signalled.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::dir::RunDir;
use crate::durable::write_atomic;
use crate::pid::alive;

/// One process, told apart from any other that had or will have its pid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub pid: u32,
    /// When it started: clock ticks after boot (/proc/PID/stat, field 22).
    pub start_ticks: u64,
    /// /proc/sys/kernel/random/boot_id: start ticks restart at every boot.
    pub boot_id: String,
}

impl Identity {
    /// The identity of process `pid` now, where /proc tells (None: gone, or no /proc).
    pub fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // the command name (field 2) is in parentheses and may hold spaces
        let after = &stat[stat.rfind(')')? + 2..];
        let start_ticks = after.split(' ').nth(22 - 3)?.parse().ok()?;
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?.trim().to_string();
        Some(Self { pid, start_ticks, boot_id })
    }
}

/// Whether `pid` has ended but its parent has not reaped it yet (state Z in /proc): no
/// trainer any more, though the kernel still knows its pid.
fn zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()) == Some("Z")
}

/// Records `pid` as the run's trainer (write, fsync, rename): its identity first, then
/// `daemon.pid`, so a reader who sees the new pid finds its identity.
pub fn write_pid(run_dir: &Path, pid: u32) -> Result<()> {
    match Identity::of(pid) {
        Some(id) => {
            write_atomic(&RunDir::at(run_dir).trainer_identity(), serde_json::to_string(&id)?.as_bytes())?
        }
        None => match std::fs::remove_file(RunDir::at(run_dir).trainer_identity()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| {
                    format!("cannot remove {}", RunDir::at(run_dir).trainer_identity().display())
                })
            }
            _ => {}
        },
    }
    write_atomic(&RunDir::at(run_dir).pid(), format!("{pid}\n").as_bytes())
}

/// The recorded identity of `pid` as the run's trainer, if `trainer.json` holds that pid's.
pub fn read_identity(run_dir: &Path, pid: u32) -> Option<Identity> {
    let text = std::fs::read_to_string(RunDir::at(run_dir).trainer_identity()).ok()?;
    serde_json::from_str::<Identity>(&text).ok().filter(|id| id.pid == pid)
}

/// Whether `pid`, recorded as the run's trainer, is that process and alive: the same start
/// time and boot when `trainer.json` recorded them; else (a run from before they were
/// recorded) a polaris-tui process, where /proc tells.
pub fn is_trainer(run_dir: &Path, pid: u32) -> bool {
    same_process(run_dir, pid).is_ok()
}

/// `is_trainer`, saying why not.
fn same_process(run_dir: &Path, pid: u32) -> Result<(), String> {
    if !alive(pid) || zombie(pid) {
        return Err(format!("process {pid} is gone"));
    }
    match (read_identity(run_dir, pid), Identity::of(pid)) {
        (Some(recorded), Some(now)) if recorded != now => Err(format!(
            "process {pid} is not the run's trainer: it started at another time (its pid was reused after \
             the trainer ended)"
        )),
        (Some(_), _) => Ok(()),
        (None, _) => polaris_exe(pid),
    }
}

/// The pid in `daemon.pid`; None when there is none (a run written before runs recorded one).
pub fn read_pid(run_dir: &Path) -> Result<Option<u32>> {
    let p = RunDir::at(run_dir).pid();
    match std::fs::read_to_string(&p) {
        Ok(text) => text.trim().parse().map(Some).with_context(|| {
            format!(
                "{}: {:?} is not a process id; delete the file if no trainer runs there",
                p.display(),
                text.trim()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    }
}

/// Why `pid`, recorded in `run_dir`, may not be signalled as its trainer, if it may not:
/// gone, another user's, or another process than the one recorded (its pid reused since).
pub fn check_trainer(run_dir: &Path, pid: u32) -> Result<(), String> {
    same_process(run_dir, pid)?;
    owned(pid)
}

/// Why `pid` may not be signalled as a run's trainer, if it may not: gone, another user's,
/// or (where /proc tells) not a polaris-tui process (the pid reused since). Without a run's
/// recorded identity: `check_trainer` tells more.
pub fn check_ours(pid: u32) -> Result<(), String> {
    if !alive(pid) {
        return Err(format!("process {pid} is gone"));
    }
    owned(pid)?;
    polaris_exe(pid)
}

/// Whether `pid` belongs to this user (where /proc tells; else kill's own check is all).
fn owned(pid: u32) -> Result<(), String> {
    if !Path::new("/proc/self").exists() {
        return Ok(());
    }
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(format!("/proc/{pid}")).map_err(|e| format!("process {pid}: {e}"))?.uid();
    // SAFETY: getuid has no preconditions
    let me = unsafe { libc::getuid() };
    if owner != me {
        return Err(format!("process {pid} belongs to user {owner}, not to you ({me})"));
    }
    Ok(())
}

/// Whether `pid` runs polaris-tui (where /proc tells).
fn polaris_exe(pid: u32) -> Result<(), String> {
    if !Path::new("/proc/self").exists() {
        return Ok(()); // no /proc (macOS)
    }
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map_err(|e| format!("process {pid}: {e}"))?;
    let name = exe.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    // a rebuilt binary shows as "polaris-tui (deleted)"
    if !name.starts_with("polaris") {
        return Err(format!("process {pid} is {}, not polaris-tui (its pid was reused)", exe.display()));
    }
    Ok(())
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: i32) -> Result<()> {
    let p = libc::pid_t::try_from(pid).context("process id out of range")?;
    // SAFETY: kill has no memory preconditions
    if unsafe { libc::kill(p, signal) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("cannot signal process {pid}"));
    }
    Ok(())
}
