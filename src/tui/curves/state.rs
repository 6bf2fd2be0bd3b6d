//! What the dashboard's curves keep between frames: the page shown, the smoothing, the chosen
//! signal, the runs overlaid and their config diff. Plain data (it imports no view), so the
//! app's `State` holds it without depending on the drawing.

use std::path::PathBuf;

use super::ema;
use crate::tui::history::History;

/// What the Dashboard tab shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Page {
    /// The run's main curves (the dashboard as it always was), other runs overlaid.
    #[default]
    Overview,
    /// One signal chosen from the list of every signal, with its family beside it.
    Signals,
    /// Requested against written words, by row and by requested-length bucket, and the share
    /// inside the recipe's band over steps.
    Length,
}

impl Page {
    pub const ALL: [Page; 3] = [Page::Overview, Page::Signals, Page::Length];

    pub fn title(self) -> &'static str {
        match self {
            Page::Overview => "curves",
            Page::Signals => "signals",
            Page::Length => "length",
        }
    }

    pub fn next(self) -> Page {
        let i = Page::ALL.iter().position(|p| *p == self).unwrap_or(0);
        Page::ALL[(i + 1) % Page::ALL.len()]
    }
}

#[derive(Debug, Default)]
pub struct CurvesState {
    pub page: Page,
    /// Index into `ema::STRENGTHS`.
    pub smoothing: usize,
    /// The chosen row of the Signals page's list.
    pub signal: usize,
    /// The runs overlaid on this one, in the order given.
    pub runs: Vec<ComparedRun>,
    /// The first run's directory (the config diff reads its config.toml).
    pub dir: PathBuf,
    /// Shown over the dashboard while Some.
    pub diff: Option<ConfigDiff>,
}

impl CurvesState {
    pub fn weight(&self) -> f64 {
        ema::STRENGTHS[self.smoothing.min(ema::STRENGTHS.len() - 1)]
    }
}

/// A run overlaid on the one the TUI follows.
#[derive(Debug)]
pub struct ComparedRun {
    pub name: String,
    pub dir: PathBuf,
    pub history: History,
}

/// The config keys (dotted, as `--set` names them) whose values differ between the runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDiff {
    pub runs: Vec<String>,
    /// (key, each run's value; "–" where a run's config lacks the key)
    pub rows: Vec<(String, Vec<String>)>,
    /// Keys every run has with the same value.
    pub same: usize,
    /// Configs that could not be read, as `run: why`.
    pub problems: Vec<String>,
}
