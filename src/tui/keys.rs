//! Keys to actions, and the help overlay's list of them (kept side by side so they agree).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::action::Action;
use super::state::{State, Tab};

/// (keys, what they do), by section, as the help overlay lists them.
pub const HELP: &[(&str, &[(&str, &str)])] = &[
    (
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
    ),
    (
        "Dashboard",
        &[
            ("+ - ← → f", "zoom / pan / follow live"),
            ("v  < >", "page / smoothing"),
            ("↑↓  D", "signal / config diff"),
        ],
    ),
    // beside the Dashboard so the two help columns stay within 22 rows at 80x24
    ("Eval", &[("↑↓  r", "evaluation / read again")]),
    (
        "Groups",
        &[
            ("← / →", "previous / next step"),
            ("↑ / ↓", "row in the group"),
            ("[ ] PgUp/Dn", "previous / next group"),
            ("f", "follow the latest step"),
            ("Enter", "inspect the row"),
        ],
    ),
    (
        "Inspector",
        &[
            ("↑↓ PgUp/Dn", "scroll the story"),
            ("← / →", "previous / next row"),
            ("[ / ]", "previous / next group"),
            ("j / k", "scroll the judgement"),
            ("t", "show / hide thinking"),
        ],
    ),
    super::playground::keys::HELP,
    (
        "Annotate",
        &[
            ("↑↓ Enter", "choose / open a study"),
            ("1 / 2 / =", "left / right better / tie"),
            ("s u c", "skip / undo / comment"),
            ("o ↑↓ PgUp", "story pane / scroll"),
            ("q Esc", "leave the study"),
            ("Tab S-Tab", "tabs (1/2 are verdicts)"),
        ],
    ),
];

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
    let tab = state.tab;
    if tab == Tab::Playground {
        if let Some(msg) = super::playground::keys::action_for(state, key) {
            return Some(Action::Playground(msg));
        }
    }
    if let Some(screen) = state.annotate.screen.as_ref().filter(|_| tab == Tab::Annotate) {
        return Some(super::annotate::keys::action_for(screen, key));
    }
    if let Some(msg) = super::curves::keys::action_for(state, key) {
        return Some(Action::Curves(msg));
    }
    Some(match key.code {
        KeyCode::Char(c @ '1'..='7') => Action::SelectTab(Tab::ALL[(c as u8 - b'1') as usize]),
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
        KeyCode::Char('+') | KeyCode::Char('=') if tab == Tab::Dashboard => Action::Zoom { zoom_in: true },
        KeyCode::Char('-') if tab == Tab::Dashboard => Action::Zoom { zoom_in: false },
        KeyCode::Char('f') => Action::Follow,
        KeyCode::Left => Action::Side { forward: false },
        KeyCode::Right => Action::Side { forward: true },
        KeyCode::Up => Action::Move { down: false, by: 1 },
        KeyCode::Down => Action::Move { down: true, by: 1 },
        KeyCode::PageUp if tab == Tab::Groups => Action::Group { forward: false },
        KeyCode::PageDown if tab == Tab::Groups => Action::Group { forward: true },
        KeyCode::PageUp => Action::Move { down: false, by: 10 },
        KeyCode::PageDown => Action::Move { down: true, by: 10 },
        KeyCode::Char('[') => Action::Group { forward: false },
        KeyCode::Char(']') => Action::Group { forward: true },
        KeyCode::Char('k') if tab == Tab::Inspector => Action::ScrollJudgement { down: false },
        KeyCode::Char('j') if tab == Tab::Inspector => Action::ScrollJudgement { down: true },
        KeyCode::Enter if tab == Tab::Groups => Action::Inspect,
        KeyCode::Enter if tab == Tab::Annotate => Action::OpenStudy,
        KeyCode::Char('t') if tab == Tab::Inspector => Action::ToggleThinking,
        KeyCode::Char('r') if tab == Tab::Eval => Action::ReloadEvals,
        KeyCode::Char('a') => Action::ToggleAlerts,
        KeyCode::Char('E') => Action::ExportReport,
        _ => return None,
    })
}
