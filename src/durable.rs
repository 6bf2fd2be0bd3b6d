//! Files a reader must never see half-written (summaries, settings, pid and exit records,
//! registry entries, plots): written whole to a temporary file beside the target, fsynced,
//! then renamed over it. And append-only JSONL files, whose last line a kill may tear:
//! reopened for appending only after the torn line is cut off.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
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
        if pid == std::process::id() || crate::run::process::alive(pid) || !entry.path().is_file() {
            continue;
        }
        std::fs::remove_file(entry.path())
            .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        removed.push(entry.path());
    }
    Ok(removed)
}

/// Opens an append-only file of lines for appending (creating it), after cutting off a torn
/// last line: bytes after the last newline, left by a kill in the middle of a write. Returns
/// the file and, when a line was cut, its 1-based number. Reads only the file's tail.
pub fn open_append(path: &Path) -> Result<(File, Option<usize>)> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata().with_context(|| format!("cannot read {}", path.display()))?.len();
    let whole = whole_lines_len(&mut file, len).with_context(|| format!("cannot read {}", path.display()))?;
    if whole == len {
        return Ok((file, None));
    }
    // appending writes at the end, so the cut must happen before the next write
    file.set_len(whole).with_context(|| format!("cannot truncate {}", path.display()))?;
    file.sync_all().with_context(|| format!("cannot sync {}", path.display()))?;
    let line = count_lines(&mut file, whole).with_context(|| format!("cannot read {}", path.display()))? + 1;
    Ok((file, Some(line)))
}

/// Bytes up to and including the last newline of the first `len` bytes (0: none).
fn whole_lines_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let piece = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(piece)?;
        if let Some(i) = piece.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Newlines in the first `len` bytes.
fn count_lines(file: &mut File, len: u64) -> std::io::Result<usize> {
    file.seek(SeekFrom::Start(0))?;
    let mut n = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let got = file.read(&mut buf[..left.min(64 * 1024) as usize])?;
        if got == 0 {
            break;
        }
        n += buf[..got].iter().filter(|&&b| b == b'\n').count();
        left -= got as u64;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::{open_append, write_atomic};
    use std::io::Write;

    #[test]
    fn a_torn_last_line_is_cut_before_appending_and_whole_lines_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("rows.jsonl");
        // a first line longer than the 64 KiB read-back chunk, then a torn one
        let long = format!("{{\"a\":\"{}\"}}\n", "x".repeat(100_000));
        std::fs::write(&path, format!("{long}{{\"b\":1}}\n{{\"c\":")).unwrap();
        let (mut f, cut) = open_append(&path).unwrap();
        assert_eq!(cut, Some(3));
        f.write_all(b"{\"d\":2}\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{long}{{\"b\":1}}\n{{\"d\":2}}\n"));
        // whole files are left alone; a file that is one torn line becomes empty
        assert_eq!(open_append(&path).unwrap().1, None);
        std::fs::write(&path, "{\"torn").unwrap();
        assert_eq!(open_append(&path).unwrap().1, Some(1));
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert_eq!(open_append(&tmp.path().join("new.jsonl")).unwrap().1, None);
    }

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
