//! The contract every tab keeps. A tab owns its state (a field of `State`, in a file of its
//! folder that imports no view), its keys, what its actions do, and its drawing; the
//! registry (`tabs.rs`) lists the tabs in their order. The frame around them (tab bar, status
//! line, help overlay, global keys) asks the registry, so adding a tab is a folder, one line
//! there, and its state's field.
//!
//! A tab's own functions never see the whole `State`: its drawing is
//! `draw(frame, area, &ItsState, &Theme)`, its keys `keys(&ItsState, key)` (or the key alone),
//! with an explicit borrowed view beside its state where it really reads shared data (the
//! Dashboard reads the run through a `RunView`; the Inspector reads the Groups tab's state for
//! the row chosen there). The tab's `TAB` const is the one place that picks those out of
//! `State`, with a closure that captures nothing and so is a fn pointer:
//! `draw: |frame, area, s| draw(frame, area, &s.gpu, s.theme())`.
//! `update` takes the `Ctx`, since some actions cross tabs (Enter in Groups shows the
//! Inspector); a tab whose update changes only its own state borrows just that from it.
//!
//! The frame is not a tab and reads `State` whole (`ui.rs`: tab bar, status line, help and
//! confirm overlays; `alerts/`: the alerts overlay; `keys.rs`: the global keys): it owns the
//! run's title and state, the messages, the note, the themes, control and steering, and which
//! tab is shown.

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
    /// action, or None to leave the key to the global map. Pure: it reads the tab's own state
    /// only (picked out of `State` here, in the `TAB` const).
    pub keys: fn(&State, KeyEvent) -> Option<Action>,
    /// What an action means on this tab, while it is shown: it applies the ones it takes and
    /// hands the rest back to the App.
    pub update: fn(&mut Ctx, Action) -> Option<Action>,
    /// The action for one notch of the mouse wheel over the tab.
    pub wheel: fn(bool) -> Action,
    /// Draws the tab into `Rect` from its state, picked out of `State` here (module doc).
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
