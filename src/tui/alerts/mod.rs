//! Alerts in the workbench: the run's open alerts (from its log) and the viewer's own stall
//! judgement, as a badge in the status bar, a list on `a`, and the terminal bell when one is
//! raised and `alerts.bell` is on.

pub mod state;

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::state::State;
use super::widgets::{centred, pane};

/// Alert events kept for the list (the newest).
pub const LIST: usize = 200;

/// `⚠ 2 alerts: reward collapse · a` for the status bar; None when nothing is open.
pub fn badge(s: &State) -> Option<String> {
    let open = s.alerts.open();
    let newest = open.last()?;
    let n = open.len();
    Some(format!(" ⚠ {n} alert{}: {} (a) ", if n == 1 { "" } else { "s" }, newest.title()))
}

/// The list: open alerts, then every alert event of the run, newest first.
pub fn draw(frame: &mut Frame, area: Rect, s: &State) {
    let t = s.theme();
    let r = centred(area, area.width.saturating_sub(4).max(20), area.height.saturating_sub(2).max(5));
    frame.render_widget(Clear, r);
    let mut lines = vec![Line::styled("Open", t.title())];
    let open = s.alerts.open();
    if open.is_empty() {
        lines.push(Line::styled(" none", t.dim()));
    }
    for a in open {
        lines.push(Line::from(vec![Span::styled(" ⚠ ", t.fg(t.bad)), Span::styled(a.line(), t.base())]));
    }
    lines.push(Line::default());
    lines.push(Line::styled("History (newest first)", t.title()));
    let history = &s.alerts.log.history;
    if history.is_empty() {
        lines.push(Line::styled(" no alert raised in this run", t.dim()));
    }
    for a in history.iter().rev().take(LIST) {
        let (mark, style) = if a.raised { (" raised  ", t.fg(t.warn)) } else { (" cleared ", t.fg(t.good)) };
        lines.push(Line::from(vec![Span::styled(mark, style), Span::styled(a.line(), t.base())]));
    }
    let block = pane(" Alerts (a or Esc closes) ", t);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block), r);
}
