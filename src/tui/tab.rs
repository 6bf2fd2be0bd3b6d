//! The contract every tab keeps. A tab owns its state (a field of `State`, in a file of its
//! folder that imports no view), its keys, what its actions do, and its drawing; the
//! registry (`tabs.rs`) lists the tabs in their order. The frame around them (tab bar, status
//! line, help overlay, global keys) asks the registry, so adding a tab is a folder, one line
//! there, and its state's field.

use crossterm::event::KeyEvent;
use ratatui::layout::Rect;
use ratatui::Frame;

use super::action::Action;
use super::eval::load::EvalIndex;
use super::rollouts::RolloutIndex;
use super::state::{State, TabId};

/// (section title, (keys, what they do)): one section of the help overlay.
pub type HelpSection = (&'static str, &'static [(&'static str, &'static str)]);

pub struct Tab {
    pub id: TabId,
    /// Its section of the help overlay and the section's place there: the overlay lists the
    /// sections by place (it is not the tab order: the sections are placed so that two
    /// columns fit 80x24).
    pub help: Option<(u8, HelpSection)>,
    /// The tab's own keys, asked before the global ones (`keys.rs`) while it is shown: an
    /// action, or None to leave the key to the global map. Pure: it reads the state only.
    pub keys: fn(&State, KeyEvent) -> Option<Action>,
    /// What an action means on this tab, while it is shown: it applies the ones it takes and
    /// hands the rest back to the App.
    pub update: fn(&mut Ctx, Action) -> Option<Action>,
    /// The action for one notch of the mouse wheel over the tab.
    pub wheel: fn(bool) -> Action,
    pub draw: fn(&mut Frame, Rect, &State),
}

/// What a tab's `update` may change: the state and the run's readers the App keeps.
pub struct Ctx<'a> {
    pub state: &'a mut State,
    pub rollouts: &'a mut RolloutIndex,
    pub evals: &'a mut EvalIndex,
    /// Lines for the status bar (and tui.log); the App says them after the update.
    pub said: Vec<String>,
}

impl Ctx<'_> {
    pub fn say(&mut self, text: impl Into<String>) {
        self.said.push(text.into());
    }
}

/// For a tab without keys of its own.
pub fn no_keys(_: &State, _: KeyEvent) -> Option<Action> {
    None
}

/// For a tab that gives no action a meaning of its own.
pub fn leaves(_: &mut Ctx, a: Action) -> Option<Action> {
    Some(a)
}

/// The wheel as ↑ / ↓.
pub fn wheel_moves(down: bool) -> Action {
    Action::Move { down, by: 1 }
}

/// `i` moved one way by `by`, kept in 0..n.
pub fn step_index(i: usize, forward: bool, by: usize, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    if forward {
        i.saturating_add(by).min(n - 1)
    } else {
        i.saturating_sub(by)
    }
}
