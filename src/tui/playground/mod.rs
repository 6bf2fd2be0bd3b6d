//! Playground: write a prompt, choose a target length, sampling settings and a model (the
//! run's base model, its latest checkpoint, or any checkpoint), then watch one or two panes
//! stream stories side by side with a word-count gauge against the target; stop, judge a
//! story with the run's judge and rubric, save it. Generation and judging run on worker
//! threads (worker.rs) that report as `Action::Playground` messages; drawing is pure.

pub mod keys;
pub mod msg;
pub mod save;
pub mod state;
pub mod update;
pub mod worker;

use crossterm::event::KeyEvent;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{LineGauge, Paragraph, Wrap};
use ratatui::Frame;

pub use update::update;
pub use worker::Workers;

use self::msg::Msg;
use self::state::{Field, Pane, PlaygroundState, Status};
use super::action::Action;
use super::state::TabId;
use super::tab::{leaves, Tab};
use super::theme::Theme;
use super::widgets::{num, opt_num, pane as block};
use crate::chat::{opens_thinking, split_thinking};
use crate::reward::Breakdown;

pub const ID: TabId = TabId("Playground");

/// Its messages are applied by the App whichever tab is shown: the workers report on the same
/// channel (`Action::Playground`).
pub const TAB: Tab = Tab {
    id: ID,
    help: Some((5, keys::HELP)),
    keys: |s, key| tab_keys(&s.playground, key),
    update: leaves,
    wheel,
    draw: |frame, area, s| draw(frame, area, &s.playground, s.theme()),
};

fn tab_keys(p: &PlaygroundState, key: KeyEvent) -> Option<Action> {
    keys::action_for(p, key).map(Action::Playground)
}

/// The wheel scrolls the focused pane's story, as PgUp / PgDn do.
fn wheel(down: bool) -> Action {
    Action::Playground(Msg::Scroll { down, lines: 3 })
}

pub fn draw(frame: &mut Frame, area: Rect, p: &PlaygroundState, t: &Theme) {
    let [top, panes] = Layout::vertical([Constraint::Length(9), Constraint::Min(0)]).areas(area);
    let [editor, settings] = Layout::horizontal([Constraint::Min(0), Constraint::Length(26)]).areas(top);
    draw_editor(frame, editor, p, t);
    draw_settings(frame, settings, p, t);
    if p.two {
        let [l, r] = Layout::horizontal([Constraint::Percentage(50), Constraint::Min(0)]).areas(panes);
        draw_pane(frame, l, p, 0, t);
        draw_pane(frame, r, p, 1, t);
    } else {
        draw_pane(frame, panes, p, 0, t);
    }
}

fn draw_editor(frame: &mut Frame, area: Rect, p: &PlaygroundState, t: &Theme) {
    let title = if p.editing { " Prompt · editing (Esc ends) " } else { " Prompt · e edits " };
    let mut b = block(title, t);
    if p.editing {
        b = b.border_style(t.accent());
    }
    let inner = b.inner(area);
    frame.render_widget(b, area);
    frame.render_widget(&p.editor, inner);
}

fn draw_settings(frame: &mut Frame, area: Rect, p: &PlaygroundState, t: &Theme) {
    let q = &p.params;
    let lines: Vec<Line> = Field::ALL
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (name, value) = match f {
                Field::Words => ("target words", p.target_words.to_string()),
                Field::Thinking => ("thinking", if p.thinking { "on" } else { "off" }.to_string()),
                Field::Temperature => ("temperature", format!("{:.2}", q.temperature)),
                Field::TopP => ("top_p", format!("{:.2}", q.top_p)),
                Field::TopK => ("top_k", q.top_k.to_string()),
                Field::MaxTokens => ("max tokens", q.max_new_tokens.to_string()),
                Field::Seed => ("seed", q.seed.to_string()),
            };
            let style = if i == p.field { t.selected() } else { t.base() };
            Line::styled(format!("{name:<13}{value:>9}"), style)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block(" Settings ↑↓ +- ", t)), area);
}

fn status_text(st: &Status) -> String {
    match st {
        Status::Idle => "idle".into(),
        Status::Loading => "loading…".into(),
        Status::Generating => "generating… (x stops)".into(),
        Status::Finished => "finished".into(),
        Status::Stopped => "stopped".into(),
        Status::Judging => "judging…".into(),
        Status::Judged => "judged".into(),
        Status::Failed(_) => "failed".into(),
    }
}

fn draw_pane(frame: &mut Frame, area: Rect, p: &PlaygroundState, i: usize, t: &Theme) {
    let pane = &p.panes[i];
    let side = ["Left", "Right"][i];
    let model = pane
        .loaded
        .clone()
        .unwrap_or_else(|| p.choices.get(pane.choice).map_or_else(String::new, |c| c.label()));
    // the focused pane is marked in text as well as by its border's colour
    let mark = if p.two && p.focus == i { "▶ " } else { "" };
    let title = format!(" {mark}{side} · {model} · {} ", status_text(&pane.status));
    let mut b = block(title, t);
    if p.two && p.focus == i {
        b = b.border_style(t.accent());
    }
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let judged = pane.breakdown.as_deref();
    let judge_rows =
        judged.map_or(0, |b| (b.judgement.as_ref().map_or(0, |j| j.dimensions.len()) + 2) as u16);
    let [gauge, text, judge] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(judge_rows.min(inner.height / 2)),
    ])
    .areas(inner);
    draw_gauge(frame, gauge, p.target_words, pane, t);
    let mut body = Text::default();
    if let Status::Failed(why) = &pane.status {
        body.lines.push(Line::styled(why.clone(), t.fg(t.bad).add_modifier(Modifier::BOLD)));
    }
    if pane.text.is_empty() && pane.status == Status::Idle {
        body.lines.push(Line::styled("g generates; m chooses this pane's model; v compares two.", t.dim()));
    }
    let split = split_thinking(&pane.text, opens_thinking(&pane.prompt));
    if let Some(thinking) = &split.thinking {
        for l in thinking.trim().lines() {
            body.lines.push(Line::styled(l.to_string(), t.dim().add_modifier(Modifier::ITALIC)));
        }
        if split.thinking_closed {
            body.lines.push(Line::default());
        }
    }
    for l in split.story.trim_start().lines() {
        body.lines.push(Line::styled(l.to_string(), t.base()));
    }
    frame.render_widget(Paragraph::new(body).wrap(Wrap { trim: false }).scroll((pane.scroll, 0)), text);
    if let Some(b) = judged {
        frame.render_widget(Paragraph::new(judgement_lines(b, t)).wrap(Wrap { trim: true }), judge);
    }
}

/// Words so far against the `target` (words), and the length ratio (the bar is full at 1.0).
fn draw_gauge(frame: &mut Frame, area: Rect, target: usize, pane: &Pane, t: &Theme) {
    let ratio = pane.ratio(target);
    let label = format!("{}/{target} words · ratio {} · {} tok ", pane.words, opt_num(ratio), pane.tokens);
    let over = ratio.is_some_and(|r| r > 1.25);
    let g = LineGauge::default()
        .ratio(ratio.unwrap_or(0.0).clamp(0.0, 1.0))
        .label(label)
        // thick against thin, so the fill shows without colour too (NO_COLOR)
        .filled_symbol(ratatui::symbols::line::THICK_HORIZONTAL)
        .unfilled_symbol(ratatui::symbols::line::HORIZONTAL)
        .filled_style(if over { t.fg(t.warn) } else { t.fg(t.good) })
        .unfilled_style(t.dim());
    frame.render_widget(g, area);
}

fn judgement_lines<'a>(b: &Breakdown, t: &Theme) -> Vec<Line<'a>> {
    let mut lines = vec![Line::from(vec![
        Span::styled("judged ", t.title()),
        Span::styled(
            format!(
                "reward {} · story quality {} · overall {}",
                num(b.reward),
                num(b.story_quality),
                b.overall.map_or_else(|| "–".into(), |o| o.to_string())
            ),
            t.accent(),
        ),
    ])];
    if let Some(why) = &b.judge_failure {
        lines.push(Line::styled(format!("judge failed: {why}"), t.fg(t.bad)));
    }
    if let Some(j) = &b.judgement {
        for d in &j.dimensions {
            lines.push(Line::styled(format!("{} {}/{}", d.key, d.score, d.max), t.base()));
        }
    }
    lines.push(Line::styled(
        format!("repetition {} · length penalty {}", num(b.self_repetition), num(b.length_penalty)),
        t.dim(),
    ));
    lines
}
