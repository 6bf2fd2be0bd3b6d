//! The length report as a terminal table and as Markdown (JSON is serde's): rows are
//! models, columns per bucket the mean Story Quality and the mean length ratio with their
//! intervals, then the under / over-length shares and the counts behind each cell.

use std::fmt::Write;

use crate::eval::report::{LengthReport, LengthRow};
use crate::eval::stats::winrate::Interval;

fn mean_ci(mean: Option<f64>, ci: Option<Interval>, digits: usize) -> String {
    match (mean, ci) {
        (Some(m), Some(c)) => format!("{m:.digits$} [{:.digits$}, {:.digits$}]", c.low, c.high),
        (Some(m), None) => format!("{m:.digits$}"),
        _ => "-".into(),
    }
}

fn percent(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.0}%", v * 100.0))
}

// A missing row (a hand-edited length.json) shows as "-".
fn sq(r: Option<&LengthRow>) -> String {
    r.map_or("-".into(), |r| mean_ci(r.sq_mean, r.sq_ci, 3))
}

fn ratio(r: Option<&LengthRow>) -> String {
    r.map_or("-".into(), |r| mean_ci(r.length_ratio_mean, r.length_ratio_ci, 2))
}

fn shares(r: Option<&LengthRow>) -> String {
    r.map_or("-".into(), |r| format!("{} / {}", percent(r.under_share), percent(r.over_share)))
}

fn counts(r: Option<&LengthRow>) -> String {
    r.map_or("-".into(), |r| format!("{} / {} / {}", r.prompts, r.stories, r.judged))
}

/// The report's rows for `model`, in bucket order.
fn rows_of<'a>(r: &'a LengthReport, model: &'a str) -> impl Iterator<Item = Option<&'a LengthRow>> + 'a {
    r.buckets.iter().map(move |b| r.rows.iter().find(|x| x.model == model && x.bucket == b.label))
}

fn method(r: &LengthReport) -> String {
    format!(
        "judge {}, {} sample(s) per prompt; SQ = overall / 100; length ratio = story words / requested words; \
         [low, high] = {:.0}% percentile bootstrap over prompts, {} resamples; under / over = share of stories \
         outside the recipe's length tolerance band; n = prompts / stories / judged",
        r.judge,
        r.samples,
        r.confidence * 100.0,
        r.resamples
    )
}

fn outside(r: &LengthReport) -> Option<String> {
    (r.prompts_outside_buckets > 0)
        .then(|| format!("{} prompt(s) fell in no bucket and are not counted.", r.prompts_outside_buckets))
}

/// Fixed-width columns for a terminal: one block per bucket.
pub fn table(r: &LengthReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Story Quality and length by requested length");
    let _ = writeln!(out, "{}", method(r));
    if let Some(o) = outside(r) {
        let _ = writeln!(out, "{o}");
    }
    let width = r.models.iter().map(|m| m.chars().count()).max().unwrap_or(5).max(5);
    for (b, bucket) in r.buckets.iter().enumerate() {
        let _ = writeln!(out, "\nbucket {} words", bucket.label);
        let _ = writeln!(
            out,
            "{:<width$}  {:<24} {:<20} {:>11}  n",
            "model", "SQ [95% CI]", "ratio [95% CI]", "under/over"
        );
        for model in &r.models {
            let row = rows_of(r, model).nth(b).flatten();
            let _ = writeln!(
                out,
                "{:<width$}  {:<24} {:<20} {:>11}  {}",
                model,
                sq(row),
                ratio(row),
                shares(row),
                counts(row)
            );
        }
    }
    out
}

/// GitHub-flavoured Markdown: the paper's table (SQ and length ratio per bucket), then the
/// under / over shares and counts.
pub fn markdown(r: &LengthReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Story Quality by requested length\n");
    let _ = writeln!(out, "{}.\n", method(r));
    if let Some(o) = outside(r) {
        let _ = writeln!(out, "{o}\n");
    }
    let mut head = String::from("| model |");
    let mut rule = String::from("|---|");
    for b in &r.buckets {
        let _ = write!(head, " {0} SQ | {0} length ratio |", b.label);
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(out, "{head}\n{rule}");
    for model in &r.models {
        let mut line = format!("| {model} |");
        for row in rows_of(r, model) {
            let _ = write!(line, " {} | {} |", sq(row), ratio(row));
        }
        let _ = writeln!(out, "{line}");
    }
    let mut head = String::from("\n| model |");
    let mut rule = String::from("|---|");
    for b in &r.buckets {
        let _ = write!(head, " {0} under / over | {0} n |", b.label);
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(out, "{head}\n{rule}");
    for model in &r.models {
        let mut line = format!("| {model} |");
        for row in rows_of(r, model) {
            let _ = write!(line, " {} | {} |", shares(row), counts(row));
        }
        let _ = writeln!(out, "{line}");
    }
    out
}
