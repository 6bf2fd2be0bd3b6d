//! The Signals page: every signal a step event carries, by family (the reward's components,
//! each rubric dimension's mean score, the reference, zero-variance groups, the policy's
//! clip fractions, entropy and KL, the judge's latency and cost), chosen from a list and drawn
//! large over every run, with the rest of its family as small charts beneath.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::chart::{chart, chart_styled, overlay, Signal};
use super::CurvesView;
use crate::tui::history::{History, Series};
use crate::tui::widgets::{opt_num, pane};

/// One line of the list.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub family: &'static str,
    pub name: String,
    pub signal: Signal,
}

const FIXED: [(&str, &[(Series, &str)]); 7] = [
    (
        "Reward",
        &[
            (Series::PolicyMean, "policy mean"),
            (Series::Reference, "reference"),
            (Series::BestOfGroup, "best of group"),
        ],
    ),
    (
        "Components",
        &[
            (Series::StoryQuality, "Story Quality"),
            (Series::Repetition, "repetition"),
            (Series::LengthPenalty, "length penalty"),
            (Series::BlankPenalty, "blank"),
            (Series::OverlongPenalty, "overlong"),
        ],
    ),
    (
        "Reference",
        &[(Series::ReferenceRank, "rank in group"), (Series::ReferenceBeatsAll, "beats-all share")],
    ),
    ("Groups", &[(Series::ZeroVarianceShare, "zero-variance share")]),
    (
        "Policy",
        &[
            (Series::ClipFracLow, "clip frac low"),
            (Series::ClipFracHigh, "clip frac high"),
            (Series::Entropy, "entropy"),
            (Series::Kl, "KL"),
            (Series::Loss, "loss"),
            (Series::GradNorm, "grad norm"),
        ],
    ),
    (
        "Judge",
        &[
            (Series::JudgeLatencyP50, "latency p50 (s)"),
            (Series::JudgeLatencyP95, "latency p95 (s)"),
            (Series::JudgeCost, "cost ($/step)"),
        ],
    ),
    ("Length", &[(Series::LengthRatio, "length ratio"), (Series::LengthInBand, "in-band share")]),
];

/// Every signal, family by family; the rubric's dimensions (every run's `histories`, the
/// first run's order first) after the components.
pub fn catalogue<'a>(histories: impl IntoIterator<Item = &'a History>) -> Vec<Entry> {
    let mut dims: Vec<String> = Vec::new();
    for h in histories {
        for d in &h.dimensions {
            if !dims.contains(&d.key) {
                dims.push(d.key.clone());
            }
        }
    }
    let mut out = Vec::new();
    for (family, members) in FIXED {
        out.extend(members.iter().map(|(series, name)| Entry {
            family,
            name: name.to_string(),
            signal: Signal::Series(*series),
        }));
        if family == "Components" {
            out.extend(dims.iter().map(|k| Entry {
                family: "Rubric",
                name: k.clone(),
                signal: Signal::Dimension(k.clone()),
            }));
        }
    }
    out
}

/// The first run's latest value of a signal.
fn latest(h: &History, signal: &Signal) -> Option<f64> {
    h.latest_value(signal.key(h)?)
}

pub fn draw(frame: &mut Frame, area: Rect, v: &CurvesView, range: (usize, usize)) {
    let t = v.theme;
    let all = catalogue(super::histories(v.run.history, v.curves));
    let chosen = v.curves.signal.min(all.len().saturating_sub(1));
    let list_width = (area.width * 2 / 5).clamp(24, 38);
    let [list, right] = Layout::horizontal([Constraint::Length(list_width), Constraint::Min(0)]).areas(area);

    // the list: a heading per family, the chosen line highlighted and kept in view
    let mut lines = Vec::new();
    let mut chosen_line = 0;
    let name_width = list_width.saturating_sub(13) as usize;
    for (i, e) in all.iter().enumerate() {
        if i == 0 || all[i - 1].family != e.family {
            lines.push(Line::styled(e.family, t.title()));
        }
        if i == chosen {
            chosen_line = lines.len();
        }
        let name: String = e.name.chars().take(name_width).collect();
        let text = format!(" {name:<name_width$} {:>9}", opt_num(latest(v.run.history, &e.signal)));
        lines.push(Line::styled(text, if i == chosen { t.selected() } else { t.base() }));
    }
    let inner_height = list.height.saturating_sub(2) as usize;
    let scroll = chosen_line
        .saturating_sub(inner_height.saturating_sub(1) / 2)
        .min(lines.len().saturating_sub(inner_height));
    let title = format!(" Signals {}/{} (↑↓) ", chosen + 1, all.len());
    frame.render_widget(Paragraph::new(lines).scroll((scroll as u16, 0)).block(pane(title, t)), list);

    let Some(entry) = all.get(chosen) else { return };
    let family: Vec<&Entry> = all.iter().filter(|e| e.family == entry.family).collect();
    // small charts of the family beneath, where there is height for them
    let (big, grid) = if family.len() > 1 && right.height >= 30 {
        let [a, b] = Layout::vertical([Constraint::Percentage(55), Constraint::Min(0)]).areas(right);
        (a, Some(b))
    } else {
        (right, None)
    };
    let (x0, x1) = range;
    let title = format!(
        " {} · {} {} · steps {x0}–{x1} ",
        entry.family,
        entry.name,
        opt_num(latest(v.run.history, &entry.signal))
    );
    let curves = overlay(
        v,
        &entry.signal,
        (entry.name.as_str(), t.policy, Marker::Braille),
        range,
        big.width,
        true,
        true,
    );
    chart(frame, big, &title, &curves, range, t);
    let Some(grid) = grid else { return };
    let per_row = ((grid.width / 32).max(1) as usize).min(family.len());
    let rows = family.len().div_ceil(per_row);
    let row_areas = Layout::vertical(vec![Constraint::Ratio(1, rows as u32); rows]).split(grid);
    for (r, row_area) in row_areas.iter().enumerate() {
        let cells = Layout::horizontal(vec![Constraint::Ratio(1, per_row as u32); per_row]).split(*row_area);
        for (c, cell) in cells.iter().enumerate() {
            let Some(e) = family.get(r * per_row + c) else { break };
            let curves =
                overlay(v, &e.signal, ("", t.policy, Marker::Braille), range, cell.width, false, false);
            let name: String = e.name.chars().take(cell.width.saturating_sub(12) as usize).collect();
            let block = pane(format!(" {name} {} ", opt_num(latest(v.run.history, &e.signal))), t);
            let block = if e.signal == entry.signal { block.border_style(t.accent()) } else { block };
            chart_styled(frame, *cell, block, &curves, range, t);
        }
    }
}
