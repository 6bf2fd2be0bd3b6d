//! Keys to actions: the shown tab's own keys first (`Tab::keys`), then the global map; and
//! the help overlay's section for the global keys (kept side by side so they agree; each
//! tab's section is in its own folder).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::action::Action;
use super::state::State;
use super::tab::HelpSection;
use super::tabs;

/// (keys, what they do) of the global keys; the overlay lists the tabs' sections after it.
pub const HELP: HelpSection = (
    "Everywhere",
    &[
        // one line for both ways of choosing a tab, so the help fits 22 rows at 80x24
        ("1-7  Tab", "tab n / next (S-Tab back)"),
        ("p", "pause / resume training"),
        ("c", "checkpoint now"),
        ("s", "stop training (y / n)"),
        // d, C and T share a line so alerts and the report fit the 22 rows of 80x24
        ("d C T", "detach / control / theme"),
        ("a  E", "alerts / write a report"),
        ("?", "this help; Esc closes"),
        // an attached viewer's run goes on; the demo's in-process run stops (d hands it on)
        ("q Ctrl-C", "quit"),
        ("mouse", "click tabs; wheel scrolls"),
    ],
);

/// What a key press means in the current state.
pub fn action_for(state: &State, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    if state.confirm_stop {
        return Some(Action::ConfirmStop(matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y'))));
    }
    if state.confirm_takeover.is_some() {
        return Some(Action::ConfirmTakeControl(matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y'))));
    }
    if state.help {
        return matches!(key.code, KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q'))
            .then_some(Action::ToggleHelp);
    }
    if state.alerts.shown {
        return matches!(key.code, KeyCode::Esc | KeyCode::Char('a') | KeyCode::Char('q'))
            .then_some(Action::ToggleAlerts);
    }
    if let Some(a) = (tabs::get(state.tab).keys)(state, key) {
        return Some(a);
    }
    Some(match key.code {
        KeyCode::Char(c @ '1'..='9') => Action::SelectTab(tabs::nth((c as u8 - b'1') as usize)?),
        KeyCode::Tab => Action::CycleTab { forward: true },
        KeyCode::BackTab => Action::CycleTab { forward: false },
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('T') => Action::CycleTheme,
        KeyCode::Char('p') => Action::PauseResume,
        KeyCode::Char('c') => Action::CheckpointNow,
        KeyCode::Char('s') => Action::AskStop,
        KeyCode::Char('d') => Action::Detach,
        KeyCode::Char('C') => Action::AskTakeControl,
        KeyCode::Char('f') => Action::Follow,
        KeyCode::Left => Action::Side { forward: false },
        KeyCode::Right => Action::Side { forward: true },
        KeyCode::Up => Action::Move { down: false, by: 1 },
        KeyCode::Down => Action::Move { down: true, by: 1 },
        KeyCode::PageUp => Action::Move { down: false, by: 10 },
        KeyCode::PageDown => Action::Move { down: true, by: 10 },
        KeyCode::Char('[') => Action::Group { forward: false },
        KeyCode::Char(']') => Action::Group { forward: true },
        KeyCode::Char('a') => Action::ToggleAlerts,
        KeyCode::Char('E') => Action::ExportReport,
        _ => return None,
    })
}
