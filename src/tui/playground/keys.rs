//! The playground's keys. While the editor has focus every key but Esc and Ctrl-C goes to
//! it, so typing never switches tabs or quits; otherwise the playground takes its own keys
//! and leaves the rest (tabs, q, ?, theme, trainer controls) to the global map.

use crossterm::event::{KeyCode, KeyEvent};

use super::msg::Msg;
use super::state::PlaygroundState;
use crate::tui::tab::HelpSection;

/// The help overlay's section.
pub const HELP: HelpSection = (
    "Playground",
    &[
        ("e / Enter", "edit the prompt (Esc ends)"),
        ("↑↓  + -", "choose / change a setting"),
        ("g  /  x", "generate  /  stop"),
        ("m  ← / →", "model of the pane / pane"),
        ("v", "one pane / compare two"),
        ("J  /  w", "judge  /  save the story"),
        ("PgUp/Dn", "scroll the story"),
    ],
);

/// The playground's message for a key, or None to let the global keys have it.
pub fn action_for(p: &PlaygroundState, key: KeyEvent) -> Option<Msg> {
    if p.editing {
        return Some(match key.code {
            KeyCode::Esc => Msg::StopEditing,
            _ => Msg::Edit(key),
        });
    }
    Some(match key.code {
        KeyCode::Char('e') | KeyCode::Enter => Msg::StartEditing,
        KeyCode::Char('g') => Msg::Generate,
        KeyCode::Char('x') => Msg::Stop,
        KeyCode::Char('J') => Msg::Judge,
        KeyCode::Char('w') => Msg::Save,
        KeyCode::Char('m') => Msg::CycleModel,
        KeyCode::Char('v') => Msg::TogglePanes,
        KeyCode::Left | KeyCode::Right => Msg::SwitchPane,
        KeyCode::Up => Msg::Field { down: false },
        KeyCode::Down => Msg::Field { down: true },
        KeyCode::Char('+') | KeyCode::Char('=') => Msg::Adjust { up: true },
        KeyCode::Char('-') => Msg::Adjust { up: false },
        KeyCode::PageUp => Msg::Scroll { down: false, lines: 10 },
        KeyCode::PageDown => Msg::Scroll { down: true, lines: 10 },
        _ => return None,
    })
}
