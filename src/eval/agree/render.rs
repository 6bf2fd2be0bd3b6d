//! The source comparison as a terminal table and as Markdown (JSON is serde's).

use std::fmt::Write;

use super::{AgreeReport, Items, SourceRow};
use crate::eval::stats::winrate::Interval;

/// Three decimals; a value that rounds to zero is written 0.000, never -0.000.
fn three(v: f64) -> String {
    format!("{:.3}", if v.abs() < 5e-4 { 0.0 } else { v })
}

fn ratio(x: Option<f64>) -> String {
    x.map_or("-".into(), three)
}

fn ci(x: Option<Interval>) -> String {
    x.map_or("-".into(), |i| format!("[{}, {}]", three(i.low), three(i.high)))
}

fn method(r: &AgreeReport) -> String {
    let items = match r.selection {
        Items::Heldout(share) => {
            format!("the held-out items (share {share} by prompt id, as `prefs build --heldout`)")
        }
        Items::All => "every judged item".into(),
    };
    format!(
        "{} of {} judged items scored: {items}. A source prefers the story it scores higher (equal: a tie) and is \
         compared with every annotator's verdict (A wins / B wins / tie); 95% CIs: percentile bootstrap over items, \
         {} resamples, seed {}",
        r.items, r.judged, r.resamples, r.seed
    )
}

fn cells(s: &SourceRow) -> [String; 9] {
    let a = &s.agreement;
    [
        a.source.clone(),
        format!("{}/{}", a.items - a.unscored, a.items),
        a.compared.to_string(),
        ratio(a.raw),
        ci(s.raw_ci95),
        ratio(a.cohens_kappa),
        ci(s.kappa_ci95),
        ratio(a.raw_without_ties),
        format!("{:.4}", s.cost),
    ]
}

const HEADER: [&str; 9] =
    ["source", "scored", "compared", "raw", "raw 95% CI", "kappa", "kappa 95% CI", "raw w/o ties", "cost $"];

/// Fixed-width columns for a terminal.
pub fn table(r: &AgreeReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Agreement with the human verdicts: {}", r.study);
    let _ = writeln!(out, "A = {}   B = {}", r.systems[0], r.systems[1]);
    let _ = writeln!(out, "{}\n", method(r));
    let rows: Vec<[String; 9]> = r.sources.iter().map(cells).collect();
    let width: Vec<usize> = (0..9)
        .map(|c| rows.iter().map(|row| row[c].chars().count()).chain([HEADER[c].len()]).max().unwrap_or(0))
        .collect();
    let line = |row: &[String]| {
        let mut l = format!("{:<w$}", row[0], w = width[0]);
        for c in 1..9 {
            let _ = write!(l, "  {:>w$}", row[c], w = width[c]);
        }
        l
    };
    let _ = writeln!(out, "{}", line(&HEADER.map(String::from)));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row));
    }
    for s in &r.sources {
        if s.agreement.unscored > 0 {
            let _ = writeln!(
                out,
                "{}: {} item(s) unscored (a judgement failed), left out; re-run to ask again (replies are cached)",
                s.agreement.source, s.agreement.unscored
            );
        }
    }
    out
}

/// The same, as a Markdown document.
pub fn markdown(r: &AgreeReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Reward sources against the human verdicts\n");
    let _ = writeln!(out, "Study `{}`: A = `{}`, B = `{}`.\n", r.study, r.systems[0], r.systems[1]);
    let _ = writeln!(out, "{}.\n", method(r));
    let _ = writeln!(out, "| {} |", HEADER.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADER.len()));
    for s in &r.sources {
        let mut c = cells(s);
        c[0] = format!("`{}`", c[0]);
        let _ = writeln!(out, "| {} |", c.join(" | "));
    }
    let _ = writeln!(
        out,
        "\nSources by label: {}.",
        r.sources
            .iter()
            .map(|s| format!("`{}` = `{}`", s.agreement.source, s.label))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
}
