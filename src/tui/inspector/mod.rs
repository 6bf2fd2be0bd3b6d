//! Inspector: one rollout whole. The story (scrolling; the thinking trace on `t`) with the
//! judge's quoted evidence highlighted where it occurs, beside the per-dimension scores with
//! their justifications and the reward's breakdown.

mod evidence;
pub mod state;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

pub use evidence::{highlight, quotes};

use super::action::Action;
use super::groups::state::GroupsState;
use super::state::TabId;
use super::tab::{step_index, Ctx, HelpSection, Tab};
use super::theme::Theme;
use super::widgets::{num, opt_num, pane};
use crate::reward::breakdown::Breakdown;
use crate::reward::rubric::Sign;
use crate::run::rollout::ScoredRollout;
use state::InspectorState;

pub const ID: TabId = TabId("Inspector");

/// It shows the row chosen in the Groups tab's state, which it reads (and moves, with ← →).
pub const TAB: Tab = Tab {
    id: ID,
    help: Some((4, HELP)),
    keys: |_, key| keys(key),
    update,
    wheel,
    draw: |frame, area, s| draw(frame, area, &s.inspector, &s.groups, s.theme()),
};

const HELP: HelpSection = (
    "Inspector",
    &[
        ("↑↓ PgUp/Dn", "scroll the story"),
        ("← / →", "previous / next row"),
        ("[ / ]", "previous / next group"),
        ("j / k", "scroll the judgement"),
        ("t", "show / hide thinking"),
    ],
);

/// j / k scroll the judgement pane, t shows the thinking; the arrows are global keys.
fn keys(key: KeyEvent) -> Option<Action> {
    matches!(key.code, KeyCode::Char('j') | KeyCode::Char('k') | KeyCode::Char('t'))
        .then_some(Action::Key(key))
}

/// Its own state, and the Groups tab's chosen row (← → move it): nothing else.
fn update(c: &mut Ctx, action: Action) -> Option<Action> {
    let (i, g) = (&mut c.state.inspector, &mut c.state.groups);
    match action {
        Action::Move { down, by } => {
            i.scroll = if down { i.scroll.saturating_add(by) } else { i.scroll.saturating_sub(by) };
        }
        Action::Side { forward } => {
            let n = g.current().map_or(0, |group| group.rows.len());
            g.row = step_index(g.row, forward, 1, n);
            i.scroll = 0;
            i.judge_scroll = 0;
        }
        Action::Key(k) => {
            let j = &mut i.judge_scroll;
            match k.code {
                KeyCode::Char('k') => *j = j.saturating_sub(1),
                KeyCode::Char('j') => *j = j.saturating_add(1),
                KeyCode::Char('t') => i.thinking = !i.thinking,
                _ => {}
            }
        }
        other => return Some(other),
    }
    None
}

/// The wheel scrolls the story three lines a notch.
fn wheel(down: bool) -> Action {
    Action::Move { down, by: 3 }
}

/// The row `g` has chosen, scrolled as `i` says.
pub fn draw(frame: &mut Frame, area: Rect, i: &InspectorState, g: &GroupsState, t: &Theme) {
    let (Some((step, _)), Some(group)) = (&g.loaded, g.current()) else {
        let p = Paragraph::new("Nothing to inspect yet: choose a row in Groups (2) and press Enter.")
            .style(t.dim())
            .block(pane(" Inspector ", t));
        frame.render_widget(p, area);
        return;
    };
    let Some(row) = group.rows.get(g.row) else { return };
    let who = match (row.rollout.is_reference, row.rollout.cut_tokens) {
        (true, 0) => "HUMAN REFERENCE".to_string(),
        (true, _) => "HUMAN REFERENCE (cut)".to_string(),
        (false, _) if step.is_val() => "validation sample".to_string(),
        (false, _) => "policy rollout".to_string(),
    };
    let (place, scores) = if step.is_val() {
        (
            format!(" {} · prompt {} · ", step.label(), group.index),
            format!(" · reward {} (not trained on)", num(row.reward)),
        )
    } else {
        (
            format!(
                " {} · group {} · rank {} of {} · ",
                step.label(),
                group.index,
                g.row + 1,
                group.rows.len()
            ),
            format!(" · reward {} · advantage {}", num(row.reward), num(row.advantage)),
        )
    };
    let header = Line::from(vec![
        Span::styled(place, t.base()),
        Span::styled(who, if row.rollout.is_reference { t.reference_row() } else { t.accent() }),
        Span::styled(scores, t.base()),
    ]);
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    frame.render_widget(Paragraph::new(header), head);
    let [story, judge] = if body.width >= 100 {
        Layout::horizontal([Constraint::Percentage(58), Constraint::Min(0)]).areas(body)
    } else {
        Layout::vertical([Constraint::Percentage(55), Constraint::Min(0)]).areas(body)
    };
    draw_story(frame, story, i, row, t);
    draw_judgement(frame, judge, i, &row.breakdown, t);
}

fn draw_story(frame: &mut Frame, area: Rect, i: &InspectorState, row: &ScoredRollout, t: &Theme) {
    let b = &row.breakdown;
    let mut text = Text::default();
    match (&row.rollout.thinking, i.thinking) {
        (Some(thinking), true) => {
            text.lines.push(Line::styled("Thinking", t.title()));
            for l in thinking.lines() {
                text.lines.push(Line::styled(l.to_string(), t.dim().add_modifier(Modifier::ITALIC)));
            }
            text.lines.push(Line::styled("Story", t.title()));
        }
        (Some(_), false) => text.lines.push(Line::styled("(thinking hidden: t shows it)", t.dim())),
        (None, _) => {}
    }
    let found = b.judgement.as_ref().map(quotes).unwrap_or_default();
    text.lines.extend(highlight(&row.rollout.story, &found, t.base(), t.evidence()));
    let asked = b.requested_words.map_or(String::new(), |w| format!(" of {w} asked"));
    // a reference cut to the response budget: the story shown (and judged) is what the kept
    // tokens decode to, with no end token
    let cut = match row.rollout.cut_tokens {
        0 => String::new(),
        n => format!(" · cut, {n} tokens dropped"),
    };
    let title = format!(" Story · {} words{asked}{cut} · ↑↓ scroll ", b.words);
    let p = Paragraph::new(text).block(pane(title, t)).wrap(Wrap { trim: false }).scroll((i.scroll, 0));
    frame.render_widget(p, area);
}

fn draw_judgement(frame: &mut Frame, area: Rect, i: &InspectorState, b: &Breakdown, t: &Theme) {
    let mut lines: Vec<Line> = Vec::new();
    if let Some(why) = &b.judge_failure {
        lines.push(Line::styled(format!("judge failed: {why}"), t.fg(t.bad).add_modifier(Modifier::BOLD)));
    }
    if let Some(j) = &b.judgement {
        for d in &j.dimensions {
            let sign = if d.sign == Sign::Negative { "−" } else { "+" };
            lines.push(Line::from(vec![
                Span::styled(format!("{sign} {} ", d.key), t.accent()),
                Span::styled(format!("{}/{}", d.score, d.max), t.base()),
            ]));
            lines.push(Line::styled(format!("  {}", d.justification), t.dim()));
        }
        lines.push(Line::styled(
            format!(
                "overall {} = {} − {} + bonus {} − penalty {}",
                j.overall, j.positive_total, j.negative_total, j.bonus_applied, j.penalty_applied
            ),
            t.base(),
        ));
        for e in &j.bonus_evidence {
            lines.push(Line::styled(format!("  bonus: {e}"), t.fg(t.good)));
        }
        for e in &j.penalty_evidence {
            lines.push(Line::styled(format!("  penalty: {e}"), t.fg(t.bad)));
        }
    }
    lines.push(Line::default());
    lines.extend(breakdown_lines(b, t));
    let p = Paragraph::new(lines)
        .block(pane(" Judgement · reward (j/k scroll) ", t))
        .wrap(Wrap { trim: false })
        .scroll((i.judge_scroll, 0));
    frame.render_widget(p, area);
}

/// The score GRPO used, its mode, and why it differs from the reward when it does.
fn score_line(b: &Breakdown) -> String {
    let mut line = format!("score ({}) {}", b.score_mode.label(), num(b.score()));
    if b.reference_best {
        line.push_str(" · reference not judged: +clip (reference_best)");
    }
    if let Some(d) = &b.disqualified {
        let gates: Vec<String> = d.gates.iter().map(|g| format!("{g:?}").to_lowercase()).collect();
        line.push_str(&format!(
            " · disqualified ({}): overall {} → floor",
            gates.join(", "),
            d.overall_before
        ));
    }
    line
}

/// reward = clip(w_sq·SQ − w_rep·rep − w_len·len − w_blank·blank + overlong), term by term.
fn breakdown_lines<'a>(b: &Breakdown, t: &Theme) -> Vec<Line<'a>> {
    let w = &b.weights;
    let term = |name: &str, w: f64, v: f64| {
        Line::styled(format!("{name:<16}{:>6} × {:<7} = {:>7}", num(w), num(v), num(w * v)), t.base())
    };
    vec![
        Line::styled("Reward breakdown", t.title()),
        term(
            &format!("story quality ({:?})", b.story_quality_source).to_lowercase(),
            w.story_quality,
            b.story_quality,
        ),
        term("− repetition", w.repetition, b.self_repetition),
        term("− length", w.length, b.length_penalty),
        term("− blank", w.blank, b.blank_penalty),
        term("+ overlong", w.overlong, b.overlong_penalty),
        Line::styled(
            format!("composite {}  clipped to ±{} → reward {}", num(b.composite), num(w.clip), num(b.reward)),
            t.accent(),
        ),
        Line::styled(score_line(b), t.accent()),
        Line::styled(
            format!(
                "words {} · length ratio {} · judge tokens {}+{}",
                b.words,
                opt_num(b.length_ratio),
                b.judge_usage.prompt_tokens,
                b.judge_usage.completion_tokens
            ),
            t.dim(),
        ),
    ]
}
