//! The durable judgment store: one append-only JSONL file per annotator. Every record is
//! one `write` of a whole line followed by `fsync`, and the caller moves on only after
//! both returned, so an acknowledged judgment survives a kill (and, as far as the disk
//! honours fsync, a power cut). Nothing is rewritten: a line torn by a crash is sealed
//! off by an appended record, and undo is a record too.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::record::{now, Record};
use super::study::sync_dir;
use crate::durable::log::{AppendLog, Lock, Tail};

/// A record read back, with its 1-based line number.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub number: usize,
    pub record: Record,
}

/// Reads a judgment file. A last line without its newline is a write torn by a crash and
/// was never acknowledged, so it is left out; so is a torn line that a later session
/// sealed. Any other line that is not a record is an error naming file and line.
pub fn read_lines(path: &Path) -> Result<Vec<Line>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut pieces: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // After the final newline there is an empty piece, or a torn tail: drop either.
    pieces.pop();
    let parsed: Vec<Result<Record, serde_json::Error>> =
        pieces.iter().map(|p| serde_json::from_slice::<Record>(p)).collect();
    let mut lines = Vec::new();
    for (i, result) in parsed.iter().enumerate() {
        // Even a torn line that happens to parse was never acknowledged.
        if matches!(parsed.get(i + 1), Some(Ok(Record::SealedTornLine { .. }))) {
            continue;
        }
        match result {
            Ok(record) => lines.push(Line { number: i + 1, record: record.clone() }),
            Err(e) => bail!(
                "{}:{}: not a judgment record ({e}); the file is append-only and written by \
                 `polaris-tui annotate`: restore it from a copy or remove that line",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(lines)
}

/// An annotator's judgment file, open for appending and locked against a second session.
pub struct JudgmentFile {
    file: AppendLog,
}

impl JudgmentFile {
    /// Opens (creating if needed) and locks the file, returns what it already holds, and
    /// seals a torn last line so the next record starts on a line of its own.
    pub fn open(path: &Path) -> Result<(Self, Vec<Line>)> {
        let existed = path.exists();
        let busy = "is open in another annotate session (the same annotator twice?); \
                    close that one first or choose another --annotator";
        // the torn line is kept: nothing is rewritten, the seal below closes it
        let (file, torn) = AppendLog::open(path, Lock::Exclusive { busy }, Tail::Keep)?;
        if !existed {
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
        }
        let mut store = Self { file };
        let lines = read_lines(path)?;
        if torn.is_some() {
            let seal = serde_json::to_string(&Record::SealedTornLine { at_unix_s: now() })?;
            store.file.append_lines(&format!("\n{seal}\n"))?;
        }
        Ok((store, lines))
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Appends one record and waits for it to reach the disk.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        self.file.append(record)
    }
}
