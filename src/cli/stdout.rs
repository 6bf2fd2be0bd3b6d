//! Results printed to stdout: a reader that closes the pipe early (`| head -c 100`) ends the
//! output quietly, where `println!` would panic.

use std::io::{ErrorKind, Write};

use anyhow::{Context, Result};

/// Writes `text` to stdout and flushes it; a closed pipe is not an error.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        written => written.context("cannot write to stdout"),
    }
}
