//! Dashboard: the run's curves over a zoomable step window (rewards with the validation
//! reward beside them, length ratio, loss, KL, grad norm, lr, HRI weight), each thinned to
//! two points per chart column, and the latest step's time split, judge failures and cost,
//! and the latest validation pass.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, LegendPosition, Paragraph};
use ratatui::Frame;

use super::history::{thin, Series};
use super::state::State;
use super::theme::Theme;
use super::widgets::{num, opt_num, pane};
use crate::train::step::StepStats;

pub fn draw(frame: &mut Frame, area: Rect, s: &State) {
    let t = s.theme();
    let rows = s.history.visible(s.window);
    let Some((x0, x1)) = s.history.range(s.window) else {
        let p = Paragraph::new(
            "Waiting for the first step: the trainer writes one event per step to events.jsonl.",
        )
        .style(t.dim())
        .block(pane(" Dashboard ", t));
        frame.render_widget(p, area);
        return;
    };
    let [top, mid, bottom] =
        Layout::vertical([Constraint::Percentage(46), Constraint::Percentage(32), Constraint::Min(6)])
            .areas(area);
    let [reward, length] = Layout::horizontal([Constraint::Percentage(66), Constraint::Min(0)]).areas(top);

    let live = if s.window.end.is_none() { ", live" } else { "" };
    let zoom = if s.window.span.is_none() { "all" } else { "zoomed" };
    // the curves are of the rows' scores: say which (reward.score)
    let mode = rows.last().map_or(Default::default(), |r| r.score_mode).name();
    let title = format!(" Reward · steps {x0}–{x1} ({zoom}{live}) · {mode} ");
    let reward_series = [
        (Series::PolicyUpper, "", t.band, Marker::Dot),
        (Series::PolicyLower, "", t.band, Marker::Dot),
        (Series::PolicyMean, "policy mean ± std", t.policy, Marker::Braille),
        (Series::BestOfGroup, "best of group", t.best, Marker::Braille),
        (Series::Reference, "reference", t.reference, Marker::Braille),
    ];
    let mut rewards = curves(&reward_series, s, (x0, x1), reward.width);
    if !s.history.val.is_empty() {
        // validation: one point per pass; a block marker where there is no colour to tell it
        let (xs, ys) = s.history.val_series(s.window);
        let points = thin(xs, ys, x0 as f64, x1 as f64, columns(reward.width));
        rewards.push(Curve { points, name: "validation", colour: t.validation, marker: Marker::Block });
    }
    chart(frame, reward, &title, &rewards, (x0, x1), t);
    let latest = rows.last();
    let ratio = latest.and_then(|r| r.length_ratio_mean);
    chart(
        frame,
        length,
        &format!(" Length ratio {} ", opt_num(ratio)),
        &curves(&[(Series::LengthRatio, "", t.length, Marker::Braille)], s, (x0, x1), length.width),
        (x0, x1),
        t,
    );

    let small = [
        (Series::Loss, "loss", t.loss),
        (Series::Kl, "KL", t.kl),
        (Series::GradNorm, "grad norm", t.grad),
        (Series::Lr, "lr", t.lr),
        (Series::HriWeight, "HRI weight", t.hri),
    ];
    let cells = Layout::horizontal([Constraint::Ratio(1, 5); 5]).split(mid);
    for ((series, name, colour), cell) in small.into_iter().zip(cells.iter()) {
        let now = latest.and_then(|r| series.value(r));
        chart(
            frame,
            *cell,
            &format!(" {name} {} ", opt_num(now)),
            &curves(&[(series, "", colour, Marker::Braille)], s, (x0, x1), cell.width),
            (x0, x1),
            t,
        );
    }

    let [split, judge] = Layout::horizontal([Constraint::Percentage(50), Constraint::Min(0)]).areas(bottom);
    if let Some(last) = s.history.latest() {
        draw_split(frame, split, last, t);
    }
    draw_judge(frame, judge, s.history.latest(), s);
}

/// One curve of a chart, thinned.
struct Curve<'a> {
    points: Vec<(f64, f64)>,
    name: &'a str,
    colour: Color,
    marker: Marker,
}

/// Braille columns of a chart `width` cells wide (two per cell, inside the border).
fn columns(width: u16) -> usize {
    2 * width.saturating_sub(2).max(1) as usize
}

/// The history's series over the window, each thinned to two points per braille column.
fn curves<'a>(
    series: &[(Series, &'a str, Color, Marker)],
    s: &State,
    (x0, x1): (usize, usize),
    width: u16,
) -> Vec<Curve<'a>> {
    series
        .iter()
        .map(|&(series, name, colour, marker)| {
            let (xs, ys) = s.history.series(series, s.window);
            Curve { points: thin(xs, ys, x0 as f64, x1 as f64, columns(width)), name, colour, marker }
        })
        .collect()
}

fn chart(frame: &mut Frame, area: Rect, title: &str, curves: &[Curve], (x0, x1): (usize, usize), t: &Theme) {
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
            let d = if c.name.is_empty() { d } else { d.name(c.name.to_string()) };
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
        .block(pane(title.to_string(), t))
        .x_axis(x_axis)
        .y_axis(y_axis)
        .legend_position(Some(LegendPosition::TopLeft))
        .hidden_legend_constraints((Constraint::Percentage(60), Constraint::Percentage(60)));
    frame.render_widget(c, area);
}

/// The latest step's seconds split into generate / judge / train, as a stacked bar.
fn draw_split(frame: &mut Frame, area: Rect, last: &StepStats, t: &Theme) {
    let parts = [
        ("generate", last.seconds_generate, t.generate, '█'),
        ("judge", last.seconds_judge, t.judge, '▓'),
        ("train", last.seconds_train, t.train, '░'),
    ];
    let total: f64 = parts.iter().map(|p| p.1).sum();
    let width = area.width.saturating_sub(2) as usize;
    let mut bar = Vec::new();
    let mut used = 0usize;
    for (i, (_, secs, colour, glyph)) in parts.iter().enumerate() {
        let n = if i == parts.len() - 1 {
            width - used
        } else if total > 0.0 {
            ((secs / total) * width as f64).round() as usize
        } else {
            0
        };
        let n = n.min(width - used);
        used += n;
        bar.push(Span::styled(glyph.to_string().repeat(n), t.fg(*colour)));
    }
    let mut legend = Vec::new();
    for (name, secs, colour, glyph) in parts {
        legend.push(Span::styled(format!("{glyph} "), t.fg(colour)));
        legend.push(Span::styled(format!("{name} {} s  ", num(secs)), t.base()));
    }
    let lines = vec![
        Line::styled(format!("step {}: {} s in all", last.step, num(total)), t.base()),
        Line::from(bar),
        Line::from(legend),
        Line::styled(format!("{} response tokens trained", last.tokens), t.dim()),
    ];
    frame.render_widget(Paragraph::new(lines).block(pane(" Step time ", t)), area);
}

fn draw_judge(frame: &mut Frame, area: Rect, last: Option<&StepStats>, s: &State) {
    let t = s.theme();
    let failures = if s.judge_failures > 0 { t.fg(t.bad) } else { t.base() };
    let mut lines = Vec::new();
    if let Some(last) = last {
        lines.extend([
            Line::from(vec![Span::styled(
                format!("judge failures {} in the run, {} this step", s.judge_failures, last.judge_failures),
                failures,
            )]),
            Line::styled(
                format!("judge cost ${:.4} in the run, ${:.4} this step", s.judge_cost, last.judge_cost),
                t.base(),
            ),
            Line::styled(
                format!(
                    "reference rank {} · beats all {} · zero-variance groups {}",
                    opt_num(last.reference_rank_mean),
                    last.reference_beats_all.map_or("–".into(), |v| format!("{:.0}%", 100.0 * v)),
                    last.zero_variance_groups
                ),
                t.base(),
            ),
        ]);
    }
    if let Some(v) = s.history.latest_val() {
        let failed = if v.judge_failures > 0 {
            format!(", {} judge failures", v.judge_failures)
        } else {
            String::new()
        };
        lines.push(Line::styled(
            format!(
                "validation at step {}: reward {} ± {} · SQ {} · ratio {} ({} prompts{failed})",
                v.step,
                num(v.reward_mean),
                num(v.reward_std),
                num(v.story_quality_mean),
                opt_num(v.length_ratio_mean),
                v.prompts
            ),
            t.fg(t.validation),
        ));
    }
    if let Some((step, _)) = s.checkpoints.last() {
        lines.push(Line::styled(
            format!("{} checkpoints, the latest at step {step}", s.checkpoints.len()),
            t.dim(),
        ));
    }
    frame.render_widget(Paragraph::new(lines).block(pane(" Judge · run ", t)), area);
}
