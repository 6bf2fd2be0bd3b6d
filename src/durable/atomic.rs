//! Files a reader must never see half-written (summaries, settings, pid and exit records,
//! registry entries, plots): written whole to a temporary file beside the target, fsynced,
//! then renamed over it.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context, Result};

/// Writes `bytes` to `path` all at once. On failure the temporary file is removed and the
/// old `path`, if any, is left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| anyhow!("{}: not a file path", path.display()))?;
    // the pid and a per-process count keep two writers of the same file (processes or
    // threads) from sharing a temporary: one's rename would take the other's half-written one
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.{}-{n}.tmp", name.to_string_lossy(), std::process::id()));
    let written = (|| -> Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", path.display())));
    }
    // the rename is durable once the directory is synced (best effort)
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes the temporaries `write_atomic` left in `dir` when its process was killed between
/// creating and renaming one (`.NAME.PID-N.tmp` of a process that is gone); returns them.
pub fn clean_temporaries(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else { continue };
        let pid =
            stem.rsplit_once('.').and_then(|(_, p)| p.split_once('-')).and_then(|(p, _)| p.parse().ok());
        let Some(pid) = pid else { continue };
        if pid == std::process::id() || crate::pid::alive(pid) || !entry.path().is_file() {
            continue;
        }
        std::fs::remove_file(entry.path())
            .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        removed.push(entry.path());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::write_atomic;

    #[test]
    fn writers_of_one_file_at_once_each_succeed_and_leave_one_whole_version() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("status.json");
        // 8 threads x 50 writes of distinct 64 KiB contents: with a shared temporary name one
        // writer's rename takes another's file, whose own rename then fails
        let versions: Vec<Vec<u8>> = (0..8u8).map(|i| vec![b'a' + i; 64 * 1024]).collect();
        std::thread::scope(|s| {
            for v in &versions {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(path, v).unwrap();
                    }
                });
            }
        });
        let last = std::fs::read(&path).unwrap();
        assert!(versions.contains(&last), "the file is one writer's whole content");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("status.json")], "no temporary left behind");
    }
}
