//! events.jsonl: append-only, one event per line, each line fsynced before the event is
//! broadcast, `seq` strictly increasing. A line torn by a kill mid-write is dropped when the
//! log is reopened (the file is truncated back to its last whole line), so the file stays
//! valid JSONL and numbering continues after the last event that was written whole.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{bail, Context, Result};
use tokio::sync::broadcast;

use super::event::{Event, EventKind, PROTOCOL_VERSION};
use crate::durable::log::{AppendLog, Lock, Tail};

pub struct EventLog {
    file: AppendLog,
    next_seq: u64,
    live: broadcast::Sender<Event>,
}

/// What reading a log found.
#[derive(Debug)]
pub struct ReadLog {
    pub events: Vec<Event>,
    /// Byte length of the whole lines (where a torn tail starts).
    pub valid_len: u64,
    /// A trailing partial or unparsable line was present.
    pub torn_tail: bool,
}

/// Reads every whole event. A bad line in the middle is an error naming its line; a bad last
/// line is a torn tail.
pub fn read(path: &Path) -> Result<ReadLog> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ReadLog { events: vec![], valid_len: 0, torn_tail: false })
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut reader = BufReader::new(f);
    let (mut events, mut valid_len, mut offset) = (Vec::new(), 0u64, 0u64);
    let mut pending_error: Option<String> = None;
    let mut line = String::new();
    let mut n = 0usize;
    loop {
        line.clear();
        let read = reader.read_line(&mut line).with_context(|| format!("cannot read {}", path.display()))?;
        if read == 0 {
            break;
        }
        n += 1;
        if let Some(e) = pending_error.take() {
            bail!("{e}; the log is damaged before its end: keep a copy and truncate it at that line");
        }
        offset += read as u64;
        let complete = line.ends_with('\n');
        match serde_json::from_str::<Event>(line.trim_end()) {
            Ok(ev) if complete => {
                if let Some(prev) = events.last() {
                    let prev: &Event = prev;
                    if ev.seq <= prev.seq {
                        bail!("{}:{n}: seq {} does not follow {}", path.display(), ev.seq, prev.seq);
                    }
                }
                events.push(ev);
                valid_len = offset;
            }
            Ok(_) => return Ok(ReadLog { events, valid_len, torn_tail: true }),
            Err(e) => pending_error = Some(format!("{}:{n}: not an event ({e})", path.display())),
        }
    }
    Ok(ReadLog { torn_tail: pending_error.is_some(), events, valid_len })
}

impl EventLog {
    /// Opens (or creates) the log, dropping a torn tail, ready to append after the last event.
    pub fn open(path: &Path) -> Result<Self> {
        let log = read(path)?;
        // `read` decides where the whole events end: a last line that is complete but not an
        // event is torn too, which the byte-level check alone would keep
        let (mut file, _) = AppendLog::open(path, Lock::None, Tail::Keep)?;
        if log.torn_tail {
            file.truncate(log.valid_len)?;
        }
        let (live, _) = broadcast::channel(1024);
        Ok(Self { file, next_seq: log.events.last().map_or(1, |e| e.seq + 1), live })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The seq the next event gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// A receiver of every event appended from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// The live broadcast itself, for a server that subscribes each viewer as it connects.
    pub fn live(&self) -> broadcast::Sender<Event> {
        self.live.clone()
    }

    /// Appends, fsyncs, then broadcasts. Returns the event as written.
    pub fn append(&mut self, kind: EventKind) -> Result<Event> {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let event = Event { v: PROTOCOL_VERSION, seq: self.next_seq, time, kind };
        let mut line = serde_json::to_string(&event)?;
        // JSON has no NaN: serde writes a non-finite number as null, which `read` (and so
        // `runs`, `stop` and `--resume`) would reject; such an event is refused instead
        if let Err(e) = serde_json::from_str::<Event>(&line) {
            let shown: String = line.chars().take(300).collect();
            bail!(
                "refusing to append to {} an event its reader rejects ({e}; a NaN or infinite value?): {shown}",
                self.path().display()
            );
        }
        line.push('\n');
        self.file.append_lines(&line)?;
        self.next_seq += 1;
        // nobody listening is fine: the file is the record
        let _ = self.live.send(event.clone());
        Ok(event)
    }
}
