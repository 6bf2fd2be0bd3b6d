//! A benchmark summary: the paper-style table of every benchmark of the run (each evaluation
//! of the tab holding a `bench.json`, with the Elo ladder's ratings when one is there), one
//! row per system, each cell a mean with its interval; then the chosen benchmark's counts
//! (stories, scored, failed, cost) and its notes. Built from the loaded summaries only.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::state::{EvalTab, Report};
use crate::eval::bench::aggregate::BenchReport;
use crate::eval::bench::render::cell_text;
use crate::eval::bench::table::assemble;
use crate::eval::stats::cells::fixed;
use crate::eval::stats::cells::percent;
use crate::tui::theme::Theme;
use crate::tui::widgets::pane;

/// A column's name in a narrow table.
fn short(title: &str) -> String {
    title
        .replace("LongBench-Write", "LBW")
        .replace("EQ-Bench Creative", "EQ Creative")
        .replace("EQ-Bench Longform", "EQ Longform")
        .replace("Story Quality", "SQ")
}

/// One row per benchmark value (and the Elo ladder), one column per system: systems are few,
/// values many, so the table stays narrow.
pub fn draw(frame: &mut Frame, area: Rect, tab: &EvalTab, chosen: &BenchReport, t: &Theme) {
    let reports = || tab.evals.iter().flat_map(|e| e.reports());
    let benches: Vec<BenchReport> = reports()
        .filter_map(|r| match r {
            Report::Bench(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    let elo = reports().find_map(|r| match r {
        Report::Elo(o) => Some(o.clone()),
        _ => None,
    });
    let table = assemble(&benches, elo, vec![], vec![]);
    let mut header: Vec<String> = vec!["".into()];
    header.extend(table.rows.iter().map(|r| r.system.clone()));
    let mut rows: Vec<Vec<String>> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut cells = vec![short(&c.title)];
            cells.extend(table.rows.iter().map(|r| cell_text(&r.cells[i], 2)));
            cells
        })
        .collect();
    if table.elo.is_some() {
        let mut cells = vec!["Elo".to_string()];
        cells.extend(table.rows.iter().map(|r| cell_text(&r.elo, 0)));
        rows.push(cells);
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = " ".repeat(widths[i] - c.chars().count());
                if i == 0 {
                    format!("{c}{pad}  ")
                } else {
                    format!("{pad}{c}  ")
                }
            })
            .collect::<String>()
            .trim_end()
            .to_string()
    };
    let mut lines = vec![Line::styled(line(&header), t.title())];
    for r in &rows {
        lines.push(Line::styled(line(r), t.base()));
    }
    lines.push(Line::default());
    let mut judges: Vec<(String, Vec<String>)> = vec![];
    for c in &table.columns {
        match judges.iter_mut().find(|(j, _)| *j == c.judge) {
            Some((_, tasks)) if tasks.contains(&c.task.title().to_string()) => {}
            Some((_, tasks)) => tasks.push(c.task.title().into()),
            None => judges.push((c.judge.clone(), vec![c.task.title().into()])),
        }
    }
    let judges: Vec<String> = judges.iter().map(|(j, tasks)| format!("{j} ({})", tasks.join(", "))).collect();
    lines.push(Line::styled(format!("judges: {}", judges.join(" · ")), t.dim()));
    lines.push(Line::default());
    lines.push(Line::from(vec![
        Span::styled(format!("{} ", chosen.task.title()), t.accent()),
        Span::styled(
            format!(
                "· judge {} · {}{}",
                chosen.judge,
                chosen.headline,
                if chosen.batch { " · Batch API" } else { "" }
            ),
            t.dim(),
        ),
    ]));
    for s in &chosen.systems {
        let head = s.value(&chosen.headline);
        lines.push(Line::styled(
            format!(
                "  {}: {} stories, {} scored, {} failed · median {} · std {} · ${:.4}",
                s.system,
                s.stories,
                s.scored,
                s.failed,
                fixed(head.and_then(|m| m.median), 2),
                fixed(head.and_then(|m| m.std), 2),
                s.usage.cost
            ),
            t.base(),
        ));
    }
    for n in &chosen.notes {
        lines.push(Line::styled(format!("  note: {n}"), t.dim()));
    }
    let title = format!(" Benchmarks · mean [{} CI over prompts] ", percent(table.confidence));
    // rows are cut at the pane's edge, never wrapped into the next one
    frame.render_widget(Paragraph::new(lines).block(pane(title, t)), area);
}
