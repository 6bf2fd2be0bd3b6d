//! Keys: a verdict, skip and undo are saved before the screen moves on; a failed save
//! leaves the item on screen with the error.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui_textarea::TextArea;

use super::draw::max_scroll;
use super::state::{AnnotateScreen, Outcome, Pane, Status};
use crate::annotate::record::Verdict;

/// Lines one PageUp / PageDown moves.
const PAGE: u16 = 10;
/// Before the first draw (no area yet), the narrowest story column the scroll bound
/// assumes, in characters; drawing clamps to the exact wrapped height.
const NARROWEST: usize = 20;

pub fn handle_key(s: &mut AnnotateScreen, key: KeyEvent) -> Outcome {
    if key.kind == KeyEventKind::Release {
        return Outcome::Continue;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Outcome::Quit;
    }
    if let Some(editor) = s.editor.as_mut() {
        if key.code == KeyCode::Esc {
            s.comment = editor.lines().join("\n").trim().to_string();
            s.editor = None;
        } else {
            editor.input(key);
        }
        return Outcome::Continue;
    }
    match key.code {
        KeyCode::Char('q') => return Outcome::Quit,
        KeyCode::Char('1') | KeyCode::Left => verdict(s, Verdict::Left),
        KeyCode::Char('2') | KeyCode::Right => verdict(s, Verdict::Right),
        KeyCode::Char('=') => verdict(s, Verdict::Tie),
        KeyCode::Char('s') if s.session.current().is_some() => {
            let result = s.session.skip();
            saved(s, result, "Skipped: it comes back after the others.");
        }
        KeyCode::Char('u') => match s.session.undo() {
            Ok(false) => s.status = Status::Info("Nothing to undo.".into()),
            result => saved(s, result.map(|_| ()), "Undone: the item is back on screen."),
        },
        KeyCode::Char('c') if s.session.current().is_some() => {
            let mut editor = TextArea::new(s.comment.lines().map(String::from).collect());
            editor.set_placeholder_text("Why? (optional; Esc when done)");
            s.editor = Some(editor);
        }
        KeyCode::Tab | KeyCode::BackTab => {
            s.focus = if s.focus == Pane::Left { Pane::Right } else { Pane::Left };
        }
        KeyCode::Up | KeyCode::Char('k') => scroll(s, -1),
        KeyCode::Down | KeyCode::Char('j') => scroll(s, 1),
        KeyCode::PageUp => scroll(s, -(PAGE as i32)),
        KeyCode::PageDown | KeyCode::Char(' ') => scroll(s, PAGE as i32),
        KeyCode::Home => s.scroll[s.focus as usize] = 0,
        _ => {}
    }
    Outcome::Continue
}

fn verdict(s: &mut AnnotateScreen, verdict: Verdict) {
    if s.session.current().is_none() {
        s.status = Status::Info("Every item is judged: u undoes the last, q quits.".into());
        return;
    }
    let comment = (!s.comment.is_empty()).then(|| s.comment.clone());
    let result = s.session.judge(verdict, comment);
    let what = match verdict {
        Verdict::Left => "left better",
        Verdict::Right => "right better",
        Verdict::Tie => "tie",
    };
    saved(s, result, &format!("Saved: {what}."));
}

fn saved(s: &mut AnnotateScreen, result: anyhow::Result<()>, message: &str) {
    match result {
        Ok(()) => {
            s.next_item();
            s.status = Status::Info(message.into());
        }
        Err(e) => s.status = Status::Error(format!("NOT saved: {e:#}")),
    }
}

fn scroll(s: &mut AnnotateScreen, by: i32) {
    let pane = s.focus as usize;
    let bound = if s.area.is_empty() {
        s.session.current().map_or(0, |(p, item)| {
            let system = if s.focus == Pane::Left { &p.left } else { &p.right };
            let text = item.story(system).map_or("", |st| st.text.as_str());
            text.lines().map(|l| l.chars().count() / NARROWEST + 1).sum::<usize>().min(u16::MAX as usize)
                as u16
        })
    } else {
        max_scroll(s.area, s, s.focus)
    };
    let next = (s.scroll[pane].min(bound) as i64 + by as i64).clamp(0, bound as i64);
    s.scroll[pane] = next as u16;
}
