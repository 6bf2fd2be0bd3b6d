//! The TUI's own log: `tui.log` in the run directory, appended one line at a time (the screen
//! belongs to the views, so nothing is ever printed while the TUI runs).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Journal {
    path: PathBuf,
    file: Option<File>,
}

impl Journal {
    pub fn new(dir: &Path) -> Self {
        Self { path: crate::run::RunDir::at(dir).tui_log(), file: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a line. A log that cannot be written is given up on silently: there is
    /// nowhere else to say so without drawing over the views.
    pub fn note(&mut self, line: &str) {
        if self.file.is_none() {
            self.file = OpenOptions::new().create(true).append(true).open(&self.path).ok();
        }
        if let Some(f) = &mut self.file {
            let time = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            if writeln!(f, "{time:.3} {line}").is_err() {
                self.file = None;
            }
        }
    }
}
