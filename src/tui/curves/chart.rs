//! A chart of curves over a step range, and the curves themselves: one signal of every run
//! (one colour per run), each thinned to two points per braille column, smoothed when
//! smoothing is on with the raw values drawn faint behind. With more steps than columns the
//! raw curve's strokes span each column's lowest to highest value: the min/max band.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, LegendPosition};
use ratatui::Frame;

use super::column::thin;
use super::CurvesView;
use crate::tui::history::{CurveKey, History, Series};
use crate::tui::theme::Theme;
use crate::tui::widgets::{num, pane};

/// A curve every run may have: a fixed series, or a rubric dimension by its key (each run
/// numbers its dimensions in the order its judge named them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Series(Series),
    Dimension(String),
}

impl Signal {
    pub fn key(&self, h: &History) -> Option<CurveKey> {
        match self {
            Signal::Series(s) => Some(CurveKey::Series(*s)),
            Signal::Dimension(k) => h.dimensions.iter().position(|d| &d.key == k).map(CurveKey::Dimension),
        }
    }
}

/// One curve of a chart, thinned.
pub struct Curve {
    pub points: Vec<(f64, f64)>,
    /// Empty: not in the legend.
    pub name: String,
    pub colour: Color,
    pub marker: Marker,
}

/// Braille columns of a chart `width` cells wide (two per cell, inside the border).
pub fn columns(width: u16) -> usize {
    2 * width.saturating_sub(2).max(1) as usize
}

/// Run `i`'s colour (the first run's is the policy colour), from the theme's series colours.
pub fn run_colour(t: &Theme, i: usize) -> Color {
    crate::tui::eval::length::series_colour(t, i)
}

/// `c` halfway to the background: the raw curve behind a smoothed one. Without 24-bit
/// colour to blend, the theme's dim colour.
pub fn faint(c: Color, t: &Theme) -> Color {
    match (c, t.bg) {
        (Color::Rgb(r, g, b), Color::Rgb(br, bg, bb)) => {
            let mix = |a: u8, b: u8| ((a as u16 + b as u16) / 2) as u8;
            Color::Rgb(mix(r, br), mix(g, bg), mix(b, bb))
        }
        _ => t.dim,
    }
}

/// One run's curve over the steps `range`: raw, or raw faint and smoothed on top.
pub fn run_curves(
    h: &History,
    key: CurveKey,
    range: (usize, usize),
    width: u16,
    (name, colour, marker): (String, Color, Marker),
    t: &Theme,
    raw_behind: bool,
) -> Vec<Curve> {
    let Some(view) = h.curve(key, range) else { return vec![] };
    let (x0, x1) = (range.0 as f64, range.1 as f64);
    let cols = columns(width);
    match view.smoothed {
        None => {
            vec![Curve { points: thin(view.xs, view.raw, view.rows, x0, x1, cols), name, colour, marker }]
        }
        Some(smoothed) if !raw_behind => {
            vec![Curve { points: thin(view.xs, smoothed, view.rows, x0, x1, cols), name, colour, marker }]
        }
        Some(smoothed) => vec![
            Curve {
                points: thin(view.xs, view.raw, view.rows, x0, x1, cols),
                name: String::new(),
                colour: faint(colour, t),
                marker: Marker::Dot,
            },
            Curve { points: thin(view.xs, smoothed, view.rows, x0, x1, cols), name, colour, marker },
        ],
    }
}

/// A signal of every run over `range`: with one run in `colour` under `name`; with several,
/// one colour per run under the run's name (the legend line names them once, so small charts
/// leave names out when `named` is false). With smoothing on, the raw curve is drawn faint
/// behind the smoothed one when `raw_behind` (small charts show the smoothed one alone).
pub fn overlay(
    v: &CurvesView,
    signal: &Signal,
    (name, colour, marker): (&str, Color, Marker),
    range: (usize, usize),
    width: u16,
    named: bool,
    raw_behind: bool,
) -> Vec<Curve> {
    let t = v.theme;
    let many = !v.curves.runs.is_empty();
    let mut out = Vec::new();
    for (i, (run, h)) in v.runs().enumerate() {
        let Some(key) = signal.key(h) else { continue };
        let look = if many {
            let label = if named { run.to_string() } else { String::new() };
            (label, run_colour(t, i), if t.mono { mono_marker(i) } else { marker })
        } else {
            (name.to_string(), colour, marker)
        };
        out.extend(run_curves(h, key, range, width, look, t, raw_behind));
    }
    out
}

/// Without colour, runs are told apart by marker.
pub fn mono_marker(i: usize) -> Marker {
    [Marker::Braille, Marker::Dot, Marker::Block, Marker::Bar][i % 4]
}

/// A bordered chart of `curves` over the steps `(x0, x1)`, its y range fitted to them; axis
/// labels where there is room.
pub fn chart(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    curves: &[Curve],
    (x0, x1): (usize, usize),
    t: &Theme,
) {
    chart_styled(frame, area, pane(title.to_string(), t), curves, (x0, x1), t)
}

pub fn chart_styled(
    frame: &mut Frame,
    area: Rect,
    block: ratatui::widgets::Block,
    curves: &[Curve],
    (x0, x1): (usize, usize),
    t: &Theme,
) {
    let (x0, x1) = (x0 as f64, x1 as f64);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in curves.iter().flat_map(|c| &c.points) {
        lo = lo.min(p.1);
        hi = hi.max(p.1);
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.1 * lo.abs().max(1e-9) };
    let (lo, hi) = (lo - pad, hi + pad);
    let (xa, xb) = if x1 > x0 { (x0, x1) } else { (x0 - 0.5, x1 + 0.5) };
    let datasets: Vec<Dataset> = curves
        .iter()
        .map(|c| {
            let marker = if t.mono { c.marker } else { Marker::Braille };
            let d = Dataset::default()
                .marker(marker)
                .graph_type(GraphType::Line)
                .style(Style::default().fg(c.colour));
            let d = if c.name.is_empty() { d } else { d.name(c.name.clone()) };
            d.data(&c.points)
        })
        .collect();
    // axis labels only where there is room for them beside the plot
    let labelled = area.width >= 40 && area.height >= 8;
    let x_axis = Axis::default().bounds([xa, xb]).style(t.dim());
    let y_axis = Axis::default().bounds([lo, hi]).style(t.dim());
    let (x_axis, y_axis) = if labelled {
        (
            x_axis.labels([Line::from(format!("{x0}")), Line::from(format!("{x1}"))]),
            y_axis.labels([Line::from(num(lo)), Line::from(num(hi))]),
        )
    } else {
        (x_axis, y_axis)
    };
    let c = Chart::new(datasets)
        .block(block)
        .x_axis(x_axis)
        .y_axis(y_axis)
        .legend_position(Some(LegendPosition::TopLeft))
        .hidden_legend_constraints((Constraint::Percentage(60), Constraint::Percentage(60)));
    frame.render_widget(c, area);
}
