//! Process ids as the kernel sees them, for the files that record one (a run's
//! `daemon.pid`, a temporary's `.NAME.PID-N.tmp`, a checkpoint being written): whether its
//! process still exists. Whether it is still the same process is `run::process`'s question.

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

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_alive_and_impossible_pids_are_not() {
        assert!(super::alive(std::process::id()));
        assert!(!super::alive(0), "0 means the caller's process group to kill, not a process");
        assert!(!super::alive(u32::MAX), "beyond pid_t");
    }
}
