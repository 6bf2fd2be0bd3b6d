//! The dashboard's curves beyond one run's overview: other runs overlaid on it (`open RUN
//! RUN...`, one colour each, aligned by step, with a diff of their configs), EMA smoothing
//! with the raw series faint behind it, every step signal as a selectable curve (Signals
//! page), and length control at a glance (Length page). State, messages and update here; a
//! file per page draws it from `&State` alone.

pub mod chart;
pub mod column;
pub mod compare;
pub mod ema;
pub mod keys;
pub mod length;
pub mod signals;
pub mod state;

use super::history::Window;
use super::state::State;

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

pub fn update(s: &mut State, msg: Msg) -> Option<String> {
    match msg {
        Msg::NextPage => s.curves.page = s.curves.page.next(),
        Msg::Smoothing { more } => {
            let c = &mut s.curves;
            c.smoothing = if more {
                (c.smoothing + 1).min(ema::STRENGTHS.len() - 1)
            } else {
                c.smoothing.saturating_sub(1)
            };
            let w = c.weight();
            s.history.set_smoothing(w);
            for r in &mut s.curves.runs {
                r.history.set_smoothing(w);
            }
            return Some(if w > 0.0 {
                format!("smoothing {w} (EMA, debiased)")
            } else {
                "smoothing off".into()
            });
        }
        Msg::Signal { down } => {
            let n = signals::catalogue(s).len();
            let c = &mut s.curves;
            c.signal =
                if down { (c.signal + 1).min(n.saturating_sub(1)) } else { c.signal.saturating_sub(1) };
        }
        Msg::ToggleDiff => {
            if s.curves.diff.take().is_none() {
                if s.curves.runs.is_empty() {
                    return Some(
                        "one run: nothing to compare; open several (polaris-tui open RUN RUN ...)".into(),
                    );
                }
                s.curves.diff = Some(compare::config_diff(s));
            }
        }
    }
    None
}

/// Every run's (name, history): this one first.
pub fn runs(s: &State) -> impl Iterator<Item = (&str, &super::history::History)> {
    std::iter::once((s.run_name.as_str(), &s.history))
        .chain(s.curves.runs.iter().map(|r| (r.name.as_str(), &r.history)))
}

/// The first and last step of every run together.
pub fn ends(s: &State) -> Option<(usize, usize)> {
    runs(s).filter_map(|(_, h)| h.first_last()).reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
}

/// The window's step range over every run, inclusive.
pub fn range(s: &State) -> Option<(usize, usize)> {
    Some(s.window.range(ends(s)?))
}

pub fn zoom(s: &State, zoom_in: bool) -> Window {
    ends(s).map_or(s.window, |e| s.window.zoom(e, zoom_in))
}

pub fn pan(s: &State, forward: bool) -> Window {
    ends(s).map_or(s.window, |e| s.window.pan(e, forward))
}
