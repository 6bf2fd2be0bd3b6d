//! The Eval tab's state: the run's evaluations as last read (`load.rs`) and the one chosen.

use std::path::PathBuf;

use crate::eval::bench::aggregate::BenchReport;
use crate::eval::report::{EloReport, LengthReport};

/// A summary as read: the report, or what is wrong with its file.
pub type Summary<T> = Result<T, String>;

/// A summary as read, of one of the kinds (`kinds.rs`).
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Length(LengthReport),
    Elo(EloReport),
    Bench(BenchReport),
}

/// One `RUN_DIR/eval/<name>/`.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub name: String,
    pub dir: PathBuf,
    /// (index into `kinds::KINDS`, its summary) of each kind whose file the folder holds, in
    /// the kinds' order.
    pub summaries: Vec<(usize, Summary<Report>)>,
}

impl Evaluation {
    /// The summaries that read.
    pub fn reports(&self) -> impl Iterator<Item = &Report> {
        self.summaries.iter().filter_map(|(_, s)| s.as_ref().ok())
    }
}

#[derive(Debug, Default)]
pub struct EvalTab {
    pub run_dir: PathBuf,
    /// By name.
    pub evals: Vec<Evaluation>,
    pub selected: usize,
}

impl EvalTab {
    pub fn new(run_dir: PathBuf) -> Self {
        Self { run_dir, ..Self::default() }
    }

    pub fn current(&self) -> Option<&Evaluation> {
        self.evals.get(self.selected.min(self.evals.len().saturating_sub(1)))
    }
}
