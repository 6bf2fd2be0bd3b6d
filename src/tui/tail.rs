//! Reading a JSONL file that another process appends to: each call returns the lines
//! completed since the previous one. A partial last line (being written, or torn by a kill)
//! waits until its newline arrives; a file that shrank (a torn tail cut off when the log was
//! reopened) is read again from its start.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub struct Tail {
    path: PathBuf,
    /// Bytes consumed: the end of the last whole line read.
    offset: u64,
    /// Lines consumed.
    lines: usize,
}

/// One whole line, without its newline.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Byte offset of the line's start in the file.
    pub offset: u64,
    /// 1-based line number.
    pub number: usize,
    pub text: String,
}

impl Tail {
    pub fn new(path: PathBuf) -> Self {
        Self { path, offset: 0, lines: 0 }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole lines appended since the last call; none while the file does not exist.
    pub fn read_new(&mut self) -> Result<Vec<Line>> {
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        };
        let len = f.metadata().with_context(|| format!("cannot read {}", self.path.display()))?.len();
        if len < self.offset {
            self.offset = 0;
            self.lines = 0;
        }
        if len == self.offset {
            return Ok(vec![]);
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::with_capacity((len - self.offset) as usize);
        f.take(len - self.offset)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else { return Ok(vec![]) };
        let mut out = Vec::new();
        let mut start = 0usize;
        for piece in buf[..end].split(|&b| b == b'\n') {
            self.lines += 1;
            out.push(Line {
                offset: self.offset + start as u64,
                number: self.lines,
                text: String::from_utf8_lossy(piece).into_owned(),
            });
            start += piece.len() + 1;
        }
        self.offset += end as u64 + 1;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_partial_line_waits_for_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let mut tail = Tail::new(path.clone());
        assert!(tail.read_new().unwrap().is_empty(), "a missing file has no lines");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"one\ntw").unwrap();
        let got = tail.read_new().unwrap();
        assert_eq!(got, vec![Line { offset: 0, number: 1, text: "one".into() }]);
        f.write_all(b"o\nthree\n").unwrap();
        let got: Vec<_> =
            tail.read_new().unwrap().into_iter().map(|l| (l.offset, l.number, l.text)).collect();
        assert_eq!(got, vec![(4, 2, "two".into()), (8, 3, "three".into())]);
        assert!(tail.read_new().unwrap().is_empty());
    }

    #[test]
    fn a_file_that_shrank_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        std::fs::write(&path, "a\nb\n").unwrap();
        let mut tail = Tail::new(path.clone());
        assert_eq!(tail.read_new().unwrap().len(), 2);
        std::fs::write(&path, "a\n").unwrap();
        let got = tail.read_new().unwrap();
        assert_eq!(got, vec![Line { offset: 0, number: 1, text: "a".into() }]);
    }
}
