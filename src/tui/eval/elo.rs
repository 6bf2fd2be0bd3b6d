//! An Elo summary: the ladder, one row per system best first (rank, system, Elo, interval,
//! wins / losses / ties) with a track drawn on one shared scale (the interval as a line, the
//! rating as a dot, the anchor as a diamond, a dotted rule at the anchor rating), then the
//! judge's position statistics.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::eval::elo::cells::{elo_rows, position_lines, ELO_HEADER};
use crate::eval::elo::render::cell;
use crate::eval::report::EloReport;
use crate::eval::stats::cells::percent;
use crate::tui::theme::Theme;
use crate::tui::widgets::pane;

/// The narrowest track worth drawing, in cells.
const TRACK_MIN: usize = 12;

pub fn draw(frame: &mut Frame, area: Rect, r: &EloReport, t: &Theme) {
    let title = format!(
        " Elo · judge {} · {} prompts · {} CI · anchor {} = {} ",
        r.judge,
        r.prompts,
        percent(r.confidence),
        r.anchor,
        r.anchor_rating
    );
    let block = pane(title, t);
    let inner = block.inner(area);
    let rows = elo_rows(r);
    let mut widths = ELO_HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let used: usize = widths.iter().sum::<usize>() + widths.len();
    let track = (inner.width as usize).saturating_sub(used + 1);
    let scale = (track >= TRACK_MIN).then(|| Scale::new(r, track)).flatten();

    let cells = |cells: &[String], style: Style| -> Vec<Span<'static>> {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = " ".repeat(widths[i] - c.chars().count());
                // rank and system read left to right; the numbers line up on the right
                let text = if i == 1 { format!("{c}{pad} ") } else { format!("{pad}{c} ") };
                Span::styled(text, style)
            })
            .collect()
    };
    let mut lines = vec![];
    let header: Vec<String> = ELO_HEADER.iter().map(|h| h.to_string()).collect();
    let mut spans = cells(&header, t.title());
    if let Some(s) = &scale {
        spans.push(Span::styled(s.axis(), t.dim()));
    }
    lines.push(Line::from(spans));
    for (row, e) in rows.iter().zip(&r.ratings) {
        let anchor = e.system == r.anchor;
        let mut spans = cells(row, if anchor { t.fg(t.reference) } else { t.base() });
        if let Some(s) = &scale {
            spans.extend(s.rung(e.rating, (e.ci.low, e.ci.high), anchor, t));
        }
        lines.push(Line::from(spans));
    }
    let [rate, counts] = position_lines(&r.position);
    lines.push(Line::default());
    lines.push(Line::styled(format!("Position: {rate}"), t.base()));
    lines.push(Line::styled(counts, t.dim()));
    lines.push(Line::default());
    lines.extend(head_to_head(r, t));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block), area);
}

/// The head-to-head matrix as in elo.md: each cell is the row system's wins-losses-ties
/// against the column system; columns are named by rank so the matrix stays narrow.
fn head_to_head(r: &EloReport, t: &Theme) -> Vec<Line<'static>> {
    let systems: Vec<&str> = r.ratings.iter().map(|e| e.system.as_str()).collect();
    let cells: Vec<Vec<String>> = systems
        .iter()
        .map(|row| {
            systems.iter().map(|col| if row == col { "—".into() } else { cell(&r.pairs, row, col) }).collect()
        })
        .collect();
    let name_w = systems.iter().map(|s| s.chars().count()).max().unwrap_or(0) + 4;
    let col_w = cells.iter().flatten().map(|c| c.chars().count()).max().unwrap_or(1).max(3);
    let mut lines = vec![Line::styled("Head to head (row's W-L-T against the column's rank)", t.title())];
    let header: String = (1..=systems.len()).map(|i| format!(" {:>col_w$}", format!("#{i}"))).collect();
    lines.push(Line::styled(format!("{:name_w$}{header}", ""), t.dim()));
    for (i, (system, row)) in systems.iter().zip(&cells).enumerate() {
        let body: String = row.iter().map(|c| format!(" {c:>col_w$}")).collect();
        let name = format!("{:>2}  {system}", i + 1);
        lines.push(Line::styled(format!("{name:name_w$}{body}"), t.base()));
    }
    lines
}

/// Ratings to track columns: one scale for every rung, so they can be compared by eye.
struct Scale {
    lo: f64,
    hi: f64,
    width: usize,
    anchor: f64,
}

impl Scale {
    fn new(r: &EloReport, width: usize) -> Option<Self> {
        let values = r.ratings.iter().flat_map(|e| [e.rating, e.ci.low, e.ci.high]).chain([r.anchor_rating]);
        let (lo, hi) = values
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if !lo.is_finite() {
            return None;
        }
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 1.0, hi + 1.0) };
        Some(Self { lo, hi, width, anchor: r.anchor_rating })
    }

    fn col(&self, v: f64) -> usize {
        let f = ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        (f * (self.width - 1) as f64).round() as usize
    }

    /// The header's track cell: the scale's ends.
    fn axis(&self) -> String {
        let (l, h) = (format!("{:.0}", self.lo), format!("{:.0}", self.hi));
        let gap = self.width.saturating_sub(l.len() + h.len());
        format!("{l}{}{h}", " ".repeat(gap))
    }

    fn rung(&self, rating: f64, (low, high): (f64, f64), anchor: bool, t: &Theme) -> Vec<Span<'static>> {
        let mut track = vec![' '; self.width];
        track[self.col(self.anchor)] = '┊';
        if low.is_finite() && high.is_finite() {
            let (a, b) = (self.col(low), self.col(high));
            for c in &mut track[a..=b.max(a)] {
                *c = '─';
            }
            track[a] = '├';
            track[b.max(a)] = '┤';
        }
        let at = self.col(rating);
        track[at] = if anchor { '◆' } else { '●' };
        let colour = if anchor { t.reference } else { t.accent };
        vec![
            Span::styled(track[..at].iter().collect::<String>(), t.fg(colour)),
            Span::styled(track[at].to_string(), t.fg(colour).add_modifier(ratatui::style::Modifier::BOLD)),
            Span::styled(track[at + 1..].iter().collect::<String>(), t.fg(colour)),
        ]
    }
}
