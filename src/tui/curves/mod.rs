//! The dashboard's curves beyond one run's overview: other runs overlaid on it (`open RUN
//! RUN...`, one colour each, aligned by step, with a diff of their configs), EMA smoothing
//! with the raw series faint behind it, every step signal as a selectable curve (Signals
//! page), and length control at a glance (Length page). State, messages and update here; a
//! file per page draws it from a `CurvesView` alone: the dashboard's own state, the run it
//! follows (`RunView`) and the theme.

pub mod chart;
pub mod column;
pub mod compare;
pub mod ema;
pub mod keys;
pub mod length;
pub mod signals;
pub mod state;

use super::history::{History, Window};
use super::run_view::RunView;
use super::theme::Theme;
use state::CurvesState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    NextPage,
    Smoothing {
        more: bool,
    },
    /// Up / down the Signals page's list.
    Signal {
        down: bool,
    },
    /// Show or hide the config diff of the runs.
    ToggleDiff,
}

/// What the pages draw from, borrowed for one frame.
#[derive(Clone, Copy)]
pub struct CurvesView<'a> {
    pub curves: &'a CurvesState,
    pub run: RunView<'a>,
    pub theme: &'a Theme,
}

impl<'a> CurvesView<'a> {
    /// Every run's (name, history): the followed one first.
    pub fn runs(&self) -> impl Iterator<Item = (&'a str, &'a History)> {
        let others = self.curves.runs.iter().map(|r| (r.name.as_str(), &r.history));
        std::iter::once((self.run.name, self.run.history)).chain(others)
    }

    /// The window's step range over every run, inclusive.
    pub fn range(&self) -> Option<(usize, usize)> {
        range(self.run.history, self.run.window, self.curves)
    }
}

/// Applies `msg` to the curves; the followed run's `history` is smoothed with the others, and
/// its `name` heads the config diff. A line to say, if any.
pub fn update(c: &mut CurvesState, history: &mut History, name: &str, msg: Msg) -> Option<String> {
    match msg {
        Msg::NextPage => c.page = c.page.next(),
        Msg::Smoothing { more } => {
            c.smoothing = if more {
                (c.smoothing + 1).min(ema::STRENGTHS.len() - 1)
            } else {
                c.smoothing.saturating_sub(1)
            };
            let w = c.weight();
            history.set_smoothing(w);
            for r in &mut c.runs {
                r.history.set_smoothing(w);
            }
            return Some(if w > 0.0 {
                format!("smoothing {w} (EMA, debiased)")
            } else {
                "smoothing off".into()
            });
        }
        Msg::Signal { down } => {
            let n = signals::catalogue(histories(history, c)).len();
            c.signal =
                if down { (c.signal + 1).min(n.saturating_sub(1)) } else { c.signal.saturating_sub(1) };
        }
        Msg::ToggleDiff => {
            if c.diff.take().is_none() {
                if c.runs.is_empty() {
                    return Some(
                        "one run: nothing to compare; open several (polaris-tui open RUN RUN ...)".into(),
                    );
                }
                c.diff = Some(compare::config_diff(name, c));
            }
        }
    }
    None
}

/// Every run's history: the followed one's (`history`) first.
pub fn histories<'a>(history: &'a History, c: &'a CurvesState) -> impl Iterator<Item = &'a History> {
    std::iter::once(history).chain(c.runs.iter().map(|r| &r.history))
}

/// The first and last step of every run together.
pub fn ends(history: &History, c: &CurvesState) -> Option<(usize, usize)> {
    histories(history, c).filter_map(History::first_last).reduce(|(a, b), (x, y)| (a.min(x), b.max(y)))
}

/// The window's step range over every run, inclusive.
pub fn range(history: &History, window: Window, c: &CurvesState) -> Option<(usize, usize)> {
    Some(window.range(ends(history, c)?))
}

pub fn zoom(history: &History, window: Window, c: &CurvesState, zoom_in: bool) -> Window {
    ends(history, c).map_or(window, |e| window.zoom(e, zoom_in))
}

pub fn pan(history: &History, window: Window, c: &CurvesState, forward: bool) -> Window {
    ends(history, c).map_or(window, |e| window.pan(e, forward))
}
