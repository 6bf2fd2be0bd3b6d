//! Keys while a study is open in the tab. The screen gets every key it knows, except that
//! the workbench keeps Tab / S-Tab (next / previous tab) and `?`; the screen's own meanings
//! move (the tab's `update` applies them): `q` and Esc leave the study (back to the chooser)
//! instead of quitting, and `o` switches the story pane the scroll keys move (the screen's
//! Tab). While a comment is being typed every key goes to the editor.

use crossterm::event::{KeyCode, KeyEvent};

use crate::annotate::screen::AnnotateScreen;
use crate::tui::action::Action;

/// The screen's key, or None for the workbench's.
pub fn action_for(screen: &AnnotateScreen, key: KeyEvent) -> Option<Action> {
    if screen.editor.is_some() {
        return Some(Action::Key(key));
    }
    match key.code {
        KeyCode::Tab | KeyCode::BackTab | KeyCode::Char('?') => None,
        _ => Some(Action::Key(key)),
    }
}
