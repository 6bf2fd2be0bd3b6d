//! Markdown of one benchmark (`bench.md`) and of the paper-style table (`bench_table.md`).
//! A missing value is `–`, never 0; every mean stands beside its bootstrap CI.

use std::fmt::Write;

use super::aggregate::{BenchReport, Metric};
use super::table::{Cell, PaperTable};
use crate::eval::stats::cells::percent;
use crate::eval::stats::cells::{fixed, interval, MISSING};

fn mean_ci(m: &Metric) -> String {
    format!("{} [{}]", fixed(m.mean, 2), interval(m.ci, 2))
}

/// A table cell: `mean [low–high]`.
pub fn cell_text(c: &Option<Cell>, digits: usize) -> String {
    match c {
        Some(c) => format!("{} [{}]", fixed(Some(c.mean), digits), interval(c.ci, digits)),
        None => MISSING.into(),
    }
}

fn row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

fn rule(out: &mut String, n: usize) {
    row(out, &vec!["---".to_string(); n]);
}

/// `bench.md`: per system its values, then per dimension, then (Story Quality) per bucket.
pub fn markdown(r: &BenchReport) -> String {
    let mut out = format!(
        "# {} · judge {}\n\nmean [{} CI: percentile bootstrap over prompts, {} resamples]; std is the {} standard deviation, as the release prints it{}.\n\n",
        r.task.title(),
        r.judge,
        percent(r.confidence),
        r.resamples,
        r.spread,
        if r.batch { "; judged through the OpenAI Batch API" } else { "" }
    );
    let names: Vec<String> =
        r.systems.first().map(|s| s.values.iter().map(|m| m.name.clone()).collect()).unwrap_or_default();
    let mut head = vec!["system".to_string(), "stories".into(), "scored".into(), "failed".into()];
    head.extend(names.iter().cloned());
    head.extend(["std".to_string(), "median".into(), "cost $".into()]);
    row(&mut out, &head);
    rule(&mut out, head.len());
    for s in &r.systems {
        let mut cells =
            vec![s.system.clone(), s.stories.to_string(), s.scored.to_string(), s.failed.to_string()];
        cells.extend(names.iter().map(|n| s.value(n).map_or_else(|| MISSING.into(), mean_ci)));
        let h = s.value(&r.headline);
        cells.push(fixed(h.and_then(|m| m.std), 2));
        cells.push(fixed(h.and_then(|m| m.median), 2));
        cells.push(format!("{:.4}", s.usage.cost));
        row(&mut out, &cells);
    }
    let dims: Vec<String> = {
        let mut d: Vec<String> = vec![];
        for s in &r.systems {
            for m in &s.dims {
                if !d.contains(&m.name) {
                    d.push(m.name.clone());
                }
            }
        }
        d
    };
    if !dims.is_empty() {
        let _ = writeln!(out, "\n## Per dimension (mean [CI], n)\n");
        let mut head = vec!["dimension".to_string()];
        head.extend(r.systems.iter().map(|s| s.system.clone()));
        row(&mut out, &head);
        rule(&mut out, head.len());
        for d in &dims {
            let mut cells = vec![d.clone()];
            for s in &r.systems {
                cells.push(
                    s.dims
                        .iter()
                        .find(|m| &m.name == d)
                        .map_or_else(|| MISSING.into(), |m| format!("{}, {}", mean_ci(m), m.count)),
                );
            }
            row(&mut out, &cells);
        }
    }
    if r.systems.iter().any(|s| !s.buckets.is_empty()) {
        let _ = writeln!(out, "\n## By requested length\n");
        row(
            &mut out,
            &["system".into(), "bucket".into(), "stories".into(), "overall".into(), "length score".into()],
        );
        rule(&mut out, 5);
        for s in &r.systems {
            for b in &s.buckets {
                let v =
                    |n: &str| b.values.iter().find(|m| m.name == n).map_or_else(|| MISSING.into(), mean_ci);
                row(
                    &mut out,
                    &[
                        s.system.clone(),
                        b.bucket.clone(),
                        b.stories.to_string(),
                        v("overall_score"),
                        v("length_score"),
                    ],
                );
            }
        }
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for n in &r.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

/// `bench_table.md`: the systems side by side, then the Elo ladder and the length buckets.
pub fn table_markdown(t: &PaperTable) -> String {
    let mut out = format!(
        "# Benchmarks\n\nmean [{} CI: percentile bootstrap over prompts]; judges: {}.\n\n",
        percent(t.confidence),
        t.columns.iter().map(|c| format!("{} = {}", c.title, c.judge)).collect::<Vec<_>>().join(", ")
    );
    let mut head = vec!["system".to_string()];
    head.extend(t.columns.iter().map(|c| c.title.clone()));
    if t.elo.is_some() {
        head.push("Elo".into());
    }
    row(&mut out, &head);
    rule(&mut out, head.len());
    for r in &t.rows {
        let mut cells = vec![r.system.clone()];
        cells.extend(r.cells.iter().map(|c| cell_text(c, 2)));
        if t.elo.is_some() {
            cells.push(cell_text(&r.elo, 0));
        }
        row(&mut out, &cells);
    }
    if let Some(e) = &t.elo {
        let _ = write!(out, "\n## Elo ladder\n\n");
        out.push_str(&crate::eval::elo::render::markdown(e));
    }
    if !t.story_quality_buckets.is_empty() {
        let _ = writeln!(out, "\n## Story Quality by requested length\n");
        row(
            &mut out,
            &["system".into(), "bucket".into(), "stories".into(), "overall".into(), "length score".into()],
        );
        rule(&mut out, 5);
        for b in &t.story_quality_buckets {
            row(
                &mut out,
                &[
                    b.system.clone(),
                    b.bucket.clone(),
                    b.stories.to_string(),
                    cell_text(&b.overall, 2),
                    cell_text(&b.length_score, 3),
                ],
            );
        }
    }
    for l in &t.length {
        let _ = write!(out, "\n## Length buckets (eval length)\n\n");
        out.push_str(&crate::eval::length::render::markdown(l));
    }
    out
}
