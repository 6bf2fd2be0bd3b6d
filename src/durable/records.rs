//! An append-only JSONL file of typed records, one per line (the length evaluation's stories
//! and judgements, the bench's judgements): each record is one `write` of a whole line
//! followed by `fsync`, so a record counts as done only once it is on disk. A last line cut
//! short by a kill was never acknowledged: opening the file drops it (the file is truncated
//! back to its last whole line, so it stays valid JSONL for other readers) and reports it in
//! a note; the work it held is redone.

use std::marker::PhantomData;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::log::{AppendLog, Lock, Tail};

pub struct RecordLog<T> {
    log: AppendLog,
    _record: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> RecordLog<T> {
    /// Opens (creating if needed) the file and returns the records it holds, with a note
    /// when a torn last line was dropped. Any other line that is not a record is an error
    /// naming the file and line, and the command that writes it (`written_by`, e.g.
    /// "eval length").
    pub fn open(path: &Path, written_by: &str) -> Result<(Self, Vec<T>, Option<String>)> {
        let (log, torn) = AppendLog::open(path, Lock::None, Tail::Cut)?;
        let note = torn.map(|line| {
            format!(
                "{}:{line}: a record cut short (a run stopped mid-write) is dropped; its work is redone",
                path.display()
            )
        });
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut records = Vec::new();
        // whole lines only: the torn one was cut off above
        for (i, piece) in bytes.split(|&b| b == b'\n').enumerate() {
            if piece.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<T>(piece) {
                Ok(r) => records.push(r),
                Err(e) => bail!(
                    "{}:{}: not a record of this evaluation ({e}); the file is written by `{written_by}`: \
                     remove that line (its work is redone) or the whole file",
                    path.display(),
                    i + 1
                ),
            }
        }
        Ok((Self { log, _record: PhantomData }, records, note))
    }

    /// Appends one record and waits for it to reach the disk.
    pub fn append(&mut self, record: &T) -> Result<()> {
        self.log.append(record)
    }
}

#[cfg(test)]
mod tests {
    use super::RecordLog;

    #[test]
    fn records_come_back_a_torn_one_is_noted_and_a_bad_one_is_named_by_line() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("records.jsonl");
        std::fs::write(&path, "[1,\"a\"]\n\n[2,\"b\"]\n[3,").unwrap();
        let (mut log, records, note) = RecordLog::<(u32, String)>::open(&path, "eval length").unwrap();
        assert_eq!(records, vec![(1, "a".to_string()), (2, "b".to_string())]);
        let note = note.expect("the torn line is noted");
        assert!(note.starts_with(&format!("{}:4: a record cut short", path.display())), "{note}");
        log.append(&(4, "d".to_string())).unwrap();
        drop(log);
        let (_, records, note) = RecordLog::<(u32, String)>::open(&path, "eval length").unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(note, None);
        std::fs::write(&path, "[1,\"a\"]\n{\"x\":1}\n").unwrap();
        let err = RecordLog::<(u32, String)>::open(&path, "eval bench").err().unwrap().to_string();
        assert!(
            err.starts_with(&format!("{}:2: not a record", path.display())) && err.contains("`eval bench`"),
            "{err}"
        );
    }
}
