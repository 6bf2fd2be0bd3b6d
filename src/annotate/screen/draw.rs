//! Drawing: a pure function of the screen state. System names are never drawn.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;

use super::state::{AnnotateScreen, Pane, Status};
use crate::annotate::input::{Item, Story};

/// The prompt takes at most this share of the height (1/N), the stories the rest.
const PROMPT_SHARE: u16 = 4;
/// Height of the open comment editor, borders included.
const EDITOR_HEIGHT: u16 = 6;

/// The screen's parts for an area: drawing and the scrolling keys share it.
struct Areas {
    progress: Rect,
    prompt: Rect,
    stories: Rect,
    comment: Rect,
    status: Rect,
    help: Rect,
}

fn layout(area: Rect, s: &AnnotateScreen) -> Areas {
    let prompt_height = match s.session.current() {
        Some((_, item)) => prompt_paragraph(item)
            .line_count(area.width.saturating_sub(2))
            .saturating_add(2)
            .min((area.height / PROMPT_SHARE).max(3) as usize) as u16,
        None => 0,
    };
    let comment_height = if s.editor.is_some() { EDITOR_HEIGHT } else { u16::from(!s.comment.is_empty()) };
    let [progress, prompt, stories, comment, status, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(prompt_height),
        Constraint::Min(3),
        Constraint::Length(comment_height),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    Areas { progress, prompt, stories, comment, status, help }
}

/// The left and right story panes, borders included.
fn panes(stories: Rect) -> [Rect; 2] {
    Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(stories)
}

fn story_paragraph(text: &str) -> Paragraph<'_> {
    Paragraph::new(text).wrap(Wrap { trim: false })
}

/// How far a story pane can scroll when the screen is drawn in `area`: its wrapped lines
/// less the lines that fit, so the last line stops at the bottom.
pub(super) fn max_scroll(area: Rect, s: &AnnotateScreen, pane: Pane) -> u16 {
    let Some((p, item)) = s.session.current() else { return 0 };
    let system = if pane == Pane::Left { &p.left } else { &p.right };
    let text = item.story(system).map_or("", |st| st.text.as_str());
    let inner = Block::bordered().inner(panes(layout(area, s).stories)[pane as usize]);
    let lines = story_paragraph(text).line_count(inner.width);
    lines.saturating_sub(inner.height as usize).min(u16::MAX as usize) as u16
}

pub fn draw(frame: &mut Frame, area: Rect, s: &AnnotateScreen) {
    let current = s.session.current();
    let Areas { progress, prompt, stories, comment, status, help } = layout(area, s);
    frame.render_widget(progress_line(s), progress);
    match current {
        Some((p, item)) => {
            frame.render_widget(prompt_paragraph(item).block(Block::bordered().title(" Prompt ")), prompt);
            let [left, right] = panes(stories);
            draw_story(frame, left, s, Pane::Left, item.story(&p.left), item.requested_words);
            draw_story(frame, right, s, Pane::Right, item.story(&p.right), item.requested_words);
        }
        None => {
            let done = Paragraph::new(format!(
                "All {} items are judged and saved. u undoes the last judgment; q quits.",
                s.session.ledger.total()
            ))
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(" Done "));
            frame.render_widget(done, stories);
        }
    }
    if let Some(editor) = &s.editor {
        let mut editor = editor.clone();
        editor.set_block(Block::bordered().title(" Comment (Esc: done) "));
        frame.render_widget(&editor, comment);
    } else if !s.comment.is_empty() {
        let text = s.comment.replace('\n', " / ");
        frame.render_widget(Line::from(format!("Comment: {text}")).style(Modifier::ITALIC), comment);
    }
    frame.render_widget(status_line(s), status);
    frame.render_widget(help_line(s), help);
}

fn progress_line(s: &AnnotateScreen) -> Line<'static> {
    let ledger = &s.session.ledger;
    let mut text =
        format!(" Annotate · {} · {} / {} judged", ledger.annotator, ledger.done(), ledger.total());
    if let Some(skips) = s.session.current().map(|(p, _)| ledger.skips(&p.prompt_uid)).filter(|&n| n > 0) {
        text.push_str(&format!(" · this item skipped {skips}x"));
    }
    Line::from(text).style(Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED))
}

fn prompt_paragraph(item: &Item) -> Paragraph<'_> {
    Paragraph::new(item.prompt.trim()).wrap(Wrap { trim: false })
}

fn draw_story(
    frame: &mut Frame,
    area: Rect,
    s: &AnnotateScreen,
    pane: Pane,
    story: Option<&Story>,
    asked: Option<usize>,
) {
    let (name, key) = match pane {
        Pane::Left => ("Left", "1 / ←"),
        Pane::Right => ("Right", "2 / →"),
    };
    let text = story.map_or("", |st| st.text.as_str());
    let words = story.map_or(0, |st| st.words);
    let length = match asked {
        Some(asked) => format!("{words} words of {asked} requested"),
        None => format!("{words} words"),
    };
    let focused = s.focus == pane;
    let mut border = Style::new();
    if focused {
        border = border.add_modifier(Modifier::BOLD);
        if s.color {
            border = border.fg(Color::Cyan);
        }
    }
    let block = Block::bordered()
        .border_style(border)
        .title(Line::from(vec![Span::raw(format!(" {name} ({key}) ")), Span::raw(format!("· {length} "))]));
    let inner = block.inner(area);
    let paragraph = story_paragraph(text);
    let lines = paragraph.line_count(inner.width);
    let max_scroll = lines.saturating_sub(inner.height as usize).min(u16::MAX as usize) as u16;
    let offset = s.scroll[pane as usize].min(max_scroll);
    let shown_to = (offset as usize + inner.height as usize).min(lines);
    let block = block
        .title_bottom(Line::from(format!(" lines {}-{shown_to} of {lines} ", offset + 1)).right_aligned());
    frame.render_widget(paragraph.block(block).scroll((offset, 0)), area);
}

fn status_line(s: &AnnotateScreen) -> Line<'_> {
    match &s.status {
        Status::Idle => Line::from(""),
        Status::Info(m) => Line::from(m.as_str()),
        Status::Error(m) => {
            let style = if s.color {
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
            } else {
                Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)
            };
            Line::from(m.as_str()).style(style)
        }
    }
}

fn help_line(s: &AnnotateScreen) -> Line<'static> {
    let text = if s.editor.is_some() {
        " typing a comment · Esc: done, it goes with the next verdict"
    } else if s.embedded {
        " 1/← 2/→ that side better · = tie · s skip · u undo · c comment · q leave · o ↑↓ scroll"
    } else {
        " 1/← left better · 2/→ right better · = tie · s skip · u undo · c comment · q quit · Tab ↑↓ PgUp PgDn scroll"
    };
    Line::from(text).style(Modifier::DIM)
}
