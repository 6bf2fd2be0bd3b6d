//! Annotate: a person judges the run's own samples blinded, in the same screen and durable
//! study folder as `polaris-tui annotate` (`src/annotate/`). The tab first lists the
//! comparisons (`src/annotate/rollouts.rs`); Enter opens one as a study in `RUN_DIR/annotate/<comparison>/`,
//! made from rollouts.jsonl the first time and resumed as it is afterwards (a live run's later
//! steps do not change a study already begun).

pub mod keys;
pub mod state;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::action::Action;
use super::state::TabId;
use super::tab::{step_index, wheel_moves, Ctx, HelpSection, Tab};
use super::theme::Theme;
use super::widgets::pane;
use crate::annotate::rollouts::Comparison;
use crate::annotate::screen;
use state::AnnotateTab;

pub const ID: TabId = TabId("Annotate");

pub const TAB: Tab = Tab {
    id: ID,
    help: Some((6, HELP)),
    keys: |s, key| tab_keys(&s.annotate, key),
    update,
    wheel: wheel_moves,
    draw: |frame, area, s| draw(frame, area, &s.annotate, s.theme()),
};

const HELP: HelpSection = (
    "Annotate",
    &[
        ("↑↓ Enter", "choose / open a study"),
        ("1 / 2 / =", "left / right better / tie"),
        ("s u c", "skip / undo / comment"),
        ("o ↑↓ PgUp", "story pane / scroll"),
        ("q Esc", "leave the study"),
        ("Tab S-Tab", "tabs (1/2 are verdicts)"),
    ],
);

/// An open study takes its keys (keys.rs); the chooser takes Enter.
fn tab_keys(a: &AnnotateTab, key: KeyEvent) -> Option<Action> {
    match &a.screen {
        Some(screen) => keys::action_for(screen, key),
        None => (key.code == KeyCode::Enter).then_some(Action::Key(key)),
    }
}

/// Its own state only (and the status line).
fn update(c: &mut Ctx, action: Action) -> Option<Action> {
    let a = &mut c.state.annotate;
    match action {
        Action::Move { down, by } => {
            a.selected = step_index(a.selected, down, by as usize, Comparison::ALL.len());
        }
        Action::Key(key) => match a.screen.as_mut() {
            // the screen's own meanings move (keys.rs): q and Esc leave, o is its Tab
            Some(screen)
                if screen.editor.is_none() && matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) =>
            {
                a.screen = None;
                c.say("left the study; every judgment is saved");
            }
            Some(screen) => {
                let key = if screen.editor.is_none() && key.code == KeyCode::Char('o') {
                    KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE)
                } else {
                    key
                };
                // Ctrl-C, the screen's only quit, is caught before it reaches here
                let _ = screen::handle_key(screen, key);
            }
            None if key.code == KeyCode::Enter => {
                let said = a.open().unwrap_or_else(|e| format!("{e:#}"));
                c.say(said);
            }
            None => {}
        },
        other => return Some(other),
    }
    None
}

/// An open study's screen, else the chooser of comparisons.
pub fn draw(frame: &mut Frame, area: Rect, a: &AnnotateTab, t: &Theme) {
    if let Some(screen) = &a.screen {
        screen::draw(frame, area, screen);
        return;
    }
    let mut text = vec![
        Line::styled("Judge this run's samples, blinded: which story reads better?", t.accent()),
        Line::default(),
    ];
    for (i, c) in Comparison::ALL.iter().enumerate() {
        let marker = if i == a.selected { "▶ " } else { "  " };
        let started = if a.begun[i] { "  (study begun)" } else { "" };
        let style = if i == a.selected { t.selected() } else { t.base() };
        text.push(Line::from(vec![
            Span::styled(format!("{marker}{}", c.question()), style),
            Span::styled(started, t.dim()),
        ]));
    }
    text.push(Line::default());
    let who = a.annotator.as_deref().unwrap_or("nobody ($USER unset; open --annotator NAME)");
    text.push(Line::styled(
        format!("↑↓ choose · Enter annotate as {who} · judgments saved under annotate/ in the run"),
        t.dim(),
    ));
    text.push(Line::styled(
        "Other systems' generation files: `polaris-tui annotate` and `polaris-tui report human`.",
        t.dim(),
    ));
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }).block(pane(" Annotate ", t)), area);
}
