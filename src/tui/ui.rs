//! The whole screen as a pure function of the state: tab bar, the current view, status line,
//! and the help and confirm overlays. The layout is computed here, once.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::link::Steering;
use super::state::{RunState, State, TabId};
use super::tab::HelpSection;
use super::tabs::{self, TABS};
use super::widgets::{centred, pane};
use crate::run::event::Level;

pub fn draw(frame: &mut Frame, s: &State) {
    let area = frame.area();
    let t = s.theme();
    frame.render_widget(Block::default().style(t.base()), area);
    let [tabs, body, status] = regions(area);
    draw_tabs(frame, tabs, s);
    (tabs::get(s.tab).draw)(frame, body, s);
    draw_status(frame, status, s);
    if s.alerts.shown {
        super::alerts::draw(frame, body, s);
    }
    if s.help {
        draw_help(frame, area, s);
    }
    if s.confirm_stop {
        draw_confirm(frame, area, s);
    }
    if let Some(holder) = &s.confirm_takeover {
        draw_takeover(frame, area, s, holder);
    }
}

/// Tab bar, the current view, status line.
pub fn regions(area: Rect) -> [Rect; 3] {
    Layout::vertical([Constraint::Length(1), Constraint::Min(0), Constraint::Length(1)]).areas(area)
}

/// Padded on both sides and drawn side by side (no separator): seven tabs fit 80 columns.
fn tab_label(tab: TabId) -> String {
    format!(" {} {} ", tabs::index(tab) + 1, tab.title())
}

/// The tab under column `x` of the tab bar (row 0); mouse clicks use the same labels the bar
/// draws.
pub fn tab_at(x: u16) -> Option<TabId> {
    let mut left = 0u16;
    for tab in TABS.iter().map(|t| t.id) {
        let w = tab_label(tab).chars().count() as u16;
        if x >= left && x < left + w {
            return Some(tab);
        }
        left += w;
    }
    None
}

fn draw_tabs(frame: &mut Frame, area: Rect, s: &State) {
    let t = s.theme();
    let mut spans = Vec::new();
    for tab in TABS.iter().map(|t| t.id) {
        let style = if tab == s.tab { t.selected().patch(t.accent()) } else { t.dim() };
        spans.push(Span::styled(tab_label(tab), style));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    let title = format!(" polaris · {} ", s.run_name);
    let w = (title.chars().count() as u16).min(area.width);
    let right = Rect { x: area.right().saturating_sub(w), width: w, ..area };
    let used: u16 = TABS.iter().map(|t| tab_label(t.id).chars().count() as u16).sum();
    if right.x >= used {
        frame.render_widget(Paragraph::new(Span::styled(title, t.title())), right);
    }
}

fn draw_status(frame: &mut Frame, area: Rect, s: &State) {
    let t = s.theme();
    let step = s.history.latest().map_or(String::new(), |x| format!(" step {}", x.step));
    let (badge, style) = match &s.run {
        RunState::Waiting => (" WAITING ".to_string(), t.dim()),
        RunState::Running => (format!(" ● RUNNING{step} "), t.fg(t.good).add_modifier(Modifier::BOLD)),
        RunState::Paused => (format!(" ❚❚ PAUSED{step} "), t.fg(t.warn).add_modifier(Modifier::BOLD)),
        // as `runs` says it: finished, or stopped early (with the reason when it adds one)
        RunState::Finished { step, reason } => {
            let phase = crate::run::status::ended(reason);
            let why = if reason != phase.name() { format!(": {reason}") } else { String::new() };
            let badge = format!(" ■ {} step {step}{why} ", phase.name().to_uppercase());
            (badge, t.fg(t.dim).add_modifier(Modifier::BOLD))
        }
        RunState::Died { what } => (format!(" ✖ {what} "), t.fg(t.bad).add_modifier(Modifier::BOLD)),
    };
    let mut spans = vec![Span::styled(badge, style.add_modifier(Modifier::REVERSED))];
    match &s.steering {
        Steering::Local if !s.can_control => spans.push(Span::styled(" read only ", t.dim())),
        Steering::Local => {}
        Steering::You => spans.push(Span::styled(" you control ", t.fg(t.good))),
        Steering::Nobody => spans.push(Span::styled(" read only · C takes control ", t.dim())),
        Steering::Other(holder) => {
            spans.push(Span::styled(format!(" read only · {holder} controls "), t.dim()))
        }
        Steering::Gone => spans.push(Span::styled(" disconnected · read only ", t.fg(t.warn))),
    }
    if let Some(badge) = super::alerts::badge(s) {
        spans.push(Span::styled(badge, t.fg(t.bad).add_modifier(Modifier::BOLD)));
    }
    let said = s.note.clone().or_else(|| {
        s.messages.back().map(|(level, text)| match level {
            Level::Info => text.clone(),
            Level::Warn => format!("warning: {text}"),
            Level::Error => format!("error: {text}"),
        })
    });
    if let Some(text) = said {
        spans.push(Span::styled(format!(" {text}"), t.base()));
    }
    // the key hint keeps the right end where there is room; the rest is cut before it
    let hint = " ? help  q quit ";
    let w = hint.len() as u16;
    let (left, right) = if area.width > w + 40 {
        let [l, r] = Layout::horizontal([Constraint::Min(0), Constraint::Length(w)]).areas(area);
        (l, Some(r))
    } else {
        (area, None)
    };
    frame.render_widget(Paragraph::new(Line::from(spans)), left);
    if let Some(r) = right {
        frame.render_widget(Paragraph::new(Span::styled(hint, t.dim())), r);
    }
}

/// The key list: one column where it fits, else two (80x24 needs two).
fn draw_help(frame: &mut Frame, area: Rect, s: &State) {
    let t = s.theme();
    let help: Vec<HelpSection> = std::iter::once(super::keys::HELP).chain(tabs::help()).collect();
    let section = |(name, keys): &HelpSection| -> Vec<Line<'static>> {
        let mut lines = vec![Line::styled(name.to_string(), t.title())];
        for (k, what) in *keys {
            lines.push(Line::from(vec![
                Span::styled(format!(" {k:<12}"), t.accent()),
                Span::styled(*what, t.base()),
            ]));
        }
        lines
    };
    let all: Vec<Line> = help.iter().flat_map(section).collect();
    let r = if all.len() as u16 + 2 <= area.height {
        centred(area, 44, all.len() as u16 + 2)
    } else {
        let half = help.len().div_ceil(2);
        let left: Vec<Line> = help[..half].iter().flat_map(section).collect();
        let right: Vec<Line> = help[half..].iter().flat_map(section).collect();
        let r = centred(area, 80, left.len().max(right.len()) as u16 + 2);
        frame.render_widget(Clear, r);
        let block = pane(" Keys (Esc closes) ", t);
        let inner = block.inner(r);
        frame.render_widget(block, r);
        let [a, b] = Layout::horizontal([Constraint::Percentage(50), Constraint::Min(0)]).areas(inner);
        frame.render_widget(Paragraph::new(left), a);
        frame.render_widget(Paragraph::new(right), b);
        return;
    };
    frame.render_widget(Clear, r);
    frame.render_widget(Paragraph::new(all).block(pane(" Keys (Esc closes) ", t)), r);
}

fn draw_confirm(frame: &mut Frame, area: Rect, s: &State) {
    let t = s.theme();
    let r = centred(area, 52, 5);
    frame.render_widget(Clear, r);
    let text = vec![
        Line::styled("Stop the trainer after its current step?", t.base()),
        Line::from(vec![
            Span::styled("y", t.accent()),
            Span::styled(" stop   ", t.base()),
            Span::styled("any other key", t.accent()),
            Span::styled(" cancel", t.base()),
        ]),
    ];
    frame.render_widget(Paragraph::new(text).block(pane(" Stop ", t)), r);
}

fn draw_takeover(frame: &mut Frame, area: Rect, s: &State, holder: &str) {
    let t = s.theme();
    let r = centred(area, 72, 6);
    frame.render_widget(Clear, r);
    let text = vec![
        Line::styled(format!("{holder} controls this run."), t.base()),
        Line::styled("Take control from them? They become read only.", t.base()),
        Line::from(vec![
            Span::styled("y", t.accent()),
            Span::styled(" take control   ", t.base()),
            Span::styled("any other key", t.accent()),
            Span::styled(" cancel", t.base()),
        ]),
    ];
    frame.render_widget(Paragraph::new(text).block(pane(" Take control ", t)), r);
}
