//! An append-only JSONL file of records, one per line: each record is one `write` of a
//! whole line followed by `fsync`, so a record counts as done only once it is on disk. A
//! last line cut short by a kill was never acknowledged: opening the file drops it (the
//! file is truncated back to its last whole line, so it stays valid JSONL for other
//! readers) and reports it in a note; the work it held is redone.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub struct RecordLog<T> {
    path: PathBuf,
    file: File,
    _record: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> RecordLog<T> {
    /// Opens (creating if needed) the file and returns the records it holds, with a note
    /// when a torn last line was dropped. Any other line that is not a record is an error
    /// naming the file and line.
    pub fn open(path: &Path) -> Result<(Self, Vec<T>, Option<String>)> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut records = Vec::new();
        let mut whole = 0usize; // bytes in whole lines
        let mut note = None;
        let mut pieces = bytes.split(|&b| b == b'\n').enumerate().peekable();
        while let Some((i, piece)) = pieces.next() {
            if pieces.peek().is_none() {
                // after the final newline: nothing, or a line torn by a kill
                if !piece.is_empty() {
                    note = Some(format!(
                        "{}:{}: a record cut short (a run stopped mid-write) is dropped; its work is redone",
                        path.display(),
                        i + 1
                    ));
                }
                break;
            }
            whole += piece.len() + 1;
            if piece.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<T>(piece) {
                Ok(r) => records.push(r),
                Err(e) => bail!(
                    "{}:{}: not a record of this evaluation ({e}); the file is written by `eval length`: \
                     remove that line (its work is redone) or the whole file",
                    path.display(),
                    i + 1
                ),
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if note.is_some() {
            file.set_len(whole as u64).with_context(|| format!("cannot truncate {}", path.display()))?;
            file.sync_all()?;
        }
        Ok((Self { path: path.to_path_buf(), file, _record: PhantomData }, records, note))
    }

    /// Appends one record and waits for it to reach the disk.
    pub fn append(&mut self, record: &T) -> Result<()> {
        // one buffer, one write: a kill lands before or after it, not inside a line
        let line = format!("{}\n", serde_json::to_string(record)?);
        self.file
            .write_all(line.as_bytes())
            .with_context(|| format!("cannot append to {}", self.path.display()))?;
        self.file.sync_data().with_context(|| format!("cannot sync {}", self.path.display()))
    }
}
