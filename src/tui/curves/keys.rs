//! The Dashboard's keys for its pages, smoothing and the config diff (the zoom and pan keys
//! are the app's).

use crossterm::event::{KeyCode, KeyEvent};

use super::state::{CurvesState, Page};
use super::Msg;

/// What a key means on the Dashboard, when it is one of these.
pub fn action_for(c: &CurvesState, key: KeyEvent) -> Option<Msg> {
    if c.diff.is_some() && matches!(key.code, KeyCode::Esc) {
        return Some(Msg::ToggleDiff);
    }
    Some(match key.code {
        KeyCode::Char('v') => Msg::NextPage,
        KeyCode::Char('<') => Msg::Smoothing { more: false },
        KeyCode::Char('>') => Msg::Smoothing { more: true },
        KeyCode::Char('D') => Msg::ToggleDiff,
        KeyCode::Up if c.page == Page::Signals => Msg::Signal { down: false },
        KeyCode::Down if c.page == Page::Signals => Msg::Signal { down: true },
        _ => return None,
    })
}
