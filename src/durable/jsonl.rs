//! Reading JSONL inputs (datasets, story collections, evaluation prompts, annotation inputs)
//! line by line, each line capped in length so that a file that is not JSONL (`/dev/zero`, a
//! binary) is refused at its first overlong line instead of read into memory for ever; and
//! the shared pieces of checking their records (`Problems`: every bad record named by
//! `FILE:LINE`, in one error).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

/// The longest line read, in bytes: a record is one story (a 12k-word story is under 100 KB),
/// so a line this long is not a record.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// A non-blank line of a JSONL file: its 1-based number, and its object or what is
/// wrong with it (not UTF-8, not JSON, not an object).
pub type JsonlLine = (usize, Result<Map<String, Value>, String>);

/// The non-blank lines of a JSONL file, in order. A line over `MAX_LINE_BYTES` ends the
/// reading with an error naming it.
pub fn jsonl_lines(path: &Path) -> Result<Vec<JsonlLine>> {
    if path.is_dir() {
        bail!("{} is a directory; give a JSONL file (one JSON object per line)", path.display());
    }
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut out = Vec::new();
    let mut raw = Vec::new();
    for n in 1.. {
        raw.clear();
        let got = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut raw)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if got == 0 {
            break;
        }
        if raw.last() != Some(&b'\n') && raw.len() > MAX_LINE_BYTES {
            bail!(
                "{}:{n}: the line is longer than {} MiB without a line break, so it is no record (a \
                 record is one story); is {} a JSONL file? Reading stopped there",
                path.display(),
                MAX_LINE_BYTES >> 20,
                path.display()
            );
        }
        let line = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend(parse_line(n, line));
    }
    Ok(out)
}

/// One line's object or what is wrong with it; None for a blank line.
fn parse_line(n: usize, raw: &[u8]) -> Option<JsonlLine> {
    let Ok(line) = std::str::from_utf8(raw) else {
        return Some((n, Err("is not UTF-8 text; save the file as UTF-8".into())));
    };
    let line = if n == 1 { line.trim_start_matches('\u{feff}') } else { line };
    if line.trim().is_empty() {
        return None;
    }
    let parsed = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(v) => Err(format!("is {} where a JSON object was expected; write one {{...}} per line", kind(&v))),
        Err(e) => {
            let msg = e.to_string();
            let msg = msg.rsplit_once(" at line ").map_or(msg.as_str(), |(m, _)| m).to_string();
            Err(format!("is not JSON ({msg} at column {}); write one JSON object per line", e.column()))
        }
    };
    Some((n, parsed))
}

/// At most this many problems are listed in one error; the rest are counted.
const MAX_LISTED: usize = 20;

/// Problems found while reading a file, each already prefixed with its `FILE:LINE`.
#[derive(Default)]
pub struct Problems {
    listed: Vec<String>,
    bad_records: usize,
}

impl Problems {
    /// All the problems of one record at `location` (`FILE:LINE`).
    pub fn record(&mut self, location: &str, problems: Vec<String>) {
        if problems.is_empty() {
            return;
        }
        self.bad_records += 1;
        self.listed.extend(problems.into_iter().map(|p| format!("{location}: {p}")));
    }

    /// The object of a line of `jsonl_lines`; a line that is not one (not UTF-8, not JSON, not
    /// an object) is recorded at `location` and gives None.
    pub fn object<'a>(
        &mut self,
        location: &str,
        parsed: &'a Result<Map<String, Value>, String>,
    ) -> Option<&'a Map<String, Value>> {
        match parsed {
            Ok(o) => Some(o),
            Err(e) => {
                self.record(location, vec![e.clone()]);
                None
            }
        }
    }

    /// Ok when nothing was wrong; else one error listing the first problems and counting the rest.
    pub fn check(self, what: &Path, records: usize) -> Result<()> {
        if self.listed.is_empty() {
            return Ok(());
        }
        let mut msg = format!(
            "{}: {} of {records} records are bad ({} problems); fix them and run again:",
            what.display(),
            self.bad_records,
            self.listed.len()
        );
        for p in self.listed.iter().take(MAX_LISTED) {
            msg.push_str("\n  ");
            msg.push_str(p);
        }
        if self.listed.len() > MAX_LISTED {
            msg.push_str(&format!("\n  ... and {} more problems", self.listed.len() - MAX_LISTED));
        }
        Err(anyhow!(msg))
    }
}

/// The kind of a JSON value, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An optional string field: absent or null is None.
pub fn opt_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("field {key} must be a string, found {}", kind(v))),
    }
}
