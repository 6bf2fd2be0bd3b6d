//! The mechanics every append-only JSONL file of the project shares (the event log, the
//! rollouts, the length, bench and Elo judgement records, the annotation store): open for
//! appending (creating), lock against a second writer where two would corrupt the file,
//! find a last line torn by a kill (bytes after the last newline), and append whole lines,
//! each append one `write` followed by `fsync`, so a record counts as done only once it is
//! on disk. What a torn line means, and how records are read, stays with each file's owner.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

/// Whether to hold an exclusive lock on the file while it is open.
#[derive(Debug, Clone, Copy)]
pub enum Lock<'a> {
    /// No lock: one writer by construction (a run's trainer holds `trainer.lock`).
    None,
    /// `flock`-style exclusive lock; a second opener is refused with
    /// "`<path>` `<busy>`": say who holds it and what to do.
    Exclusive { busy: &'a str },
}

/// What to do with a torn last line found on opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Truncate the file back to its last whole line (before the next append lands after it).
    Cut,
    /// Leave the bytes: the owner seals the line off by appending (the annotation store,
    /// whose files are never rewritten).
    Keep,
}

/// An append-only file of lines, open for appending.
pub struct AppendLog {
    path: PathBuf,
    file: File,
}

impl AppendLog {
    /// Opens (creating) `path` for appending, takes the `lock`, and looks for a torn last
    /// line, handled as `tail` says. Returns the log and, when there was a torn line, its
    /// 1-based number. Reads only the file's tail unless a line is torn.
    pub fn open(path: &Path, lock: Lock, tail: Tail) -> Result<(Self, Option<usize>)> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if let Lock::Exclusive { busy } = lock {
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => bail!("{} {busy}", path.display()),
                Err(TryLockError::Error(e)) => {
                    return Err(anyhow!(e).context(format!("cannot lock {}", path.display())))
                }
            }
        }
        let len = file.metadata().with_context(|| format!("cannot read {}", path.display()))?.len();
        let whole =
            whole_lines_len(&mut file, len).with_context(|| format!("cannot read {}", path.display()))?;
        if whole == len {
            return Ok((Self { path: path.to_path_buf(), file }, None));
        }
        let line =
            count_lines(&mut file, whole).with_context(|| format!("cannot read {}", path.display()))? + 1;
        let mut log = Self { path: path.to_path_buf(), file };
        if tail == Tail::Cut {
            log.truncate(whole)?;
        }
        Ok((log, Some(line)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Cuts the file back to its first `len` bytes, durably: for an owner whose reader found
    /// the whole records to end before the last newline (a last line that is not a record).
    pub fn truncate(&mut self, len: u64) -> Result<()> {
        // appending writes at the end, so the cut must happen before the next write
        self.file.set_len(len).with_context(|| format!("cannot truncate {}", self.path.display()))?;
        self.file.sync_all().with_context(|| format!("cannot sync {}", self.path.display()))
    }

    /// Appends one record as a line and waits for it to reach the disk.
    pub fn append<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let mut line = serde_json::to_string(record)?;
        line.push('\n');
        self.append_lines(&line)
    }

    /// Appends `text`, whole lines each ending in a newline, in one write, and waits for it
    /// to reach the disk: a kill lands before or after the write, never inside a line
    /// (short of the disk tearing it, which the torn-line check on opening catches).
    pub fn append_lines(&mut self, text: &str) -> Result<()> {
        debug_assert!(text.is_empty() || text.ends_with('\n'), "append_lines takes whole lines");
        self.file
            .write_all(text.as_bytes())
            .with_context(|| format!("cannot append to {}", self.path.display()))?;
        self.file.sync_data().with_context(|| format!("cannot sync {}", self.path.display()))
    }
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
    use super::{AppendLog, Lock, Tail};

    #[test]
    fn a_torn_last_line_is_cut_before_appending_and_whole_lines_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("rows.jsonl");
        // a first line longer than the 64 KiB read-back chunk, then a torn one
        let long = format!("{{\"a\":\"{}\"}}\n", "x".repeat(100_000));
        std::fs::write(&path, format!("{long}{{\"b\":1}}\n{{\"c\":")).unwrap();
        let (mut log, cut) = AppendLog::open(&path, Lock::None, Tail::Cut).unwrap();
        assert_eq!(cut, Some(3));
        log.append(&serde_json::json!({"d": 2})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{long}{{\"b\":1}}\n{{\"d\":2}}\n"));
        // whole files are left alone; a file that is one torn line becomes empty
        assert_eq!(AppendLog::open(&path, Lock::None, Tail::Cut).unwrap().1, None);
        std::fs::write(&path, "{\"torn").unwrap();
        assert_eq!(AppendLog::open(&path, Lock::None, Tail::Cut).unwrap().1, Some(1));
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert_eq!(AppendLog::open(&tmp.path().join("new.jsonl"), Lock::None, Tail::Cut).unwrap().1, None);
    }

    #[test]
    fn a_kept_torn_line_is_reported_and_left_for_its_owner_to_seal() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("rows.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":").unwrap();
        let (mut log, torn) = AppendLog::open(&path, Lock::None, Tail::Keep).unwrap();
        assert_eq!(torn, Some(2));
        log.append_lines("\n{\"seal\":true}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"b\":\n{\"seal\":true}\n");
    }

    #[test]
    fn appended_records_are_there_after_reopening_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("rows.jsonl");
        {
            let (mut log, _) = AppendLog::open(&path, Lock::None, Tail::Cut).unwrap();
            log.append(&1).unwrap();
            log.append_lines("2\n3\n").unwrap();
        } // closed, as a process that ended
        let (mut log, torn) = AppendLog::open(&path, Lock::None, Tail::Cut).unwrap();
        assert_eq!(torn, None);
        log.append(&4).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n2\n3\n4\n");
    }

    #[test]
    fn an_exclusive_lock_refuses_a_second_writer_until_the_first_closes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("rows.jsonl");
        let busy = Lock::Exclusive { busy: "is in use by another writer; wait for it" };
        let first = AppendLog::open(&path, busy, Tail::Cut).unwrap();
        let second = AppendLog::open(&path, busy, Tail::Cut).err().expect("a second writer is refused");
        assert_eq!(
            second.to_string(),
            format!("{} is in use by another writer; wait for it", path.display())
        );
        // an unlocked open does not take part in the lock
        assert!(AppendLog::open(&path, Lock::None, Tail::Cut).is_ok());
        drop(first);
        assert!(AppendLog::open(&path, busy, Tail::Cut).is_ok(), "the lock goes with the file");
    }
}
