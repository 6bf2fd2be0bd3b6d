//! The Length page: length control at a glance. For the step the Groups view shows (the
//! latest, or the one chosen there), every row's requested against written words with the
//! recipe's band around the request; per requested-length bucket the policy rows' shares
//! under, inside and over the band and a histogram of their length ratios; and over steps the
//! share inside the band and the mean length ratio, every run overlaid.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use super::chart::Signal;
use super::chart::{chart, overlay};
use super::CurvesView;
use crate::reward::rules::LengthTarget;
use crate::run::rollout::ScoredRollout;
use crate::tui::history::Series;
use crate::tui::theme::Theme;
use crate::tui::widgets::{num, opt_num, pane};

/// Requested-length buckets, in words: [lo, hi).
pub const BUCKETS: [(usize, usize, &str); 6] = [
    (0, 500, "<500"),
    (500, 1000, "500-1k"),
    (1000, 2000, "1k-2k"),
    (2000, 4000, "2k-4k"),
    (4000, 8000, "4k-8k"),
    (8000, usize::MAX, "8k+"),
];

/// Length ratio histogram: bins of this width from 0, the last holding everything above.
const RATIO_BIN: f64 = 0.2;
const RATIO_BINS: usize = 11;

/// A row as the page sees it: its length target (the request, else its reference's words),
/// the words it wrote, and whether it is the human reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub target: f64,
    pub words: f64,
    pub is_reference: bool,
    pub band: (f64, f64),
}

pub fn point(r: &ScoredRollout) -> Option<Point> {
    let b = &r.breakdown;
    let target = b.length_target.or_else(|| b.requested_words.map(|w| LengthTarget::new(w as f64)))?;
    Some(Point {
        target: target.words(),
        words: b.words as f64,
        is_reference: r.rollout.is_reference,
        band: target.band(),
    })
}

/// One bucket's policy rows: how many, under / inside / over the band, ratio histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketFit {
    pub rows: usize,
    pub under: usize,
    pub within: usize,
    pub over: usize,
    pub ratio_sum: f64,
    pub histogram: [usize; RATIO_BINS],
}

pub fn bucket_fits(points: &[Point]) -> Vec<BucketFit> {
    let mut out = vec![BucketFit::default(); BUCKETS.len()];
    for p in points.iter().filter(|p| !p.is_reference) {
        let Some(i) = BUCKETS.iter().position(|(lo, hi, _)| (*lo as f64..*hi as f64).contains(&p.target))
        else {
            continue;
        };
        let f = &mut out[i];
        f.rows += 1;
        if p.words < p.band.0 {
            f.under += 1;
        } else if p.words > p.band.1 {
            f.over += 1;
        } else {
            f.within += 1;
        }
        let ratio = p.words / p.target.max(1.0);
        f.ratio_sum += ratio;
        f.histogram[((ratio / RATIO_BIN) as usize).min(RATIO_BINS - 1)] += 1;
    }
    out
}

pub fn draw(frame: &mut Frame, area: Rect, v: &CurvesView, range: (usize, usize)) {
    let t = v.theme;
    let [top, bottom] = Layout::vertical([Constraint::Percentage(60), Constraint::Min(0)]).areas(area);
    let [scatter, buckets] = Layout::horizontal([Constraint::Percentage(55), Constraint::Min(0)]).areas(top);
    let loaded = v.run.groups.loaded.as_ref().filter(|(key, _)| !key.is_val());
    let points: Vec<Point> = loaded
        .map_or(vec![], |(_, groups)| groups.iter().flat_map(|g| g.rows.iter().filter_map(point)).collect());
    let label = loaded.map_or("no step with rollouts yet".to_string(), |(key, _)| key.label());
    draw_scatter(frame, scatter, &points, &label, t);
    draw_buckets(frame, buckets, &bucket_fits(&points), t);

    let [share, ratio] = Layout::horizontal([Constraint::Percentage(50), Constraint::Min(0)]).areas(bottom);
    let latest = |series| v.run.history.latest_value(crate::tui::history::CurveKey::Series(series));
    let pct = latest(Series::LengthInBand).map_or("–".into(), |v| format!("{:.0}%", 100.0 * v));
    let curves = overlay(
        v,
        &Signal::Series(Series::LengthInBand),
        ("", t.length, Marker::Braille),
        range,
        share.width,
        false,
        true,
    );
    chart(frame, share, &format!(" In the band {pct} (policy rows, by step) "), &curves, range, t);
    let curves = overlay(
        v,
        &Signal::Series(Series::LengthRatio),
        ("", t.length, Marker::Braille),
        range,
        ratio.width,
        false,
        true,
    );
    chart(
        frame,
        ratio,
        &format!(" Length ratio {} (mean, by step) ", opt_num(latest(Series::LengthRatio))),
        &curves,
        range,
        t,
    );
}

fn draw_scatter(frame: &mut Frame, area: Rect, points: &[Point], label: &str, t: &Theme) {
    let policy: Vec<(f64, f64)> =
        points.iter().filter(|p| !p.is_reference).map(|p| (p.target, p.words)).collect();
    let human: Vec<(f64, f64)> =
        points.iter().filter(|p| p.is_reference).map(|p| (p.target, p.words)).collect();
    let inside =
        points.iter().filter(|p| !p.is_reference && p.words >= p.band.0 && p.words <= p.band.1).count();
    let share = if policy.is_empty() {
        "–".into()
    } else {
        format!("{:.0}%", 100.0 * inside as f64 / policy.len() as f64)
    };
    let title = format!(" Words written by requested · {label} · {share} in the band ");
    let x_max = points.iter().map(|p| p.target).fold(0f64, f64::max).max(150.0) * 1.1;
    let y_max = points.iter().map(|p| p.words.max(p.band.1)).fold(0f64, f64::max).max(x_max) * 1.05;
    // the band's edges and the request itself, as lines over the requested range
    let edge = |f: fn((f64, f64)) -> f64| -> Vec<(f64, f64)> {
        (0..=40)
            .map(|i| x_max * i as f64 / 40.0)
            .map(|x| (x, f(LengthTarget::new(x).band()).max(0.0)))
            .collect()
    };
    let (low, high) = (edge(|b| b.0), edge(|b| b.1));
    let diagonal = [(0.0, 0.0), (x_max, x_max)];
    let line = |d: &'static str, data, colour| {
        Dataset::default()
            .name(d)
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(colour))
            .data(data)
    };
    let dot = |name: &'static str, data, colour, marker| {
        Dataset::default()
            .name(name)
            .marker(marker)
            .graph_type(GraphType::Scatter)
            .style(Style::default().fg(colour))
            .data(data)
    };
    let mut datasets = vec![
        line("band", &low, t.band),
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(t.band))
            .data(&high),
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::default().fg(t.dim))
            .data(&diagonal),
        dot("policy", &policy, t.policy, Marker::Braille),
    ];
    if !human.is_empty() {
        datasets.push(dot("human", &human, t.reference, if t.mono { Marker::Block } else { Marker::Dot }));
    }
    let labelled = area.width >= 40 && area.height >= 8;
    let axis = |max: f64| {
        let a = Axis::default().bounds([0.0, max]).style(t.dim());
        if labelled {
            a.labels([Line::from("0"), Line::from(num(max))])
        } else {
            a
        }
    };
    let c = Chart::new(datasets).block(pane(title, t)).x_axis(axis(x_max)).y_axis(axis(y_max));
    frame.render_widget(c, area);
}

fn draw_buckets(frame: &mut Frame, area: Rect, fits: &[BucketFit], t: &Theme) {
    let bar_width = area.width.saturating_sub(2 + 7 + 5 + 7 + 12).clamp(6, 30) as usize;
    let mut lines = vec![Line::styled(
        format!("{:<7}{:>4}  {:<bar_width$} {:>5}  ratio 0–2+", "words", "rows", "under·in·over", "mean"),
        t.title(),
    )];
    for ((_, _, label), f) in BUCKETS.iter().zip(fits).filter(|(_, f)| f.rows > 0) {
        let cells = |n: usize| (n as f64 / f.rows as f64 * bar_width as f64).round() as usize;
        let (under, over) = (cells(f.under), cells(f.over));
        let within = bar_width.saturating_sub(under + over);
        let peak = *f.histogram.iter().max().unwrap_or(&1).max(&1);
        let spark: String = f
            .histogram
            .iter()
            .map(|&n| [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'][(n * 8).div_ceil(peak).min(8)])
            .collect();
        lines.push(Line::from(vec![
            Span::styled(format!("{label:<7}{:>4}  ", f.rows), t.base()),
            Span::styled("◀".repeat(under), t.fg(t.warn)),
            Span::styled("█".repeat(within), t.fg(t.good)),
            Span::styled("▶".repeat(over), t.fg(t.bad)),
            Span::styled(format!(" {:>5}  ", num(f.ratio_sum / f.rows as f64)), t.base()),
            Span::styled(spark, t.fg(t.length)),
        ]));
    }
    if lines.len() == 1 {
        lines.push(Line::styled("no policy rows with a length target in this step", t.dim()));
    } else {
        lines.push(Line::styled("◀ under the band  █ inside  ▶ over (policy rows)", t.dim()));
    }
    frame.render_widget(Paragraph::new(lines).block(pane(" By requested length ", t)), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(target: f64, words: f64) -> Point {
        Point { target, words, is_reference: false, band: LengthTarget::new(target).band() }
    }

    #[test]
    fn rows_fall_in_their_bucket_and_band() {
        // 1000 words asked: the band is [650, 1600] (tolerances 350 and 600)
        // 1200 asked: [850, 1800]
        let points = [p(1000.0, 620.0), p(1000.0, 1000.0), p(1200.0, 1900.0), p(3000.0, 3000.0)];
        let human = Point { is_reference: true, ..p(1000.0, 1000.0) };
        let fits = bucket_fits(&[&points[..], &[human]].concat());
        let one_k = &fits[2];
        assert_eq!(
            (one_k.rows, one_k.under, one_k.within, one_k.over),
            (3, 1, 1, 1),
            "the human row is left out"
        );
        assert_eq!(fits[3].within, 1);
        // ratios 0.62, 1.0 and 1.58 land in bins 3, 5 and 7 (0.2 wide)
        assert_eq!(one_k.histogram[3] + one_k.histogram[5] + one_k.histogram[7], 3);
    }
}
