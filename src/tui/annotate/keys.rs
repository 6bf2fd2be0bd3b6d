//! Keys while a study is open in the tab. The screen gets every key it knows, except that
//! the workbench keeps Tab / S-Tab (next / previous tab) and `?`; the screen's own meanings
//! move: `q` and Esc leave the study (back to the chooser) instead of quitting, and `o`
//! switches the story pane the scroll keys move (the screen's Tab). While a comment is being
//! typed every key goes to the editor.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::annotate::screen::AnnotateScreen;
use crate::tui::action::Action;

pub fn action_for(screen: &AnnotateScreen, key: KeyEvent) -> Action {
    if screen.editor.is_some() {
        return Action::Annotate(key);
    }
    match key.code {
        KeyCode::Tab => Action::CycleTab { forward: true },
        KeyCode::BackTab => Action::CycleTab { forward: false },
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('q') | KeyCode::Esc => Action::LeaveStudy,
        KeyCode::Char('o') => Action::Annotate(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE)),
        _ => Action::Annotate(key),
    }
}
