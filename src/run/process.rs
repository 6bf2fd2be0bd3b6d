//! `daemon.pid`: the process that trains a run (the detached trainer, a foreground `train`,
//! or the demo's TUI process), written by the run itself when it starts and by a detached
//! run's supervisor as soon as it spawns the trainer. Liveness is asked of the kernel.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::durable::write_atomic;

pub fn pid_path(run_dir: &Path) -> PathBuf {
    run_dir.join("daemon.pid")
}

/// Records `pid` as the run's trainer (write, fsync, rename).
pub fn write_pid(run_dir: &Path, pid: u32) -> Result<()> {
    write_atomic(&pid_path(run_dir), format!("{pid}\n").as_bytes())
}

/// The pid in `daemon.pid`; None when there is none (a run written before runs recorded one).
pub fn read_pid(run_dir: &Path) -> Result<Option<u32>> {
    let p = pid_path(run_dir);
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

/// Whether a process `pid` exists (any user's; a zombie not yet reaped counts).
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 sends nothing; kill only checks that the process exists
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Why `pid` may not be signalled as a run's trainer, if it may not: gone, another user's,
/// or (where /proc tells) not a polaris-tui process (the pid reused since).
pub fn check_ours(pid: u32) -> Result<(), String> {
    if !alive(pid) {
        return Err(format!("process {pid} is gone"));
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if !Path::new("/proc/self").exists() {
        return Ok(()); // no /proc (macOS): kill's own permission check is all there is
    }
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&proc_dir).map_err(|e| format!("process {pid}: {e}"))?.uid();
    // SAFETY: getuid has no preconditions
    let me = unsafe { libc::getuid() };
    if owner != me {
        return Err(format!("process {pid} belongs to user {owner}, not to you ({me})"));
    }
    let exe = std::fs::read_link(proc_dir.join("exe")).map_err(|e| format!("process {pid}: {e}"))?;
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
