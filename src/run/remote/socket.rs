//! The socket file and who may use it: `control.sock` is created owner-only (0600), in a
//! run directory nobody else can write to (else another user could swap the socket), and
//! every peer's uid must be the socket owner's. A socket file left by a killed trainer is
//! removed only once nothing answers on it.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::run::dir::RunDir;

/// Unix socket paths are limited to 108 bytes with the terminating NUL (sockaddr_un).
const MAX_SOCKET_PATH: usize = 107;

/// Whether a trainer answers on the run directory's socket.
pub fn is_live(dir: &Path) -> bool {
    UnixStream::connect(RunDir::at(dir).socket()).is_ok()
}

/// Refuses a directory that group or others can write to. `ours`: the run is new (no log
/// yet), so the directory was made for it and its mode is tightened instead (said on stderr).
pub fn check_dir(dir: &Path, ours: bool) -> Result<()> {
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 == 0 {
        return Ok(());
    }
    if ours {
        let tight = mode & !0o022;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(tight))
            .with_context(|| format!("cannot make {} writable by its owner only", dir.display()))?;
        eprintln!(
            "note: {} was writable by group or others (mode {mode:o}); made it {tight:o} for its control socket",
            dir.display()
        );
        return Ok(());
    }
    bail!(
        "{} is writable by group or others (mode {mode:o}): its control socket could be replaced by \
         another user. Run `chmod go-w {}` and start again",
        dir.display(),
        dir.display()
    )
}

/// Ok if a peer with `peer_uid` may talk to a socket owned by `owner_uid`.
pub fn check_peer(peer_uid: u32, owner_uid: u32) -> Result<(), String> {
    if peer_uid == owner_uid {
        Ok(())
    } else {
        Err(format!(
            "refused: this run belongs to uid {owner_uid} and you are uid {peer_uid}; only its owner may attach"
        ))
    }
}

/// Binds `control.sock` in `dir`, mode 0600 from the moment it has its name: it is bound
/// under a temporary name, restricted, then renamed into place. Returns the listener and
/// the socket owner's uid (this process's effective uid).
pub fn bind(dir: &Path) -> Result<(UnixListener, u32)> {
    let path = RunDir::at(dir).socket();
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        bail!(
            "the control socket path {} is {} bytes, over the {MAX_SOCKET_PATH} a Unix socket allows: \
             use a run directory with a shorter path",
            path.display(),
            path.as_os_str().len()
        );
    }
    remove_stale(&path)?;
    let tmp = dir.join(format!(".control.sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).with_context(|| format!("cannot listen on {}", tmp.display()))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot put the control socket at {}", path.display()));
    }
    let owner = std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?.uid();
    Ok((listener, owner))
}

/// Removes a socket file nobody answers on; refuses a live one or a file that is no socket.
fn remove_stale(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!("{} exists and is not a socket: move it away and start again", path.display());
    }
    if UnixStream::connect(path).is_ok() {
        bail!(
            "another trainer is live on this run directory ({} answers): attach to it with \
             `polaris-tui attach {}`, or stop it first",
            path.display(),
            path.parent().map_or(String::new(), |p| p.display().to_string())
        );
    }
    std::fs::remove_file(path).with_context(|| format!("cannot remove the stale socket {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_uid_is_refused_by_name() {
        assert!(check_peer(1000, 1000).is_ok());
        let e = check_peer(1001, 1000).unwrap_err();
        assert!(e.contains("uid 1000") && e.contains("uid 1001") && e.contains("only its owner"), "{e}");
    }

    #[test]
    fn a_loose_directory_is_refused_unless_new_and_a_stale_socket_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let e = check_dir(&dir, false).unwrap_err().to_string();
        assert!(e.contains("chmod go-w") && e.contains("775"), "{e}");
        check_dir(&dir, true).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o755);

        // a socket file nobody listens on (a killed trainer's) is replaced
        drop(UnixListener::bind(RunDir::at(&dir).socket()).unwrap());
        let (live, owner) = bind(&dir).unwrap();
        let meta = std::fs::metadata(RunDir::at(&dir).socket()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(owner, meta.uid());
        // a live one is not
        let e = bind(&dir).unwrap_err().to_string();
        assert!(e.contains("another trainer is live"), "{e}");
        assert!(is_live(&dir));
        drop(live);
        std::fs::remove_file(RunDir::at(&dir).socket()).unwrap();
        std::fs::write(RunDir::at(&dir).socket(), "x").unwrap();
        assert!(bind(&dir).unwrap_err().to_string().contains("is not a socket"));
    }
}
