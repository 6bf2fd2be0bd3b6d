//! Claiming a run directory: `trainer.lock`, locked exclusively (flock) by whoever trains the
//! run, before anything else in the directory is written. Two starts on one directory race
//! for the lock and exactly one wins; the other is refused having written nothing (no
//! `daemon.pid`, no `exit.json`). The kernel drops the lock when its holder dies, kill -9
//! included, so a crashed run never leaves a stale claim.
//!
//! A detached run's supervisor claims the directory itself (it writes `daemon.pid` and
//! `exit.json` for its trainer) and hands the locked descriptor to the trainer it starts
//! (`CLAIM_FD_ENV`), so the trainer holds the same claim rather than competing for it.
//! The lock file is never removed or replaced: a new file would be a second lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

use super::dir::RunDir;
use super::process;

/// The descriptor of a claim a child inherits from its parent.
pub const CLAIM_FD_ENV: &str = "POLARIS_RUN_CLAIM_FD";

/// A held claim on a run directory: released when dropped (or when the process ends).
#[derive(Debug)]
pub struct Claim {
    file: File,
}

impl Claim {
    /// Claims `run_dir` (creating it) for this process, or takes over the claim that this
    /// process's supervisor made for it. Refused, naming the trainer, when another process
    /// holds it.
    pub fn acquire(run_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(run_dir)
            .with_context(|| format!("cannot create the run directory {}", run_dir.display()))?;
        let path = RunDir::at(run_dir).trainer_lock();
        if let Some(file) = inherited(&path) {
            return Ok(Self { file });
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { file }),
            Err(TryLockError::WouldBlock) => bail!("{}", taken(run_dir)),
            Err(TryLockError::Error(e)) => Err(anyhow!(e).context(format!("cannot lock {}", path.display()))),
        }
    }

    /// Makes `cmd`'s process hold this claim too (the descriptor survives exec, and the
    /// child is told its number).
    pub fn pass_to(&self, cmd: &mut Command) {
        let fd = self.file.as_raw_fd();
        cmd.env(CLAIM_FD_ENV, fd.to_string());
        // SAFETY: fcntl is async-signal-safe, as pre_exec requires; it only clears the
        // close-on-exec flag of a descriptor this process owns
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// The claim a parent passed in `CLAIM_FD_ENV`, when that descriptor is `path` itself (the
/// same file, not merely the same name) and its lock is held through it.
fn inherited(path: &Path) -> Option<File> {
    let fd: i32 = std::env::var(CLAIM_FD_ENV).ok()?.parse().ok()?;
    let wanted = std::fs::metadata(path).ok()?;
    // SAFETY: fstat only reads into the buffer it is given
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    if st.st_dev as u64 != wanted.dev() || st.st_ino as u64 != wanted.ino() {
        return None; // a descriptor meant for another run directory (or reused)
    }
    // SAFETY: the descriptor is open (fstat succeeded), refers to the lock file, and was
    // passed to this process to own
    let file = unsafe { File::from_raw_fd(fd) };
    // the lock belongs to the open file, which the parent and this process share: taking
    // it again through the same open file succeeds, and only then is it ours
    match file.try_lock() {
        Ok(()) => {
            // SAFETY: sets a flag on a descriptor this process now owns; no process this one
            // starts inherits the claim unless it is passed on again
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            Some(file)
        }
        Err(_) => {
            std::mem::forget(file); // not ours after all: leave the descriptor as it was
            None
        }
    }
}

/// Why a directory is taken, naming its trainer when `daemon.pid` says.
fn taken(run_dir: &Path) -> String {
    let dir = run_dir.display();
    match process::read_pid(run_dir).ok().flatten() {
        Some(pid) => format!(
            "{dir} is being trained by process {pid}: watch it with `polaris-tui attach {dir}`, or stop it \
             first with `polaris-tui stop {dir}`"
        ),
        None => format!(
            "{dir} is being claimed by another process starting a run there; wait for it, or choose another --out"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_at_a_time_and_a_dropped_claim_frees_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let first = Claim::acquire(&dir).unwrap();
        let e = Claim::acquire(&dir).unwrap_err().to_string();
        assert!(e.contains("being claimed by another process"), "{e}");
        process::write_pid(&dir, std::process::id()).unwrap();
        let e = Claim::acquire(&dir).unwrap_err().to_string();
        assert!(e.contains(&format!("being trained by process {}", std::process::id())), "{e}");
        drop(first);
        let again = Claim::acquire(&dir).unwrap();
        drop(again);
        assert!(
            RunDir::at(&dir).trainer_lock().exists(),
            "the lock file stays (a new one would be a second lock)"
        );
    }
}
