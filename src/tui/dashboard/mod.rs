//! Dashboard: the run's curves over a zoomable step window (rewards with the validation
//! reward beside them, length ratio, loss, KL, grad norm, lr, HRI weight), each thinned to
//! two points per chart column, and the latest step's time split, judge failures and cost,
//! and the latest validation pass.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::action::Action;
use super::curves::chart::Signal;
use super::curves::chart::{chart, columns, overlay, run_colour, Curve};
use super::curves::state::{CurvesState, Page};
use super::curves::{self, CurvesView};
use super::history::{thin, Series, Window};
use super::run_view::RunView;
use super::state::TabId;
use super::tab::{Ctx, HelpSection, Tab};
use super::theme::Theme;
use super::widgets::{num, opt_num, pane};
use crate::run::stats::StepStats;

pub const ID: TabId = TabId("Dashboard");

/// Its state is the curves' (`State::curves`); it reads the run besides (`RunView`).
pub const TAB: Tab = Tab {
    id: ID,
    help: Some((1, HELP)),
    keys: |s, key| keys(&s.curves, key),
    update,
    wheel,
    draw: |frame, area, s| draw(frame, area, &s.curves, RunView::of(s), s.theme()),
};

const HELP: HelpSection = (
    "Dashboard",
    &[
        ("+ - ← → f", "zoom / pan / follow live"),
        ("v  < >", "page / smoothing"),
        ("↑↓  D", "signal / config diff"),
    ],
);

/// The curves' keys (pages, smoothing, the diff), then zoom; ← → and f are global keys that
/// mean pan and follow here.
fn keys(c: &CurvesState, key: KeyEvent) -> Option<Action> {
    if let Some(msg) = curves::keys::action_for(c, key) {
        return Some(Action::Curves(msg));
    }
    match key.code {
        KeyCode::Char('+') | KeyCode::Char('=') => Some(Action::Zoom { zoom_in: true }),
        KeyCode::Char('-') => Some(Action::Zoom { zoom_in: false }),
        _ => None,
    }
}

fn update(c: &mut Ctx, action: Action) -> Option<Action> {
    let s = &mut *c.state;
    match action {
        Action::Side { forward } => s.window = curves::pan(&s.history, s.window, &s.curves, forward),
        Action::Zoom { zoom_in } => s.window = curves::zoom(&s.history, s.window, &s.curves, zoom_in),
        Action::Follow => s.window = Window::default(),
        Action::Curves(msg) => {
            if let Some(text) = curves::update(&mut s.curves, &mut s.history, &s.run_name, msg) {
                c.say(text);
            }
        }
        other => return Some(other),
    }
    None
}

/// The wheel zooms the curves.
fn wheel(down: bool) -> Action {
    Action::Zoom { zoom_in: !down }
}

pub fn draw(frame: &mut Frame, area: Rect, c: &CurvesState, run: RunView, t: &Theme) {
    let v = CurvesView { curves: c, run, theme: t };
    let Some((x0, x1)) = v.range() else {
        let p = Paragraph::new(
            "Waiting for the first step: the trainer writes one event per step to events.jsonl.",
        )
        .style(t.dim())
        .block(pane(" Dashboard ", t));
        frame.render_widget(p, area);
        return;
    };
    // a line naming the runs, the smoothing and the page, once any of them is not the default
    let area = if !c.runs.is_empty() || c.weight() > 0.0 || c.page != Page::Overview {
        let [legend, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
        draw_legend(frame, legend, &v);
        rest
    } else {
        area
    };
    match c.page {
        Page::Overview => draw_overview(frame, area, &v, (x0, x1)),
        Page::Signals => curves::signals::draw(frame, area, &v, (x0, x1)),
        Page::Length => curves::length::draw(frame, area, &v, (x0, x1)),
    }
    if let Some(d) = &c.diff {
        curves::compare::draw_diff(frame, area, d, t);
    }
}

/// `━ a ━ b · D diff · smoothing 0.9 < > · curves signals length v`, runs in their colours.
fn draw_legend(frame: &mut Frame, area: Rect, v: &CurvesView) {
    let (t, c) = (v.theme, v.curves);
    let mut spans = Vec::new();
    if !c.runs.is_empty() {
        for (i, (name, _)) in v.runs().enumerate() {
            let glyph = if t.mono { ["⣿", "•", "█", "▬"][i % 4] } else { "━" };
            spans.push(Span::styled(format!(" {glyph} "), t.fg(run_colour(t, i))));
            spans.push(Span::styled(name.to_string(), t.base()));
        }
        spans.push(Span::styled(" · D diff ·", t.dim()));
    }
    let w = c.weight();
    let smoothing = if w > 0.0 { format!(" smoothing {w}, raw faint") } else { " smoothing off".to_string() };
    spans.push(Span::styled(smoothing, t.base()));
    spans.push(Span::styled(" < > · ", t.dim()));
    for p in Page::ALL {
        let style = if p == c.page { t.selected().patch(t.accent()) } else { t.dim() };
        spans.push(Span::styled(p.title(), style));
        spans.push(Span::raw(" "));
    }
    spans.push(Span::styled("v", t.dim()));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_overview(frame: &mut Frame, area: Rect, v: &CurvesView, (x0, x1): (usize, usize)) {
    let (t, run) = (v.theme, &v.run);
    let rows = run.history.visible(run.window);
    let [top, mid, bottom] =
        Layout::vertical([Constraint::Percentage(46), Constraint::Percentage(32), Constraint::Min(6)])
            .areas(area);
    let [reward, length] = Layout::horizontal([Constraint::Percentage(66), Constraint::Min(0)]).areas(top);

    let live = if run.window.end.is_none() { ", live" } else { "" };
    let zoom = if run.window.span.is_none() { "all" } else { "zoomed" };
    // the curves are of the rows' scores: say which (reward.score)
    let mode = rows.last().map_or(Default::default(), |r| r.score_mode).name();
    let many = !v.curves.runs.is_empty();
    let title = if many {
        format!(" Reward (policy mean) · steps {x0}–{x1} ({zoom}{live}) · {mode} ")
    } else {
        format!(" Reward · steps {x0}–{x1} ({zoom}{live}) · {mode} ")
    };
    let reward_series: &[(Series, &str, Color, Marker)] = if many {
        &[(Series::PolicyMean, "policy mean", t.policy, Marker::Braille)]
    } else {
        &[
            (Series::PolicyUpper, "", t.band, Marker::Dot),
            (Series::PolicyLower, "", t.band, Marker::Dot),
            (Series::PolicyMean, "policy mean ± std", t.policy, Marker::Braille),
            (Series::BestOfGroup, "best of group", t.best, Marker::Braille),
            (Series::Reference, "reference", t.reference, Marker::Braille),
        ]
    };
    let range = (x0, x1);
    let mut rewards: Vec<Curve> = reward_series
        .iter()
        .flat_map(|&(series, name, colour, marker)| {
            overlay(v, &Signal::Series(series), (name, colour, marker), range, reward.width, true, true)
        })
        .collect();
    // validation: one point per pass; a block marker where there is no colour to tell it
    for (i, (_, h)) in v.runs().enumerate().filter(|(_, (_, h))| !h.val.is_empty()) {
        let (xs, ys) = h.val_in(range);
        let points = thin(xs, ys, x0 as f64, x1 as f64, columns(reward.width));
        let (name, colour) =
            if many { (String::new(), run_colour(t, i)) } else { ("validation".into(), t.validation) };
        rewards.push(Curve { points, name, colour, marker: Marker::Block });
    }
    chart(frame, reward, &title, &rewards, range, t);
    let latest = rows.last();
    let ratio = latest.and_then(|r| r.length_ratio_mean);
    chart(
        frame,
        length,
        &format!(" Length ratio {} ", opt_num(ratio)),
        &overlay(
            v,
            &Signal::Series(Series::LengthRatio),
            ("", t.length, Marker::Braille),
            range,
            length.width,
            false,
            true,
        ),
        range,
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
            &overlay(
                v,
                &Signal::Series(series),
                ("", colour, Marker::Braille),
                range,
                cell.width,
                false,
                true,
            ),
            range,
            t,
        );
    }

    let [split, judge] = Layout::horizontal([Constraint::Percentage(50), Constraint::Min(0)]).areas(bottom);
    if let Some(last) = run.history.latest() {
        draw_split(frame, split, last, t);
    }
    draw_judge(frame, judge, run, t);
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

/// The run's judge failures and cost beside the latest step's, its latest validation pass and
/// its checkpoints.
fn draw_judge(frame: &mut Frame, area: Rect, run: &RunView, t: &Theme) {
    let last = run.history.latest();
    let failures = if run.judge_failures > 0 { t.fg(t.bad) } else { t.base() };
    let mut lines = Vec::new();
    if let Some(last) = last {
        lines.extend([
            Line::from(vec![Span::styled(
                format!(
                    "judge failures {} in the run, {} this step",
                    run.judge_failures, last.judge_failures
                ),
                failures,
            )]),
            Line::styled(
                format!("judge cost ${:.4} in the run, ${:.4} this step", run.judge_cost, last.judge_cost),
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
    if let Some(v) = run.history.latest_val() {
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
    if let Some((step, _)) = run.checkpoints.last() {
        lines.push(Line::styled(
            format!("{} checkpoints, the latest at step {step}", run.checkpoints.len()),
            t.dim(),
        ));
    }
    frame.render_widget(Paragraph::new(lines).block(pane(" Judge · run ", t)), area);
}
