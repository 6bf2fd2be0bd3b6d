//! A length summary: the report's table (per model and bucket: SQ and its interval, length
//! ratio and its interval, under / over shares) and charts of Story Quality and of the length
//! ratio by bucket, one line per model with its intervals as vertical strokes (the ratio's
//! chart with a dotted rule at 1.0, the exact length), as the report's two plots.

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Cell, Chart, Dataset, GraphType, LegendPosition, Paragraph, Row, Table};
use ratatui::Frame;

use crate::eval::length::cells::{length_rows, LENGTH_HEADER};
use crate::eval::report::{LengthReport, LengthRow};
use crate::eval::stats::cells::percent;
use crate::eval::stats::winrate::Interval;
use crate::tui::theme::Theme;
use crate::tui::widgets::pane;

/// The table next to the chart from this inner width up; above it below.
const SIDE_BY_SIDE: u16 = 140;
/// The fewest rows worth drawing a chart in.
const CHART_ROWS: u16 = 6;
/// The fewest rows for each of the two charts when both are drawn; below that, SQ alone.
const SHARED_CHART_ROWS: u16 = 9;

pub fn draw(frame: &mut Frame, area: Rect, r: &LengthReport, t: &Theme) {
    let title = format!(
        " Length · judge {} · {} per prompt · {} CI over prompts ",
        r.judge,
        r.samples,
        percent(r.confidence)
    );
    let block = pane(title, t);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = length_rows(r);
    let widths = column_widths(&rows);
    let table_w = widths.iter().sum::<u16>() + widths.len() as u16 - 1;
    let mut table_h = rows.len() as u16 + 1;
    let outside = (r.prompts_outside_buckets > 0)
        .then(|| format!("{} prompts asked for a length outside every bucket", r.prompts_outside_buckets));
    table_h += outside.is_some() as u16;
    let (table_area, chart_area) = if inner.width >= SIDE_BY_SIDE {
        let [a, b] = Layout::horizontal([Constraint::Length(table_w + 2), Constraint::Min(0)]).areas(inner);
        (a, Some(b))
    } else {
        let [a, b] = Layout::vertical([Constraint::Length(table_h), Constraint::Min(0)]).areas(inner);
        (a, (b.height >= CHART_ROWS).then_some(b))
    };
    let [table_area, note_area] =
        Layout::vertical([Constraint::Length(rows.len() as u16 + 1), Constraint::Min(0)]).areas(table_area);
    draw_table(frame, table_area, &rows, &widths, t);
    if let Some(note) = outside {
        frame.render_widget(Paragraph::new(Span::styled(note, t.fg(t.warn))), note_area);
    }
    if let Some(c) = chart_area {
        // both charts when each gets enough rows, else Story Quality alone
        if c.height >= 2 * SHARED_CHART_ROWS {
            let [a, b] = Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(c);
            draw_chart(frame, a, r, &QUALITY, t);
            draw_chart(frame, b, r, &RATIO, t);
        } else {
            draw_chart(frame, c, r, &QUALITY, t);
        }
    }
}

/// What a chart plots per (model, bucket).
struct Metric {
    title: &'static str,
    mean: fn(&LengthRow) -> Option<f64>,
    ci: fn(&LengthRow) -> Option<Interval>,
    /// A value drawn as a dotted rule across the chart.
    rule: Option<f64>,
    empty: &'static str,
}

const QUALITY: Metric = Metric {
    title: " Story Quality by requested length ",
    mean: |r| r.sq_mean,
    ci: |r| r.sq_ci,
    rule: None,
    empty: "No Story Quality yet: nothing was judged.",
};

const RATIO: Metric = Metric {
    title: " Length ratio (generated / requested words) by requested length ",
    mean: |r| r.length_ratio_mean,
    ci: |r| r.length_ratio_ci,
    rule: Some(1.0),
    empty: "No length ratio yet: no stories.",
};

fn column_widths(rows: &[[String; 9]]) -> [u16; 9] {
    let mut w = LENGTH_HEADER.map(|h| h.chars().count() as u16);
    for row in rows {
        for (w, cell) in w.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count() as u16);
        }
    }
    w
}

fn draw_table(frame: &mut Frame, area: Rect, rows: &[[String; 9]], widths: &[u16; 9], t: &Theme) {
    // model and bucket read left to right; the numbers line up on the right
    let cell = |i: usize, text: &str| {
        let line = Line::from(text.to_string());
        Cell::from(if i < 2 { line } else { line.alignment(Alignment::Right) })
    };
    let header = Row::new(LENGTH_HEADER.iter().enumerate().map(|(i, h)| cell(i, h))).style(t.title());
    let body =
        rows.iter().map(|row| Row::new(row.iter().enumerate().map(|(i, c)| cell(i, c))).style(t.base()));
    let table = Table::new(body, widths.map(Constraint::Length)).header(header).column_spacing(1);
    frame.render_widget(table, area);
}

/// One colour per model, from the theme's series colours.
pub fn series_colour(t: &Theme, i: usize) -> Color {
    let colours = [t.policy, t.reference, t.best, t.length, t.kl, t.grad, t.lr, t.hri];
    colours[i % colours.len()]
}

/// NO_COLOR tells the models apart by marker.
fn series_marker(t: &Theme, i: usize) -> Marker {
    if t.mono {
        [Marker::Braille, Marker::Dot, Marker::Block, Marker::Bar][i % 4]
    } else {
        Marker::Braille
    }
}

/// A bucket label in a few characters: `1000-4000` as `1k-4k`.
fn short(lo: usize, hi: usize) -> String {
    let k = |v: usize| if v.is_multiple_of(1000) && v > 0 { format!("{}k", v / 1000) } else { v.to_string() };
    format!("{}-{}", k(lo), k(hi))
}

fn draw_chart(frame: &mut Frame, area: Rect, r: &LengthReport, metric: &Metric, t: &Theme) {
    let n = r.buckets.len();
    let m = r.models.len().max(1);
    // per model: runs of neighbouring buckets with a mean (a missing bucket breaks the line),
    // and one vertical stroke per interval; x is the bucket's index, nudged apart per model
    let mut lines: Vec<(usize, Vec<(f64, f64)>)> = vec![];
    let mut strokes: Vec<(usize, [(f64, f64); 2])> = vec![];
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (mi, model) in r.models.iter().enumerate() {
        let dx = (mi as f64 - (m as f64 - 1.0) / 2.0) * 0.08;
        let mut run: Vec<(f64, f64)> = vec![];
        let mut last: Option<usize> = None;
        for (bi, b) in r.buckets.iter().enumerate() {
            let row = r.rows.iter().find(|x| x.model == *model && x.bucket == b.label);
            let Some((row, mean)) =
                row.and_then(|x| (metric.mean)(x).filter(|v| v.is_finite()).map(|v| (x, v)))
            else {
                continue;
            };
            if last.is_some_and(|l| l + 1 != bi) && !run.is_empty() {
                lines.push((mi, std::mem::take(&mut run)));
            }
            last = Some(bi);
            let x = bi as f64 + dx;
            run.push((x, mean));
            (lo, hi) = (lo.min(mean), hi.max(mean));
            if let Some(ci) = (metric.ci)(row).filter(|c| c.low.is_finite() && c.high.is_finite()) {
                strokes.push((mi, [(x, ci.low), (x, ci.high)]));
                (lo, hi) = (lo.min(ci.low), hi.max(ci.high));
            }
        }
        if !run.is_empty() {
            lines.push((mi, run));
        }
    }
    let block = pane(metric.title, t);
    if !lo.is_finite() {
        let p = Paragraph::new(metric.empty).style(t.dim()).block(block);
        frame.render_widget(p, area);
        return;
    }
    if let Some(v) = metric.rule {
        (lo, hi) = (lo.min(v), hi.max(v));
    }
    let pad = if hi > lo { 0.1 * (hi - lo) } else { 0.05 };
    let (lo, hi) = (lo - pad, hi + pad);
    let mut named = vec![false; m];
    let mut datasets: Vec<Dataset> = vec![];
    for (mi, points) in &lines {
        let style = t.fg(series_colour(t, *mi));
        let mut d = Dataset::default()
            .data(points)
            .graph_type(GraphType::Line)
            .marker(series_marker(t, *mi))
            .style(style);
        if !std::mem::replace(&mut named[*mi], true) {
            d = d.name(r.models[*mi].clone());
        }
        datasets.push(d);
    }
    let rule: Vec<(f64, f64)> = metric.rule.map_or(vec![], |v| vec![(-0.5, v), (n as f64 - 0.5, v)]);
    if !rule.is_empty() {
        datasets.push(Dataset::default().data(&rule).graph_type(GraphType::Line).style(t.dim()));
    }
    for (mi, points) in &strokes {
        let style = t.fg(series_colour(t, *mi));
        datasets.push(
            Dataset::default()
                .data(points)
                .graph_type(GraphType::Line)
                .marker(series_marker(t, *mi))
                .style(style),
        );
    }
    // a label at every half bucket from -0.5: the buckets' own fall on their indices
    let mut x_labels: Vec<Line> = vec![Line::default()];
    for b in &r.buckets {
        x_labels.push(Line::styled(short(b.lo, b.hi), t.dim()));
        x_labels.push(Line::default());
    }
    let y_labels = [lo, (lo + hi) / 2.0, hi].map(|v| Line::styled(format!("{v:.2}"), t.dim()));
    let chart = Chart::new(datasets)
        .block(block)
        .style(t.base())
        .legend_position(Some(LegendPosition::BottomRight))
        .hidden_legend_constraints((Constraint::Percentage(60), Constraint::Percentage(60)))
        .x_axis(Axis::default().bounds([-0.5, n as f64 - 0.5]).labels(x_labels).style(t.border()))
        .y_axis(Axis::default().bounds([lo, hi]).labels(y_labels.to_vec()).style(t.border()));
    frame.render_widget(chart, area);
}
