//! `exit.json`: how a run's process ended, written on its way out (by the trainer itself, or
//! by the detached run's supervisor when the trainer could not: a signal, kill -9 included),
//! so a viewer who comes later sees why the run ended. Written to a temporary file, fsynced,
//! then renamed into place: a reader sees the old file or the new one, never half of one.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::dir::RunDir;

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitKind {
    /// All its steps done.
    Finished,
    /// Asked to stop (a Stop control, SIGTERM / SIGINT), with a final checkpoint.
    Stopped,
    /// It ended with an error of its own (the message says which).
    Failed,
    /// It ended without a clean ending: a signal, or an exit before it could say why.
    Crashed,
}

impl ExitKind {
    pub fn name(self) -> &'static str {
        match self {
            ExitKind::Finished => "finished",
            ExitKind::Stopped => "stopped",
            ExitKind::Failed => "failed",
            ExitKind::Crashed => "crashed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exit {
    pub status: ExitKind,
    /// The process's exit code, when it exited (rather than being killed); known to a
    /// detached run's supervisor, None when the trainer wrote the file itself.
    pub code: Option<i32>,
    /// The signal that killed it (9 for kill -9).
    pub signal: Option<i32>,
    /// The trainer's process id.
    pub pid: u32,
    /// Unix time, seconds.
    pub time: f64,
    /// The last optimizer step in the event log when it ended.
    pub last_step: Option<usize>,
    /// The error for `failed`, what happened for `crashed`; empty otherwise.
    pub message: String,
}

impl Exit {
    /// An ending stamped now.
    pub fn new(status: ExitKind, pid: u32, last_step: Option<usize>, message: String) -> Self {
        Self { status, code: None, signal: None, pid, time: now(), last_step, message }
    }

    /// One line: `crashed (killed by signal 9)`, `failed (exit code 1): no such model`.
    pub fn describe(&self) -> String {
        let mut how = Vec::new();
        if let Some(s) = self.signal {
            how.push(format!("killed by signal {s}"));
        }
        if let Some(c) = self.code.filter(|c| *c != 0) {
            how.push(format!("exit code {c}"));
        }
        let mut text = self.status.name().to_string();
        if !how.is_empty() {
            text.push_str(&format!(" ({})", how.join(", ")));
        }
        if !self.message.is_empty() {
            text.push_str(&format!(": {}", self.message));
        }
        text
    }
}

/// Writes `exit.json` in `run_dir` (write, fsync, rename).
pub fn write(run_dir: &Path, exit: &Exit) -> Result<()> {
    let text = serde_json::to_string_pretty(exit)? + "\n";
    crate::durable::write_atomic(&RunDir::at(run_dir).exit(), text.as_bytes())
}

/// The run's `exit.json`, if it has one. A damaged file is an error naming it.
pub fn read(run_dir: &Path) -> Result<Option<Exit>> {
    let p = RunDir::at(run_dir).exit();
    match std::fs::read_to_string(&p) {
        Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "{}: not an exit status ({}); delete it if the run is known to be gone",
                p.display(),
                text.trim()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    }
}

/// Removes a previous process's `exit.json` (a run resumed in the same directory).
pub fn clear(run_dir: &Path) -> Result<()> {
    match std::fs::remove_file(RunDir::at(run_dir).exit()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", RunDir::at(run_dir).exit().display()))
        }
        _ => Ok(()),
    }
}

/// Unix time now, seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
